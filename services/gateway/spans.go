package gateway

import (
	"context"

	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"

	"github.com/postback-dev/postback/pkg/event"
	"github.com/postback-dev/postback/pkg/stream"
	"github.com/postback-dev/postback/pkg/telemetry"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// PublishSpans is the gRPC server option (pass it in Config.ServerOptions,
// after telemetry's GRPCServerOptions) that wraps EventService Publish and
// PublishBatch in a "publish events.{event_type}" PRODUCER span, a child of
// the server span: the published messages carry it, so the renderer's work
// continues the caller's trace. It also counts postback.events.published,
// by event type, for each event accepted (duplicates not counted).
func PublishSpans(tp trace.TracerProvider, mp metric.MeterProvider) grpc.ServerOption {
	m := telemetry.NewMetrics(mp)
	var types []string
	for _, t := range event.Types() {
		types = append(types, t.Name)
	}
	m.ZeroEventTypes(types...)
	return grpc.ChainUnaryInterceptor(publishSpans(stream.NewTracer(tp), m))
}

func publishSpans(tr *stream.Tracer, m *telemetry.Metrics) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		switch info.FullMethod {
		case postbackv1.EventService_Publish_FullMethodName:
			r, ok := req.(*postbackv1.PublishRequest)
			if !ok {
				break
			}
			ctx, span := tr.StartPublish(ctx, stream.EventSubject(r.EventType, r.AccountId), telemetry.AccountID.String(r.AccountId), telemetry.EventType.String(r.EventType))
			resp, err := handler(ctx, req)
			if pr, ok := resp.(*postbackv1.PublishResponse); ok && err == nil {
				span.SetAttributes(telemetry.EventID.String(pr.EventId), telemetry.Duplicate.Bool(pr.Duplicate))
				if !pr.Duplicate {
					m.EventPublished(ctx, r.EventType)
				}
			}
			stream.EndSpan(span, err)
			return resp, err
		case postbackv1.EventService_PublishBatch_FullMethodName:
			r, ok := req.(*postbackv1.PublishBatchRequest)
			if !ok {
				break
			}
			// One span for the batch; its destination is the events' type
			// when they share one.
			subject := "events.>"
			if len(r.Events) > 0 {
				subject = "events." + r.Events[0].GetEventType() + ".*"
				for _, ev := range r.Events[1:] {
					if ev.GetEventType() != r.Events[0].GetEventType() {
						subject = "events.>"
						break
					}
				}
			}
			ctx, span := tr.StartPublish(ctx, subject, semconv.MessagingBatchMessageCount(len(r.Events)))
			resp, err := handler(ctx, req)
			if br, ok := resp.(*postbackv1.PublishBatchResponse); ok && err == nil {
				for i, res := range br.Results {
					if res.GetError() == nil && !res.GetDuplicate() && i < len(r.Events) {
						m.EventPublished(ctx, r.Events[i].GetEventType())
					}
				}
			}
			stream.EndSpan(span, err)
			return resp, err
		}
		return handler(ctx, req)
	}
}
