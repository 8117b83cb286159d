package limitertest

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/postback-dev/postback/pkg/limiter"
)

// runPacing is the pacing part of the conformance suite (limiter/pacing.go).
// Like the rest of the suite it never sleeps: it reads the instants Reserve
// and Start return after feedback, and the Pacing Observe returns.
func runPacing(t *testing.T, newLimiter func(t *testing.T) limiter.Limiter) {
	t.Run("pacing: a 429 halves the rate the next slots keep", func(t *testing.T) {
		l := newLimiter(t)
		ep := Endpoint(t)
		lim := limiter.Limits{Rate: 10} // 100 ms
		p := observe(t, l, ep, lim, limiter.Feedback{Refused: true})
		if !p.Decreased || math.Abs(p.Rate-5) > 1e-3 {
			t.Fatalf("after a refusal: decreased %v, rate %v; want a cut to 5/s", p.Decreased, p.Rate)
		}
		res := ReserveN(t, l, ep, lim, 5)
		checkSpacing(t, Slots(res), 200*time.Millisecond)
		a := start(t, l, ep, lim, time.Second)
		b := start(t, l, ep, lim, time.Second)
		checkSpacing(t, []time.Time{a.At, b.At}, 200*time.Millisecond)
	})

	t.Run("pacing: successes raise the rate additively back to the brand's", func(t *testing.T) {
		l := newLimiter(t)
		ep := Endpoint(t)
		lim := limiter.Limits{Rate: 10}
		observe(t, l, ep, lim, limiter.Feedback{Refused: true})
		// 5/s + (10/40)/5 = 5.05/s: a gap of 198.02 ms, rounded up to the tick.
		p := observe(t, l, ep, lim, limiter.Feedback{OK: true, Latency: time.Millisecond})
		if p.Decreased || p.Rate < 5.04 || p.Rate > 5.06 {
			t.Fatalf("after a success: rate %v (decreased %v), want 5.05", p.Rate, p.Decreased)
		}
		// r² grows by about 2·(10/40) a success: 150 take 5/s back to 10/s.
		for range 160 {
			p = observe(t, l, ep, lim, limiter.Feedback{OK: true, Latency: time.Millisecond})
		}
		if p.Rate != 0 {
			t.Fatalf("after 160 successes the paced rate is %v, want 0 (the brand's)", p.Rate)
		}
		checkSpacing(t, Slots(ReserveN(t, l, ep, lim, 4)), 100*time.Millisecond)
	})

	t.Run("pacing: never above the brand's limits", func(t *testing.T) {
		l := newLimiter(t)
		ep := Endpoint(t)
		lim := limiter.Limits{Rate: 10, MinDelay: 300 * time.Millisecond}
		for range 50 {
			if p := observe(t, l, ep, lim, limiter.Feedback{OK: true, Latency: time.Millisecond}); p.Rate != 0 {
				t.Fatalf("successes at the brand's limits paced the rate to %v", p.Rate)
			}
		}
		res := ReserveN(t, l, ep, lim, 10)
		CheckSlots(t, Slots(res), lim)
		CheckModel(t, res, []limiter.Limits{lim})
		// Paced under a fast brand rate, then the brand slows down: the
		// brand's longer gap holds, the paced one does not shorten it.
		fast, slow := limiter.Limits{Rate: 50}, limiter.Limits{Rate: 2}
		ep2 := Endpoint(t) + "-2"
		observe(t, l, ep2, fast, limiter.Feedback{Refused: true}) // 25/s
		checkSpacing(t, Slots(ReserveN(t, l, ep2, slow, 3)), 500*time.Millisecond)
	})

	t.Run("pacing: retry-after holds the endpoint's next starts back", func(t *testing.T) {
		l := newLimiter(t)
		ep := Endpoint(t)
		lim := limiter.Limits{Rate: 100}
		p := observe(t, l, ep, lim, limiter.Feedback{Refused: true, RetryAfter: time.Hour})
		if d := p.NotBefore.Sub(p.Now); d < time.Hour-modelTolerance || d > time.Hour+modelTolerance {
			t.Fatalf("not before is %v after the feedback, want 1h", d)
		}
		r := reserve(t, l, ep, lim)
		if d := r.At.Sub(p.NotBefore); d < -modelTolerance || d > modelTolerance {
			t.Fatalf("first slot after a Retry-After is %v from its not-before, want at it", d)
		}
		if s, ok, err := l.Start(context.Background(), ep, lim, time.Time{}, time.Minute); err != nil || ok {
			t.Fatalf("a start within a minute was booked (%v, %v) while the receiver asked for an hour", s.Wait(), err)
		}
		// An endpoint that opted out ignores it, and any paced gap.
		unpaced := lim
		unpaced.Unpaced = true
		if s := start(t, l, ep, unpaced, time.Second); s.Wait() > 10*time.Millisecond+modelTolerance {
			t.Fatalf("an unpaced start waits %v", s.Wait())
		}
	})

	t.Run("pacing: opted-out and unlimited endpoints keep no pacing", func(t *testing.T) {
		l := newLimiter(t)
		ep := Endpoint(t)
		unpaced := limiter.Limits{Rate: 10, Unpaced: true}
		if p := observe(t, l, ep, unpaced, limiter.Feedback{Refused: true, RetryAfter: time.Hour}); p.Decreased || p.Rate != 0 || !p.NotBefore.IsZero() {
			t.Fatalf("an opted-out endpoint was paced: %+v", p)
		}
		checkSpacing(t, Slots(ReserveN(t, l, ep, limiter.Limits{Rate: 10}, 3)), 100*time.Millisecond)
		if p := observe(t, l, ep+"-u", limiter.Limits{}, limiter.Feedback{Refused: true, RetryAfter: time.Hour}); p.Decreased || !p.NotBefore.IsZero() {
			t.Fatalf("an unlimited endpoint was paced: %+v", p)
		}
		if r := reserve(t, l, ep+"-u", limiter.Limits{}); r.Wait() != 0 {
			t.Fatalf("unlimited slot waits %v after a refusal", r.Wait())
		}
	})

	t.Run("pacing: feedback paces the same limiter's slots and starts", func(t *testing.T) {
		l := newLimiter(t)
		RunPacingReplicas(t, l, l) // two replicas over one store: the implementations' own tests
	})
}

// RunPacingReplicas checks that feedback given to one limiter paces the
// other's slots and starts: a and b share one store (two Redis clients =
// two sender replicas), or are the same limiter.
func RunPacingReplicas(t *testing.T, a, b limiter.Limiter) {
	t.Helper()
	ep := Endpoint(t)
	lim := limiter.Limits{Rate: 20} // 50 ms
	observe(t, a, ep, lim, limiter.Feedback{Refused: true})
	checkSpacing(t, Slots(ReserveN(t, b, ep, lim, 4)), 100*time.Millisecond)
	x := start(t, b, ep, lim, time.Second)
	y := start(t, a, ep, lim, time.Second)
	checkSpacing(t, []time.Time{x.At, y.At}, 100*time.Millisecond)
	p := observe(t, b, ep, lim, limiter.Feedback{Refused: true, RetryAfter: time.Hour})
	if r := reserve(t, a, ep, lim); r.At.Before(p.NotBefore.Add(-modelTolerance)) {
		t.Fatalf("a replica's slot %v is before the not-before %v another replica stored", r.At, p.NotBefore)
	}
}

func observe(t testing.TB, l limiter.Limiter, ep string, lim limiter.Limits, f limiter.Feedback) limiter.Pacing {
	t.Helper()
	p, err := l.Observe(context.Background(), ep, lim, f)
	if err != nil {
		t.Fatalf("Observe(%s, %+v, %+v): %v", ep, lim, f, err)
	}
	return p
}

// checkSpacing fails t unless consecutive instants are gap apart (the
// first may be later than its reservation; the rest follow it exactly).
func checkSpacing(t testing.TB, at []time.Time, gap time.Duration) {
	t.Helper()
	for i := 1; i < len(at); i++ {
		if d := at[i].Sub(at[i-1]); d < gap-modelTolerance || d > gap+modelTolerance {
			t.Errorf("instants %d and %d are %v apart, want %v", i-1, i, d, gap)
		}
	}
}
