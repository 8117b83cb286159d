package sender

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// fakeNow is a clock the test moves by hand.
type fakeNow struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeNow) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeNow) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func testShares() (*shares, *fakeNow) {
	clock := &fakeNow{t: time.Date(2026, 4, 8, 9, 0, 0, 0, time.UTC)}
	s := newShares()
	s.now = clock.now
	return s, clock
}

// takeAll takes n places of the endpoint (limit places, widest while
// fast), each of which must be given.
func takeAll(t *testing.T, s *shares, endpointID string, n, limit, widest int) []place {
	t.Helper()
	var held []place
	for i := range n {
		p, ok := s.take(context.Background(), endpointID, limit, widest)
		if !ok {
			t.Fatalf("place %d of %d refused", i+1, n)
		}
		held = append(held, p)
	}
	return held
}

// waitForWaiters waits until n workers wait for a place of the endpoint.
func waitForWaiters(t *testing.T, s *shares, endpointID string, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		s.mu.Lock()
		waiting := len(s.byEndpoint[endpointID].waiting)
		s.mu.Unlock()
		if waiting == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests wait for a place, want %d", waiting, n)
		}
	}
}

// queueWaiters starts n jobs that each wait for a place of the endpoint,
// one after another, and returns whether each was given one (a place it
// then gives back after a 1 ms request).
func queueWaiters(t *testing.T, s *shares, endpointID string, n, limit, widest int) <-chan bool {
	t.Helper()
	got := make(chan bool, n)
	for i := range n {
		go func() {
			p, ok := s.take(context.Background(), endpointID, limit, widest)
			got <- ok
			p.done(time.Millisecond)
		}()
		waitForWaiters(t, s, endpointID, i+1)
	}
	return got
}

func TestAnEndpointsPlacesAreTakenUpToItsShareAndNoFurther(t *testing.T) {
	s, clock := testShares()
	ctx := context.Background()
	held := takeAll(t, s, "ep-slow", 4, 4, 0)
	// Four requests have been waiting 9 s for the brand's server: a fifth
	// would wait about 9/4 s for a place, far more than a worker may.
	clock.add(9 * time.Second)
	if _, ok := s.take(ctx, "ep-slow", 4, 0); ok {
		t.Fatal("a fifth request to an endpoint with 4 places took one")
	}
	if n := s.inFlight("ep-slow"); n != 4 {
		t.Fatalf("%d in flight, want 4", n)
	}
	// Another endpoint is not held up by it.
	if _, ok := s.take(ctx, "ep-fast", 4, 0); !ok {
		t.Fatal("another endpoint was refused a place")
	}
	held[0].done(9 * time.Second)
	if _, ok := s.take(ctx, "ep-slow", 4, 0); !ok {
		t.Fatal("a place given back was not taken again")
	}
}

func TestAWorkerWaitsBrieflyForAFastEndpointsNextPlace(t *testing.T) {
	s, _ := testShares()
	s.maxWait = 10 * time.Second // the wait must end by the hand-over, not by this
	ctx := context.Background()
	first, _ := s.take(ctx, "ep-1", 1, 0)
	first.done(2 * time.Millisecond) // a fast endpoint: 2 ms a request
	busy, _ := s.take(ctx, "ep-1", 1, 0)
	got := make(chan bool)
	go func() {
		p, ok := s.take(ctx, "ep-1", 1, 0)
		got <- ok
		p.done(time.Millisecond)
	}()
	// The waiter is queued; the place is handed to it when it is given back.
	waitForWaiters(t, s, "ep-1", 1)
	busy.done(2 * time.Millisecond)
	if !<-got {
		t.Fatal("the waiting request was not handed the place")
	}
}

func TestAWaitThatRunsOutDefersTheJobAndLeavesNoWaiterBehind(t *testing.T) {
	s, _ := testShares()
	s.maxWait = 20 * time.Millisecond
	ctx := context.Background()
	held, _ := s.take(ctx, "ep-1", 1, 0) // nothing known yet: a new request waits its turn
	if _, ok := s.take(ctx, "ep-1", 1, 0); ok {
		t.Fatal("a place was given while the only one was held")
	}
	s.mu.Lock()
	left := len(s.byEndpoint["ep-1"].waiting)
	s.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d waiters left behind", left)
	}
	held.done(time.Second)
	if n := s.inFlight("ep-1"); n != 0 {
		t.Fatalf("%d in flight after the only place was given back", n)
	}
}

func TestDeferredJobsAreBookedOneRequestTimeOverThePlacesApart(t *testing.T) {
	cases := []struct {
		name    string
		request time.Duration // the endpoint's known request time
		places  int
		spacing time.Duration
	}{
		{"a 9 s server with 32 places", 9 * time.Second, 32, 9 * time.Second / 32},
		{"a 100 ms server with 4 places", 100 * time.Millisecond, 4, 25 * time.Millisecond},
		{"a fast server: no closer than the minimum spacing", time.Millisecond, 32, shareMinSpacing},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, clock := testShares()
			p, _ := s.take(context.Background(), "ep-1", c.places, 0)
			p.done(c.request)
			start := clock.now()
			for i := 1; i <= 5; i++ {
				if at, want := s.later("ep-1", c.places), start.Add(time.Duration(i)*c.spacing); !at.Equal(want) {
					t.Fatalf("booking %d at +%s, want +%s", i, at.Sub(start), want.Sub(start))
				}
			}
		})
	}
}

func TestBookingsReachNoFurtherThanMaxDefer(t *testing.T) {
	s, clock := testShares()
	p, _ := s.take(context.Background(), "ep-1", 1, 0)
	p.done(9 * time.Second)
	now := clock.now()
	for i := range 100 { // 9 s apart: from the fourth on, past 30 s
		at := s.later("ep-1", 1)
		if i < 3 {
			continue
		}
		if ahead := at.Sub(now); ahead < shareMaxDefer/2 || ahead > shareMaxDefer {
			t.Fatalf("booking %d past the horizon is at +%s, want within [+%s, +%s]", i+1, ahead, shareMaxDefer/2, shareMaxDefer)
		}
	}
	// Time passes: bookings follow from where the last one in range was.
	clock.add(27 * time.Second)
	if at := s.later("ep-1", 1); !at.Equal(now.Add(36 * time.Second)) {
		t.Fatalf("booked at +%s after 27 s, want +36s", at.Sub(now))
	}
}

func TestIdleEndpointsAreForgottenWhenManyAreTracked(t *testing.T) {
	s, clock := testShares()
	ctx := context.Background()
	p, _ := s.take(ctx, "ep-idle", 2, 0)
	p.done(time.Millisecond)
	s.later("ep-booked", 1) // booked, nothing in flight
	busy, _ := s.take(ctx, "ep-busy", 2, 0)
	clock.add(time.Minute)
	s.sweep(clock.now())
	if _, kept := s.byEndpoint["ep-busy"]; !kept || len(s.byEndpoint) != 1 {
		t.Fatalf("after a sweep %d endpoints are kept (busy kept: %v), want only the busy one", len(s.byEndpoint), kept)
	}
	busy.done(time.Millisecond)
	for i := range shareSweepAt {
		q, _ := s.take(ctx, fmt.Sprintf("ep-%d", i), 1, 0)
		q.done(time.Millisecond)
	}
	if n := len(s.byEndpoint); n > shareSweepAt {
		t.Fatalf("%d endpoints tracked, want at most %d", n, shareSweepAt)
	}
}

func TestAPlaceGivenBackTwiceIsGivenBackOnce(t *testing.T) {
	s, _ := testShares()
	s.maxWait = 10 * time.Second
	ctx := context.Background()
	held, _ := s.take(ctx, "ep-1", 1, 0)
	held.done(time.Millisecond) // now known as fast: a new request waits for the place
	held, _ = s.take(ctx, "ep-1", 1, 0)
	granted := make(chan place, 2)
	for range 2 {
		go func() {
			p, ok := s.take(ctx, "ep-1", 1, 0)
			if ok {
				granted <- p
			}
		}()
	}
	waitForWaiters(t, s, "ep-1", 2)
	held.done(time.Millisecond)
	held.done(0) // a second give-back must not hand out a second place
	<-granted
	select {
	case <-granted:
		t.Fatal("one place given back twice let two requests in")
	case <-time.After(100 * time.Millisecond):
	}
	if n := s.inFlight("ep-1"); n != 1 {
		t.Fatalf("%d in flight with one place", n)
	}
}

func TestAFastEndpointsShareWidensUntilItSlowsDown(t *testing.T) {
	s, clock := testShares()
	ctx := context.Background()
	first, _ := s.take(ctx, "ep-1", 2, 8)
	first.done(5 * time.Millisecond)       // known fast
	held := takeAll(t, s, "ep-1", 8, 2, 8) // all 8 of its widened share
	// Its server stops answering: once the oldest request is older than a
	// fast one, the share is 2 again, and 8 are far over it.
	clock.add(shareFast + time.Millisecond)
	if _, ok := s.take(ctx, "ep-1", 2, 8); ok {
		t.Fatal("an endpoint whose requests hang was given a place past its share")
	}
	for _, p := range held[:7] {
		p.done(time.Second)
	}
	if n := s.inFlight("ep-1"); n != 1 {
		t.Fatalf("%d in flight", n)
	}
	// Its average is slow now: 2 places, no more.
	held[7].done(time.Second)
	for i := range 2 {
		if _, ok := s.take(ctx, "ep-1", 2, 8); !ok {
			t.Fatalf("place %d of 2 refused", i+1)
		}
	}
	if _, ok := s.take(ctx, "ep-1", 2, 8); ok {
		t.Fatal("a slow endpoint was given a third place")
	}
}

func TestJobsWaitForTheRequestsAFastEndpointHasInFlightWhenItsShareNarrows(t *testing.T) {
	s, clock := testShares()
	s.maxWait = 10 * time.Second
	ctx := context.Background()
	first, _ := s.take(ctx, "ep-1", 32, 128)
	first.done(2 * time.Millisecond)            // known fast
	held := takeAll(t, s, "ep-1", 128, 32, 128) // its whole widened share
	// Its requests are all 5 s old: its share is 32 again, but the 128 in
	// flight are what frees places for the jobs behind them, one each as it
	// ends. A hundred jobs ahead cost about 100 x 5 s / 128 = 3.9 s, within
	// the 10 s a worker may wait here (over 32 places it would be 15.6 s,
	// and every job after the 64th would be deferred).
	clock.add(5 * time.Second)
	got := queueWaiters(t, s, "ep-1", 100, 32, 128)
	for _, p := range held {
		p.done(5 * time.Second)
	}
	for i := range 100 {
		if !<-got {
			t.Fatalf("waiting job %d was deferred", i+1)
		}
	}
}

func TestJobsDeferredBehindAFastEndpointsBurstAreBookedAtThePaceOfItsRequestsInFlight(t *testing.T) {
	s, clock := testShares()
	ctx := context.Background()
	first, _ := s.take(ctx, "ep-1", 32, 128)
	first.done(2 * time.Millisecond)
	takeAll(t, s, "ep-1", 128, 32, 128)
	// A moment of CPU starvation: its oldest request is 256 ms old. Its 128
	// requests in flight end about one every 2 ms, not one every 8 ms as
	// over the narrow share of 32.
	clock.add(256 * time.Millisecond)
	start := clock.now()
	for i := 1; i <= 5; i++ {
		if at, want := s.later("ep-1", 32), start.Add(time.Duration(i)*2*time.Millisecond); !at.Equal(want) {
			t.Fatalf("booking %d at +%s, want +%s", i, at.Sub(start), want.Sub(start))
		}
	}
}

// An endpoint whose requests have not ended yet looks fast (its request
// time is the age of its oldest request), so its backlog's jobs would all
// wait in the workers for its places. No more of them wait than it has
// places: the rest are deferred at once, and the other endpoints keep the
// workers.
func TestNoMoreJobsWaitForAnEndpointThanItHasPlaces(t *testing.T) {
	s, clock := testShares()
	s.maxWait = 10 * time.Second // only the line's length may refuse a wait here
	ctx := context.Background()
	held := takeAll(t, s, "ep-new", 4, 4, 16) // its first four requests, none ended
	clock.add(5 * time.Millisecond)
	got := queueWaiters(t, s, "ep-new", 4, 4, 16)
	if _, ok := s.take(ctx, "ep-new", 4, 16); ok {
		t.Fatal("a fifth job waited for an endpoint with 4 places and 4 jobs waiting")
	}
	waitForWaiters(t, s, "ep-new", 4) // the refused one left no waiter behind
	if _, ok := s.take(ctx, "ep-other", 4, 16); !ok {
		t.Fatal("another endpoint was refused a place")
	}
	for _, p := range held {
		p.done(9 * time.Second)
	}
	for i := range 4 {
		if !<-got {
			t.Fatalf("waiting job %d was deferred", i+1)
		}
	}
}
