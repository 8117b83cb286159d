package sender

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/postback-dev/postback/pkg/dispatch"
	"github.com/postback-dev/postback/pkg/limiter"
	"github.com/postback-dev/postback/pkg/limiter/local"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// stepClock is a clock tests move by hand.
type stepClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *stepClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// countingLimiter is the in-process limiter, counting feedback calls and
// failing them when down is set.
type countingLimiter struct {
	*local.Limiter
	mu       sync.Mutex
	observed []limiter.Feedback
	down     bool
}

func (c *countingLimiter) Observe(ctx context.Context, ep string, l limiter.Limits, f limiter.Feedback) (limiter.Pacing, error) {
	c.mu.Lock()
	c.observed = append(c.observed, f)
	down := c.down
	c.mu.Unlock()
	if down {
		return limiter.Pacing{}, errors.New("store unreachable")
	}
	return c.Limiter.Observe(ctx, ep, l, f)
}

func answer(status int, took time.Duration, success bool, retryAfter time.Duration) dispatch.Result {
	return dispatch.Result{Success: success, RetryAfter: retryAfter,
		Attempt: &postbackv1.Attempt{StatusCode: int32(status), Duration: durationpb.New(took)}}
}

func TestPacerTellsTheLimiterWhatTheReceiverSaid(t *testing.T) {
	lim := limiter.Limits{Rate: 200}
	for _, tc := range []struct {
		name    string
		lim     limiter.Limits
		answers []dispatch.Result
		want    []limiter.Feedback // what reached the limiter
	}{
		{"a 429 is a refusal with its Retry-After", lim,
			[]dispatch.Result{answer(429, 5*time.Millisecond, false, 3*time.Second)},
			[]limiter.Feedback{{Refused: true, RetryAfter: 3 * time.Second, Latency: 5 * time.Millisecond}}},
		{"a 503 is a refusal", lim,
			[]dispatch.Result{answer(503, 5*time.Millisecond, false, 0)},
			[]limiter.Feedback{{Refused: true, Latency: 5 * time.Millisecond}}},
		{"a Retry-After longer than the schedule's longest step is held to it", lim,
			[]dispatch.Result{answer(429, time.Millisecond, false, 30*time.Hour)},
			[]limiter.Feedback{{Refused: true, RetryAfter: 6 * time.Hour, Latency: time.Millisecond}}},
		{"a 429 the brand's rules accept is no refusal", lim,
			[]dispatch.Result{answer(429, time.Millisecond, true, time.Second)},
			[]limiter.Feedback{{OK: true, Latency: time.Millisecond}}},
		{"fast successes within a second are told once", lim,
			[]dispatch.Result{answer(200, time.Millisecond, true, 0), answer(200, time.Millisecond, true, 0), answer(200, time.Millisecond, true, 0)},
			[]limiter.Feedback{{OK: true, Latency: time.Millisecond}}},
		{"slow answers are always told", lim,
			[]dispatch.Result{answer(200, time.Millisecond, true, 0), answer(200, 300*time.Millisecond, true, 0), answer(500, 300*time.Millisecond, false, 0)},
			[]limiter.Feedback{{OK: true, Latency: time.Millisecond}, {OK: true, Latency: 300 * time.Millisecond}, {Latency: 300 * time.Millisecond}}},
		{"successes while paced are all told", lim,
			[]dispatch.Result{answer(429, time.Millisecond, false, 0), answer(200, time.Millisecond, true, 0), answer(200, time.Millisecond, true, 0)},
			[]limiter.Feedback{{Refused: true, Latency: time.Millisecond}, {OK: true, Latency: time.Millisecond}, {OK: true, Latency: time.Millisecond}}},
		{"a transport error has no latency", lim,
			[]dispatch.Result{answer(0, 10*time.Second, false, 0)},
			[]limiter.Feedback{{}}},
		{"an endpoint that opted out is not told about", limiter.Limits{Rate: 200, Unpaced: true},
			[]dispatch.Result{answer(429, time.Millisecond, false, time.Second)}, nil},
		{"an unlimited endpoint is not told about", limiter.Limits{},
			[]dispatch.Result{answer(429, time.Millisecond, false, time.Second)}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := &stepClock{now: time.Unix(1_700_000_000, 0)}
			l := &countingLimiter{Limiter: local.New(clock)}
			p := newPacer(l, 0, nil, slog.New(slog.DiscardHandler))
			p.now = clock.Now
			for _, res := range tc.answers {
				p.observe(context.Background(), "ep_1", tc.lim, res)
				clock.advance(10 * time.Millisecond)
			}
			if len(l.observed) != len(tc.want) {
				t.Fatalf("told %d feedbacks %+v, want %+v", len(l.observed), l.observed, tc.want)
			}
			for i := range tc.want {
				if l.observed[i] != tc.want[i] {
					t.Errorf("feedback %d = %+v, want %+v", i, l.observed[i], tc.want[i])
				}
			}
		})
	}
}

func TestARefusalPacesTheEndpointsNextSlots(t *testing.T) {
	clock := &stepClock{now: time.Unix(1_700_000_000, 0)}
	l := local.New(clock)
	p := newPacer(l, time.Minute, nil, slog.New(slog.DiscardHandler))
	p.now = clock.Now
	ctx := context.Background()
	lim := limiter.Limits{Rate: 200} // 5 ms
	p.observe(ctx, "ep_1", lim, answer(429, time.Millisecond, false, 2*time.Second))
	first, err := l.Reserve(ctx, "ep_1", lim)
	if err != nil {
		t.Fatal(err)
	}
	if got := first.At.Sub(first.Now); got != 2*time.Second {
		t.Fatalf("first slot after a Retry-After of 2s waits %v", got)
	}
	second, _ := l.Reserve(ctx, "ep_1", lim)
	if got := second.At.Sub(first.At); got != 10*time.Millisecond {
		t.Fatalf("slots %v apart after a refusal, want the halved rate's 10ms", got)
	}
}

func TestPacingFailsOpenWhenTheLimiterCannotStoreFeedback(t *testing.T) {
	clock := &stepClock{now: time.Unix(1_700_000_000, 0)}
	l := &countingLimiter{Limiter: local.New(clock), down: true}
	p := newPacer(l, 0, nil, slog.New(slog.DiscardHandler))
	p.now = clock.Now
	lim := limiter.Limits{Rate: 200}
	// No panic, no error to the caller; the brand's limits still apply.
	p.observe(context.Background(), "ep_1", lim, answer(429, time.Millisecond, false, time.Hour))
	a, _ := l.Reserve(context.Background(), "ep_1", lim)
	b, _ := l.Reserve(context.Background(), "ep_1", lim)
	if a.Wait() != 0 || b.At.Sub(a.At) != 5*time.Millisecond {
		t.Fatalf("with feedback lost, slots wait %v and are %v apart; want the brand's schedule", a.Wait(), b.At.Sub(a.At))
	}
}
