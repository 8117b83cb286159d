package telemetry

import (
	"context"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Metric names (OpenTelemetry). On /metrics, dots become underscores, the
// unit "s" adds _seconds and counters end in _total (docs/operations.md lists
// each with its meaning and alerts). The consumer backlog gauges are in
// package stream (stream.WatchConsumers), which knows the consumers.
//
// Labels are bounded on purpose: event_type (six values), outcome (four),
// status_class (five), retry (the schedule's length, 15). There is no
// endpoint or account label: with millions of endpoints that would be
// millions of series. Per-endpoint questions are answered by traces
// (postback.endpoint_id) and the delivery history API.
const (
	MetricEventsPublished   = "postback.events.published"
	MetricDeliveries        = "postback.deliveries"
	MetricDead              = "postback.deliveries.dead"
	MetricAttempts          = "postback.attempts"
	MetricAttemptDuration   = "postback.attempt.duration"
	MetricFirstAttemptDelay = "postback.first_attempt.latency"
	MetricLimiterWait       = "postback.limiter.wait"
	MetricLimiterErrors     = "postback.limiter.errors"
	MetricRetriesScheduled  = "postback.retries.scheduled"
)

// Metric label names.
const (
	LabelEventType   = "event_type"
	LabelOutcome     = "outcome"
	LabelStatusClass = "status_class"
	LabelRetry       = "retry"
)

// Status classes of an attempt (LabelStatusClass).
var statusClasses = [...]string{"2xx", "3xx", "4xx", "5xx", "error"}

// StatusClass is the class of an HTTP status ("2xx" … "5xx"), or "error"
// when there was no response (0) or the status is outside 200-599.
func StatusClass(code int) string { return statusClasses[classIndex(code)] }

func classIndex(code int) int {
	if code >= 200 && code < 600 {
		return code/100 - 2
	}
	return 4
}

var (
	latencyBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}
	// Waits and publish-to-send latency run from nothing to an hour (a
	// limited endpoint's backlog).
	waitBuckets = []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600}
)

// Metrics are the postback instruments. Every method is cheap: attribute
// sets (and the option slices that carry them) are built once and reused,
// so recording allocates nothing. A nil *Metrics records nothing.
type Metrics struct {
	eventsPublished metric.Int64Counter
	deliveries      metric.Int64Counter
	dead            metric.Int64Counter
	attempts        metric.Int64Counter
	attemptDuration metric.Float64Histogram
	firstAttempt    metric.Float64Histogram
	limiterWait     metric.Float64Histogram
	limiterErrors   metric.Int64Counter
	retries         metric.Int64Counter

	classSets [len(statusClasses)]labels
	outcomes  map[string]labels
	mu        sync.RWMutex
	types     map[string]labels
	steps     map[int]labels
}

// labels is one attribute set as ready-made options: passing a prebuilt
// slice to a variadic method does not allocate.
type labels struct {
	add []metric.AddOption
	rec []metric.RecordOption
}

func newLabels(label, value string) labels {
	o := metric.WithAttributeSet(attribute.NewSet(attribute.String(label, value)))
	return labels{add: []metric.AddOption{o}, rec: []metric.RecordOption{o}}
}

// maxLabelValues bounds the lazily built event_type and retry label sets
// (callers only pass valid event types and schedule steps; this is a fuse).
const maxLabelValues = 64

// NewMetrics creates the instruments on mp (nil: the global provider). Two
// services of one process asking the same provider share the instruments.
func NewMetrics(mp metric.MeterProvider) *Metrics {
	m := Meter(mp)
	must := func(err error) {
		if err != nil {
			// Only an invalid name or unit fails; they are constants.
			panic(err)
		}
	}
	var err error
	x := &Metrics{outcomes: map[string]labels{}, types: map[string]labels{}, steps: map[int]labels{}}
	x.eventsPublished, err = m.Int64Counter(MetricEventsPublished, metric.WithUnit("{event}"),
		metric.WithDescription("Events accepted by the gateway and published for rendering (duplicates not counted), by event_type."))
	must(err)
	x.deliveries, err = m.Int64Counter(MetricDeliveries, metric.WithUnit("{delivery}"),
		metric.WithDescription("Deliveries that reached a final state, by outcome: succeeded, failed (no retry possible), dead (every retry failed), cancelled (endpoint disabled or deleted)."))
	must(err)
	x.dead, err = m.Int64Counter(MetricDead, metric.WithUnit("{delivery}"),
		metric.WithDescription("Deliveries whose last retry failed (dead; replayable)."))
	must(err)
	x.attempts, err = m.Int64Counter(MetricAttempts, metric.WithUnit("{request}"),
		metric.WithDescription("Requests sent to endpoints, by status_class: 2xx, 3xx, 4xx, 5xx, or error (no response)."))
	must(err)
	x.attemptDuration, err = m.Float64Histogram(MetricAttemptDuration, metric.WithUnit("s"),
		metric.WithDescription("Duration of one request to an endpoint, from send to the response read (or the failure), by status_class."),
		metric.WithExplicitBucketBoundaries(latencyBuckets...))
	must(err)
	x.firstAttempt, err = m.Float64Histogram(MetricFirstAttemptDelay, metric.WithUnit("s"),
		metric.WithDescription("Time from the event's acceptance by the gateway to the start of its delivery's first request."),
		metric.WithExplicitBucketBoundaries(waitBuckets...))
	must(err)
	x.limiterWait, err = m.Float64Histogram(MetricLimiterWait, metric.WithUnit("s"),
		metric.WithDescription("Time a request waits for its endpoint's limits (Maximum Requests, Minimum Delay), per reservation."),
		metric.WithExplicitBucketBoundaries(waitBuckets...))
	must(err)
	x.limiterErrors, err = m.Int64Counter(MetricLimiterErrors, metric.WithUnit("{call}"),
		metric.WithDescription("Limiter calls that failed (Redis unreachable or erroring): the delivery waits and is tried again; nothing is sent unthrottled."))
	must(err)
	x.retries, err = m.Int64Counter(MetricRetriesScheduled, metric.WithUnit("{retry}"),
		metric.WithDescription("Retries scheduled, by retry: which step of the schedule (1-15)."))
	must(err)
	for i, c := range statusClasses {
		x.classSets[i] = newLabels(LabelStatusClass, c)
	}
	for _, o := range []string{OutcomeSucceeded, OutcomeFailed, OutcomeDead, OutcomeCancelled} {
		x.outcomes[o] = newLabels(LabelOutcome, o)
	}
	x.zero()
	return x
}

// zero adds 0 to every counter series that alerts and dashboards use, so
// /metrics shows them at 0 from start-up: a counter series that first
// appears at 1 hides its first increment from increase() and rate() (the
// first dead delivery after a restart would not alert). The label sets are
// the bounded ones: every final outcome and every status class. Event types
// are the gateway's (ZeroEventTypes).
func (m *Metrics) zero() {
	ctx := context.Background()
	for _, set := range m.outcomes {
		m.deliveries.Add(ctx, 0, set.add...)
	}
	m.dead.Add(ctx, 0)
	m.limiterErrors.Add(ctx, 0)
	for _, set := range m.classSets {
		m.attempts.Add(ctx, 0, set.add...)
	}
}

// ZeroEventTypes shows postback.events.published at 0 for each event type
// (the gateway passes the catalogue's six), for the same reason as zero.
func (m *Metrics) ZeroEventTypes(types ...string) {
	if m == nil {
		return
	}
	for _, t := range types {
		m.eventsPublished.Add(context.Background(), 0, m.typeSet(t).add...)
	}
}

// EventPublished counts one accepted event.
func (m *Metrics) EventPublished(ctx context.Context, eventType string) {
	if m == nil {
		return
	}
	m.eventsPublished.Add(ctx, 1, m.typeSet(eventType).add...)
}

// DeliveryFinished counts a delivery reaching a final outcome (succeeded,
// failed, dead, cancelled); other values are ignored. Dead deliveries also
// count on postback.deliveries.dead.
// Outcome notes what a job or failure came to on the current span and,
// when the delivery is finished, on the deliveries metric.
func (m *Metrics) Outcome(ctx context.Context, outcome, reason string) {
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(Outcome.String(outcome))
		if reason != "" {
			span.SetAttributes(Reason.String(reason))
		}
	}
	m.DeliveryFinished(ctx, outcome)
}

func (m *Metrics) DeliveryFinished(ctx context.Context, outcome string) {
	if m == nil {
		return
	}
	set, ok := m.outcomes[outcome]
	if !ok {
		return
	}
	m.deliveries.Add(ctx, 1, set.add...)
	if outcome == OutcomeDead {
		m.dead.Add(ctx, 1)
	}
}

// Attempt records one request: its status (0 = no response) and duration.
func (m *Metrics) Attempt(ctx context.Context, statusCode int, d time.Duration) {
	if m == nil {
		return
	}
	set := m.classSets[classIndex(statusCode)]
	m.attempts.Add(ctx, 1, set.add...)
	m.attemptDuration.Record(ctx, d.Seconds(), set.rec...)
}

// FirstAttempt records the time from an event's acceptance to its
// delivery's first request.
func (m *Metrics) FirstAttempt(ctx context.Context, d time.Duration) {
	if m == nil || d < 0 {
		return
	}
	m.firstAttempt.Record(ctx, d.Seconds())
}

// LimiterWait records how long a reservation makes a request wait.
func (m *Metrics) LimiterWait(ctx context.Context, d time.Duration) {
	if m == nil {
		return
	}
	m.limiterWait.Record(ctx, max(d, 0).Seconds())
}

// LimiterError counts a limiter call that failed.
func (m *Metrics) LimiterError(ctx context.Context) {
	if m == nil {
		return
	}
	m.limiterErrors.Add(ctx, 1)
}

// RetryScheduled counts a scheduled retry by its step.
func (m *Metrics) RetryScheduled(ctx context.Context, retry int) {
	if m == nil {
		return
	}
	m.mu.RLock()
	set, ok := m.steps[retry]
	m.mu.RUnlock()
	if !ok {
		set = lazy(m, func() (map[int]labels, int) { return m.steps, retry }, LabelRetry, strconv.Itoa(retry))
	}
	m.retries.Add(ctx, 1, set.add...)
}

func (m *Metrics) typeSet(eventType string) labels {
	m.mu.RLock()
	set, ok := m.types[eventType]
	m.mu.RUnlock()
	if ok {
		return set
	}
	return lazy(m, func() (map[string]labels, string) { return m.types, eventType }, LabelEventType, eventType)
}

// lazy builds, caches (up to maxLabelValues) and returns the attribute set
// label=value for a key of one of the caches.
func lazy[K comparable](m *Metrics, cache func() (map[K]labels, K), label, value string) labels {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, k := cache()
	if set, ok := c[k]; ok {
		return set
	}
	if len(c) >= maxLabelValues {
		value = "other"
	}
	set := newLabels(label, value)
	if len(c) < maxLabelValues {
		c[k] = set
	}
	return set
}
