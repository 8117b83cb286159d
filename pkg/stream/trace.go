package stream

import (
	"context"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/postback-dev/postback/pkg/delivery"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Messaging spans, after OpenTelemetry's messaging semantic conventions
// (v1.43). Every hop between services is a pair:
//
//	publish <template>   PRODUCER  around a JetStream publish; the message's
//	                               traceparent header is this span
//	process <template>   CONSUMER  around a consumer's handler; its parent
//	                               is the context the message carried
//
// so one event's spans — gateway, renderer, sender, retry, and the sender
// again when a schedule fires (the server copies a schedule's headers onto
// the message it fires) — form one trace. Span names use the subject's
// template ("deliveries.{partition}.{account_id}.{endpoint_id}.{delivery_id}"),
// never the subject, so they stay few; the subject is
// messaging.destination.name.
//
// Attributes: messaging.system=nats, messaging.operation.type = send (the
// current convention's name for what it used to call publish) or process,
// messaging.operation.name = publish or process, messaging.destination.name
// and .template, messaging.consumer.group.name (the durable consumer) and
// messaging.message.body.size. Callers add the postback.* ids.

// scope is the instrumentation scope (telemetry.Scope).
const scope = "github.com/postback-dev/postback"

var (
	natsSystem     = semconv.MessagingSystemKey.String("nats")
	opSend         = semconv.MessagingOperationTypeSend
	opProcess      = semconv.MessagingOperationTypeProcess
	opNamePublish  = semconv.MessagingOperationName("publish")
	opNameProcess  = semconv.MessagingOperationName("process")
	otherTemplate  = destination{template: "other", publish: "publish", process: "process"}
	subjectSchemes = map[string]destination{}
)

// destination is a subject template and its span names.
type destination struct {
	template, publish, process string
	attr                       attribute.KeyValue
}

func init() {
	for prefix, template := range map[string]string{
		"events":     "events.{event_type}.{partition}",
		"deliveries": "deliveries.{partition}.{account_id}.{endpoint_id}.{delivery_id}",
		"failed":     "failed.{partition}.{endpoint_id}",
		"retries":    "retries.{partition}.{endpoint_id}",
		"schedules":  "schedules.{delivery_id}",
		"attempts":   "attempts.{account_id}.{delivery_id}",
	} {
		subjectSchemes[prefix] = destination{template: template, publish: "publish " + template, process: "process " + template,
			attr: semconv.MessagingDestinationTemplate(template)}
	}
}

// Template is the subject's template, e.g. "events.{event_type}.{partition}".
func Template(subject string) string { return destinationOf(subject).template }

func destinationOf(subject string) destination {
	prefix, _, _ := strings.Cut(subject, ".")
	if d, ok := subjectSchemes[prefix]; ok {
		return d
	}
	return otherTemplate
}

// Tracer starts the messaging spans of one process.
type Tracer struct{ t trace.Tracer }

// NewTracer traces with tp (nil: the global provider).
func NewTracer(tp trace.TracerProvider) *Tracer {
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return &Tracer{t: tp.Tracer(scope)}
}

// StartPublish starts the PRODUCER span of a publish on subject; build the
// message with NewMsg(ctx, …) from the returned ctx so that it carries the
// span, and end the span when the publish is acknowledged (EndSpan).
func (t *Tracer) StartPublish(ctx context.Context, subject string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	d := destinationOf(subject)
	ctx, span := t.t.Start(ctx, d.publish, trace.WithSpanKind(trace.SpanKindProducer))
	if span.IsRecording() {
		span.SetAttributes(natsSystem, opSend, opNamePublish, semconv.MessagingDestinationName(subject), d.attr)
		span.SetAttributes(attrs...)
	}
	return ctx, span
}

// Publish publishes data on subject (with msgID as its dedupe id) inside a
// PRODUCER span, and waits for the server's acknowledgement.
func (t *Tracer) Publish(ctx context.Context, js jetstream.JetStream, subject string, data []byte, msgID string, attrs ...attribute.KeyValue) (*jetstream.PubAck, error) {
	ctx, span := t.StartPublish(ctx, subject, attrs...)
	if span.IsRecording() {
		span.SetAttributes(semconv.MessagingMessageBodySize(len(data)))
	}
	ack, err := js.PublishMsg(ctx, NewMsg(ctx, subject, data, msgID))
	EndSpan(span, err)
	return ack, err
}

// Schedule is stream.Schedule inside a PRODUCER span on the delivery's
// schedule subject: the schedule's headers (and so the message it fires)
// carry this span.
func (t *Tracer) Schedule(ctx context.Context, js jetstream.JetStream, job *delivery.Job, at time.Time, msgID string, attrs ...attribute.KeyValue) error {
	ctx, span := t.StartPublish(ctx, ScheduleSubject(job.DeliveryID), attrs...)
	if span.IsRecording() {
		span.SetAttributes(attribute.String("messaging.nats.schedule.at", at.UTC().Format(time.RFC3339Nano)),
			attribute.String("messaging.nats.schedule.target", RetrySubject(job.EndpointID)))
	}
	err := Schedule(ctx, js, job, at, msgID)
	EndSpan(span, err)
	return err
}

// Traced wraps a consumer's handler in a CONSUMER span ("process
// <template>"), a child of the trace context the message carried (Work
// extracts it). The handler finds the span with trace.SpanFromContext to add
// its attributes and status.
func (t *Tracer) Traced(consumer string, h Handler) Handler {
	group := semconv.MessagingConsumerGroupName(consumer)
	sub := semconv.MessagingDestinationSubscriptionName(consumer)
	return func(ctx context.Context, m jetstream.Msg) {
		subject := m.Subject()
		d := destinationOf(subject)
		ctx, span := t.t.Start(ctx, d.process, trace.WithSpanKind(trace.SpanKindConsumer))
		defer span.End()
		if span.IsRecording() {
			span.SetAttributes(natsSystem, opProcess, opNameProcess, semconv.MessagingDestinationName(subject), d.attr,
				group, sub, semconv.MessagingMessageBodySize(len(m.Data())))
			if meta, err := m.Metadata(); err == nil {
				span.SetAttributes(attribute.Int64("messaging.nats.stream.sequence", int64(meta.Sequence.Stream)),
					attribute.Int64("messaging.nats.message.delivery_count", int64(meta.NumDelivered)))
			}
		}
		h(ctx, m)
	}
}

// StartEvent starts the CONSUMER span of one event of a group whose events
// carry their own trace contexts (EventTraces): named as the message's
// process span, a child of traceparent (the event's caller), and linked to
// ctx's span (the message's). Without a valid traceparent the span is a
// child of ctx's, as for any event of the message.
func (t *Tracer) StartEvent(ctx context.Context, subject, traceparent string) (context.Context, trace.Span) {
	link := trace.LinkFromContext(ctx)
	if ectx := traceContext.Extract(ctx, propagation.MapCarrier{"traceparent": traceparent}); trace.SpanContextFromContext(ectx).IsValid() {
		ctx = ectx
	}
	d := destinationOf(subject)
	ctx, span := t.t.Start(ctx, d.process, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithLinks(link))
	if span.IsRecording() {
		span.SetAttributes(natsSystem, opProcess, opNameProcess, semconv.MessagingDestinationName(subject), d.attr)
	}
	return ctx, span
}

// EndSpan ends span, marking it failed when err is set.
func EndSpan(span trace.Span, err error) {
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
