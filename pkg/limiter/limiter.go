// Package limiter decides when the next request to an endpoint may start, so
// that every brand's Minimum Delay and Maximum Requests per second hold across
// all sender replicas and restarts, as a brand reads them at its server
// (docs/architecture.md, decision 5).
//
// The rule is one spacing: no two request starts to an endpoint closer than
// its gap, gap = max(MinDelay, 1/Rate). Maximum Requests N is therefore a
// smooth schedule, one start every 1/N s, never a burst: any 1 s window holds
// at most N starts when N is a whole number (at most ⌈N⌉ for a fraction, N on
// average), the first second after an idle spell included. (Earlier versions
// kept a token bucket of burst max(1, N), which let 2N-1 requests into the
// first second.)
//
// Two bookings per request, both against the same per-endpoint state:
//
//   - Reserve books the request's slot when the sender first sees the job:
//     the earliest instant at least a gap after the endpoint's last booked
//     slot. It never blocks; the sender defers the delivery until then
//     (through JetStream delayed delivery), so a waiting endpoint holds no
//     goroutine and never holds up another endpoint. One Reserve per
//     delivery, whatever the backlog.
//   - Start books the request's real start, when its slot has come: the
//     earliest instant from now at least a gap after the endpoint's last real
//     start, by any replica. A slot only says when a request may start; a
//     request that starts a few milliseconds late (a timer, a busy core)
//     would otherwise crowd the next one, which starts on time. With Start a
//     late start pushes the next one back by as much, so the gap holds
//     between the starts themselves. A start further away than the caller's
//     maxWait is not booked (the endpoint's starts run well behind its
//     slots): the caller takes a fresh slot instead. A caller that woke too
//     late for the start it booked names it (missed): while it is still the
//     endpoint's last start it is moved to now, since nothing started after
//     it; otherwise the new start comes a gap after the last one.
//
// Pacing (pacing.go): the receiver's answers, fed back through Observe, may
// lengthen the gap below the brand's limits (429/503, Retry-After, rising
// latency) and shorten it back to them on successes; never beyond them.
//
// Implementations: limiter/local (in-process, for standalone mode and tests) and
// limiter/redis (one atomic Lua script per booking, shared by all replicas).
// limiter/limitertest is the conformance suite both pass. Next and NextStart
// are the arithmetic both share.
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
	// Rate is Maximum Requests per second: starts at least 1/Rate apart;
	// 0 means unlimited.
	Rate float64
	// Unpaced: the endpoint opted out of pacing (pacing.go); its pacing
	// state, if any is left, is ignored.
	Unpaced bool
}

// MinRate is the smallest non-zero Rate accepted: one request per 1,000,000
// seconds (about 11.5 days). Smaller rates would overflow the slot arithmetic.
const MinRate = 1e-6

// MaxMinDelay is the largest MinDelay accepted (the same 1,000,000 seconds).
const MaxMinDelay = 1_000_000 * time.Second

// Unlimited reports whether neither limit is set; Reserve then grants "now"
// without touching any state.
func (l Limits) Unlimited() bool { return l.Rate == 0 && l.MinDelay == 0 }

// Gap is the least time between two starts, max(MinDelay, 1/Rate), in whole
// ticks, each part rounded up (so rounding only ever makes starts later).
func (l Limits) Gap(tick time.Duration) int64 {
	gap := int64((l.MinDelay + tick - 1) / tick)
	if l.Rate > 0 {
		gap = max(gap, int64(math.Ceil(float64(time.Second/tick)/l.Rate)))
	}
	return gap
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

// ErrInvalidLimits wraps every error from Limits.Validate returned by Reserve
// and Start.
var ErrInvalidLimits = errors.New("invalid limits")

// Limiter books request slots and starts per endpoint.
type Limiter interface {
	// Reserve books the next slot for ONE request to the endpoint and returns
	// the instant at which it may start (now or later). It never blocks
	// waiting for the slot: the caller defers the work until then. One call
	// per delivery, whatever the backlog. Unlimited limits return now and
	// touch no state.
	Reserve(ctx context.Context, endpoint string, l Limits) (Reservation, error)
	// Start books the real start of a request whose slot has come: the
	// earliest instant from now at least the gap after the endpoint's last
	// booked start. missed, when not zero, is a start this caller booked
	// before and woke too late for (the At it was given): if it is still
	// the last start, it is moved to now. When the start is more than
	// maxWait away nothing is booked and ok is false. The caller starts the
	// request at the returned At (waiting the little that is left), never
	// earlier. Unlimited limits return now, ok, and touch no state.
	Start(ctx context.Context, endpoint string, l Limits, missed time.Time, maxWait time.Duration) (r Reservation, ok bool, err error)
	// Observe stores what one attempt told about the receiver (pacing.go):
	// a refusal halves the endpoint's rate and a Retry-After holds its next
	// starts back; successes raise the rate back towards the brand's.
	// Reserve and Start then use the paced gap when it is longer than the
	// brand's, never a shorter one. Unlimited or Unpaced limits touch no
	// state. An error means the feedback was not stored: the caller goes on
	// (pacing fails open to the brand's limits).
	Observe(ctx context.Context, endpoint string, l Limits, f Feedback) (Pacing, error)
	// Ready returns nil when the backing store answers.
	Ready(ctx context.Context) error
}

// Reservation is a booked slot or start.
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

// State is one endpoint's state in integer ticks since the Unix epoch
// (nanoseconds for limiter/local; the Redis script keeps microseconds). Has
// reports whether a slot was booked, Started whether a start was; missing
// parts behave as an endpoint never used.
type State struct {
	Has       bool
	Last      int64 // the last slot booked (Reserve)
	Started   bool
	LastStart int64 // the last start booked (Start)
}

// Next computes the slot for one request reserved at now, all instants being
// integer counts of tick since the Unix epoch (time.Nanosecond for
// limiter/local, time.Microsecond for the Redis script), and returns it
// together with the new state and the horizon: the instant after which the
// state no longer constrains anything (a missing state then behaves the
// same). Callers handle unlimited limits themselves (they touch no state).
//
// The Lua scripts in limiter/redis are the same arithmetic; keep them in
// step (its tests check that they agree slot for slot).
func Next(st State, now int64, l Limits, tick time.Duration) (at int64, next State, horizon int64) {
	return NextPaced(st, Pace{}, now, l, tick)
}

// NextStart computes the start of one request whose slot has come, booked at
// now: the earliest instant from now at least a gap after the last start,
// or now when the last start is missed (the caller's own, which it woke too
// late for; 0 for none). If it is more than maxWait ticks away, ok is false
// and the state is unchanged.
func NextStart(st State, now int64, l Limits, tick time.Duration, missed, maxWait int64) (at int64, ok bool, next State, horizon int64) {
	return NextStartPaced(st, Pace{}, now, l, tick, missed, maxWait)
}

// horizon is the instant after which st no longer constrains anything.
func (st State) horizon(gap int64) int64 {
	var h int64
	if st.Has {
		h = st.Last + gap
	}
	if st.Started {
		h = max(h, st.LastStart+gap)
	}
	return h
}
