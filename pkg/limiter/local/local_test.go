package local

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/postback-dev/postback/pkg/limiter"
	"github.com/postback-dev/postback/pkg/limiter/limitertest"
)

func TestConformance(t *testing.T) {
	limitertest.Run(t, func(*testing.T) limiter.Limiter { return New(nil) })
}

// fakeClock is a Clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestExactScheduleWithFakeClock(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	l := New(clock)
	ctx := context.Background()
	lim := limiter.Limits{Rate: 2, MinDelay: 100 * time.Millisecond}
	want := []time.Duration{0, 500 * time.Millisecond, time.Second, 1500 * time.Millisecond, 2 * time.Second}
	start := clock.Now()
	for i, w := range want {
		r, err := l.Reserve(ctx, "ep", lim)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.At.Sub(start); got != w {
			t.Fatalf("slot %d at +%v, want +%v", i, got, w)
		}
		if !r.Now.Equal(start) {
			t.Fatalf("Now = %v, want the fake clock's %v", r.Now, start)
		}
	}
	// After the backlog drains the first slot is now again, and the next a
	// gap later: never two at once.
	clock.Advance(10 * time.Second)
	now := clock.Now()
	for i, w := range []time.Duration{0, 500 * time.Millisecond} {
		r, _ := l.Reserve(ctx, "ep", limiter.Limits{Rate: 2})
		if !r.At.Equal(now.Add(w)) {
			t.Fatalf("slot %d after an idle spell at %v, want %v", i, r.At, now.Add(w))
		}
	}
}

func TestARestartedLimiterWaitsAGapAfterItsStart(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	since := clock.Now()
	l := NewSince(clock, since)
	ctx := context.Background()
	lim := limiter.Limits{MinDelay: time.Second}
	// The process before this one may have started a request just before
	// it stopped: the first slot and the first start wait a gap from since.
	clock.Advance(300 * time.Millisecond)
	r, err := l.Reserve(ctx, "ep", lim)
	if err != nil {
		t.Fatal(err)
	}
	if !r.At.Equal(since.Add(time.Second)) {
		t.Fatalf("first slot after a restart at %v, want %v", r.At.Sub(since), time.Second)
	}
	s, ok, err := l.Start(ctx, "other", lim, time.Time{}, time.Second)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if !s.At.Equal(since.Add(time.Second)) {
		t.Fatalf("first start after a restart at %v, want %v", s.At.Sub(since), time.Second)
	}
	// Once a gap has passed since the start, endpoints are as new.
	clock.Advance(5 * time.Second)
	if r, _ := l.Reserve(ctx, "third", lim); r.Wait() != 0 {
		t.Fatalf("slot long after the restart waits %v", r.Wait())
	}
}

func TestIdleEndpointsAreSwept(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	l := New(clock)
	ctx := context.Background()
	lim := limiter.Limits{Rate: 10, MinDelay: 10 * time.Millisecond}
	// 10,000 distinct endpoints, each used once, with time moving on: only
	// those still within their horizon plus grace may stay.
	for i := range 10_000 {
		if _, err := l.Reserve(ctx, fmt.Sprintf("ep_%d", i), lim); err != nil {
			t.Fatal(err)
		}
		clock.Advance(10 * time.Millisecond)
	}
	// Each entry lives ~1.1 s of fake time = ~110 calls; sweeps every
	// max(len, 64) calls leave at most a few hundred.
	if n := l.Len(); n > 400 {
		t.Fatalf("map holds %d endpoints after 10,000 one-off ones; the sweep is not bounding it", n)
	}
	// A swept endpoint behaves as new: its first slot is now.
	clock.Advance(time.Hour)
	for i := range 100 {
		_, _ = l.Reserve(ctx, fmt.Sprintf("other_%d", i), lim)
	}
	r, _ := l.Reserve(ctx, "ep_0", lim)
	if r.Wait() != 0 {
		t.Fatalf("idle endpoint waits %v", r.Wait())
	}
	if n := l.Len(); n > 102 {
		t.Fatalf("map holds %d endpoints an hour later, want only the ~101 recent ones", n)
	}
}

func TestStateKeptWhileItStillConstrains(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	l := New(clock)
	ctx := context.Background()
	slow := limiter.Limits{Rate: 0.01} // one per 100 s
	if _, err := l.Reserve(ctx, "slow", slow); err != nil {
		t.Fatal(err)
	}
	// Many other endpoints and 50 s later (sweeps run), slow still waits.
	for i := range 1000 {
		clock.Advance(50 * time.Millisecond)
		_, _ = l.Reserve(ctx, fmt.Sprintf("busy_%d", i), limiter.Limits{Rate: 100})
	}
	r, _ := l.Reserve(ctx, "slow", slow)
	if got, want := r.Wait(), 50*time.Second; got != want {
		t.Fatalf("slow endpoint waits %v, want %v (its state was dropped too early)", got, want)
	}
}

func TestCancelledContextIsAnError(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := New(nil).Reserve(ctx, "ep", limiter.Limits{Rate: 1}); err == nil {
		t.Fatal("Reserve with a cancelled context succeeded")
	}
}

func BenchmarkReserveLocal(b *testing.B) {
	l := New(nil)
	ctx := context.Background()
	lim := limiter.Limits{Rate: 100, MinDelay: time.Millisecond}
	eps := make([]string, 1024)
	for i := range eps {
		eps[i] = fmt.Sprintf("ep_%d", i)
	}
	for i := 0; b.Loop(); i++ {
		if _, err := l.Reserve(ctx, eps[i%len(eps)], lim); err != nil {
			b.Fatal(err)
		}
	}
}
