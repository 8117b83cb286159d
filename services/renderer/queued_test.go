package renderer

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/postback-dev/postback/pkg/delivery"
	"github.com/postback-dev/postback/pkg/stream"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// A queued delivery's PENDING entry goes to the history only if the
// delivery is still waiting for its first send once the wait is over: one
// the sender took and acked meanwhile (its own entry says the rest) is
// never logged. Real NATS: the sender's partition consumers and their ack
// floors.
func TestAQueuedDeliveryIsLoggedPendingOnlyIfStillQueuedAfterTheWait(t *testing.T) {
	r, js := startRenderer(t)
	ctx := context.Background()
	senders, err := stream.SenderConsumers(ctx, js, time.Minute, 100)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(5000, 0)
	r.later = newLaterLog(r.queued, func(ctx context.Context, partition string) (uint64, error) {
		return stream.SenderAckFloor(ctx, js, partition)
	}, 2*time.Second, slog.New(slog.DiscardHandler))
	r.later.now = func() time.Time { return now }

	ev := &stream.Event{ID: "evt_1", AccountID: "brand-1", Type: "action_clearing", Time: time.Unix(4999, 0).UTC(),
		Data: map[string]any{"ActionId": "A-1"}}
	if n, err := r.render(ctx, ev, 3, false); err != nil || n != 2 {
		t.Fatalf("render: %d queued, %v; want 2", n, err)
	}
	if got := historyEntries(t, js); len(got) != 0 {
		t.Fatalf("%d PENDING entries logged as the deliveries were queued, want none yet", len(got))
	}

	// Before the wait is over, nothing is looked at.
	now = now.Add(time.Second)
	if n := r.later.look(ctx, false); n != 0 || r.later.n != 2 {
		t.Fatalf("a second in: %d logged, %d waiting; want 0 and 2", n, r.later.n)
	}

	// The sender takes ep_1's job and acks it; ep_2's stays queued.
	taken := senders[partitionIndex(t, "ep_1")]
	m := nextMsg(t, taken)
	if err := m.DoubleAck(ctx); err != nil {
		t.Fatal(err)
	}

	now = now.Add(time.Second)
	if n := r.later.look(ctx, false); n != 1 {
		t.Fatalf("once the wait is over: %d logged, want 1 (the one still queued)", n)
	}
	got := historyEntries(t, js)
	if len(got) != 1 || got[0].Delivery.EndpointId != "ep_2" || got[0].Delivery.Status != postbackv1.DeliveryStatus_DELIVERY_STATUS_PENDING {
		t.Fatalf("history entries %v, want ep_2's delivery PENDING alone", got)
	}
	if !got[0].Delivery.CreateTime.AsTime().Equal(ev.Time) || got[0].Version > ev.Time.UnixMicro()+1 {
		t.Errorf("late PENDING entry created %s at version %d; want its event's time %s and a version at it",
			got[0].Delivery.CreateTime.AsTime(), got[0].Version, ev.Time)
	}
	if r.later.n != 0 {
		t.Errorf("%d still waiting, want 0", r.later.n)
	}
}

func partitionIndex(t *testing.T, endpointID string) int {
	t.Helper()
	p, err := strconv.Atoi(stream.Partition(endpointID))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func nextMsg(t *testing.T, c jetstream.Consumer) jetstream.Msg {
	t.Helper()
	batch, err := c.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		return m
	}
	t.Fatalf("no job in the partition: %v", batch.Error())
	return nil
}

// fakeQueued is a queued log whose publishes succeed unless fail is set.
type fakeQueued struct {
	logged []string // delivery ids, in the order logged
	fail   int      // the next fail calls fail
}

func (f *fakeQueued) Log(job *delivery.Job, _ []byte) (<-chan error, error) {
	ch := make(chan error, 1)
	if f.fail > 0 {
		f.fail--
		ch <- errors.New("nats: timeout")
		return ch, nil
	}
	f.logged = append(f.logged, job.DeliveryID)
	ch <- nil
	return ch, nil
}

func TestTheQueuedDeliveriesWaitingToBeLogged(t *testing.T) {
	job := func(id string) (*delivery.Job, []byte) {
		j := &delivery.Job{DeliveryID: id, AccountID: "brand-1", EndpointID: "ep_1", Created: time.Unix(99, 0)}
		b, err := j.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return j, b
	}
	type step struct {
		advance time.Duration
		all     bool
		floor   uint64
		floorOK bool
		want    []string // logged by this look
	}
	cases := []struct {
		name      string
		after     time.Duration
		max       int
		fail      int
		add       []uint64 // sequences, delivery ids dlv_<seq>
		atOnce    int      // how many of add were logged at once
		steps     []step
		leftAfter int
	}{
		{name: "no wait configured: logged at once", after: -1, add: []uint64{1, 2}, atOnce: 2},
		{name: "past the bound: logged at once", after: time.Second, max: 2, add: []uint64{1, 2, 3}, atOnce: 1,
			steps: []step{{advance: time.Second, floor: 0, floorOK: true, want: []string{"dlv_1", "dlv_2"}}}},
		{name: "gone below the sender's ack floor: never logged", after: time.Second, add: []uint64{4, 5, 6},
			steps: []step{{advance: time.Second, floor: 5, floorOK: true, want: []string{"dlv_6"}}}},
		{name: "not yet waited long enough: kept", after: time.Second, add: []uint64{1},
			steps: []step{{advance: 999 * time.Millisecond, floorOK: true}}, leftAfter: 1},
		{name: "the sender's progress unknown: all logged", after: time.Second, add: []uint64{1, 2},
			steps: []step{{advance: time.Second, floorOK: false, want: []string{"dlv_1", "dlv_2"}}}},
		{name: "a failed log is tried again at the next look", after: time.Second, fail: 1, add: []uint64{1, 2},
			steps: []step{
				{advance: time.Second, floorOK: true, want: []string{"dlv_2"}},
				{advance: 0, floorOK: true, want: []string{"dlv_1"}},
			}},
		{name: "a stop logs everything still queued, however recent", after: time.Second, add: []uint64{1, 2},
			steps: []step{{all: true, floor: 1, floorOK: true, want: []string{"dlv_2"}}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := &fakeQueued{}
			now := time.Unix(100, 0)
			var floor uint64
			floorOK := true
			l := newLaterLog(q, func(context.Context, string) (uint64, error) {
				if !floorOK {
					return 0, errors.New("nats: no responders")
				}
				return floor, nil
			}, tc.after, slog.New(slog.DiscardHandler))
			l.now = func() time.Time { return now }
			if tc.max > 0 {
				l.max = tc.max
			}
			atOnce := 0
			for _, seq := range tc.add {
				j, body := job("dlv_" + strconv.FormatUint(seq, 10))
				ch, err := l.add("3", seq, j, body)
				if err != nil {
					t.Fatal(err)
				}
				if ch != nil {
					atOnce++
				}
			}
			if atOnce != tc.atOnce {
				t.Fatalf("%d logged at once, want %d", atOnce, tc.atOnce)
			}
			q.logged, q.fail = nil, tc.fail
			for i, s := range tc.steps {
				now = now.Add(s.advance)
				floor, floorOK = s.floor, s.floorOK
				n := l.look(context.Background(), s.all)
				if n != len(s.want) || !slices.Equal(q.logged, s.want) {
					t.Fatalf("look %d: logged %v (%d), want %v", i, q.logged, n, s.want)
				}
				q.logged = nil
			}
			if l.n != tc.leftAfter {
				t.Errorf("%d left waiting, want %d", l.n, tc.leftAfter)
			}
		})
	}
}

// The looks run every quarter of the wait, at least every millisecond: a
// wait of a few nanoseconds (a ticker of zero would panic) still logs.
func TestATinyWaitStillLooks(t *testing.T) {
	q := &syncQueued{logged: make(chan string, 1)}
	l := newLaterLog(q, func(context.Context, string) (uint64, error) { return 0, nil }, 2*time.Nanosecond, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go l.run(ctx, context.Background())
	j := &delivery.Job{DeliveryID: "dlv_1", Created: time.Unix(99, 0)}
	b, err := j.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.add("3", 7, j, b); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-q.logged:
		if id != "dlv_1" {
			t.Fatalf("logged %s, want dlv_1", id)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not logged within 5 s")
	}
}

// syncQueued is a queued log that hands each logged id to a channel.
type syncQueued struct{ logged chan string }

func (q *syncQueued) Log(job *delivery.Job, _ []byte) (<-chan error, error) {
	q.logged <- job.DeliveryID
	ch := make(chan error, 1)
	ch <- nil
	return ch, nil
}
