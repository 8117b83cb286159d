package gateway

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/postback-dev/postback/pkg/stream"
)

func TestUnaryPublishesOneAfterAnotherAreEachTheirOwnMessage(t *testing.T) {
	s, _ := keyedServer(t, time.Minute)
	var want []string
	for range 3 {
		res, err := s.Publish(operatorCtx(), clearing(""))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, res.EventId)
	}
	ids, grouped := storedEvents(t, s, 3)
	for m := range ids {
		if grouped[m] || len(ids[m]) != 1 || ids[m][0] != want[m] {
			t.Fatalf("message %d carries %v (a group: %v), want %s alone", m, ids[m], grouped[m], want[m])
		}
	}
}

func TestConcurrentUnaryPublishesAreEachStoredOnceAndShareMessages(t *testing.T) {
	s, _ := keyedServer(t, time.Minute)
	const callers, each = 64, 8
	var mu sync.Mutex
	var answered []string
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for range each {
				res, err := s.Publish(operatorCtx(), clearing(""))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				answered = append(answered, res.EventId)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	stored := events(t, s.js)
	ids, grouped := storedEvents(t, s, int(stored))
	var all []string
	groups := 0
	for m := range ids {
		all = append(all, ids[m]...)
		if grouped[m] {
			groups++
		}
	}
	slices.Sort(all)
	slices.Sort(answered)
	if !slices.Equal(all, answered) {
		t.Fatalf("EVENTS holds %d events, the calls were answered with %d ids; want the same ids, each once", len(all), len(answered))
	}
	if groups == 0 || int(stored) >= callers*each {
		t.Errorf("%d calls, 64 at a time, stored as %d messages with %d groups; want groups", callers*each, stored, groups)
	}
	t.Logf("%d events in %d messages (%d groups)", len(all), stored, groups)
}

// waitingLine makes a subject's line as if a publish of it were in flight,
// starts calls that wait on it, and returns once all of them wait.
func waitingLine(t *testing.T, l *unaryLog, subject string, bodies [][]byte, ctxs []context.Context) (*unaryLine, []chan error) {
	t.Helper()
	line := &unaryLine{}
	l.mu.Lock()
	l.lines[subject] = line
	l.mu.Unlock()
	results := make([]chan error, len(bodies))
	for i, b := range bodies {
		results[i] = make(chan error, 1)
		go func() { results[i] <- l.publish(ctxs[i], subject, b) }()
		for { // in order, so the groups' order is known
			l.mu.Lock()
			n := len(line.waiting)
			l.mu.Unlock()
			if n == i+1 {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	return line, results
}

func TestCallsWaitingBehindAPublishGoInGroupsOfAtMostMaxGroupEvents(t *testing.T) {
	s, _ := keyedServer(t, time.Minute)
	l := s.unary
	subject := stream.EventSubject("action_clearing", "brand-1")
	n := stream.MaxGroupEvents + 5
	var bodies [][]byte
	var ctxs []context.Context
	var want []string
	for i := range n {
		ev := stream.Event{ID: fmt.Sprintf("evt_waiting_%02d", i), AccountID: "brand-1", Type: "action_clearing", Time: time.Now(), Data: map[string]any{"CampaignId": i}}
		body, err := stream.EncodeEvent(&ev)
		if err != nil {
			t.Fatal(err)
		}
		sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1, byte(i)}, SpanID: trace.SpanID{2, byte(i)}, TraceFlags: trace.FlagsSampled})
		bodies, want = append(bodies, body), append(want, ev.ID)
		ctxs = append(ctxs, trace.ContextWithSpanContext(context.Background(), sc))
	}
	line, results := waitingLine(t, l, subject, bodies, ctxs)
	go l.drain(subject, line)
	for i, r := range results {
		if err := <-r; err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	ids, grouped := storedEvents(t, s, 2)
	if len(ids[0]) != stream.MaxGroupEvents || !grouped[0] || len(ids[1]) != 5 || !grouped[1] {
		t.Fatalf("stored as groups of %d and %d, want %d and 5", len(ids[0]), len(ids[1]), stream.MaxGroupEvents)
	}
	if got := append(ids[0], ids[1]...); !slices.Equal(got, want) {
		t.Fatalf("stored %v, want %v in the order the calls came", got, want)
	}
	// Each event's caller's trace is in the group, in its place.
	st, err := s.js.Stream(context.Background(), stream.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(context.Background(), subject)
	if err != nil {
		t.Fatal(err)
	}
	traces := stream.EventTraces(m.Header, 5)
	if traces == nil {
		t.Fatalf("the last group has no %s header: %v", stream.EventTracesHeader, m.Header)
	}
	for i, tp := range traces {
		k := stream.MaxGroupEvents + i
		if want := fmt.Sprintf("00-01%02x0000000000000000000000000000-02%02x000000000000-01", k, k); tp != want {
			t.Errorf("event %d's traceparent %q, want %q", k, tp, want)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lines) != 0 {
		t.Errorf("%d subjects still marked in flight after the line drained", len(l.lines))
	}
}

func TestACallWhoseContextEndsWhileWaitingLeavesTheLineUnpublished(t *testing.T) {
	s, _ := keyedServer(t, time.Minute)
	l := s.unary
	subject := stream.EventSubject("action_clearing", "brand-1")
	var bodies [][]byte
	var ctxs []context.Context
	cancels := make([]context.CancelFunc, 3)
	for i := range 3 {
		ev := stream.Event{ID: fmt.Sprintf("evt_leaving_%d", i), AccountID: "brand-1", Type: "action_clearing", Time: time.Now(), Data: map[string]any{"CampaignId": i}}
		body, err := stream.EncodeEvent(&ev)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		bodies, ctxs, cancels[i] = append(bodies, body), append(ctxs, ctx), cancel
	}
	defer func() {
		for _, c := range cancels {
			c()
		}
	}()
	line, results := waitingLine(t, l, subject, bodies, ctxs)
	cancels[1]()
	if err := <-results[1]; !errors.Is(err, context.Canceled) {
		t.Fatalf("the call whose context ended answered %v, want context.Canceled", err)
	}
	go l.drain(subject, line)
	for _, i := range []int{0, 2} {
		if err := <-results[i]; err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	ids, _ := storedEvents(t, s, 1)
	if want := []string{"evt_leaving_0", "evt_leaving_2"}; !slices.Equal(ids[0], want) {
		t.Fatalf("stored %v, want %v", ids[0], want)
	}
	if got := events(t, s.js); got != 1 {
		t.Errorf("EVENTS holds %d messages, want 1", got)
	}
}
