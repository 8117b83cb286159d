package limiter

import (
	"math"
	"testing"
	"time"
)

func TestGapIsTheLargerOfMinDelayAndOneOverRate(t *testing.T) {
	for _, tc := range []struct {
		name string
		l    Limits
		tick time.Duration
		want int64
	}{
		{"unlimited", Limits{}, time.Nanosecond, 0},
		{"rate 5/s is 200 ms", Limits{Rate: 5}, time.Millisecond, 200},
		{"min delay 0.3 s beats rate 5/s", Limits{Rate: 5, MinDelay: 300 * time.Millisecond}, time.Millisecond, 300},
		{"rate 2/s beats min delay 0.1 s", Limits{Rate: 2, MinDelay: 100 * time.Millisecond}, time.Millisecond, 500},
		{"rate 3/s rounds up", Limits{Rate: 3}, time.Nanosecond, 333333334},
		{"min delay rounds up to a tick", Limits{MinDelay: 1500 * time.Nanosecond}, time.Microsecond, 2},
	} {
		if got := tc.l.Gap(tc.tick); got != tc.want {
			t.Errorf("%s: Gap = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		l    Limits
		ok   bool
	}{
		{"zero is unlimited", Limits{}, true},
		{"both set", Limits{Rate: 2.5, MinDelay: 1500 * time.Millisecond}, true},
		{"smallest rate", Limits{Rate: MinRate}, true},
		{"negative rate", Limits{Rate: -1}, false},
		{"NaN rate", Limits{Rate: math.NaN()}, false},
		{"infinite rate", Limits{Rate: math.Inf(1)}, false},
		{"rate below minimum", Limits{Rate: MinRate / 10}, false},
		{"negative delay", Limits{MinDelay: -time.Millisecond}, false},
		{"delay above maximum", Limits{MinDelay: MaxMinDelay + time.Second}, false},
	} {
		if err := tc.l.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v", tc.name, err)
		}
	}
}

func TestWaitIsNeverNegative(t *testing.T) {
	now := time.Unix(100, 0)
	if w := (Reservation{At: now.Add(-time.Second), Now: now}).Wait(); w != 0 {
		t.Fatalf("Wait = %v", w)
	}
	if w := (Reservation{At: now.Add(time.Second), Now: now}).Wait(); w != time.Second {
		t.Fatalf("Wait = %v", w)
	}
}

func TestMaximumRequestsIsASmoothScheduleWithNoBurst(t *testing.T) {
	// Rate 3/s in nanoseconds: one slot every 333333334 ns (rounded up),
	// the first at once; never two at once, as a token bucket would give.
	var st State
	for i := range 5 {
		var at int64
		at, st, _ = Next(st, 0, Limits{Rate: 3}, time.Nanosecond)
		if want := int64(i) * 333333334; at != want {
			t.Fatalf("slot %d at %d ns, want %d", i, at, want)
		}
	}
}

func TestNextHorizon(t *testing.T) {
	_, _, h := Next(State{}, 1000, Limits{MinDelay: 5 * time.Microsecond}, time.Microsecond)
	if h != 1005 {
		t.Fatalf("min-delay horizon %d, want 1005", h)
	}
	_, _, h = Next(State{}, 1000, Limits{Rate: 1}, time.Microsecond)
	if h != 1000+1e6 {
		t.Fatalf("rate horizon %d, want %d", h, 1000+int64(1e6))
	}
	// A later start than the last slot keeps the state longer.
	_, _, h = Next(State{Started: true, LastStart: 5000}, 1000, Limits{MinDelay: 5 * time.Microsecond}, time.Microsecond)
	if h != 5005 {
		t.Fatalf("horizon %d with a start booked at 5000, want 5005", h)
	}
	// Past state behaves as none.
	at, _, _ := Next(State{Has: true, Last: 10}, 10_000_000_000, Limits{Rate: 1, MinDelay: time.Millisecond}, time.Nanosecond)
	if at != 10_000_000_000 {
		t.Fatalf("slot %d after an old state, want now", at)
	}
}

func TestNextStartKeepsTheGapBetweenRealStarts(t *testing.T) {
	lim := Limits{MinDelay: 200 * time.Millisecond}
	tick := time.Millisecond
	cases := []struct {
		name    string
		st      State
		now     int64
		missed  int64
		maxWait int64
		want    int64
		ok      bool
	}{
		{"first start is now", State{}, 1000, 0, 10, 1000, true},
		{"on time after an on-time start", State{Started: true, LastStart: 800}, 1000, 0, 10, 1000, true},
		{"a start 8 ms late pushes the next one 8 ms", State{Started: true, LastStart: 808}, 1000, 0, 10, 1008, true},
		{"further than maxWait is not booked", State{Started: true, LastStart: 850}, 1000, 0, 10, 1050, false},
		{"a late start after a long pause is now", State{Started: true, LastStart: 100}, 1000, 0, 10, 1000, true},
		{"a missed start that is still the last moves to now", State{Started: true, LastStart: 995}, 1000, 995, 10, 1000, true},
		{"a missed start another came after is not moved", State{Started: true, LastStart: 995}, 1000, 990, 300, 1195, true},
	}
	for _, tc := range cases {
		at, ok, next, _ := NextStart(tc.st, tc.now, lim, tick, tc.missed, tc.maxWait)
		if at != tc.want || ok != tc.ok {
			t.Errorf("%s: start %d ok %v, want %d ok %v", tc.name, at, ok, tc.want, tc.ok)
		}
		if ok && (!next.Started || next.LastStart != at) {
			t.Errorf("%s: state after a booked start %+v, want LastStart %d", tc.name, next, at)
		}
		if !ok && next != tc.st {
			t.Errorf("%s: a refused start changed the state to %+v", tc.name, next)
		}
	}
}
