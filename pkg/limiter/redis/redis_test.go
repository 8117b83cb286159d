package redislimiter

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/postback-dev/postback/pkg/limiter"
	"github.com/postback-dev/postback/pkg/limiter/limitertest"
	"github.com/postback-dev/postback/pkg/redistest"
)

// newClient connects to srv (loopback only) and closes the client with t.
func newClient(t testing.TB, srv *redistest.Server) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{
		Addr:         srv.Addr,
		DialTimeout:  500 * time.Millisecond,
		ReadTimeout:  time.Second,
		WriteTimeout: time.Second,
	})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestConformance(t *testing.T) {
	srv := redistest.Start(t)
	limitertest.Run(t, func(t *testing.T) limiter.Limiter { return New(newClient(t, srv)) })
}

// Three clients = three sender replicas sharing one state per endpoint.
func TestThreeReplicasShareOneSchedule(t *testing.T) {
	srv := redistest.Start(t)
	replicas := []limiter.Limiter{New(newClient(t, srv)), New(newClient(t, srv)), New(newClient(t, srv))}
	limitertest.RunReplicas(t, replicas)
	t.Run("starts", func(t *testing.T) { limitertest.RunStartReplicas(t, replicas) })
	t.Run("pacing", func(t *testing.T) { limitertest.RunPacingReplicas(t, replicas[0], replicas[1]) })
}

func TestKeyHasHashTagAndExpires(t *testing.T) {
	srv := redistest.Start(t)
	c := newClient(t, srv)
	l := New(c)
	ctx := context.Background()
	const ep = "ep_2Xq9"
	if got, want := Key(ep), "postback:limit:{ep_2Xq9}"; got != want {
		t.Fatalf("Key = %q, want %q", got, want)
	}
	if _, err := l.Reserve(ctx, ep, limiter.Limits{Rate: 5, MinDelay: 100 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	// Redis Cluster hashes only the tag: the key's slot is the endpoint's.
	if slot, want := keySlot(Key(ep)), keySlot(ep); slot != want {
		t.Fatalf("key slot %d, want the endpoint's own slot %d", slot, want)
	}
	fields, err := c.HGetAll(ctx, Key(ep)).Result()
	if err != nil {
		t.Fatal(err)
	}
	if fields["last"] == "" || len(fields) != 1 {
		t.Fatalf("hash fields %v, want last alone before any start", fields)
	}
	if _, _, err := l.Start(ctx, ep, limiter.Limits{Rate: 5, MinDelay: 100 * time.Millisecond}, time.Time{}, time.Second); err != nil {
		t.Fatal(err)
	}
	if fields = c.HGetAll(ctx, Key(ep)).Val(); fields["last"] == "" || fields["started"] == "" || len(fields) != 2 {
		t.Fatalf("hash fields %v, want last and started", fields)
	}
	// Horizon is a gap (0.2 s) after the slot and the start, both now; TTL
	// = horizon + a grace of at least a second.
	ttl, err := c.PTTL(ctx, Key(ep)).Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl <= 0 || ttl > 1300*time.Millisecond {
		t.Fatalf("PTTL = %v, want 0 < ttl <= 1.3s so idle endpoints vanish", ttl)
	}
	// Unlimited reservations touch no key.
	if _, err := l.Reserve(ctx, "ep_unlimited", limiter.Limits{}); err != nil {
		t.Fatal(err)
	}
	if n := c.Exists(ctx, Key("ep_unlimited")).Val(); n != 0 {
		t.Fatal("unlimited reservation created a key")
	}
}

// keySlot is Redis Cluster's HASH_SLOT: CRC16-XMODEM of the hash tag (the
// text between the first "{" and the next "}", when not empty) mod 16384.
func keySlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % 16384
}

func TestKeySlotReference(t *testing.T) {
	// Redis cluster spec test vector: CRC16("123456789") = 0x31C3.
	if got := keySlot("123456789"); got != 0x31C3%16384 {
		t.Fatalf("keySlot(123456789) = %d", got)
	}
	if keySlot("{user1000}.following") != keySlot("{user1000}.followers") {
		t.Fatal("hash tags not honoured")
	}
}

// The Lua scripts and limiter.Next / NextStart must agree instant for
// instant (microseconds).
func TestScriptsMatchNextAndNextStart(t *testing.T) {
	srv := redistest.Start(t)
	l := New(newClient(t, srv))
	ctx := context.Background()
	seq := []limiter.Limits{
		{Rate: 3}, {Rate: 3}, {Rate: 3}, {Rate: 3}, {Rate: 3},
		{Rate: 0.7, MinDelay: 333 * time.Millisecond}, {Rate: 0.7},
		{MinDelay: 1234567 * time.Nanosecond}, {MinDelay: 1234567 * time.Nanosecond},
		{Rate: 123.456}, {Rate: 123.456}, {Rate: 123.456},
		{Rate: 7, MinDelay: 10 * time.Millisecond},
	}
	var st limiter.State
	for i, lim := range seq {
		r, err := l.Reserve(ctx, "ep_model", lim)
		if err != nil {
			t.Fatal(err)
		}
		var at int64
		at, st, _ = limiter.Next(st, r.Now.UnixMicro(), lim, time.Microsecond)
		if got := r.At.UnixMicro(); got != at {
			t.Fatalf("reservation %d (%+v): script slot %d µs, limiter.Next %d µs", i, lim, got, at)
		}
		// Every other request also books a start, some refused, some
		// naming the last start as missed.
		if i%2 == 0 {
			maxWait := time.Duration(i) * 50 * time.Millisecond
			var missed time.Time
			if i%4 == 0 && st.Started {
				missed = time.UnixMicro(st.LastStart)
			}
			s, ok, err := l.Start(ctx, "ep_model", lim, missed, maxWait)
			if err != nil {
				t.Fatal(err)
			}
			var missedUS int64
			if !missed.IsZero() {
				missedUS = missed.UnixMicro()
			}
			at, wantOK, next, _ := limiter.NextStart(st, s.Now.UnixMicro(), lim, time.Microsecond, missedUS, int64(maxWait/time.Microsecond))
			if got := s.At.UnixMicro(); got != at || ok != wantOK {
				t.Fatalf("start %d (%+v): script %d µs ok %v, limiter.NextStart %d µs ok %v", i, lim, got, ok, at, wantOK)
			}
			st = next
		}
	}
}

func TestScriptCacheFlushFallsBackToEval(t *testing.T) {
	srv := redistest.Start(t)
	c := newClient(t, srv)
	l := New(c)
	ctx := context.Background()
	if _, err := l.Reserve(ctx, "ep_flush", limiter.Limits{Rate: 1}); err != nil {
		t.Fatal(err)
	}
	if err := c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	r, err := l.Reserve(ctx, "ep_flush", limiter.Limits{Rate: 1})
	if err != nil {
		t.Fatalf("Reserve after SCRIPT FLUSH: %v", err)
	}
	if w := r.Wait(); w < 990*time.Millisecond || w > time.Second {
		t.Fatalf("second slot waits %v, want ~1s (state kept across the flush)", w)
	}
}

func TestReservationUsesRedisClock(t *testing.T) {
	srv := redistest.Start(t)
	l := New(newClient(t, srv))
	before := time.Now()
	r, err := l.Reserve(context.Background(), "ep_clock", limiter.Limits{Rate: 1})
	if err != nil {
		t.Fatal(err)
	}
	// Same machine: Redis's clock is ours, give or take a rounding to µs.
	if d := r.Now.Sub(before); d < -time.Millisecond || d > 5*time.Second {
		t.Fatalf("Now = %v, %v from the local clock", r.Now, d)
	}
	if r.Now.Nanosecond()%1000 != 0 {
		t.Fatalf("Now %v has sub-microsecond digits; want Redis TIME's microseconds", r.Now)
	}
}

func TestRedisDownFailsFastAndRecovers(t *testing.T) {
	srv := redistest.Start(t)
	c := newClient(t, srv)
	l := New(c)
	lim := limiter.Limits{Rate: 10}
	if _, err := l.Reserve(context.Background(), "ep_down", lim); err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, rerr := l.Reserve(ctx, "ep_down", lim)
	if rerr == nil {
		t.Fatal("Reserve succeeded with Redis down; nothing may be sent unthrottled")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Reserve took %v to fail with Redis down", took)
	}
	if !strings.Contains(rerr.Error(), "reserve endpoint ep_down") {
		t.Fatalf("error %q does not name the endpoint", rerr)
	}
	if err := l.Ready(ctx); err == nil {
		t.Fatal("Ready succeeded with Redis down")
	}
	// Unlimited endpoints need no Redis at all.
	if _, err := l.Reserve(ctx, "ep_unlimited", limiter.Limits{}); err != nil {
		t.Fatalf("unlimited Reserve with Redis down: %v", err)
	}

	srv.Restart()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := l.Ready(context.Background())
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Ready after restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Restarted empty (and with no script cached): works again at once.
	r, err := l.Reserve(context.Background(), "ep_down", lim)
	if err != nil {
		t.Fatalf("Reserve after restart: %v", err)
	}
	if r.Wait() != 0 {
		t.Fatalf("first slot after restart waits %v", r.Wait())
	}
}

func TestInvalidLimitsMakeNoCall(t *testing.T) {
	// A client to a server that is already gone: any call would fail with a
	// network error, so ErrInvalidLimits proves the limits were checked first.
	srv := redistest.Start(t)
	c := newClient(t, srv)
	srv.Stop()
	_, err := New(c).Reserve(context.Background(), "ep", limiter.Limits{Rate: -1})
	if !errors.Is(err, limiter.ErrInvalidLimits) {
		t.Fatalf("error = %v, want ErrInvalidLimits", err)
	}
}

// The observe script and limiter.Observe must agree step for step
// (microseconds), and the pacing key shares the limit key's slot and
// expires PaceMemory after its last feedback.
func TestObserveScriptMatchesObserve(t *testing.T) {
	srv := redistest.Start(t)
	c := newClient(t, srv)
	l := New(c)
	ctx := context.Background()
	const ep = "ep_pace_model"
	if keySlot(PaceKey(ep)) != keySlot(Key(ep)) {
		t.Fatal("the pacing key is not in the limit key's Cluster slot")
	}
	lim := limiter.Limits{Rate: 7, MinDelay: 10 * time.Millisecond}
	seq := []limiter.Feedback{
		{OK: true, Latency: 12 * time.Millisecond},
		{Refused: true},
		{Refused: true, RetryAfter: 1500 * time.Millisecond},
		{OK: true, Latency: 13 * time.Millisecond},
		{OK: true, Latency: 900 * time.Millisecond},
		{OK: true, Latency: 900 * time.Millisecond},
		{OK: true, Latency: 900 * time.Millisecond},
		{OK: true, Latency: 11 * time.Millisecond},
		{OK: true, Latency: 11 * time.Millisecond},
		{OK: false, Latency: 11 * time.Millisecond},
	}
	var model limiter.Pace
	for i, f := range seq {
		p, err := l.Observe(ctx, ep, lim, f)
		if err != nil {
			t.Fatal(err)
		}
		var cut bool
		model, cut, _ = limiter.Observe(model, p.Now.UnixMicro(), lim, f, time.Microsecond)
		if got, want := p.Rate, model.Rate(time.Microsecond); got != want || p.Decreased != cut {
			t.Fatalf("feedback %d (%+v): script rate %v cut %v, limiter.Observe %v cut %v", i, f, got, p.Decreased, want, cut)
		}
		if model.NotBefore > p.Now.UnixMicro() && p.NotBefore.UnixMicro() != model.NotBefore {
			t.Fatalf("feedback %d: script not-before %v, limiter.Observe %v", i, p.NotBefore.UnixMicro(), model.NotBefore)
		}
	}
	ttl, err := c.PTTL(ctx, PaceKey(ep)).Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl <= 0 || ttl > limiter.PaceMemory+2*time.Second {
		t.Fatalf("pacing key PTTL = %v, want about PaceMemory so idle endpoints forget", ttl)
	}
	// Unpaced endpoints and unlimited ones write no pacing key.
	for _, lim := range []limiter.Limits{{Rate: 5, Unpaced: true}, {}} {
		if _, err := l.Observe(ctx, "ep_never_paced", lim, limiter.Feedback{Refused: true}); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.Exists(ctx, PaceKey("ep_never_paced")).Val(); n != 0 {
		t.Fatal("feedback for an unpaced or unlimited endpoint wrote a pacing key")
	}
}

func TestUnreadablePacingCountsAsNone(t *testing.T) {
	srv := redistest.Start(t)
	c := newClient(t, srv)
	l := New(c)
	ctx := context.Background()
	const ep = "ep_pace_garbage"
	if err := c.HSet(ctx, PaceKey(ep), "gap", "not a number", "nb", "x").Err(); err != nil {
		t.Fatal(err)
	}
	lim := limiter.Limits{Rate: 10}
	a, err := l.Reserve(ctx, ep, lim)
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.Reserve(ctx, ep, lim)
	if err != nil {
		t.Fatal(err)
	}
	if gap := b.At.Sub(a.At); gap != 100*time.Millisecond {
		t.Fatalf("slots %v apart with unreadable pacing, want the brand's 100ms", gap)
	}
	if _, err := l.Observe(ctx, ep, lim, limiter.Feedback{Refused: true}); err != nil {
		t.Fatalf("observe over unreadable pacing: %v", err)
	}
}
