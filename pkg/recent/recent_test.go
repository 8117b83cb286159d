package recent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postback-dev/postback/pkg/broker/brokertest"
	"github.com/postback-dev/postback/pkg/stream"
)

func openStore(t *testing.T) *Store {
	t.Helper()
	js := brokertest.JetStream(t)
	ctx := context.Background()
	for range 2 { // idempotent, as every service runs it
		if err := stream.Ensure(ctx, js, stream.DefaultOptions()); err != nil {
			t.Fatal(err)
		}
	}
	s, err := OpenStore(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func ids(events []Event) string {
	var out []string
	for _, e := range events {
		out = append(out, e.ID)
	}
	return strings.Join(out, ",")
}

func TestTheStoreKeepsTheNewestFewEventsOfAKeyNewestFirst(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	if got, err := s.List(ctx, "brand-1", "action_clearing"); err != nil || len(got) != 0 {
		t.Fatalf("nothing sampled: %v, %v", got, err)
	}
	for i := 1; i <= Keep+2; i++ {
		ev := Event{ID: fmt.Sprintf("evt_%d", i), Time: time.Unix(int64(1000+i), 0).UTC(), Data: json.RawMessage(fmt.Sprintf(`{"ActionId":"A-%d"}`, i))}
		if err := s.Add(ctx, "brand-1", "action_clearing", ev); err != nil {
			t.Fatal(err)
		}
	}
	// A redelivered event is not held twice.
	if err := s.Add(ctx, "brand-1", "action_clearing", Event{ID: "evt_7", Time: time.Unix(1007, 0).UTC(), Data: json.RawMessage(`{"ActionId":"A-7"}`)}); err != nil {
		t.Fatal(err)
	}
	got, err := s.List(ctx, "brand-1", "action_clearing")
	if err != nil {
		t.Fatal(err)
	}
	if want := "evt_7,evt_6,evt_5,evt_4,evt_3"; ids(got) != want {
		t.Fatalf("sample %s, want %s", ids(got), want)
	}
	if string(got[0].Data) != `{"ActionId":"A-7"}` || !got[0].Time.Equal(time.Unix(1007, 0)) {
		t.Errorf("newest: %+v", got[0])
	}
	// Keys are per account and event type.
	if other, _ := s.List(ctx, "brand-2", "action_clearing"); len(other) != 0 {
		t.Errorf("brand-2 sees %s", ids(other))
	}
	if other, _ := s.List(ctx, "brand-1", "action_lifecycle"); len(other) != 0 {
		t.Errorf("another type holds %s", ids(other))
	}
	big := Event{ID: "evt_big", Data: json.RawMessage(`{"x":"` + strings.Repeat("a", MaxData) + `"}`)}
	if err := s.Add(ctx, "brand-1", "action_clearing", big); err != ErrTooLarge {
		t.Errorf("an event over the cap: %v, want ErrTooLarge", err)
	}
}

// Writers racing for one key (several renderers) lose none of each
// other's events: compare-and-set, tried again on a conflict.
func TestConcurrentWritersOfAKeyKeepEveryEvent(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, Keep)
	for i := range Keep {
		wg.Go(func() {
			ev := Event{ID: fmt.Sprintf("evt_%d", i), Time: time.Unix(1000, 0), Data: json.RawMessage(`{}`)}
			errs <- s.Add(ctx, "brand-1", "action_clearing", ev)
		})
	}
	wg.Wait()
	close(errs)
	added := 0
	for err := range errs {
		if err == nil {
			added++
		}
	}
	got, err := s.List(ctx, "brand-1", "action_clearing")
	if err != nil {
		t.Fatal(err)
	}
	// A writer that lost casTries races in a row drops its event (and
	// says so); every event a writer reported written is held.
	if len(got) != added || added == 0 {
		t.Fatalf("%d reported written, %d held (%s)", added, len(got), ids(got))
	}
}

// fakeClock is the sampler's clock, moved by the test.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestTheSamplerTakesOneEventPerKeyEveryIntervalAndNeverBlocks(t *testing.T) {
	s := openStore(t)
	clock := &fakeClock{t: time.Unix(5000, 0)}
	sm := NewSampler(s, slog.New(slog.DiscardHandler))
	sm.now = clock.now
	data := map[string]any{"ActionId": "A-1", "Amount": json.Number("10.5")}
	if !sm.Offer("brand-1", "action_clearing", "evt_1", time.Unix(1, 0), data) {
		t.Fatal("first event of a key not taken")
	}
	if sm.Offer("brand-1", "action_clearing", "evt_2", time.Unix(2, 0), data) {
		t.Fatal("a second event within the interval taken")
	}
	if !sm.Offer("brand-1", "action_lifecycle", "evt_3", time.Unix(3, 0), data) {
		t.Fatal("another key's event not taken")
	}
	clock.t = clock.t.Add(Interval)
	if !sm.Offer("brand-1", "action_clearing", "evt_4", time.Unix(4, 0), data) {
		t.Fatal("an event after the interval not taken")
	}
	// Nobody runs the writer yet: the queue fills, and Offer drops
	// rather than blocks.
	for i := range queueSize + 10 {
		sm.Offer(fmt.Sprintf("brand-x%d", i), "action_clearing", "evt", time.Unix(5, 0), data)
	}
	if len(sm.queue) != queueSize {
		t.Fatalf("queue holds %d, want %d", len(sm.queue), queueSize)
	}
	// The throttle's map stays bounded.
	for i := range 2 * maxThrottled {
		sm.Offer(fmt.Sprintf("brand-y%d", i), "action_clearing", "evt", time.Unix(5, 0), data)
	}
	if n := len(sm.last); n > maxThrottled {
		t.Fatalf("throttle holds %d keys, more than %d", n, maxThrottled)
	}

	// The writer writes what was taken.
	ctx := context.Background()
	for range 4 {
		sm.write(ctx, <-sm.queue)
	}
	got, err := s.List(ctx, "brand-1", "action_clearing")
	if err != nil {
		t.Fatal(err)
	}
	if ids(got) != "evt_4,evt_1" {
		t.Fatalf("sample %s, want evt_4,evt_1", ids(got))
	}
	if string(got[0].Data) != `{"ActionId":"A-1","Amount":10.5}` {
		t.Errorf("data %s", got[0].Data)
	}
	// Data over the cap is skipped, silently.
	sm.write(ctx, offered{account: "brand-1", eventType: "action_clearing", id: "evt_big", data: map[string]any{"x": strings.Repeat("a", MaxData)}})
	if got, _ := s.List(ctx, "brand-1", "action_clearing"); ids(got) != "evt_4,evt_1" {
		t.Fatalf("after an event over the cap: %s", ids(got))
	}
}

func TestRunWritesOfferedEvents(t *testing.T) {
	s := openStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sm := NewSampler(s, slog.New(slog.DiscardHandler))
	go sm.Run(ctx)
	sm.Offer("brand-1", "action_clearing", "evt_1", time.Unix(1, 0), map[string]any{"ActionId": "A-1"})
	for {
		got, err := s.List(ctx, "brand-1", "action_clearing")
		if err != nil {
			t.Fatal(err)
		}
		if ids(got) == "evt_1" {
			return
		}
		time.Sleep(10 * time.Millisecond) // until the test's own timeout
	}
}

// A failed write is logged at most once a minute and otherwise ignored.
func TestFailedWritesAreLoggedAtMostOnceAMinute(t *testing.T) {
	js := brokertest.JetStream(t)
	ctx := context.Background()
	if err := stream.Ensure(ctx, js, stream.DefaultOptions()); err != nil {
		t.Fatal(err)
	}
	s, err := OpenStore(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteKeyValue(ctx, stream.RecentEventsBucket); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	clock := &fakeClock{t: time.Unix(5000, 0)}
	sm := NewSampler(s, slog.New(slog.NewTextHandler(&logs, nil)))
	sm.now = clock.now
	o := offered{account: "brand-1", eventType: "action_clearing", id: "evt_1", data: map[string]any{}}
	for range 3 {
		sm.write(ctx, o)
	}
	if n := strings.Count(logs.String(), "sample not written"); n != 1 {
		t.Fatalf("%d log lines for 3 failures within a minute, want 1:\n%s", n, logs.String())
	}
	clock.t = clock.t.Add(logEvery)
	sm.write(ctx, o)
	if n := strings.Count(logs.String(), "sample not written"); n != 2 {
		t.Fatalf("%d log lines after a minute, want 2:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "failed_writes=3") {
		t.Errorf("the second line does not count the failures since the first:\n%s", logs.String())
	}
}
