package main

import (
	"testing"
	"time"
)

func TestTheLimitedReceiverServesFiftyInAnySecond(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	for _, tc := range []struct {
		name    string
		offsets []time.Duration // arrivals after t0, in order
		want    int             // refused
	}{
		{"fifty at once are all served", repeat(0, 50), 0},
		{"the fifty-first within the second is refused", repeat(0, 51), 1},
		{"fifty more a second later are served", append(repeat(0, 50), repeat(time.Second, 50)...), 0},
		{"refused requests do not count against the window", append(repeat(0, 60), repeat(time.Second, 50)...), 10},
		{"200 a second for a second: 150 refused", spread(200, time.Second), 150},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var w rateWindow
			for _, d := range tc.offsets {
				w.admit(t0.Add(d))
			}
			if got := w.refusals(); got != tc.want {
				t.Fatalf("refused %d, want %d", got, tc.want)
			}
		})
	}
}

func repeat(d time.Duration, n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}

func spread(n int, over time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = time.Duration(i) * over / time.Duration(n)
	}
	return out
}
