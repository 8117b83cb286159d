package stream

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/propagation"

	"github.com/postback-dev/postback/pkg/endpoint"
	"github.com/postback-dev/postback/pkg/id"
)

// Event is the message on events.<event_type>: what the gateway accepted.
type Event struct {
	ID        string         `json:"id"`
	AccountID string         `json:"account_id"`
	Type      string         `json:"event_type"`
	Time      time.Time      `json:"time"`
	Data      map[string]any `json:"data"`
}

// Header is one rendered request header carried by a Job.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Job is the message on deliveries.> and retries.>: one request to send.
// Retries resend the rendered request (URL and body as rendered once);
// headers, limits, rules and the enabled flag are read from the endpoint's
// current configuration at send time. Headers carries only the values of
// header templates, rendered with the event's data. Messages and records
// carry a job in the binary format of job.go (MarshalBinary); the JSON tags
// are for Failure and for reading jobs written before that format.
type Job struct {
	DeliveryID  string    `json:"delivery_id"`
	AccountID   string    `json:"account_id"`
	EndpointID  string    `json:"endpoint_id"`
	EventID     string    `json:"event_id"`
	EventType   string    `json:"event_type"`
	Attempt     int       `json:"attempt"`
	Created     time.Time `json:"created"`
	Published   time.Time `json:"published"`
	Method      string    `json:"method"`
	URL         string    `json:"url"`
	Headers     []Header  `json:"headers,omitempty"`
	Body        []byte    `json:"body,omitempty"`
	ContentType string    `json:"content_type,omitempty"`
	// Slot is set when the sender has already reserved the endpoint's limits
	// for this attempt and deferred it to that time: it is sent then without
	// reserving again.
	Slot time.Time `json:"slot,omitzero"`
	// Scheduled is when a retry was planned for (zero for a first send).
	Scheduled time.Time `json:"scheduled,omitzero"`
	// Sent counts the requests already sent for this delivery (the 4xx rule
	// skips retry numbers, so it is not Attempt).
	Sent int `json:"sent,omitempty"`
	// Revision is the delivery record's KV revision when this job was
	// written: the sender claims the attempt with a compare-and-set on it,
	// without reading the record first. A stale revision only costs a read.
	// It travels in the RevisionHeader, so the job's encoding (also stored
	// in the record) is encoded once.
	Revision uint64 `json:"-"`
	// LastStatus and LastError are the previous attempt's, kept on the record.
	LastStatus int    `json:"last_status,omitempty"`
	LastError  string `json:"last_error,omitempty"`
	// Queued marks the renderer's job for a delivery that has no record
	// yet: the renderer writes none for a delivery that rendered, so until
	// the sender records an outcome (or a deferral, or a cancellation writes
	// one) this job, queued on its own subject, is the delivery's PENDING
	// record (see Deliveries). It travels in the QueuedHeader; a copy made
	// by a schedule never carries it.
	Queued bool `json:"-"`
	// EndpointVersion is the endpoint's update time (Unix ns) the renderer
	// rendered this first send against; only the renderer's own job carries
	// it (copies made by a resend, a retry or a deferral do not). While the
	// endpoint is unchanged nobody else can have touched the delivery, so
	// the sender sends such a job without an in-flight claim.
	EndpointVersion int64 `json:"endpoint_version,omitempty"`
}

// Failure is the message on failed.*: a retryable failed attempt handed to
// the retry service. It stays JSON, with the Job in its JSON form: only
// failed attempts make one, one each, so its cost is not the pipeline's;
// the job's binary format (job.go) is for delivery and retry messages and
// records.
type Failure struct {
	Job        Job       `json:"job"`
	StatusCode int       `json:"status_code"`
	Error      string    `json:"error"`
	End        time.Time `json:"end"`
}

// Message headers Postback sets on its own messages.
const (
	// MsgIDHeader is JetStream's dedupe header.
	MsgIDHeader = "Nats-Msg-Id"
)

// headerCarrier adapts nats.Header to OpenTelemetry's TextMapCarrier, so W3C
// traceparent travels in message headers.
type headerCarrier nats.Header

func (h headerCarrier) Get(k string) string { return nats.Header(h).Get(k) }
func (h headerCarrier) Set(k, v string)     { nats.Header(h).Set(k, v) }
func (h headerCarrier) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}

// NewMsg builds a message with the trace context of ctx in its headers and,
// when msgID is set, the JetStream dedupe id.
func NewMsg(ctx context.Context, subject string, data []byte, msgID string) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Data = data
	propagator.Inject(ctx, headerCarrier(m.Header))
	if msgID != "" {
		m.Header.Set(MsgIDHeader, msgID)
	}
	return m
}

var propagator = Propagator()

// Extract returns ctx carrying the trace context found in a message's headers.
func Extract(ctx context.Context, m jetstream.Msg) context.Context {
	h := m.Headers()
	if h == nil {
		return ctx
	}
	return propagator.Extract(ctx, headerCarrier(h))
}

// Propagator is the W3C trace-context + baggage propagator. Messages always
// carry their trace context with it, whatever the global propagator is
// (telemetry.Setup installs the same one for gRPC).
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// RevisionHeader carries Job.Revision (the server copies it from a schedule
// onto the message the schedule fires).
const RevisionHeader = "Postback-Record-Revision"

// QueuedHeader carries Job.Queued: "none" (no delivery record yet).
const QueuedHeader = "Postback-Record"

// NewJobMsg is NewMsg for a job whose encoding (MarshalBinary) is body,
// with its revision (or its Queued mark).
func NewJobMsg(ctx context.Context, subject string, job *Job, body []byte, msgID string) *nats.Msg {
	m := NewMsg(ctx, subject, body, msgID)
	if job.Revision > 0 {
		m.Header.Set(RevisionHeader, strconv.FormatUint(job.Revision, 10))
	}
	if job.Queued {
		m.Header.Set(QueuedHeader, "none")
	}
	return m
}

// DecodeJob reads a job message (and its revision header), in the binary
// format or, for a message written before it, JSON (see UnmarshalJob).
func DecodeJob(m jetstream.Msg) (Job, error) {
	var job Job
	if err := UnmarshalJob(m.Data(), &job); err != nil {
		return job, err
	}
	readJobHeaders(&job, m.Headers())
	return job, nil
}

func readJobHeaders(job *Job, h nats.Header) {
	if h != nil {
		job.Revision, _ = strconv.ParseUint(h.Get(RevisionHeader), 10, 64)
		job.Queued = h.Get(QueuedHeader) == "none"
	}
}

// Schedule publishes job as its delivery's one pending schedule
// (schedules.<delivery_id>), to fire on the endpoint's retries subject at the
// given time. The time keeps its fractions: nats-server parses RFC 3339 with
// sub-second precision.
func Schedule(ctx context.Context, js jetstream.JetStream, job *Job, at time.Time, msgID string) error {
	body, err := job.MarshalBinary()
	if err != nil {
		return fmt.Errorf("encode delivery %s: %w", job.DeliveryID, err)
	}
	m := NewJobMsg(ctx, ScheduleSubject(job.DeliveryID), job, body, msgID)
	m.Header.Del(QueuedHeader) // whoever schedules a job has a record behind it
	m.Header.Set("Nats-Schedule", "@at "+at.UTC().Format(time.RFC3339Nano))
	m.Header.Set("Nats-Schedule-Target", RetrySubject(job.EndpointID))
	if _, err := js.PublishMsg(ctx, m); err != nil {
		return fmt.Errorf("schedule delivery %s: %w", job.DeliveryID, err)
	}
	return nil
}

// CancelSchedule removes a delivery's pending schedule, if any.
func CancelSchedule(ctx context.Context, js jetstream.JetStream, deliveryID string) error {
	s, err := js.Stream(ctx, SchedulesStream)
	if err != nil {
		return fmt.Errorf("cancel schedule of %s: %w", deliveryID, err)
	}
	if err := s.Purge(ctx, jetstream.WithPurgeSubject(ScheduleSubject(deliveryID))); err != nil {
		return fmt.Errorf("cancel schedule of %s: %w", deliveryID, err)
	}
	return nil
}

// Check says why a job can never be sent (a PoisonError), or nil: a job
// whose ids cannot name a delivery record.
func (j *Job) Check() error {
	switch {
	case !id.Valid(id.Delivery, j.DeliveryID):
		return Poison("the job has no well-formed delivery_id (got %q)", clip(j.DeliveryID))
	case !endpoint.ValidAccount(j.AccountID):
		return Poison("the job has no well-formed account_id (got %q)", clip(j.AccountID))
	case !id.Valid(id.Endpoint, j.EndpointID):
		return Poison("the job has no well-formed endpoint_id (got %q)", clip(j.EndpointID))
	}
	return nil
}

// clip bounds a value quoted in a reason.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
