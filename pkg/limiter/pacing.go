package limiter

// Pacing that listens to the receiver (issue 20, item 4).
//
// The brand's Minimum Delay and Maximum Requests are a ceiling, never a
// target the receiver must bear: when the receiver says it is overloaded,
// the endpoint's requests slow down below that ceiling, and speed back up
// to it as the receiver copes again. Never above it: the paced gap only ever
// lengthens the brand's gap, gap = max(Limits.Gap, Pace.Gap).
//
// Signals (Feedback, fed by the sender after each attempt):
//
//   - Refused: an answer 429 (Too Many Requests) or 503 (Service
//     Unavailable). It halves the endpoint's rate (the paced gap doubles;
//     multiplicative decrease), at most once per cut interval (a second, or
//     two paced gaps when longer): the requests already in flight when the
//     receiver started refusing all come back refused, and they are one
//     episode of overload, not several. The rate never falls below
//     1/PaceMaxSlowdown of the brand's.
//   - RetryAfter, with a refusal: the receiver's own word on when to come
//     back. The endpoint's next requests start no earlier than then (the
//     "not before" instant; a later one is kept when several arrive). The
//     caller bounds it (the sender: by the retry schedule's longest step).
//     The refused delivery itself is retried by the retry schedule as any
//     failure is; pacing only moves when the endpoint's next requests start.
//   - Latency rising: an answer slower than twice the endpoint's latency
//     baseline and at least SlowMargin above it. PaceSlowRun such answers
//     in a row count as a refusal (a cut, same interval). The baseline
//     follows the fastest answers at once and slower ones slowly (1/16 of
//     the difference per answer), so a lasting change becomes the new
//     normal instead of cutting forever.
//   - OK: an answer the brand's rules accept. It raises the rate by
//     brandRate/PaceRecoverSeconds per second of sending (additive
//     increase: each success adds that divided by the current rate), until
//     the brand's rate is reached and the paced gap is dropped.
//
// Unlimited endpoints (no Minimum Delay, no Maximum Requests) are not
// paced: there is no ceiling to cut from or climb back to, and the sender
// makes no limiter call for them at all. An endpoint that opted out
// (Endpoint.adaptive_pacing_disabled) sends no feedback, and its Limits
// carry Unpaced, so state left from before the opt-out is ignored.
//
// State lives in the limiter's store next to the endpoint's slots (Pace, in
// the same ticks): limiter/local keeps it in memory, limiter/redis in a
// second hash per endpoint in the same Redis Cluster slot, read by the same
// scripts that book slots and starts, so every sender replica paces alike.
// It expires PaceMemory after the last feedback (or after the not-before
// instant, when later): an endpoint idle that long starts again from the
// brand's limits.
//
// Failure policy: pacing fails open. Feedback that cannot be stored (Redis
// down) is dropped with a warning by the caller; the brand's limits still
// hold (booking slots and starts fails as before when the store is down:
// nothing is sent unthrottled). Unreadable stored values count as no
// pacing. Pacing never refuses or drops a delivery: it only moves starts.

import (
	"math"
	"time"
)

// Pacing constants (see the comment above).
const (
	// PaceMaxSlowdown bounds the paced gap at this many brand gaps.
	PaceMaxSlowdown = 64
	// PaceRecoverSeconds is how many seconds of successes take the rate
	// from nothing back to the brand's (the additive step is the brand's
	// rate divided by it, per second of sending).
	PaceRecoverSeconds = 40
	// PaceMinCutInterval is the least time between two cuts.
	PaceMinCutInterval = time.Second
	// PaceSlowRun is how many slow answers in a row make a cut.
	PaceSlowRun = 3
	// SlowMargin is how far above the baseline a slow answer must be.
	SlowMargin = 100 * time.Millisecond
	// PaceMemory is how long pacing state outlives the last feedback.
	PaceMemory = 5 * time.Minute
)

// Feedback is what one attempt told about the receiver.
type Feedback struct {
	// Refused: the receiver answered 429 or 503.
	Refused bool
	// RetryAfter is the receiver's Retry-After with a refusal (0: none),
	// already bounded by the caller.
	RetryAfter time.Duration
	// OK: the brand's rules accepted the answer.
	OK bool
	// Latency is how long the answer took (0: no answer, e.g. a transport
	// error).
	Latency time.Duration
}

// Pacing is an endpoint's pacing after a feedback.
type Pacing struct {
	// Rate is the paced rate in requests per second; 0 when the endpoint
	// runs at the brand's own limits.
	Rate float64
	// Decreased: this feedback cut the rate.
	Decreased bool
	// NotBefore is the earliest start of the endpoint's next request set by
	// a Retry-After (zero: none, or passed).
	NotBefore time.Time
	// Now is the limiter's clock when the feedback was stored.
	Now time.Time
}

// Pace is one endpoint's pacing state in integer ticks (as State). The zero
// value is no pacing.
type Pace struct {
	Gap       int64 // the paced gap; 0: the brand's
	NotBefore int64 // no start before this instant (0: none)
	Cut       int64 // the last cut
	Base      int64 // latency baseline (0: none yet)
	Slow      int64 // slow answers in a row
}

// paceGap is the gap Reserve and Start use: the brand's, or the paced one
// when longer.
func paceGap(l Limits, p Pace, tick time.Duration) int64 { return max(l.Gap(tick), p.Gap) }

// ticksPerSecond in tick.
func ticksPerSecond(tick time.Duration) float64 { return float64(time.Second / tick) }

// Observe computes an endpoint's pacing after one feedback received at now,
// and the instant after which the state may be forgotten (keep). Callers do
// not call it for unlimited limits. The Lua script in limiter/redis is the
// same arithmetic; keep them in step.
func Observe(p Pace, now int64, l Limits, f Feedback, tick time.Duration) (next Pace, cut bool, keep int64) {
	brand := l.Gap(tick)
	tps := ticksPerSecond(tick)
	next = p
	if next.Gap <= brand {
		next.Gap = 0
	}
	if next.NotBefore <= now {
		next.NotBefore = 0
	}
	current := max(brand, next.Gap)
	congested := f.Refused
	if f.Refused && f.RetryAfter > 0 {
		next.NotBefore = max(next.NotBefore, now+int64((f.RetryAfter+tick-1)/tick))
	}
	if !f.Refused && f.Latency > 0 {
		lat := int64((f.Latency + tick - 1) / tick)
		slow := next.Base > 0 && lat > 2*next.Base && lat-next.Base >= int64(SlowMargin/tick)
		switch {
		case next.Base == 0 || lat < next.Base:
			next.Base = lat
		default:
			next.Base += (lat - next.Base + 15) / 16
		}
		if slow {
			next.Slow++
		} else {
			next.Slow = 0
		}
		if next.Slow >= PaceSlowRun {
			congested = true
		}
	}
	switch {
	case congested:
		interval := max(int64(PaceMinCutInterval/tick), 2*current)
		if next.Cut == 0 || now-next.Cut >= interval {
			next.Gap = min(2*current, PaceMaxSlowdown*brand)
			next.Cut, next.Slow, cut = now, 0, next.Gap > current
		}
	case f.OK && next.Gap > 0:
		rate := tps / float64(next.Gap)
		step := tps / float64(brand) / PaceRecoverSeconds
		gap := int64(math.Ceil(tps / (rate + step/rate)))
		if gap <= brand {
			gap = 0
		}
		next.Gap = gap
	}
	keep = max(now, next.NotBefore) + int64(PaceMemory/tick)
	return next, cut, keep
}

// Rate is the paced rate of p in requests per second (0: the brand's own).
func (p Pace) Rate(tick time.Duration) float64 {
	if p.Gap <= 0 {
		return 0
	}
	return ticksPerSecond(tick) / float64(p.Gap)
}

// NextPaced is Next with the endpoint's pacing: the gap is the longer of
// the brand's and the paced one, and no slot comes before the not-before
// instant.
func NextPaced(st State, p Pace, now int64, l Limits, tick time.Duration) (at int64, next State, horizon int64) {
	gap := paceGap(l, p, tick)
	at = max(now, p.NotBefore)
	if st.Has {
		at = max(at, st.Last+gap)
	}
	next = st
	next.Has, next.Last = true, at
	return at, next, next.horizon(gap)
}

// NextStartPaced is NextStart with the endpoint's pacing (see NextPaced).
func NextStartPaced(st State, p Pace, now int64, l Limits, tick time.Duration, missed, maxWait int64) (at int64, ok bool, next State, horizon int64) {
	gap := paceGap(l, p, tick)
	at = max(now, p.NotBefore)
	if st.Started && (missed == 0 || st.LastStart != missed) {
		at = max(at, st.LastStart+gap)
	}
	if at-now > maxWait {
		return at, false, st, st.horizon(gap)
	}
	next = st
	next.Started, next.LastStart = true, at
	return at, true, next, next.horizon(gap)
}
