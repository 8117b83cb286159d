// Package redislimiter is the cluster-wide limiter: every sender replica books
// slots and starts for an endpoint in the same Redis hash, so Minimum Delay
// and Maximum Requests hold across the fleet and across the senders' restarts
// (docs/architecture.md, decision 5, "Scaling out").
//
// Algorithm: limiter.Next and limiter.NextStart computed in microseconds,
// with gap = max(MinDelay, 1/Rate) worked out by the caller (Limits.Gap). A
// reservation is granted the earliest slot s >= now with s >= last + gap, then
// last = s; a start is booked at the earliest a >= now with a >= started +
// gap, then started = a, unless a is more than the caller's maxWait away
// (then nothing is written and the caller takes a fresh slot). A start the
// caller missed (woke too late for) and names is moved to now while it is
// still the last one (a = now). The slot is
// granted at once, even when it lies in the future; the sender defers the
// delivery until then. Neither script ever blocks, whatever the backlog.
//
// Data: one hash per endpoint, key "postback:limit:{<endpoint>}" (the braces
// are a Redis Cluster hash tag, so an endpoint's key lives on one slot and the
// scripts' single key is always local), fields "last" and "started" as
// integer microseconds since the Unix epoch. (Keys written by versions with a
// token bucket also hold "tat"; it is ignored and expires with the key.) The
// key carries a PEXPIRE of its horizon (a gap after the later of last and
// started) plus a grace of one gap (at least a second): after that a missing
// key behaves exactly like the stored one, so idle endpoints' keys vanish by
// themselves and memory follows the endpoints that are busy, not all that
// exist.
//
// Clock: the scripts read Redis's own clock (TIME), so replicas with skewed
// clocks still share one timeline. Reservation.Now is that clock; the caller
// waits At.Sub(Now), never At minus its own clock.
//
// Atomicity and cost: one EVALSHA per booking (go-redis Script.Run falls
// back to EVAL when the server answers NOSCRIPT, e.g. after a restart), read,
// compute and write inside the script, so concurrent replicas never interleave.
// Unlimited endpoints (both limits zero) make no Redis call at all.
//
// Failure policy: if Redis is unreachable or errors, Reserve and Start return
// the error (wrapped with the endpoint) and book nothing. The caller must not
// send: it waits and tries again later (the delivery stays unacked / is
// redelivered). Nothing is ever sent unthrottled because the limiter failed.
// Losing Redis's data (restart without persistence, failover) forgets the
// last start: the next request may then follow it closer than the gap, once.
package redislimiter

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/postback-dev/postback/pkg/limiter"
)

// KeyPrefix starts every limiter key.
const KeyPrefix = "postback:limit:"

// Key is the Redis key holding endpoint's state: "postback:limit:{endpoint}".
func Key(endpoint string) string { return KeyPrefix + "{" + endpoint + "}" }

// readState opens both scripts: ARGV[1] is the gap in whole microseconds;
// it reads Redis's clock (now) and the endpoint's last slot and last start
// (nil when none), all in microseconds.
const readState = `
if redis.replicate_commands then redis.replicate_commands() end
local gap = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local st = redis.call('HMGET', KEYS[1], 'last', 'started')
local last = tonumber(st[1])
local started = tonumber(st[2])
`

// reserveScript is limiter.Next in Lua, in microseconds, plus the expiry.
// KEYS[1] = Key(endpoint); ARGV[1] = the gap in whole microseconds.
// Returns {at, now} in microseconds since the Unix epoch (Redis's clock).
var reserveScript = redis.NewScript(readState + `
local at = now
if last ~= nil and last + gap > at then at = last + gap end
local horizon = at + gap
if started ~= nil and started + gap > horizon then horizon = started + gap end
local grace = gap
if grace < 1000000 then grace = 1000000 end
redis.call('HSET', KEYS[1], 'last', string.format('%.0f', at))
redis.call('PEXPIRE', KEYS[1], string.format('%.0f', math.ceil((horizon - now + grace) / 1000)))
return {at, now}
`)

// startScript is limiter.NextStart in Lua, in microseconds, plus the expiry.
// KEYS[1] = Key(endpoint); ARGV[1] = the gap, ARGV[2] = maxWait, ARGV[3] =
// the missed start (0: none), all in whole microseconds. Returns {at, now,
// booked (1 or 0)}.
var startScript = redis.NewScript(readState + `
local max_wait = tonumber(ARGV[2])
local missed = tonumber(ARGV[3])
local at = now
if started ~= nil and (missed == 0 or started ~= missed) and started + gap > at then at = started + gap end
if at - now > max_wait then return {at, now, 0} end
local horizon = at + gap
if last ~= nil and last + gap > horizon then horizon = last + gap end
local grace = gap
if grace < 1000000 then grace = 1000000 end
redis.call('HSET', KEYS[1], 'started', string.format('%.0f', at))
redis.call('PEXPIRE', KEYS[1], string.format('%.0f', math.ceil((horizon - now + grace) / 1000)))
return {at, now, 1}
`)

// Limiter is a limiter.Limiter backed by Redis (a single server, a
// Sentinel-managed one, or a Cluster: any go-redis UniversalClient).
type Limiter struct {
	client redis.UniversalClient
}

var _ limiter.Limiter = (*Limiter)(nil)

// New returns a limiter using client. The caller owns client (and closes it).
func New(client redis.UniversalClient) *Limiter { return &Limiter{client: client} }

// Reserve implements limiter.Limiter with one script call (none when unlimited).
func (l *Limiter) Reserve(ctx context.Context, endpoint string, lim limiter.Limits) (limiter.Reservation, error) {
	if err := lim.Validate(); err != nil {
		return limiter.Reservation{}, fmt.Errorf("reserve endpoint %s: %w: %w", endpoint, limiter.ErrInvalidLimits, err)
	}
	if lim.Unlimited() {
		now := time.Now().Round(0)
		return limiter.Reservation{At: now, Now: now}, nil
	}
	res, err := reserveScript.Run(ctx, l.client, []string{Key(endpoint)}, lim.Gap(time.Microsecond)).Int64Slice()
	if err != nil {
		return limiter.Reservation{}, fmt.Errorf("reserve endpoint %s: %w", endpoint, err)
	}
	if len(res) != 2 {
		return limiter.Reservation{}, fmt.Errorf("reserve endpoint %s: script returned %d values, want 2", endpoint, len(res))
	}
	return limiter.Reservation{At: time.UnixMicro(res[0]), Now: time.UnixMicro(res[1])}, nil
}

// Start implements limiter.Limiter with one script call (none when unlimited).
func (l *Limiter) Start(ctx context.Context, endpoint string, lim limiter.Limits, missed time.Time, maxWait time.Duration) (limiter.Reservation, bool, error) {
	if err := lim.Validate(); err != nil {
		return limiter.Reservation{}, false, fmt.Errorf("start on endpoint %s: %w: %w", endpoint, limiter.ErrInvalidLimits, err)
	}
	if lim.Unlimited() {
		now := time.Now().Round(0)
		return limiter.Reservation{At: now, Now: now}, true, nil
	}
	var missedUS int64
	if !missed.IsZero() {
		missedUS = missed.UnixMicro()
	}
	res, err := startScript.Run(ctx, l.client, []string{Key(endpoint)},
		lim.Gap(time.Microsecond), int64(maxWait/time.Microsecond), missedUS).Int64Slice()
	if err != nil {
		return limiter.Reservation{}, false, fmt.Errorf("start on endpoint %s: %w", endpoint, err)
	}
	if len(res) != 3 {
		return limiter.Reservation{}, false, fmt.Errorf("start on endpoint %s: script returned %d values, want 3", endpoint, len(res))
	}
	return limiter.Reservation{At: time.UnixMicro(res[0]), Now: time.UnixMicro(res[1])}, res[2] == 1, nil
}

// Ready implements limiter.Limiter: nil when Redis answers PING.
func (l *Limiter) Ready(ctx context.Context) error {
	if err := l.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis limiter ready: %w", err)
	}
	return nil
}
