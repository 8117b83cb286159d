package client

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// waitAll waits for every result and fails the test on an error.
func waitAll(t *testing.T, rs []*Result) []*postbackv1.PublishResponse {
	t.Helper()
	out := make([]*postbackv1.PublishResponse, len(rs))
	for i, r := range rs {
		resp, err := r.Wait(context.Background())
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		out[i] = resp
	}
	return out
}

func batchSizes(calls []call) []int {
	var sizes []int
	for _, c := range calls {
		if c.method == "PublishBatch" {
			sizes = append(sizes, len(c.keys))
		}
	}
	return sizes
}

func TestPublisherBatchBounds(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   PublisherOptions
		events int
		// wait is how the test waits for the answers: "results" (only the
		// batch bounds send them), "flush" or "close".
		wait  string
		sizes []int
	}{
		{"size cuts full batches, close sends the rest", PublisherOptions{MaxBatch: 10, Linger: time.Hour}, 25, "close", []int{10, 10, 5}},
		{"size alone sends full batches", PublisherOptions{MaxBatch: 5, Linger: time.Hour}, 15, "results", []int{5, 5, 5}},
		{"linger sends a partial batch", PublisherOptions{MaxBatch: 100, Linger: 5 * time.Millisecond}, 3, "results", []int{3}},
		{"flush sends a partial batch", PublisherOptions{MaxBatch: 100, Linger: time.Hour}, 7, "flush", []int{7}},
		{"close sends a partial batch", PublisherOptions{MaxBatch: 100, Linger: time.Hour}, 7, "close", []int{7}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, c, _ := newFake(t)
			p := c.NewPublisher(tc.opts)
			defer p.Close(context.Background())
			var rs []*Result
			for i := range tc.events {
				rs = append(rs, p.Publish(context.Background(), clearing(fmt.Sprint(i))))
			}
			switch tc.wait {
			case "flush":
				if err := p.Flush(context.Background()); err != nil {
					t.Fatal(err)
				}
			case "close":
				if err := p.Close(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			if tc.wait != "results" {
				for i, r := range rs {
					select {
					case <-r.Done():
					default:
						t.Fatalf("event %d has no result after %s", i, tc.wait)
					}
				}
			}
			resps := waitAll(t, rs)
			if got := batchSizes(f.snapshot()); fmt.Sprint(got) != fmt.Sprint(tc.sizes) {
				t.Errorf("batches of %v, want %v", got, tc.sizes)
			}
			ids := map[string]bool{}
			for _, r := range resps {
				ids[r.EventId] = true
			}
			if len(ids) != tc.events || f.storedCount() != tc.events {
				t.Errorf("%d distinct ids, %d stored, want %d", len(ids), f.storedCount(), tc.events)
			}
		})
	}
}

func TestPublisherBatchBoundedByBytes(t *testing.T) {
	f, c, _ := newFake(t)
	p := c.NewPublisher(PublisherOptions{MaxBatch: 100, Linger: time.Hour})
	req := func() *postbackv1.PublishRequest {
		r := clearing("")
		r.Data = &structpb.Struct{Fields: map[string]*structpb.Value{"OrderIds": structpb.NewStringValue(string(make([]byte, 1000)))}}
		return r
	}
	p.maxBytes = 2500 // two events of ~1 KiB fit, a third does not
	var rs []*Result
	for range 5 {
		rs = append(rs, p.Publish(context.Background(), req()))
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitAll(t, rs)
	if got := batchSizes(f.snapshot()); fmt.Sprint(got) != "[2 2 1]" {
		t.Errorf("batches of %v, want [2 2 1]", got)
	}
}

func TestPublisherMaxBatchIsCappedAtTheGatewaysLimit(t *testing.T) {
	_, c, _ := newFake(t)
	for _, tc := range []struct{ in, want int }{{0, 100}, {-1, 100}, {250, 250}, {1000, 1000}, {5000, MaxBatch}} {
		p := c.NewPublisher(PublisherOptions{MaxBatch: tc.in})
		if p.maxBatch != tc.want {
			t.Errorf("MaxBatch %d: batches of %d, want %d", tc.in, p.maxBatch, tc.want)
		}
		p.Close(context.Background())
	}
}

// A batch call that fails Unavailable is sent again whole; then the events
// whose own results are Unavailable are sent again alone; an event refused
// for its input ends with its error. Every retry carries each event's key.
func TestPublisherRetriesKeepEachEventsKey(t *testing.T) {
	f, c, delays := newFake(t)
	f.batch = func(n int, req *postbackv1.PublishBatchRequest) ([]*postbackv1.PublishResult, error) {
		switch n {
		case 1:
			for _, e := range req.Events[:2] { // stored, but the answer is lost
				f.store(e)
			}
			return nil, unavailable()
		case 2:
			return []*postbackv1.PublishResult{
				f.store(req.Events[0]),
				f.store(req.Events[1]),
				{Error: status.Convert(queueFull()).Proto()},
				{Error: status.Convert(status.Error(codes.InvalidArgument, "events[3].data: required")).Proto()},
				{Error: status.Convert(unavailable()).Proto()},
			}, nil
		}
		return nil, nil // store all
	}
	p := c.NewPublisher(PublisherOptions{MaxBatch: 5, Linger: time.Hour})
	var rs []*Result
	var reqs []*postbackv1.PublishRequest
	for i := range 5 {
		r := clearing(fmt.Sprint(i))
		reqs = append(reqs, r)
		rs = append(rs, p.Publish(context.Background(), r))
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 5)
	seen := map[string]bool{}
	for i, r := range reqs {
		if r.IdempotencyKey == "" || seen[r.IdempotencyKey] {
			t.Fatalf("event %d: key %q empty or shared", i, r.IdempotencyKey)
		}
		keys[i], seen[r.IdempotencyKey] = r.IdempotencyKey, true
	}
	calls := f.snapshot()
	want := [][]string{keys, keys, {keys[2], keys[4]}}
	if got := fmt.Sprint(callKeys(calls)); got != fmt.Sprint(want) {
		t.Fatalf("calls sent keys\n%v\nwant\n%v", got, want)
	}
	if len(*delays) != 2 {
		t.Errorf("%d backoff waits, want 2", len(*delays))
	}
	for i, r := range rs {
		resp, err := r.Wait(context.Background())
		switch i {
		case 3:
			if status.Code(err) != codes.InvalidArgument {
				t.Errorf("event 3: %v, want its InvalidArgument", err)
			}
		case 0, 1:
			if err != nil || !resp.Duplicate {
				t.Errorf("event %d: %v %v, want the duplicate of its first, lost answer", i, resp, err)
			}
		default:
			if err != nil || resp.Duplicate {
				t.Errorf("event %d: %v %v, want accepted", i, resp, err)
			}
		}
	}
	if n := f.storedCount(); n != 4 {
		t.Errorf("%d events stored, want 4 (each valid one once)", n)
	}
}

func callKeys(calls []call) [][]string {
	var out [][]string
	for _, c := range calls {
		out = append(out, c.keys)
	}
	return out
}

func TestPublisherGivesUpAfterMaxAttempts(t *testing.T) {
	f, c, _ := newFake(t, WithRetry(3, time.Millisecond, time.Millisecond))
	f.batch = func(int, *postbackv1.PublishBatchRequest) ([]*postbackv1.PublishResult, error) {
		return nil, unavailable()
	}
	p := c.NewPublisher(PublisherOptions{Linger: time.Millisecond})
	r := p.Publish(context.Background(), clearing("a"))
	if _, err := r.Wait(context.Background()); status.Code(err) != codes.Unavailable {
		t.Fatalf("result %v, want Unavailable", err)
	}
	if n := len(f.snapshot()); n != 3 {
		t.Errorf("%d attempts, want 3", n)
	}
	p.Close(context.Background())
}

func TestPublisherAfterCloseAnswersErrClosed(t *testing.T) {
	_, c, _ := newFake(t)
	p := c.NewPublisher(PublisherOptions{})
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := p.Publish(context.Background(), clearing("")).Wait(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Publish after Close: %v, want ErrClosed", err)
	}
}

func TestPublisherCloseAbandonsSendsWhenItsContextEnds(t *testing.T) {
	f, c, _ := newFake(t)
	f.block = make(chan struct{}) // the server never answers
	f.received = make(chan struct{}, 1)
	p := c.NewPublisher(PublisherOptions{Linger: time.Millisecond})
	r := p.Publish(context.Background(), clearing("a"))
	<-f.received // the batch call is under way
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Close: %v, want context.Canceled", err)
	}
	select {
	case <-r.Done():
	default:
		t.Fatal("Close returned with a result still open")
	}
	if _, err := r.Wait(context.Background()); !errors.Is(err, ErrClosed) || !errors.Is(err, context.Canceled) {
		t.Errorf("result: %v, want ErrClosed and context.Canceled", err)
	}
}

func TestPublisherPublishBlocksAtMaxPending(t *testing.T) {
	f, c, _ := newFake(t)
	f.block = make(chan struct{})
	p := c.NewPublisher(PublisherOptions{MaxBatch: 1, MaxPending: 2, Linger: time.Millisecond})
	a := p.Publish(context.Background(), clearing("a"))
	b := p.Publish(context.Background(), clearing("b"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Publish(ctx, clearing("c")).Wait(context.Background()); !errors.Is(err, context.Canceled) {
		t.Errorf("third Publish with 2 pending: %v, want it to wait and end with its context", err)
	}
	close(f.block)
	waitAll(t, []*Result{a, b})
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := f.storedCount(); n != 2 {
		t.Errorf("%d stored, want 2", n)
	}
}

func TestPublisherKeepsOrderWithOneCallInFlight(t *testing.T) {
	f, c, _ := newFake(t)
	p := c.NewPublisher(PublisherOptions{MaxBatch: 7, Linger: time.Millisecond})
	var reqs []*postbackv1.PublishRequest
	for i := range 100 {
		r := clearing(fmt.Sprint(i))
		reqs = append(reqs, r)
		p.Publish(context.Background(), r)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	var sent []string
	for _, cl := range f.snapshot() {
		sent = append(sent, cl.keys...)
	}
	if len(sent) != len(reqs) {
		t.Fatalf("%d sent, want %d", len(sent), len(reqs))
	}
	for i, r := range reqs {
		if sent[i] != r.IdempotencyKey {
			t.Fatalf("event %d sent out of order", i)
		}
	}
}

func TestPublisherConcurrentPublishersAndCallsLoseNothing(t *testing.T) {
	f, c, _ := newFake(t)
	p := c.NewPublisher(PublisherOptions{MaxBatch: 50, MaxInFlight: 4, MaxPending: 300})
	const goroutines, each = 8, 250
	results := make(chan *Result, goroutines*each)
	done := make(chan struct{})
	for g := range goroutines {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range each {
				results <- p.Publish(context.Background(), clearing(fmt.Sprint(g, "-", i)))
			}
		}()
	}
	for range goroutines {
		<-done
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	close(results)
	ids := map[string]bool{}
	for r := range results {
		resp, err := r.Wait(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		ids[resp.EventId] = true
	}
	if len(ids) != goroutines*each || f.storedCount() != goroutines*each {
		t.Errorf("%d ids, %d stored, want %d", len(ids), f.storedCount(), goroutines*each)
	}
	for _, s := range batchSizes(f.snapshot()) {
		if s > 50 {
			t.Errorf("a batch of %d events, over MaxBatch 50", s)
		}
	}
}
