// Package redislimiter is the cluster-wide limiter: every sender replica books
// slots for an endpoint in the same Redis hash, so Minimum Delay and Maximum
// Requests hold across the fleet (docs/architecture.md, decision 5, "Scaling out").
//
// Algorithm: the virtual-scheduling (GCRA) form of a token bucket of capacity
// burst = max(1, Rate) refilled at Rate per second, plus Minimum Delay spacing
// between starts, exactly limiter.Next computed in microseconds. A request is
// granted the earliest slot s with
//
//	s >= now, s >= tat - (burst-1)/Rate, s >= last + MinDelay
//
// then tat = max(tat, s) + 1/Rate and last = s. The slot is granted at once,
// even when it lies in the future; the sender defers the delivery until then.
// Reserve never blocks, whatever the backlog.
//
// Data: one hash per endpoint, key "postback:limit:{<endpoint>}" (the braces
// are a Redis Cluster hash tag, so an endpoint's key lives on one slot and the
// script's single key is always local), fields "tat" and "last" as integer
// microseconds since the Unix epoch. The key carries a PEXPIRE of its horizon
// (the later of tat and last+MinDelay) plus one bucket's worth (at least a
// second): after that a missing key behaves exactly like the stored one, so
// idle endpoints' keys vanish by themselves and memory follows the endpoints
// that are busy, not all that exist.
//
// Clock: the script reads Redis's own clock (TIME), so replicas with skewed
// clocks still share one timeline. Reservation.Now is that clock; the caller
// waits At.Sub(Now), never At minus its own clock.
//
// Atomicity and cost: one EVALSHA per reservation (go-redis Script.Run falls
// back to EVAL when the server answers NOSCRIPT, e.g. after a restart), read,
// compute and write inside the script, so concurrent replicas never interleave.
// Unlimited endpoints (both limits zero) make no Redis call at all.
//
// Failure policy: if Redis is unreachable or errors, Reserve returns the error
// (wrapped with the endpoint) and no slot. The caller must not send: it waits
// and retries the reservation later (the delivery stays unacked / is
// redelivered). Nothing is ever sent unthrottled because the limiter failed.
// Losing Redis's data (restart without persistence, failover) only forgets
// recent slots: at worst one extra burst per endpoint, then limits hold again.
package redislimiter

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/postback-dev/postback/pkg/limiter"
)

// KeyPrefix starts every limiter key.
const KeyPrefix = "postback:limit:"

// Key is the Redis key holding endpoint's state: "postback:limit:{endpoint}".
func Key(endpoint string) string { return KeyPrefix + "{" + endpoint + "}" }

// reserveScript is limiter.Next in Lua, in microseconds, plus the expiry.
// KEYS[1] = Key(endpoint); ARGV[1] = Rate (requests per second, "0" = no
// bucket); ARGV[2] = MinDelay in whole microseconds (rounded up).
// Returns {at, now} in microseconds since the Unix epoch (Redis's clock).
var reserveScript = redis.NewScript(`
if redis.replicate_commands then redis.replicate_commands() end
local rate = tonumber(ARGV[1])
local min_delay = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local st = redis.call('HMGET', KEYS[1], 'tat', 'last')
local tat = tonumber(st[1])
local last = tonumber(st[2])
if tat == nil or tat < now then tat = now end
local at = now
local interval = 0
local grace = 1000000
if rate > 0 then
  local burst = rate
  if burst < 1 then burst = 1 end
  interval = math.ceil(1000000 / rate)
  local tau = math.floor((burst - 1) * 1000000 / rate)
  if tat - tau > at then at = tat - tau end
  local bucket = burst * 1000000 / rate
  if bucket > grace then grace = bucket end
end
if last ~= nil and last + min_delay > at then at = last + min_delay end
if rate > 0 then
  if at > tat then tat = at end
  tat = tat + interval
end
local horizon = tat
if at + min_delay > horizon then horizon = at + min_delay end
redis.call('HSET', KEYS[1], 'tat', string.format('%.0f', tat), 'last', string.format('%.0f', at))
redis.call('PEXPIRE', KEYS[1], string.format('%.0f', math.ceil((horizon - now + grace) / 1000)))
return {at, now}
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
	minDelayUS := int64((lim.MinDelay + time.Microsecond - 1) / time.Microsecond)
	res, err := reserveScript.Run(ctx, l.client, []string{Key(endpoint)},
		strconv.FormatFloat(lim.Rate, 'g', -1, 64), minDelayUS).Int64Slice()
	if err != nil {
		return limiter.Reservation{}, fmt.Errorf("reserve endpoint %s: %w", endpoint, err)
	}
	if len(res) != 2 {
		return limiter.Reservation{}, fmt.Errorf("reserve endpoint %s: script returned %d values, want 2", endpoint, len(res))
	}
	return limiter.Reservation{At: time.UnixMicro(res[0]), Now: time.UnixMicro(res[1])}, nil
}

// Ready implements limiter.Limiter: nil when Redis answers PING.
func (l *Limiter) Ready(ctx context.Context) error {
	if err := l.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis limiter ready: %w", err)
	}
	return nil
}
