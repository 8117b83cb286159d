package telemetry

import (
	"context"
	"strings"

	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"

	"github.com/postback-dev/postback/pkg/stream"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// GRPCServerOptions instrument the gateway's gRPC server; pass them as
// gateway.Config.ServerOptions (they run after authentication):
//
//   - server spans and the rpc.server.call.duration metric as otelgrpc
//     records them (rpc.go), with the W3C propagator, for every call but
//     grpc.health.v1 and reflection (probes would drown the traces);
//   - a "publish events.{event_type}" PRODUCER span around EventService
//     Publish and PublishBatch, child of the server span: the published
//     messages carry it, so the renderer's work continues the caller's
//     trace; and the postback.events.published counter, by event type, for
//     each event accepted (duplicates not counted).
func (t *Telemetry) GRPCServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.StatsHandler(newRPCServer(t.TracerProvider, t.MeterProvider, Propagator(), traced)),
		grpc.ChainUnaryInterceptor(publishInterceptor(stream.NewTracer(t.TracerProvider), NewMetrics(t.MeterProvider))),
	}
}

// traced leaves out health checks and reflection.
func traced(info *stats.RPCTagInfo) bool {
	m := info.FullMethodName
	return !strings.HasPrefix(m, "/grpc.health.v1.") && !strings.HasPrefix(m, "/grpc.reflection.")
}

func publishInterceptor(tr *stream.Tracer, m *Metrics) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		switch info.FullMethod {
		case postbackv1.EventService_Publish_FullMethodName:
			r, ok := req.(*postbackv1.PublishRequest)
			if !ok {
				break
			}
			ctx, span := tr.StartPublish(ctx, stream.EventSubject(r.EventType, r.AccountId), AccountID.String(r.AccountId), EventType.String(r.EventType))
			resp, err := handler(ctx, req)
			if pr, ok := resp.(*postbackv1.PublishResponse); ok && err == nil {
				span.SetAttributes(EventID.String(pr.EventId), Duplicate.Bool(pr.Duplicate))
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
