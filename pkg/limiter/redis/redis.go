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
// Pacing (limiter/pacing.go): a second hash per endpoint, key
// "postback:pace:{<endpoint>}" (same hash tag, so the same Cluster slot as
// the limit key: the booking scripts read both), fields "gap", "nb" (not
// before), "cut" (last cut), "base" (latency baseline), all integer
// microseconds, and "slow" (slow answers in a row). observeScript is
// limiter.Observe; the booking scripts take the longer of the brand's and
// the paced gap and wait for "nb" unless the caller says the endpoint is
// unpaced. The key expires PaceMemory after its last feedback (or its "nb",
// when later) and is deleted when nothing is left to remember. A failing
// Observe leaves the brand's limits in force (the caller logs and goes on).
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

// PaceKeyPrefix starts every pacing key.
const PaceKeyPrefix = "postback:pace:"

// PaceKey is the Redis key holding endpoint's pacing state:
// "postback:pace:{endpoint}", in the same Cluster slot as Key(endpoint).
func PaceKey(endpoint string) string { return PaceKeyPrefix + "{" + endpoint + "}" }

// readState opens both booking scripts: KEYS[1] = Key(endpoint), KEYS[2] =
// PaceKey(endpoint); ARGV[1] is the brand's gap in whole microseconds,
// ARGV[2] "1" when the endpoint is paced. It reads Redis's clock (now), the
// endpoint's last slot and last start (nil when none), and, when paced, its
// pacing: the gap becomes the longer of the brand's and the paced one, and
// nb the not-before instant (0: none), all in microseconds (unreadable
// pacing values count as none).
const readState = `
if redis.replicate_commands then redis.replicate_commands() end
local gap = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local st = redis.call('HMGET', KEYS[1], 'last', 'started')
local last = tonumber(st[1])
local started = tonumber(st[2])
local nb = 0
if ARGV[2] == '1' then
  local p = redis.call('HMGET', KEYS[2], 'gap', 'nb')
  local pgap = tonumber(p[1])
  if pgap ~= nil and pgap > gap then gap = pgap end
  nb = tonumber(p[2]) or 0
end
`

// reserveScript is limiter.NextPaced in Lua, in microseconds, plus the
// expiry. KEYS and ARGV[1..2] as readState. Returns {at, now} in
// microseconds since the Unix epoch (Redis's clock).
var reserveScript = redis.NewScript(readState + `
local at = now
if nb > at then at = nb end
if last ~= nil and last + gap > at then at = last + gap end
local horizon = at + gap
if started ~= nil and started + gap > horizon then horizon = started + gap end
local grace = gap
if grace < 1000000 then grace = 1000000 end
redis.call('HSET', KEYS[1], 'last', string.format('%.0f', at))
redis.call('PEXPIRE', KEYS[1], string.format('%.0f', math.ceil((horizon - now + grace) / 1000)))
return {at, now}
`)

// startScript is limiter.NextStartPaced in Lua, in microseconds, plus the
// expiry. KEYS and ARGV[1..2] as readState; ARGV[3] = maxWait, ARGV[4] =
// the missed start (0: none), in whole microseconds. Returns {at, now,
// booked (1 or 0)}.
var startScript = redis.NewScript(readState + `
local max_wait = tonumber(ARGV[3])
local missed = tonumber(ARGV[4])
local at = now
if nb > at then at = nb end
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

// observeScript is limiter.Observe in Lua, in microseconds. KEYS[1] =
// PaceKey(endpoint); ARGV[1] = the brand's gap, ARGV[2] = refused (1/0),
// ARGV[3] = Retry-After, ARGV[4] = ok (1/0), ARGV[5] = latency (0: none),
// ARGV[6..10] = PaceMinCutInterval, PaceMaxSlowdown, PaceRecoverSeconds,
// PaceSlowRun, SlowMargin, ARGV[11] = PaceMemory (durations in whole
// microseconds). Returns {gap, nb, cut (1/0), now}; the key is deleted when
// nothing is left to remember, else kept PaceMemory past the later of now
// and nb.
var observeScript = redis.NewScript(`
if redis.replicate_commands then redis.replicate_commands() end
local brand = tonumber(ARGV[1])
local refused = ARGV[2] == '1'
local retry_after = tonumber(ARGV[3])
local ok = ARGV[4] == '1'
local lat = tonumber(ARGV[5])
local min_cut, max_slowdown, recover = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local slow_run, slow_margin, memory = tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local p = redis.call('HMGET', KEYS[1], 'gap', 'nb', 'cut', 'base', 'slow')
local gap = tonumber(p[1]) or 0
local nb = tonumber(p[2]) or 0
local cut = tonumber(p[3]) or 0
local base = tonumber(p[4]) or 0
local slow = tonumber(p[5]) or 0
if gap <= brand then gap = 0 end
if nb <= now then nb = 0 end
local current = brand
if gap > current then current = gap end
local congested = refused
if refused and retry_after > 0 and now + retry_after > nb then nb = now + retry_after end
if (not refused) and lat > 0 then
  local is_slow = base > 0 and lat > 2 * base and lat - base >= slow_margin
  if base == 0 or lat < base then
    base = lat
  else
    base = base + math.floor((lat - base + 15) / 16)
  end
  if is_slow then slow = slow + 1 else slow = 0 end
  if slow >= slow_run then congested = true end
end
local did_cut = 0
if congested then
  local interval = 2 * current
  if min_cut > interval then interval = min_cut end
  if cut == 0 or now - cut >= interval then
    gap = 2 * current
    if gap > max_slowdown * brand then gap = max_slowdown * brand end
    cut, slow = now, 0
    if gap > current then did_cut = 1 end
  end
elseif ok and gap > 0 then
  local rate = 1000000 / gap
  local step = 1000000 / brand / recover
  local g = math.ceil(1000000 / (rate + step / rate))
  if g <= brand then g = 0 end
  gap = g
end
if gap == 0 and nb == 0 and cut == 0 and base == 0 and slow == 0 then
  redis.call('DEL', KEYS[1])
  return {gap, nb, did_cut, now}
end
redis.call('HSET', KEYS[1], 'gap', string.format('%.0f', gap), 'nb', string.format('%.0f', nb),
  'cut', string.format('%.0f', cut), 'base', string.format('%.0f', base), 'slow', string.format('%.0f', slow))
local keep = now
if nb > keep then keep = nb end
redis.call('PEXPIRE', KEYS[1], string.format('%.0f', math.ceil((keep + memory - now) / 1000)))
return {gap, nb, did_cut, now}
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
	res, err := reserveScript.Run(ctx, l.client, []string{Key(endpoint), PaceKey(endpoint)}, lim.Gap(time.Microsecond), pacedArg(lim)).Int64Slice()
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
	res, err := startScript.Run(ctx, l.client, []string{Key(endpoint), PaceKey(endpoint)},
		lim.Gap(time.Microsecond), pacedArg(lim), int64(maxWait/time.Microsecond), missedUS).Int64Slice()
	if err != nil {
		return limiter.Reservation{}, false, fmt.Errorf("start on endpoint %s: %w", endpoint, err)
	}
	if len(res) != 3 {
		return limiter.Reservation{}, false, fmt.Errorf("start on endpoint %s: script returned %d values, want 3", endpoint, len(res))
	}
	return limiter.Reservation{At: time.UnixMicro(res[0]), Now: time.UnixMicro(res[1])}, res[2] == 1, nil
}

// pacedArg is the scripts' ARGV[2]: "1" unless the endpoint opted out of
// pacing.
func pacedArg(lim limiter.Limits) string {
	if lim.Unpaced {
		return "0"
	}
	return "1"
}

// Observe implements limiter.Limiter with one script call (none when
// unlimited or unpaced): limiter.Observe on the endpoint's pacing hash.
func (l *Limiter) Observe(ctx context.Context, endpoint string, lim limiter.Limits, f limiter.Feedback) (limiter.Pacing, error) {
	if err := lim.Validate(); err != nil {
		return limiter.Pacing{}, fmt.Errorf("observe endpoint %s: %w: %w", endpoint, limiter.ErrInvalidLimits, err)
	}
	if lim.Unlimited() || lim.Unpaced {
		return limiter.Pacing{Now: time.Now().Round(0)}, nil
	}
	us := func(d time.Duration) int64 { return int64((d + time.Microsecond - 1) / time.Microsecond) }
	flag := func(b bool) int {
		if b {
			return 1
		}
		return 0
	}
	res, err := observeScript.Run(ctx, l.client, []string{PaceKey(endpoint)},
		lim.Gap(time.Microsecond), flag(f.Refused), us(f.RetryAfter), flag(f.OK), us(f.Latency),
		us(limiter.PaceMinCutInterval), limiter.PaceMaxSlowdown, limiter.PaceRecoverSeconds,
		limiter.PaceSlowRun, us(limiter.SlowMargin), us(limiter.PaceMemory)).Int64Slice()
	if err != nil {
		return limiter.Pacing{}, fmt.Errorf("observe endpoint %s: %w", endpoint, err)
	}
	if len(res) != 4 {
		return limiter.Pacing{}, fmt.Errorf("observe endpoint %s: script returned %d values, want 4", endpoint, len(res))
	}
	p := limiter.Pacing{Rate: limiter.Pace{Gap: res[0]}.Rate(time.Microsecond), Decreased: res[2] == 1, Now: time.UnixMicro(res[3])}
	if res[1] > res[3] {
		p.NotBefore = time.UnixMicro(res[1])
	}
	return p, nil
}

// Ready implements limiter.Limiter: nil when Redis answers PING.
func (l *Limiter) Ready(ctx context.Context) error {
	if err := l.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis limiter ready: %w", err)
	}
	return nil
}
