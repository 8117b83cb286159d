// Package limitertest is the conformance suite every limiter.Limiter passes
// (limiter/local and limiter/redis run it from their tests).
//
// The suite never sleeps to a slot: Reserve and Start compute instants, so
// each check reads the returned At values and verifies, over all of them,
//
//   - the rate as a brand reads it: no 1 s window holds more than ⌈Rate⌉
//     slots (Rate for a whole number), and no two slots are closer than
//     1/Rate (a smooth schedule, no burst);
//   - the spacing: no two slots closer than MinDelay;
//   - the order: slots are non-decreasing in request order;
//   - earliness: each slot is exactly the one limiter.Next gives for the
//     reservation's own Now (1 ms tolerance for the implementations' tick),
//     and, for fixed limits, the human schedule ("one at once then every 2 s")
//     measured from the first reservation;
//   - pacing (pacing.go): a refusal halves the rate, successes raise it
//     back additively, never above the brand's limits, a Retry-After holds
//     the next starts back, Unpaced limits ignore it all, and limiters over
//     one store share it.
//
// Each subtest uses its own endpoint name, so a suite may share one backing
// store (one Redis server) across subtests and runs.
package limitertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postback-dev/postback/pkg/limiter"
)

// modelTolerance absorbs the difference between a nanosecond model and an
// implementation's own tick (microseconds for Redis), summed over a run.
const modelTolerance = time.Millisecond

// scheduleTolerance absorbs rounding in the human schedules; the real time
// that passes between the suite's calls (which moves "now" slots such as a
// first slot) is allowed for separately, so a slow machine does not fail them.
const scheduleTolerance = 5 * time.Millisecond

// Run runs the conformance suite. newLimiter is called once per subtest; all
// limiters it returns may share one store, since endpoints never repeat.
func Run(t *testing.T, newLimiter func(t *testing.T) limiter.Limiter) {
	t.Helper()
	sec := func(s ...float64) []time.Duration {
		d := make([]time.Duration, len(s))
		for i, v := range s {
			d[i] = time.Duration(v * float64(time.Second))
		}
		return d
	}
	schedules := []struct {
		name string
		lim  limiter.Limits
		n    int
		want []time.Duration // offsets from the first reservation's Now (a prefix of the run)
	}{
		{
			name: "rate 5 per second is one slot every 0.2 s from the first, never a burst",
			lim:  limiter.Limits{Rate: 5}, n: 50,
			want: sec(0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2),
		},
		{
			name: "min delay 0.2s never gives two slots closer than 0.2s",
			lim:  limiter.Limits{MinDelay: 200 * time.Millisecond}, n: 20,
			want: sec(0, 0.2, 0.4, 0.6, 0.8, 1.0),
		},
		{
			name: "min delay and rate together wait for the longer gap",
			lim:  limiter.Limits{Rate: 2, MinDelay: 100 * time.Millisecond}, n: 20,
			want: sec(0, 0.5, 1.0, 1.5, 2.0),
		},
		{
			name: "min delay longer than the rate interval sets the gap",
			lim:  limiter.Limits{Rate: 5, MinDelay: 300 * time.Millisecond}, n: 20,
			want: sec(0, 0.3, 0.6, 0.9, 1.2),
		},
		{
			name: "fractional rate 0.5 per second gives one at once then every 2s",
			lim:  limiter.Limits{Rate: 0.5}, n: 10,
			want: sec(0, 2, 4, 6, 8),
		},
		{
			name: "rate 1 per second is one every second",
			lim:  limiter.Limits{Rate: 1}, n: 10,
			want: sec(0, 1, 2, 3),
		},
		{
			name: "fractional rate 2.5 is one every 0.4 s, three in a second at most",
			lim:  limiter.Limits{Rate: 2.5}, n: 20,
			want: sec(0, 0.4, 0.8, 1.2, 1.6),
		},
		{
			name: "high rate 1000 per second is one every millisecond",
			lim:  limiter.Limits{Rate: 1000}, n: 1100,
			want: sec(0, 0.001, 0.002, 0.003),
		},
	}
	for _, tc := range schedules {
		t.Run(tc.name, func(t *testing.T) {
			l := newLimiter(t)
			res := ReserveN(t, l, Endpoint(t), tc.lim, tc.n)
			CheckOrder(t, res)
			CheckSlots(t, Slots(res), tc.lim)
			CheckModel(t, res, []limiter.Limits{tc.lim})
			checkSchedule(t, res, tc.want)
		})
	}

	t.Run("unlimited returns now and touches no state", func(t *testing.T) {
		l := newLimiter(t)
		ep := Endpoint(t)
		for range 100 {
			r := reserve(t, l, ep, limiter.Limits{})
			if !r.At.Equal(r.Now) || r.Wait() != 0 {
				t.Fatalf("unlimited reservation At=%v Now=%v, want At == Now", r.At, r.Now)
			}
			if d := time.Since(r.Now); d < -time.Second || d > time.Second {
				t.Fatalf("unlimited reservation Now=%v is %v away from this clock", r.Now, d)
			}
		}
		// Had the unlimited calls booked anything, this slot would wait.
		if r := reserve(t, l, ep, limiter.Limits{Rate: 1, MinDelay: time.Second}); r.Wait() != 0 {
			t.Fatalf("first limited slot after unlimited calls waits %v, want 0", r.Wait())
		}
	})

	t.Run("independent endpoints do not affect each other", func(t *testing.T) {
		l := newLimiter(t)
		noisy, quiet := Endpoint(t)+"-noisy", Endpoint(t)+"-quiet"
		lim := limiter.Limits{Rate: 1, MinDelay: 500 * time.Millisecond}
		res := ReserveN(t, l, noisy, lim, 500)
		if w := res[len(res)-1].Wait(); w < 498*time.Second {
			t.Fatalf("noisy endpoint's 500th slot waits only %v", w)
		}
		r := reserve(t, l, quiet, lim)
		if r.Wait() != 0 {
			t.Fatalf("quiet endpoint's first slot waits %v behind the noisy one, want 0", r.Wait())
		}
		if r2 := reserve(t, l, quiet, lim); math.Abs(r2.At.Sub(r.At).Seconds()-1) > scheduleTolerance.Seconds() {
			t.Fatalf("quiet endpoint's second slot is %v after its first, want 1s", r2.At.Sub(r.At))
		}
	})

	t.Run("limits may change between calls", func(t *testing.T) {
		l := newLimiter(t)
		ep := Endpoint(t)
		seq := []limiter.Limits{
			{Rate: 1}, {Rate: 1}, {Rate: 1},
			{}, // unlimited: now, no state touched
			{MinDelay: 100 * time.Millisecond},
			{Rate: 10}, {Rate: 10},
			{Rate: 0.5, MinDelay: time.Second},
			{MinDelay: 50 * time.Millisecond},
		}
		var res []limiter.Reservation
		var lims []limiter.Limits
		for _, lim := range seq {
			r := reserve(t, l, ep, lim)
			if lim.Unlimited() {
				if r.Wait() != 0 {
					t.Fatalf("unlimited reservation waits %v", r.Wait())
				}
				continue
			}
			res, lims = append(res, r), append(lims, lim)
		}
		CheckOrder(t, res)
		CheckModel(t, res, lims)
	})

	t.Run("invalid limits are refused", func(t *testing.T) {
		l := newLimiter(t)
		for _, lim := range []limiter.Limits{
			{Rate: -1}, {Rate: math.NaN()}, {Rate: math.Inf(1)}, {Rate: limiter.MinRate / 2},
			{MinDelay: -time.Second}, {MinDelay: limiter.MaxMinDelay + 1},
		} {
			_, err := l.Reserve(context.Background(), Endpoint(t), lim)
			if !errors.Is(err, limiter.ErrInvalidLimits) {
				t.Errorf("Reserve(%+v) error = %v, want ErrInvalidLimits", lim, err)
			}
		}
	})

	t.Run("ready when the store answers", func(t *testing.T) {
		if err := newLimiter(t).Ready(context.Background()); err != nil {
			t.Fatalf("Ready: %v", err)
		}
	})

	t.Run("a start waits a gap after the last start, however late it came", func(t *testing.T) {
		l := newLimiter(t)
		ep := Endpoint(t)
		lim := limiter.Limits{MinDelay: 200 * time.Millisecond}
		first := start(t, l, ep, lim, time.Second)
		if first.Wait() != 0 {
			t.Fatalf("first start waits %v, want 0", first.Wait())
		}
		// The next request's slot has come at once (say its slot was booked
		// on time and the first request started late): its start still
		// waits the whole gap after the first start.
		second := start(t, l, ep, lim, time.Second)
		if gap := second.At.Sub(first.At); gap < lim.MinDelay || gap > lim.MinDelay+modelTolerance {
			t.Fatalf("second start %v after the first, want %v", gap, lim.MinDelay)
		}
	})

	t.Run("a start further away than maxWait is refused and books nothing", func(t *testing.T) {
		l := newLimiter(t)
		ep := Endpoint(t)
		lim := limiter.Limits{Rate: 5} // a gap of 200 ms
		first := start(t, l, ep, lim, time.Second)
		r, ok, err := l.Start(context.Background(), ep, lim, time.Time{}, 10*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			t.Fatalf("a start %v away was booked with maxWait 10ms", r.Wait())
		}
		if gap := r.At.Sub(first.At); gap < 200*time.Millisecond-modelTolerance || gap > 200*time.Millisecond+modelTolerance {
			t.Fatalf("refused start says %v after the first, want 200ms", gap)
		}
		// Had the refused start been booked, this one would be 400 ms out.
		third := start(t, l, ep, lim, time.Second)
		if gap := third.At.Sub(first.At); gap > 200*time.Millisecond+modelTolerance {
			t.Fatalf("start after a refused one is %v after the first, want 200ms", gap)
		}
	})

	t.Run("a missed start moves to now while it is the last one", func(t *testing.T) {
		l := newLimiter(t)
		ep := Endpoint(t)
		lim := limiter.Limits{MinDelay: time.Second}
		first := start(t, l, ep, lim, time.Second)
		// The caller woke too late for its start: naming it, it starts now,
		// with no wait (nothing started after it).
		r, ok, err := l.Start(context.Background(), ep, lim, first.At, time.Second)
		if err != nil || !ok || r.Wait() != 0 {
			t.Fatalf("moving a missed start: wait %v ok %v %v, want now", r.Wait(), ok, err)
		}
		// Naming a start that is no longer the last one moves nothing: the
		// start comes a gap after the last.
		r2, ok, err := l.Start(context.Background(), ep, lim, first.At, 2*time.Second)
		if err != nil || !ok {
			t.Fatal(ok, err)
		}
		if gap := r2.At.Sub(r.At); gap < time.Second || gap > time.Second+modelTolerance {
			t.Fatalf("start naming an old missed start is %v after the last, want 1s", gap)
		}
	})

	t.Run("slots and starts are booked apart", func(t *testing.T) {
		l := newLimiter(t)
		ep := Endpoint(t)
		lim := limiter.Limits{MinDelay: time.Second}
		// Ten slots booked ahead do not delay the first start, and a start
		// does not move the next slot.
		res := ReserveN(t, l, ep, lim, 10)
		if s := start(t, l, ep, lim, time.Second); s.Wait() != 0 {
			t.Fatalf("first start waits %v behind booked slots, want 0", s.Wait())
		}
		next := reserve(t, l, ep, lim)
		if gap := next.At.Sub(res[len(res)-1].At); gap < time.Second || gap > time.Second+modelTolerance {
			t.Fatalf("slot after a start is %v after the last slot, want 1s", gap)
		}
	})

	t.Run("unlimited starts are now and touch no state", func(t *testing.T) {
		l := newLimiter(t)
		ep := Endpoint(t)
		for range 10 {
			if r := start(t, l, ep, limiter.Limits{}, 0); !r.At.Equal(r.Now) {
				t.Fatalf("unlimited start At=%v Now=%v", r.At, r.Now)
			}
		}
		if r := start(t, l, ep, limiter.Limits{MinDelay: time.Second}, 0); r.Wait() != 0 {
			t.Fatalf("first limited start after unlimited ones waits %v", r.Wait())
		}
	})

	runPacing(t, newLimiter)

	t.Run("concurrent reservations from three goroutines keep the limits", func(t *testing.T) {
		l := newLimiter(t)
		RunReplicas(t, []limiter.Limiter{l, l, l})
	})

	t.Run("concurrent starts from three goroutines keep the gap", func(t *testing.T) {
		l := newLimiter(t)
		RunStartReplicas(t, []limiter.Limiter{l, l, l})
	})
}

// RunReplicas has one goroutine per limiter book slots for the same endpoint
// at once and checks the invariants over all slots granted. Pass several
// limiters sharing one store (e.g. three Redis clients = three sender
// replicas) or the same limiter several times.
func RunReplicas(t *testing.T, replicas []limiter.Limiter) {
	t.Helper()
	const perReplica = 30
	ep := Endpoint(t)
	cases := []struct {
		name string
		lim  limiter.Limits
	}{
		{"rate", limiter.Limits{Rate: 10}},
		{"min delay", limiter.Limits{MinDelay: 50 * time.Millisecond}},
		{"rate and min delay", limiter.Limits{Rate: 10, MinDelay: 50 * time.Millisecond}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var (
				wg    sync.WaitGroup
				mu    sync.Mutex
				all   []limiter.Reservation
				start = make(chan struct{})
			)
			for i, l := range replicas {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					var mine []limiter.Reservation
					for range perReplica {
						r, err := l.Reserve(context.Background(), ep+"-"+tc.name, tc.lim)
						if err != nil {
							t.Errorf("replica %d: %v", i, err)
							return
						}
						mine = append(mine, r)
					}
					CheckOrder(t, mine)
					mu.Lock()
					all = append(all, mine...)
					mu.Unlock()
				}()
			}
			close(start)
			wg.Wait()
			if t.Failed() {
				return
			}
			if want := perReplica * len(replicas); len(all) != want {
				t.Fatalf("got %d reservations, want %d", len(all), want)
			}
			// Slots are granted in execution order, so sorting by At recovers
			// it (there are no ties: slots are at least a gap apart).
			slices.SortStableFunc(all, func(a, b limiter.Reservation) int {
				if c := a.At.Compare(b.At); c != 0 {
					return c
				}
				return a.Now.Compare(b.Now)
			})
			CheckSlots(t, Slots(all), tc.lim)
			if tc.lim.MinDelay > 0 { // strict order: the model applies
				CheckModel(t, all, []limiter.Limits{tc.lim})
			}
		})
	}
}

// RunStartReplicas has one goroutine per limiter book starts for the same
// endpoint at once (maxWait large enough for all) and checks that no two
// starts, by any replica, are closer than the gap.
func RunStartReplicas(t *testing.T, replicas []limiter.Limiter) {
	t.Helper()
	const perReplica = 10
	ep := Endpoint(t)
	lim := limiter.Limits{Rate: 50, MinDelay: 10 * time.Millisecond} // a gap of 20 ms
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		all []time.Time
	)
	for i, l := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perReplica {
				r, ok, err := l.Start(context.Background(), ep, lim, time.Time{}, time.Hour)
				if err != nil || !ok {
					t.Errorf("replica %d: start ok %v, %v", i, ok, err)
					return
				}
				mu.Lock()
				all = append(all, r.At)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if want := perReplica * len(replicas); len(all) != want {
		t.Fatalf("got %d starts, want %d", len(all), want)
	}
	CheckSlots(t, all, lim)
}

func start(t testing.TB, l limiter.Limiter, ep string, lim limiter.Limits, maxWait time.Duration) limiter.Reservation {
	t.Helper()
	r, ok, err := l.Start(context.Background(), ep, lim, time.Time{}, maxWait)
	if err != nil || !ok {
		t.Fatalf("Start(%s, %+v, %v): ok %v, %v", ep, lim, maxWait, ok, err)
	}
	return r
}

// Endpoint returns an endpoint id unique to this test and run.
func Endpoint(t testing.TB) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '_'
	}, t.Name())
	return "ep_" + name + "_" + hex.EncodeToString(b[:])
}

func reserve(t testing.TB, l limiter.Limiter, ep string, lim limiter.Limits) limiter.Reservation {
	t.Helper()
	r, err := l.Reserve(context.Background(), ep, lim)
	if err != nil {
		t.Fatalf("Reserve(%s, %+v): %v", ep, lim, err)
	}
	return r
}

// ReserveN books n slots one after the other.
func ReserveN(t testing.TB, l limiter.Limiter, ep string, lim limiter.Limits, n int) []limiter.Reservation {
	t.Helper()
	res := make([]limiter.Reservation, 0, n)
	for range n {
		res = append(res, reserve(t, l, ep, lim))
	}
	return res
}

// Slots returns the At of each reservation.
func Slots(res []limiter.Reservation) []time.Time {
	s := make([]time.Time, len(res))
	for i, r := range res {
		s[i] = r.At
	}
	return s
}

// CheckOrder fails t unless slots never go back in request order and no slot
// is before its own reservation.
func CheckOrder(t testing.TB, res []limiter.Reservation) {
	t.Helper()
	for i, r := range res {
		if r.At.Before(r.Now) {
			t.Errorf("reservation %d: slot %v is before its own Now %v", i, r.At, r.Now)
		}
		if i > 0 && r.At.Before(res[i-1].At) {
			t.Errorf("reservation %d: slot %v is before reservation %d's slot %v", i, r.At, i-1, res[i-1].At)
		}
	}
}

// CheckSlots fails t unless the slots (any order) satisfy the bucket in every
// window and the spacing between every two slots.
func CheckSlots(t testing.TB, slots []time.Time, lim limiter.Limits) {
	t.Helper()
	s := slices.Clone(slots)
	slices.SortFunc(s, func(a, b time.Time) int { return a.Compare(b) })
	if lim.MinDelay > 0 {
		for i := 1; i < len(s); i++ {
			if gap := s[i].Sub(s[i-1]); gap < lim.MinDelay {
				t.Errorf("slots %d and %d are %v apart, less than the minimum delay %v", i-1, i, gap, lim.MinDelay)
			}
		}
	}
	if lim.Rate > 0 {
		interval := time.Duration(float64(time.Second) / lim.Rate)
		for i := 1; i < len(s); i++ {
			if gap := s[i].Sub(s[i-1]); gap < interval {
				t.Errorf("slots %d and %d are %v apart, less than 1/rate = %v", i-1, i, gap, interval)
				return
			}
		}
		if most, from := MaxInWindow(s, time.Second); float64(most) > math.Ceil(lim.Rate) {
			t.Errorf("%d slots start within 1 s of %v; Maximum Requests is %v per second", most, from.Format(time.StampMicro), lim.Rate)
		}
	}
}

// MaxInWindow is the most instants (sorted) in any half-open window
// [t, t+w), and the first instant of such a window.
func MaxInWindow(sorted []time.Time, w time.Duration) (most int, from time.Time) {
	j := 0
	for i := range sorted {
		for j < len(sorted) && sorted[j].Sub(sorted[i]) < w {
			j++
		}
		if j-i > most {
			most, from = j-i, sorted[i]
		}
	}
	return most, from
}

// CheckModel fails t unless every slot is the earliest one allowed: the slot
// limiter.Next computes from the reservation's own Now, the state the earlier
// reservations left, and lims[i] (or the last of lims when shorter).
func CheckModel(t testing.TB, res []limiter.Reservation, lims []limiter.Limits) {
	t.Helper()
	var st limiter.State
	for i, r := range res {
		lim := lims[min(i, len(lims)-1)]
		var at int64
		at, st, _ = limiter.Next(st, r.Now.UnixNano(), lim, time.Nanosecond)
		want := time.Unix(0, at)
		if d := r.At.Sub(want); d > modelTolerance || d < -modelTolerance {
			t.Errorf("reservation %d (%+v): slot %v, want %v (off by %v)", i, lim,
				r.At.Format(time.StampMicro), want.Format(time.StampMicro), d)
			return
		}
	}
}

// checkSchedule compares the first slots with offsets from the first Now. A
// slot may be later than its offset only by the time that had passed when it
// was reserved (a first slot is "now", whenever now is).
func checkSchedule(t testing.TB, res []limiter.Reservation, want []time.Duration) {
	t.Helper()
	if len(want) > len(res) {
		panic(fmt.Sprintf("schedule of %d slots for %d reservations", len(want), len(res)))
	}
	for i, w := range want {
		got := res[i].At.Sub(res[0].Now)
		latest := max(w, res[i].Now.Sub(res[0].Now))
		if got < w-scheduleTolerance || got > latest+scheduleTolerance {
			t.Errorf("slot %d starts %v after the first reservation, want %v", i, got, w)
		}
	}
}
