package sender

// Pacing that listens to the receiver (limiter/pacing.go has the rules):
// after each attempt the sender tells the limiter what the answer said
// about the receiver's load, and the limiter's Reserve and Start then space
// the endpoint's next requests by the paced gap (never shorter than the
// brand's) and hold them back until a Retry-After has passed. The state is
// the limiter's, so every replica paces alike (limiter/redis keeps it in
// Redis); this file only decides what to tell it, and when.
//
// What is told (limiter.Feedback): a 429 or 503 as a refusal, with its
// Retry-After bounded by MaxRetryAfter (the retry schedule's longest step:
// a receiver asking for more is not waited for longer than the schedule
// itself would wait); otherwise whether the brand's rules accepted the
// answer, and how long it took (the limiter watches for rising latency).
// The refused delivery itself goes to the retry service like any failure.
//
// When: a refusal always. Other answers only when they can change
// something, so a healthy endpoint costs the limiter about one call a
// second per replica, not one per request: every answer while this replica
// last saw the endpoint paced (successes raise the rate back), every
// answer slow enough to count as slow (at least limiter.SlowMargin), and
// otherwise one answer a second (which keeps the latency baseline and
// learns of pacing set by another replica). This replica's memory of which
// endpoints are paced is a hint only, bounded (cleared at maxPaceMemos).
//
// Not told: endpoints that opted out (adaptive_pacing_disabled: their
// Limits are Unpaced) and unlimited ones (no limiter call at all).
//
// Failure policy: pacing fails open. A feedback the limiter cannot store
// (Redis down or slow: each call is bounded by observeTimeout) is dropped,
// counted, and logged at most once a minute; the delivery goes on and the
// brand's limits still hold.

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/postback-dev/postback/pkg/dispatch"
	"github.com/postback-dev/postback/pkg/limiter"
	"github.com/postback-dev/postback/pkg/schedule"
	"github.com/postback-dev/postback/pkg/telemetry"
)

// Pacing metric names (no endpoint label: see pkg/telemetry).
const (
	MetricPacingDecreases = "postback.pacing.decreases"
	MetricPacingHeld      = "postback.pacing.retry_after"
	MetricPacingErrors    = "postback.pacing.errors"
)

const (
	// observeTimeout bounds one feedback call.
	observeTimeout = 250 * time.Millisecond
	// heartbeat is how often an unremarkable answer is told anyway.
	heartbeat = time.Second
	// maxPaceMemos bounds the replica's memory of endpoints.
	maxPaceMemos = 4096
)

// DefaultMaxRetryAfter is the longest Retry-After honoured by default: the
// seed schedule's longest step.
func DefaultMaxRetryAfter() time.Duration { return LongestStep(schedule.Default()) }

// LongestStep is the longest delay of a retry schedule: the longest
// Retry-After the sender honours with it (Config.MaxRetryAfter).
func LongestStep(s schedule.Schedule) time.Duration {
	var longest time.Duration
	for _, d := range s {
		longest = max(longest, d)
	}
	return longest
}

// pacer feeds attempts' outcomes to the limiter.
type pacer struct {
	limiter       limiter.Limiter
	maxRetryAfter time.Duration
	log           *slog.Logger
	now           func() time.Time

	decreases, held, errors metric.Int64Counter

	mu     sync.Mutex
	memos  map[string]paceMemo
	warned time.Time
}

// paceMemo is what this replica last learnt of an endpoint's pacing.
type paceMemo struct {
	paced bool      // paced (a rate below the brand's, or a not-before ahead)
	told  time.Time // the last feedback told
}

func newPacer(l limiter.Limiter, maxRetryAfter time.Duration, mp metric.MeterProvider, log *slog.Logger) *pacer {
	if maxRetryAfter <= 0 {
		maxRetryAfter = DefaultMaxRetryAfter()
	}
	p := &pacer{limiter: l, maxRetryAfter: maxRetryAfter, log: log, now: time.Now, memos: map[string]paceMemo{}}
	m := telemetry.Meter(mp)
	var err error
	if p.decreases, err = m.Int64Counter(MetricPacingDecreases, metric.WithUnit("{cut}"),
		metric.WithDescription("Times an endpoint's rate was cut below its limits because its receiver refused (429/503) or slowed down")); err != nil {
		panic(err) // only an invalid name or unit fails; they are constants
	}
	if p.held, err = m.Int64Counter(MetricPacingHeld, metric.WithUnit("{response}"),
		metric.WithDescription("429/503 answers whose Retry-After held their endpoint's next requests back")); err != nil {
		panic(err)
	}
	if p.errors, err = m.Int64Counter(MetricPacingErrors, metric.WithUnit("{call}"),
		metric.WithDescription("Pacing feedback the limiter could not store (pacing fails open)")); err != nil {
		panic(err)
	}
	return p
}

// feedback is what an attempt's result tells the limiter.
func (p *pacer) feedback(res dispatch.Result) limiter.Feedback {
	code := int(res.Attempt.GetStatusCode())
	f := limiter.Feedback{OK: res.Success}
	if code != 0 {
		f.Latency = res.Attempt.GetDuration().AsDuration()
	}
	if !res.Success && (code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable) {
		f.Refused = true
		f.RetryAfter = min(res.RetryAfter, p.maxRetryAfter)
	}
	return f
}

// observe tells the limiter about one attempt to endpointID when it may
// matter (see the file comment).
func (p *pacer) observe(ctx context.Context, endpointID string, lim limiter.Limits, res dispatch.Result) {
	if lim.Unlimited() || lim.Unpaced {
		return
	}
	f := p.feedback(res)
	now := p.now()
	p.mu.Lock()
	memo := p.memos[endpointID]
	p.mu.Unlock()
	if !f.Refused && !memo.paced && f.Latency < limiter.SlowMargin && now.Sub(memo.told) < heartbeat {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), observeTimeout)
	defer cancel()
	pacing, err := p.limiter.Observe(ctx, endpointID, lim, f)
	if err != nil {
		p.errors.Add(ctx, 1)
		p.mu.Lock()
		warn := now.Sub(p.warned) >= time.Minute
		if warn {
			p.warned = now
		}
		p.mu.Unlock()
		if warn {
			p.log.WarnContext(ctx, "pacing feedback not stored; the endpoint's own limits still hold", "endpoint_id", endpointID, "error", err)
		}
		return
	}
	if pacing.Decreased {
		p.decreases.Add(ctx, 1)
		p.log.InfoContext(ctx, "receiver pushing back: endpoint paced below its limits",
			"endpoint_id", endpointID, "paced_rate", pacing.Rate, "status_code", res.Attempt.GetStatusCode())
	}
	if f.Refused && !pacing.NotBefore.IsZero() && f.RetryAfter > 0 {
		p.held.Add(ctx, 1)
	}
	paced := pacing.Rate > 0 || pacing.NotBefore.After(pacing.Now)
	p.mu.Lock()
	if len(p.memos) >= maxPaceMemos {
		clear(p.memos)
	}
	p.memos[endpointID] = paceMemo{paced: paced, told: now}
	p.mu.Unlock()
}
