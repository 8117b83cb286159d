package stream

import (
	"context"
	"testing"
	"time"
)

// fakeClock is a clock that moves only when told.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

// admitNow tries to admit one handler of consumer i without waiting: the
// rule either lets it in at once or makes it wait, which a context that
// has already ended turns into false.
func admitNow(tr *turns, i, backlog int) bool {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return tr.admit(ctx, i, backlog)
}

func TestTheShareRule(t *testing.T) {
	const share, window = 4, time.Second
	type step struct {
		consumer, backlog int
		advance           time.Duration
		end               int  // consumer whose handler ends first (-1: none)
		admitted          bool // whether the handler is let in at once
	}
	burst := func(n, backlog int) []step {
		var s []step
		for range n {
			s = append(s, step{consumer: 0, backlog: backlog, end: -1, admitted: true})
		}
		return s
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"a consumer alone runs as many handlers as there are workers",
			burst(64, 500)},
		{"a backlogged consumer is held to its share while another is light",
			append(append([]step{{consumer: 1, end: -1, admitted: true}}, burst(share, 500)...),
				step{consumer: 0, backlog: 500, end: -1, admitted: false})},
		{"a light consumer with a few handlers running keeps its place",
			append(append([]step{{consumer: 1, end: -1, admitted: true}, {consumer: 1, backlog: 1, end: -1, admitted: true},
				{consumer: 1, end: -1, admitted: true}}, burst(share, 500)...),
				step{consumer: 0, backlog: 500, end: -1, admitted: false})},
		{"the held consumer takes a place as soon as one of its handlers ends",
			append(append([]step{{consumer: 1, end: -1, admitted: true}}, burst(share, 500)...),
				step{consumer: 0, backlog: 500, end: 0, admitted: true})},
		{"the share lifts once the light consumer has been quiet for the window",
			append(append([]step{{consumer: 1, end: 1, admitted: true}}, burst(share, 500)...),
				step{consumer: 0, backlog: 500, advance: window, end: -1, admitted: true})},
		{"two backlogged consumers share the pool without a bound",
			append(append(burst(8, 500), step{consumer: 1, backlog: 500, end: -1, admitted: true}),
				step{consumer: 1, backlog: 500, end: -1, admitted: true}, step{consumer: 1, backlog: 500, end: -1, admitted: true},
				step{consumer: 1, backlog: 500, end: -1, admitted: true}, step{consumer: 1, backlog: 500, end: -1, admitted: true},
				step{consumer: 0, backlog: 500, end: -1, admitted: true})},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
			tr := newTurns(Pool{Workers: 256, Share: share, Window: window}, 2, clock.now)
			for i, s := range c.steps {
				clock.t = clock.t.Add(s.advance + time.Millisecond)
				if s.end >= 0 {
					tr.done(s.end)
				}
				if got := admitNow(tr, s.consumer, s.backlog); got != s.admitted {
					t.Fatalf("step %d (consumer %d, backlog %d): admitted %v, want %v (running %v)", i, s.consumer, s.backlog, got, s.admitted, tr.running)
				}
			}
		})
	}
}

func TestAHeldConsumerIsAdmittedWhenItsHandlerEnds(t *testing.T) {
	tr := newTurns(Pool{Workers: 16, Share: 1, Window: time.Hour}, 2, time.Now)
	ctx := context.Background()
	tr.admit(ctx, 1, 0) // light
	tr.admit(ctx, 0, 100)
	admitted := make(chan bool)
	go func() { admitted <- tr.admit(ctx, 0, 99) }()
	select {
	case <-admitted:
		t.Fatal("admitted past its share beside a light consumer")
	case <-time.After(50 * time.Millisecond):
	}
	tr.done(0)
	select {
	case ok := <-admitted:
		if !ok {
			t.Fatal("not admitted")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("still waiting after its handler ended")
	}
}

func TestNoShareMeansNoBound(t *testing.T) {
	for _, p := range []Pool{{Workers: 8}, {Workers: 8, Share: 8}, {Workers: 8, Share: 20}} {
		tr := newTurns(p, 2, time.Now)
		tr.admit(context.Background(), 1, 0)
		for i := range 8 {
			if !admitNow(tr, 0, 100) {
				t.Fatalf("%+v: handler %d held back", p, i+1)
			}
		}
	}
}

// A handler waiting on something outside the process (a brand's server, a
// slot) does not count toward its consumer's share until it resumes: a
// consumer whose handlers wait on slow servers still takes its next
// message beside a light one; once they resume, it is held to its share
// again. A resume called twice counts once.
func TestAWaitingHandlerDoesNotCountTowardItsShare(t *testing.T) {
	const share = 2
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	tr := newTurns(Pool{Workers: 256, Share: share, Window: time.Second}, 2, clock.now)
	if !admitNow(tr, 1, 0) { // the light consumer
		t.Fatal("the light consumer was not admitted")
	}
	var resumes []func()
	for i := range share {
		clock.t = clock.t.Add(time.Millisecond)
		if !admitNow(tr, 0, 500) {
			t.Fatalf("handler %d of the backlogged consumer was not admitted within its share", i+1)
		}
		ctx := context.WithValue(context.Background(), turnKey{}, &turnMark{t: tr, i: 0})
		resumes = append(resumes, Waiting(ctx)) // its request is out to a slow server
	}
	if !admitNow(tr, 0, 500) {
		t.Fatalf("held to its share by handlers that wait (running %v)", tr.running)
	}
	tr.done(0) // that one ends
	for _, resume := range resumes {
		resume()
		resume()
	}
	if tr.running[0] != share {
		t.Fatalf("running %d after the waits resumed, want %d", tr.running[0], share)
	}
	if admitNow(tr, 0, 500) {
		t.Fatal("admitted past its share once its handlers resumed")
	}
	// Outside a shared pool, Waiting does nothing.
	Waiting(context.Background())()
}

// A handler that ends while it waits (it panicked with its request out)
// stopped counting when it began to wait; its end does not count it out a
// second time, which would give its consumer one more place for good.
func TestAHandlerThatEndsWhileWaitingIsCountedOutOnce(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	tr := newTurns(Pool{Workers: 256, Share: 2, Window: time.Second}, 2, clock.now)
	if !admitNow(tr, 0, 500) {
		t.Fatal("not admitted")
	}
	m := &turnMark{t: tr, i: 0}
	ctx := context.WithValue(context.Background(), turnKey{}, m)
	Waiting(ctx)
	Waiting(ctx)() // a wait inside the wait changes nothing
	m.end()
	if tr.running[0] != 0 {
		t.Fatalf("running %d after the handler ended while waiting, want 0", tr.running[0])
	}
}
