// Package limiter decides when the next request to an endpoint may start, so
// that every brand's Minimum Delay and Maximum Requests per second hold across
// all sender replicas (docs/architecture.md, decision 5).
//
// The model is a reservation, not a wait: Reserve books the next free slot for
// one request and returns the instant it may start. It never blocks; the sender
// defers the delivery until then (through JetStream delayed delivery), so a
// waiting endpoint holds no goroutine and never holds up another endpoint.
// One Reserve per delivery, whatever the backlog.
//
// Slot arithmetic (shared by every implementation; see Next):
//
//   - Maximum Requests is a token bucket of capacity burst = max(1, Rate) refilled
//     at Rate tokens per second, kept in its virtual-scheduling (GCRA) form: a
//     single instant tat ("theoretical arrival time") per endpoint. A request may
//     start at s when s >= tat - tau, tau = (burst-1)/Rate; booking it moves
//     tat to max(tat, s) + 1/Rate. In any window of length w at most
//     burst + Rate*w slots start.
//   - Minimum Delay is spacing between starts: s >= last + MinDelay, where last
//     is the previous slot granted to the endpoint.
//   - Slots follow request order (s >= last even with no Minimum Delay) and each
//     is the earliest instant allowed by both rules.
//
// Implementations: limiter/local (in-process, for standalone mode and tests) and
// limiter/redis (one atomic Lua script per reservation, shared by all replicas).
// limiter/limitertest is the conformance suite both pass.
package limiter

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
)

// Limits are one endpoint's limits. The zero value is unlimited.
type Limits struct {
	// MinDelay is the least gap between the starts of two requests to the
	// endpoint; 0 means none.
	MinDelay time.Duration
	// Rate is Maximum Requests per second: a token bucket with
	// burst = max(1, Rate); 0 means unlimited.
	Rate float64
}

// MinRate is the smallest non-zero Rate accepted: one request per 1,000,000
// seconds (about 11.5 days). Smaller rates would overflow the slot arithmetic.
const MinRate = 1e-6

// MaxMinDelay is the largest MinDelay accepted (the same 1,000,000 seconds).
const MaxMinDelay = 1_000_000 * time.Second

// Unlimited reports whether neither limit is set; Reserve then grants "now"
// without touching any state.
func (l Limits) Unlimited() bool { return l.Rate == 0 && l.MinDelay == 0 }

// Burst is the bucket capacity, max(1, Rate), or 0 when Rate is unset.
func (l Limits) Burst() float64 {
	if l.Rate <= 0 {
		return 0
	}
	return math.Max(1, l.Rate)
}

// Validate reports limits that no implementation can honour.
func (l Limits) Validate() error {
	switch {
	case l.MinDelay < 0:
		return fmt.Errorf("minimum delay %s is negative", l.MinDelay)
	case l.MinDelay > MaxMinDelay:
		return fmt.Errorf("minimum delay %s is above the maximum %s", l.MinDelay, MaxMinDelay)
	case math.IsNaN(l.Rate) || math.IsInf(l.Rate, 0):
		return fmt.Errorf("maximum requests per second %v is not a number", l.Rate)
	case l.Rate < 0:
		return fmt.Errorf("maximum requests per second %v is negative", l.Rate)
	case l.Rate > 0 && l.Rate < MinRate:
		return fmt.Errorf("maximum requests per second %v is below the minimum %v", l.Rate, MinRate)
	}
	return nil
}

// ErrInvalidLimits wraps every error from Limits.Validate returned by Reserve.
var ErrInvalidLimits = errors.New("invalid limits")

// Limiter books request slots per endpoint.
type Limiter interface {
	// Reserve books the next slot for ONE request to the endpoint and returns
	// the instant at which it may start (now or later). It never blocks
	// waiting for the slot: the caller defers the work until then. One call
	// per delivery, whatever the backlog. Unlimited limits return now and
	// touch no state.
	Reserve(ctx context.Context, endpoint string, l Limits) (Reservation, error)
	// Ready returns nil when the backing store answers.
	Ready(ctx context.Context) error
}

// Reservation is a booked slot.
type Reservation struct {
	// At is when the request may start.
	At time.Time
	// Now is the limiter's clock when the slot was booked (Redis's clock for
	// the Redis limiter); compare At with Now, not with the local clock.
	Now time.Time
}

// Wait is how long after booking the request may start (0 when at once).
func (r Reservation) Wait() time.Duration {
	if d := r.At.Sub(r.Now); d > 0 {
		return d
	}
	return 0
}

// State is one endpoint's slot state in integer ticks since the Unix epoch
// (nanoseconds for limiter/local; the Redis script keeps microseconds). Has reports whether any
// state exists yet; a missing state behaves as an endpoint never used.
type State struct {
	Has  bool
	TAT  int64 // token bucket theoretical arrival time; meaningful only when Rate was set
	Last int64 // start of the last slot granted
}

// Next computes the slot for one request arriving at now, all instants being
// integer counts of tick since the Unix epoch (time.Nanosecond for
// limiter/local, time.Microsecond for the Redis script), and returns it
// together with the new state and the horizon: the instant after which the
// state no longer constrains anything under these limits (a missing state
// then behaves the same). The bucket interval and the Minimum Delay are
// rounded up to a tick and the bucket tolerance down, so rounding can only
// make slots later, never break the limits. Callers handle unlimited limits
// themselves (they touch no state).
//
// The Lua script in limiter/redis is the same arithmetic; keep them in step
// (its tests check that they agree slot for slot).
func Next(st State, now int64, l Limits, tick time.Duration) (at int64, next State, horizon int64) {
	unit := float64(time.Second / tick) // ticks per second
	at, tat := now, now
	if st.Has && st.TAT > tat {
		tat = st.TAT
	}
	var interval int64
	if l.Rate > 0 {
		interval = int64(math.Ceil(unit / l.Rate))
		tau := int64(math.Floor((l.Burst() - 1) * unit / l.Rate))
		at = max(at, tat-tau)
	}
	minDelay := int64((l.MinDelay + tick - 1) / tick)
	if st.Has {
		at = max(at, st.Last+minDelay)
	}
	if l.Rate > 0 {
		tat = max(tat, at) + interval
	}
	return at, State{Has: true, TAT: tat, Last: at}, max(tat, at+minDelay)
}
