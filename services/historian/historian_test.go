package historian

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/postback-dev/postback/pkg/delivery"
	"github.com/postback-dev/postback/pkg/history"
	"github.com/postback-dev/postback/pkg/history/sqlite"
	"github.com/postback-dev/postback/pkg/inflight"
	"github.com/postback-dev/postback/pkg/stream"
	"github.com/postback-dev/postback/pkg/stream/streamtest"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// flaky is a real store that refuses the first fails batches, as a store
// that is down does, and, for good, every batch holding a change of the
// delivery bad (as PostgreSQL refuses a value a column cannot take).
type flaky struct {
	history.Store
	fails   atomic.Int64
	refused atomic.Int64
	bad     string
	tries   atomic.Int64  // batches offered
	slow    time.Duration // how long the first write takes
	stored  atomic.Int64  // changes in the batches stored

	mu     sync.Mutex
	writes map[string]int // by delivery: the stored batches that held a change of it
}

func (f *flaky) Append(ctx context.Context, es []history.Entry) error {
	if f.tries.Add(1) == 1 {
		time.Sleep(f.slow)
	}
	if f.fails.Add(-1) >= 0 {
		f.refused.Add(1)
		return errors.New("connection refused")
	}
	for _, e := range es {
		if f.bad != "" && e.Delivery.Id == f.bad {
			return history.Refused(fmt.Errorf("invalid byte sequence in delivery %s", e.Delivery.Id))
		}
	}
	if err := f.Store.Append(ctx, es); err != nil {
		return err
	}
	f.stored.Add(int64(len(es)))
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.writes == nil {
		f.writes = map[string]int{}
	}
	in := map[string]bool{}
	for _, e := range es {
		if id := e.Delivery.GetId(); !in[id] {
			in[id] = true
			f.writes[id]++
		}
	}
	return nil
}

type setup struct {
	js    jetstream.JetStream
	dls   *inflight.Deliveries
	store *flaky
}

func newSetup(t *testing.T, fails int64) *setup {
	t.Helper()
	js := streamtest.JetStream(t)
	ctx := context.Background()
	dls, err := inflight.OpenDeliveries(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	s, err := sqlite.Open(filepath.Join(t.TempDir(), "history.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	f := &flaky{Store: s}
	f.fails.Store(fails)
	return &setup{js: js, dls: dls, store: f}
}

// run starts a writer until the returned stop is called.
func (s *setup) run(t *testing.T) (stop func()) {
	return s.runWith(t, func(*Config) {})
}

// runWith is run with the writer's configuration changed by set.
func (s *setup) runWith(t *testing.T, set func(*Config)) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	cfg := Config{NATS: s.js.Conn(), Layout: stream.DefaultOptions(), Store: s.store, Batch: 50,
		Logger: slog.New(slog.DiscardHandler)}
	set(&cfg)
	go func() {
		done <- Run(ctx, cfg)
	}()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("writer: %v", err)
		}
	}
}

// deliver writes n deliveries' lives as the services do: created PENDING,
// then SUCCEEDED with its attempt.
func (s *setup) deliver(t *testing.T, n int, tag string) []string {
	t.Helper()
	var ids []string
	for i := range n {
		r := s.queue(t, fmt.Sprintf("dlv_%s%05d", tag, i))
		s.succeed(t, r)
		ids = append(ids, r.Delivery.Id)
	}
	return ids
}

// queue writes a delivery's record as the renderer queues it: PENDING.
func (s *setup) queue(t *testing.T, id string) *inflight.Record {
	t.Helper()
	return s.queueAt(t, id, time.Now())
}

// queueAt is queue of a delivery queued at now.
func (s *setup) queueAt(t *testing.T, id string, now time.Time) *inflight.Record {
	t.Helper()
	r := &inflight.Record{Delivery: &postbackv1.Delivery{Id: id, AccountId: "brand-1", EndpointId: "ep_1", EventId: "evt_" + id,
		EventType: "conversion", Status: postbackv1.DeliveryStatus_DELIVERY_STATUS_PENDING,
		CreateTime: timestamppb.New(now), UpdateTime: timestamppb.New(now)},
		Job: &delivery.Job{DeliveryID: id, URL: "http://127.0.0.1/postback?txid=TX-1001", Created: now}}
	if err := s.dls.Create(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	return r
}

// succeed writes r's outcome as the sender does: SUCCEEDED, with its
// attempt.
func (s *setup) succeed(t *testing.T, r *inflight.Record) {
	t.Helper()
	r.Delivery.Status, r.Delivery.AttemptCount, r.Delivery.LastStatusCode = postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED, 1, 200
	r.Delivery.UpdateTime = timestamppb.Now()
	r.Last = &postbackv1.Attempt{DeliveryId: r.Delivery.Id, Number: 0, StatusCode: 200, StartTime: timestamppb.Now(),
		Outcome: postbackv1.AttemptOutcome_ATTEMPT_OUTCOME_SUCCESS}
	if err := s.dls.Put(context.Background(), r); err != nil {
		t.Fatal(err)
	}
}

// waitPending waits until id is in the store, PENDING; what names it in
// the failure.
func (s *setup) waitPending(t *testing.T, id string, within time.Duration, what string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if r, err := s.store.Get(context.Background(), id); err == nil && r.Delivery.Status == postbackv1.DeliveryStatus_DELIVERY_STATUS_PENDING {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s was not stored within %s", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitStored waits until every id is SUCCEEDED in the store with its one attempt.
func (s *setup) waitStored(t *testing.T, ids []string) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(20 * time.Second)
	for _, id := range ids {
		for {
			r, err := s.store.Get(ctx, id)
			if err == nil && r.Delivery.Status == postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not stored SUCCEEDED within 20 s (%v, %v)", id, r, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		ats, err := s.store.Attempts(ctx, id)
		if err != nil || len(ats) != 1 {
			t.Fatalf("%s attempts %v, %v; want one", id, ats, err)
		}
	}
}

func (s *setup) waiting(t *testing.T) uint64 {
	t.Helper()
	return streamtest.Work(t, s.js, stream.HistoryStream)
}

func TestEveryChangeReachesTheStoreOnceAndLeavesTheStream(t *testing.T) {
	s := newSetup(t, 0)
	stop := s.run(t)
	defer stop()
	ids := s.deliver(t, 120, "a")
	s.waitStored(t, ids)
	deadline := time.Now().Add(10 * time.Second)
	for s.waiting(t) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d changes still in the stream after they were stored", s.waiting(t))
		}
		time.Sleep(20 * time.Millisecond)
	}
	page, err := s.store.List(context.Background(), history.Query{AccountID: "brand-1", Limit: 500})
	if err != nil || len(page.Deliveries) != len(ids) {
		t.Fatalf("listed %d deliveries (%v), want %d: one row each", len(page.Deliveries), err, len(ids))
	}
}

func TestWhileTheStoreIsDownChangesWaitAndNothingIsLost(t *testing.T) {
	s := newSetup(t, 6) // six batches refused: ~6 s of backoff
	stop := s.run(t)
	defer stop()
	ids := s.deliver(t, 80, "b") // records are written while the store refuses everything
	s.waitStored(t, ids)
	if s.store.refused.Load() < 6 {
		t.Errorf("the store refused %d batches, want the 6 it was set to", s.store.refused.Load())
	}
}

// The writer's ack wait is short, so a dead writer's changes are soon in
// another's hands; a live writer whose store takes longer than that to
// write keeps its changes in progress, and JetStream hands none of them
// to the other writer, which is idle meanwhile.
func TestAWriteSlowerThanTheAckWaitIsNotHandedOutAgain(t *testing.T) {
	s := newSetup(t, 0)
	s.store.slow = 2500 * time.Millisecond
	for range 2 { // two replicas: one would take what the other lets go
		stop := s.runWith(t, func(c *Config) { c.AckWait = time.Second })
		defer stop()
	}
	ids := s.deliver(t, 40, "s")
	s.waitStored(t, ids)
	c, err := s.js.Consumer(context.Background(), stream.HistoryStream, stream.HistoryConsumer)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.CachedInfo().Config.AckWait; got != time.Second {
		t.Fatalf("the writer's consumer waits %s for an ack, want the 1 s set", got)
	}
	time.Sleep(1500 * time.Millisecond) // a copy handed out again would be stored by now
	if got := s.store.stored.Load(); got != int64(2*len(ids)) {
		t.Errorf("%d changes stored, want each of the %d once: changes were handed to the other writer while a 2.5 s write held them", got, 2*len(ids))
	}
}

func TestARedeliveredBatchAddsNoRow(t *testing.T) {
	s := newSetup(t, 0)
	ids := s.deliver(t, 30, "c")
	// Copy every change before the writer takes them, as a redelivery would
	// bring them again.
	ctx := context.Background()
	st, err := s.js.Stream(ctx, stream.HistoryStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var copies []*nats.Msg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		copies = append(copies, &nats.Msg{Subject: m.Subject, Data: m.Data, Header: m.Header})
	}
	if len(copies) != 60 {
		t.Fatalf("%d changes in the stream, want 60", len(copies))
	}
	stop := s.run(t)
	defer stop()
	s.waitStored(t, ids)
	for _, m := range copies {
		if _, err := s.js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.waiting(t) != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	s.waitStored(t, ids) // still SUCCEEDED with one attempt: the PENDING copies did not step back
	page, err := s.store.List(ctx, history.Query{AccountID: "brand-1", Limit: 500})
	if err != nil || len(page.Deliveries) != len(ids) {
		t.Fatalf("listed %d deliveries (%v) after the redelivery, want %d", len(page.Deliveries), err, len(ids))
	}
}

func TestJunkOnTheHistorySubjectIsDeadLetteredAndTheRestStored(t *testing.T) {
	s := newSetup(t, 0)
	ctx := context.Background()
	if _, err := s.js.Publish(ctx, stream.HistorySubject("brand-1", "ep_1", "dlv_junk"), []byte("not a record")); err != nil {
		t.Fatal(err)
	}
	ids := s.deliver(t, 5, "d")
	stop := s.run(t)
	defer stop()
	s.waitStored(t, ids)
	deadline := time.Now().Add(10 * time.Second)
	for {
		dead, _, err := stream.ListDeadLetters(ctx, s.js, stream.HistoryConsumer, 0, 10)
		if err == nil && len(dead) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dead letters of the writer: %v, %v; want the junk one", dead, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A change the store refuses for good does not stop the history: the
// writer stores its batch in halves, sets the one refused change aside in
// the dead letters with the store's reason, and stores the rest.
func TestAChangeTheStoreRefusesForGoodIsSetAsideAndTheRestStored(t *testing.T) {
	s := newSetup(t, 0)
	ctx := context.Background()
	s.store.bad = "dlv_b00007"
	ids := s.deliver(t, 40, "b") // 80 changes: each delivery PENDING, then SUCCEEDED
	stop := s.run(t)
	defer stop()
	var good []string
	for _, id := range ids {
		if id != s.store.bad {
			good = append(good, id)
		}
	}
	s.waitStored(t, good)
	deadline := time.Now().Add(10 * time.Second)
	for {
		dead, _, err := stream.ListDeadLetters(ctx, s.js, stream.HistoryConsumer, 0, 10)
		if err == nil && len(dead) == 2 {
			for _, d := range dead {
				if !strings.Contains(d.Reason, "refuses this change") || !strings.Contains(d.Reason, "invalid byte sequence") ||
					d.Subject != stream.HistorySubject("brand-1", "ep_1", s.store.bad) {
					t.Errorf("dead letter %+v: want the store's reason and the change's subject", d)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dead letters of the writer: %v, %v; want the bad delivery's 2 changes", dead, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := s.store.Get(ctx, s.store.bad); !errors.Is(err, history.ErrNotFound) {
		t.Fatalf("the refused delivery is in the store: %v", err)
	}
	t.Logf("%d batches offered to the store for 80 changes in batches of 50", s.store.tries.Load())
}

// A postback queued and ended within the writer's hold (the common case)
// reaches the store in one write, its queued change and its outcome
// together: one row written, not an insert and then an update, even when
// the two changes come in different fetches. A change whose delivery does
// not end is stored all the same once held for the hold.
func TestAQueuedChangeWaitsForItsOutcomeAndIsStoredWithIt(t *testing.T) {
	s := newSetup(t, 0)
	stop := s.run(t)
	defer stop()
	var recs []*inflight.Record
	for i := range 60 {
		recs = append(recs, s.queue(t, fmt.Sprintf("dlv_h%05d", i)))
	}
	// The writer takes the queued changes (it fetches every 50 ms) before
	// the outcomes are written.
	time.Sleep(300 * time.Millisecond)
	var ids []string
	for _, r := range recs {
		s.succeed(t, r)
		ids = append(ids, r.Delivery.Id)
	}
	s.queue(t, "dlv_hwaits")
	s.waitStored(t, ids)
	s.waitPending(t, "dlv_hwaits", 20*time.Second, "the delivery still PENDING")
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	for _, id := range ids {
		if n := s.store.writes[id]; n != 1 {
			t.Errorf("delivery %s reached the store in %d writes, want 1 (queued and ended together)", id, n)
		}
	}
	if n := s.store.writes["dlv_hwaits"]; n != 1 {
		t.Errorf("the delivery still PENDING reached the store in %d writes, want 1", n)
	}
}

// The hold waits for a change that usually follows within a second of the
// one held. A PENDING change made longer ago than the hold (the renderer
// logs a queued delivery only once it has waited) is stored at once; a
// fresh one, fetched with it, is held.
func TestAPendingChangeMadeLongerAgoThanTheHoldIsStoredAtOnce(t *testing.T) {
	s := newSetup(t, 0)
	stop := s.runWith(t, func(c *Config) { c.Hold, c.AckWait = time.Hour, 4*time.Hour })
	defer stop()
	s.queueAt(t, "dlv_hold_old", time.Now().Add(-2*time.Hour))
	s.queue(t, "dlv_hold_new")
	s.waitPending(t, "dlv_hold_old", 10*time.Second, "the PENDING change made 2 h ago (hold: 1 h)")
	time.Sleep(500 * time.Millisecond) // a few more fetches
	if _, err := s.store.Get(context.Background(), "dlv_hold_new"); !errors.Is(err, history.ErrNotFound) {
		t.Fatalf("the fresh PENDING change: %v; want it held (not stored)", err)
	}
}

// queueJobs queues jobs on DELIVERIES, about one every 2 ms (500 a
// second), as the renderer does in a burst, until the returned stop is
// called.
func (s *setup) queueJobs(t *testing.T) (stop func()) {
	t.Helper()
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			_, _ = s.js.PublishAsync(stream.DeliverySubject("brand-1", "ep_busy", fmt.Sprintf("dlv_job%06d", i)), []byte("job"))
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { close(done); <-finished }) }
	t.Cleanup(stop)
	return stop
}

// While jobs are queued faster than BusyRate, the writer holds every
// change, up to Defer after it fetched it; once the send path is quiet, or
// at Defer, what it holds is stored. A writer that sees no such rate stores
// as it always does.
func TestWhileJobsAreQueuedFastChangesWaitUntilTheSendPathIsQuietOrDefer(t *testing.T) {
	for _, tc := range []struct {
		name        string
		deferFor    time.Duration
		queue       bool          // jobs queued at 500 a second
		quietAfter  time.Duration // when queuing stops (0: never)
		heldAtFirst bool          // the change is not stored half a second after it was made
	}{
		{"no jobs queued: stored at once", 20 * time.Second, false, 0, false},
		{"jobs queued fast: held until they stop", 20 * time.Second, true, 1500 * time.Millisecond, true},
		{"jobs queued fast without end: held until Defer", 1500 * time.Millisecond, true, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSetup(t, 0)
			stop := s.runWith(t, func(c *Config) { c.Defer, c.BusyRate, c.AckWait = tc.deferFor, 50, time.Minute })
			defer stop()
			// A first change, stored at once: the writer's first look at
			// the send path only counts the jobs queued so far.
			s.waitStored(t, s.deliver(t, 1, "warm"))
			var quiet func()
			if tc.queue {
				quiet = s.queueJobs(t)
				time.Sleep(200 * time.Millisecond)
			}
			ids := s.deliver(t, 1, "burst")
			time.Sleep(500 * time.Millisecond)
			_, err := s.store.Get(context.Background(), ids[0])
			if held := errors.Is(err, history.ErrNotFound); held != tc.heldAtFirst {
				t.Fatalf("half a second after the change: held = %v (%v), want %v", held, err, tc.heldAtFirst)
			}
			if tc.quietAfter > 0 {
				time.Sleep(tc.quietAfter - 500*time.Millisecond)
				quiet()
			}
			// waitStored allows 20 s: within it, whatever Defer (here 20 s
			// at most) only a quiet send path explains the row.
			s.waitStored(t, ids)
		})
	}
}
