// Package local is the in-process limiter: the standalone binary's choice when
// no Redis is configured, and a reference for the conformance suite.
//
// State: one entry per endpoint (token bucket tat and last slot start, in
// nanoseconds of the injected Clock) in a map guarded by one mutex; the slot
// arithmetic is limiter.Next, the same as the Redis script's.
//
// Memory: an entry is only needed until its horizon (the later of tat and
// last+MinDelay); after that a missing entry behaves exactly the same. Entries
// are dropped one grace period (a bucket's worth, at least a second) past
// their horizon by an amortized sweep: a full pass over the map runs once the
// number of Reserve calls since the previous pass reaches the number of
// entries that pass kept, so each call pays O(1) on average and the map holds
// at most about twice the endpoints still within their grace, never every
// endpoint ever seen. With no calls, nothing grows and nothing runs.
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

type entry struct {
	state  limiter.State
	expire int64 // unix ns after which the entry may be dropped
}

// Limiter is an in-process limiter.Limiter. The zero value is not usable; use New.
type Limiter struct {
	clock Clock

	mu         sync.Mutex
	entries    map[string]entry
	sinceSweep int // Reserve calls since the last sweep
	keptSweep  int // entries the last sweep kept
}

var _ limiter.Limiter = (*Limiter)(nil)

// New returns an empty limiter reading clock (SystemClock when nil).
func New(clock Clock) *Limiter {
	if clock == nil {
		clock = SystemClock
	}
	return &Limiter{clock: clock, entries: make(map[string]entry)}
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
	e := l.entries[endpoint]
	at, next, horizon := limiter.Next(e.state, nowNS, lim, time.Nanosecond)
	l.entries[endpoint] = entry{state: next, expire: horizon + int64(grace(lim))}
	l.sinceSweep++
	if l.sinceSweep >= max(l.keptSweep, sweepFloor) {
		l.sweep(nowNS)
	}
	// Both instants are wall-clock only (no monotonic reading), so At.Sub
	// between reservations measures exactly the computed spacing.
	return limiter.Reservation{At: time.Unix(0, at), Now: time.Unix(0, nowNS)}, nil
}

// grace is one bucket's worth of time (burst/Rate), at least minGrace.
func grace(lim limiter.Limits) time.Duration {
	g := minGrace
	if lim.Rate > 0 {
		g = max(g, time.Duration(lim.Burst()/lim.Rate*float64(time.Second)))
	}
	return g
}

// sweep drops entries whose expiry has passed. Caller holds l.mu.
func (l *Limiter) sweep(now int64) {
	for k, e := range l.entries {
		if e.expire < now {
			delete(l.entries, k)
		}
	}
	l.sinceSweep = 0
	l.keptSweep = len(l.entries)
}

// Ready implements limiter.Limiter: the in-process store always answers.
func (l *Limiter) Ready(context.Context) error { return nil }

// Len is the number of endpoints with state held (for metrics and tests).
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}
