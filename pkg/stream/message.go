package stream

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/postback-dev/postback/pkg/delivery"
	"github.com/postback-dev/postback/pkg/telemetry"
)

// Event is the message on events.<event_type>: what the gateway accepted.
type Event struct {
	ID        string         `json:"id"`
	AccountID string         `json:"account_id"`
	Type      string         `json:"event_type"`
	Time      time.Time      `json:"time"`
	Data      map[string]any `json:"data"`
}

// Failure is the message on failed.*: a retryable failed attempt handed to
// the retry service, written by EncodeFailure (failure.go).
type Failure struct {
	Job        delivery.Job `json:"job"`
	StatusCode int          `json:"status_code"`
	Error      string       `json:"error"`
	End        time.Time    `json:"end"`
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

// propagator carries trace context in message headers, whatever the
// global propagator is.
var propagator = telemetry.Propagator()

// Extract returns ctx carrying the trace context found in a message's headers.
func Extract(ctx context.Context, m jetstream.Msg) context.Context {
	h := m.Headers()
	if h == nil {
		return ctx
	}
	return propagator.Extract(ctx, headerCarrier(h))
}

// RevisionHeader carries Job.Revision (the server copies it from a schedule
// onto the message the schedule fires).
const RevisionHeader = "Postback-Record-Revision"

// QueuedHeader carries Job.Queued: "none" (no delivery record yet).
const QueuedHeader = "Postback-Record"

// NewJobMsg is NewMsg for a job whose encoding (MarshalBinary) is body,
// with its revision (or its Queued mark).
func NewJobMsg(ctx context.Context, subject string, job *delivery.Job, body []byte, msgID string) *nats.Msg {
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
func DecodeJob(m jetstream.Msg) (delivery.Job, error) {
	var job delivery.Job
	if err := delivery.UnmarshalJob(m.Data(), &job); err != nil {
		return job, err
	}
	ReadJobHeaders(&job, m.Headers())
	return job, nil
}

// ReadJobHeaders reads the job fields a message carries in its headers.
func ReadJobHeaders(job *delivery.Job, h nats.Header) {
	if h != nil {
		job.Revision, _ = strconv.ParseUint(h.Get(RevisionHeader), 10, 64)
		job.Queued = h.Get(QueuedHeader) == "none"
	}
}

// Schedule publishes job as its delivery's one pending schedule
// (schedules.<delivery_id>), to fire on the endpoint's retries subject at the
// given time. The time keeps its fractions: nats-server parses RFC 3339 with
// sub-second precision.
func Schedule(ctx context.Context, js jetstream.JetStream, job *delivery.Job, at time.Time, msgID string) error {
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

// CheckJob says why a job message can never be sent (a PoisonError), or
// nil: a job whose ids cannot name a delivery record.
func CheckJob(j *delivery.Job) error {
	if err := j.Check(); err != nil {
		return Poison("%v", err)
	}
	return nil
}
