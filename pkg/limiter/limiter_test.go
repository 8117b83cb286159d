package limiter

import (
	"math"
	"testing"
	"time"
)

func TestBurstIsMaxOfOneAndRate(t *testing.T) {
	for _, tc := range []struct{ rate, want float64 }{
		{0, 0}, {0.5, 1}, {1, 1}, {2.5, 2.5}, {100, 100},
	} {
		if got := (Limits{Rate: tc.rate}).Burst(); got != tc.want {
			t.Errorf("Burst(rate %v) = %v, want %v", tc.rate, got, tc.want)
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

func TestNextRoundsTowardsLaterSlots(t *testing.T) {
	// Rate 3/s in nanoseconds: interval 333333334 (up), tolerance 666666666
	// (down), so the third slot of the burst lands 2 ns late, never early.
	var st State
	var got []int64
	for range 5 {
		var at int64
		at, st, _ = Next(st, 0, Limits{Rate: 3}, time.Nanosecond)
		got = append(got, at)
	}
	want := []int64{0, 0, 2*333333334 - 666666666, 3*333333334 - 666666666, 4*333333334 - 666666666}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("slots %v, want %v", got, want)
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
		t.Fatalf("bucket horizon %d, want %d", h, 1000+int64(1e6))
	}
	// Past state behaves as none.
	at, _, _ := Next(State{Has: true, TAT: 10, Last: 10}, 1_000_000_000, Limits{Rate: 1, MinDelay: time.Millisecond}, time.Nanosecond)
	if at != 1_000_000_000 {
		t.Fatalf("slot %d after an old state, want now", at)
	}
}
