package stream

import (
	"testing"
	"time"
)

func TestAKeeperGoesEveryTenthOfASecondOnlyWhileItsStreamIsBusy(t *testing.T) {
	cases := []struct {
		name    string
		gap     uint64
		elapsed time.Duration
		want    time.Duration
	}{
		{"a quiet stream: only our own keeper since the last", 1, time.Second, KeepEvery},
		{"two services' keepers at their busy pace", 20, time.Second, KeepEvery},
		{"a trickle of events", 50, time.Second, KeepEvery},
		{"events at 100 a second", 100, time.Second, KeepBusyEvery},
		{"a steady 1,000 a second, seen over a busy tick", 100, 100 * time.Millisecond, KeepBusyEvery},
		{"a burst", 5000, 100 * time.Millisecond, KeepBusyEvery},
		{"a stream that went quiet within a busy tick", 2, 100 * time.Millisecond, KeepEvery},
		{"no time seen", 10, 0, KeepEvery},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := nextKeep(c.gap, c.elapsed); got != c.want {
				t.Errorf("nextKeep(%d, %v) = %v, want %v", c.gap, c.elapsed, got, c.want)
			}
		})
	}
}
