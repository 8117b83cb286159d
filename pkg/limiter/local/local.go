// Package local is the in-process limiter: the standalone binary's choice when
// no Redis is configured, and a reference for the conformance suite.
//
// State: one entry per endpoint (the last slot booked and the last start
// booked, in nanoseconds of the injected Clock) in a map guarded by one
// mutex; the arithmetic is limiter.Next and limiter.NextStart, the same as
// the Redis scripts'.
//
// Restarts: this state dies with the process, and the process before this
// one may have started a request to any endpoint just before it stopped.
// NewSince takes that into account: every endpoint behaves as if a request
// had started at the instant given (the process's start), so the first
// request after a restart waits one gap from then, never less. (The
// standalone and a lone sender without Redis use it; Redis keeps its state
// across the senders' restarts by itself.)
//
// Memory: an entry is only needed until its horizon (a gap after the later
// of the last slot and the last start); after that a missing entry behaves
// exactly the same. Entries are dropped one grace period (a gap, at least a second) past
// their horizon by an amortized sweep: a full pass over the map runs once the
// number of Reserve calls since the previous pass reaches the number of
// entries that pass kept, so each call pays O(1) on average and the map holds
// at most about twice the endpoints still within their grace, never every
// endpoint ever seen. With no calls, nothing grows and nothing runs.
//
// Pacing (limiter/pacing.go): each endpoint's Pace, in nanoseconds, in a
// second map under the same mutex, read by Reserve and Start (unless the
// limits are Unpaced) and written by Observe; an entry is dropped by the
// same sweep once its keep instant (PaceMemory after the last feedback) has
// passed.
//
// Only one process sees this state: several replicas each with a local limiter
// would each allow the full rate. Use limiter/redis for more than one replica.
package local

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/postback-dev/postback/pkg/limiter"
)

// Clock tells the time; inject a fake one in tests.
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// SystemClock is the real clock.
var SystemClock Clock = systemClock{}

// minGrace is the least time an entry outlives its horizon.
const minGrace = time.Second

// sweepFloor keeps tiny maps from being swept on every call.
const sweepFloor = 64

type paceEntry struct {
	pace limiter.Pace
	keep int64 // unix ns after which the entry may be dropped
}

type entry struct {
	state  limiter.State
	expire int64 // unix ns after which the entry may be dropped
}

// Limiter is an in-process limiter.Limiter. The zero value is not usable; use New.
type Limiter struct {
	clock Clock
	since int64 // unix ns: every endpoint behaves as if a request started then (0: none)

	mu         sync.Mutex
	entries    map[string]entry
	paces      map[string]paceEntry
	sinceSweep int // Reserve calls since the last sweep
	keptSweep  int // entries the last sweep kept
}

var _ limiter.Limiter = (*Limiter)(nil)

// New returns an empty limiter reading clock (SystemClock when nil).
func New(clock Clock) *Limiter {
	if clock == nil {
		clock = SystemClock
	}
	return &Limiter{clock: clock, entries: make(map[string]entry), paces: make(map[string]paceEntry)}
}

// NewSince is New for a process that may have been restarted: every
// endpoint behaves as if a request had started at since (see the package
// comment), so its first start is at least a gap after since.
func NewSince(clock Clock, since time.Time) *Limiter {
	l := New(clock)
	l.since = since.UnixNano()
	return l
}

// Reserve implements limiter.Limiter.
func (l *Limiter) Reserve(ctx context.Context, endpoint string, lim limiter.Limits) (limiter.Reservation, error) {
	if err := ctx.Err(); err != nil {
		return limiter.Reservation{}, fmt.Errorf("reserve endpoint %s: %w", endpoint, err)
	}
	if err := lim.Validate(); err != nil {
		return limiter.Reservation{}, fmt.Errorf("reserve endpoint %s: %w: %w", endpoint, limiter.ErrInvalidLimits, err)
	}
	if lim.Unlimited() {
		now := l.clock.Now().Round(0)
		return limiter.Reservation{At: now, Now: now}, nil
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	// Read the clock under the lock so Now follows booking order.
	nowNS := l.clock.Now().UnixNano()
	at, next, horizon := limiter.NextPaced(l.state(endpoint), l.pace(endpoint, lim, nowNS), nowNS, lim, time.Nanosecond)
	l.store(endpoint, next, horizon, lim, nowNS)
	// Both instants are wall-clock only (no monotonic reading), so At.Sub
	// between reservations measures exactly the computed spacing.
	return limiter.Reservation{At: time.Unix(0, at), Now: time.Unix(0, nowNS)}, nil
}

// Start implements limiter.Limiter.
func (l *Limiter) Start(ctx context.Context, endpoint string, lim limiter.Limits, missed time.Time, maxWait time.Duration) (limiter.Reservation, bool, error) {
	if err := ctx.Err(); err != nil {
		return limiter.Reservation{}, false, fmt.Errorf("start on endpoint %s: %w", endpoint, err)
	}
	if err := lim.Validate(); err != nil {
		return limiter.Reservation{}, false, fmt.Errorf("start on endpoint %s: %w: %w", endpoint, limiter.ErrInvalidLimits, err)
	}
	if lim.Unlimited() {
		now := l.clock.Now().Round(0)
		return limiter.Reservation{At: now, Now: now}, true, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	nowNS := l.clock.Now().UnixNano()
	var missedNS int64
	if !missed.IsZero() {
		missedNS = missed.UnixNano()
	}
	at, ok, next, horizon := limiter.NextStartPaced(l.state(endpoint), l.pace(endpoint, lim, nowNS), nowNS, lim, time.Nanosecond, missedNS, int64(maxWait))
	if ok {
		l.store(endpoint, next, horizon, lim, nowNS)
	}
	return limiter.Reservation{At: time.Unix(0, at), Now: time.Unix(0, nowNS)}, ok, nil
}

// state is endpoint's state: its entry, or none but the start at since.
// Caller holds l.mu.
func (l *Limiter) state(endpoint string) limiter.State {
	if e, ok := l.entries[endpoint]; ok {
		return e.state
	}
	if l.since != 0 {
		return limiter.State{Has: true, Last: l.since, Started: true, LastStart: l.since}
	}
	return limiter.State{}
}

// pace is endpoint's pacing for lim (none when Unpaced or forgotten).
// Caller holds l.mu.
func (l *Limiter) pace(endpoint string, lim limiter.Limits, now int64) limiter.Pace {
	if lim.Unpaced {
		return limiter.Pace{}
	}
	if e, ok := l.paces[endpoint]; ok && e.keep >= now {
		return e.pace
	}
	return limiter.Pace{}
}

// Observe implements limiter.Limiter: the endpoint's pacing after one
// feedback (limiter.Observe). Unlimited limits are not paced.
func (l *Limiter) Observe(ctx context.Context, endpoint string, lim limiter.Limits, f limiter.Feedback) (limiter.Pacing, error) {
	if err := ctx.Err(); err != nil {
		return limiter.Pacing{}, fmt.Errorf("observe endpoint %s: %w", endpoint, err)
	}
	if err := lim.Validate(); err != nil {
		return limiter.Pacing{}, fmt.Errorf("observe endpoint %s: %w: %w", endpoint, limiter.ErrInvalidLimits, err)
	}
	if lim.Unlimited() || lim.Unpaced {
		return limiter.Pacing{Now: l.clock.Now().Round(0)}, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	nowNS := l.clock.Now().UnixNano()
	next, cut, keep := limiter.Observe(l.pace(endpoint, lim, nowNS), nowNS, lim, f, time.Nanosecond)
	if next == (limiter.Pace{}) {
		delete(l.paces, endpoint)
	} else {
		l.paces[endpoint] = paceEntry{pace: next, keep: keep}
	}
	p := limiter.Pacing{Rate: next.Rate(time.Nanosecond), Decreased: cut, Now: time.Unix(0, nowNS)}
	if next.NotBefore > nowNS {
		p.NotBefore = time.Unix(0, next.NotBefore)
	}
	return p, nil
}

// store keeps endpoint's new state until its horizon plus grace and runs
// the amortized sweep. Caller holds l.mu.
func (l *Limiter) store(endpoint string, st limiter.State, horizon int64, lim limiter.Limits, now int64) {
	l.entries[endpoint] = entry{state: st, expire: horizon + int64(grace(lim))}
	l.sinceSweep++
	if l.sinceSweep >= max(l.keptSweep, sweepFloor) {
		l.sweep(now)
	}
}

// grace is one gap, at least minGrace.
func grace(lim limiter.Limits) time.Duration {
	return max(minGrace, time.Duration(lim.Gap(time.Nanosecond)))
}

// sweep drops entries whose expiry has passed. Caller holds l.mu.
func (l *Limiter) sweep(now int64) {
	for k, e := range l.entries {
		if e.expire < now {
			delete(l.entries, k)
		}
	}
	for k, e := range l.paces {
		if e.keep < now {
			delete(l.paces, k)
		}
	}
	l.sinceSweep = 0
	l.keptSweep = len(l.entries) + len(l.paces)
}

// Ready implements limiter.Limiter: the in-process store always answers.
func (l *Limiter) Ready(context.Context) error { return nil }

// Len is the number of endpoints with state held (for metrics and tests).
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}

// Paced is the number of endpoints with pacing state held (for tests).
func (l *Limiter) Paced() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.paces)
}
