package telemetry

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// Stand-ins for the gateway's services: one call answers OK, one
// INVALID_ARGUMENT, one (not implemented) UNIMPLEMENTED.
type typesOK struct {
	postbackv1.UnimplementedEventTypeServiceServer
}

func (typesOK) ListEventTypes(context.Context, *postbackv1.ListEventTypesRequest) (*postbackv1.ListEventTypesResponse, error) {
	return &postbackv1.ListEventTypesResponse{}, nil
}

type eventsRefused struct {
	postbackv1.UnimplementedEventServiceServer
}

func (eventsRefused) Publish(context.Context, *postbackv1.PublishRequest) (*postbackv1.PublishResponse, error) {
	return nil, status.Error(codes.InvalidArgument, "event_type: unknown")
}

// instrumented runs a gRPC server on loopback with handler and returns what
// it recorded for the same calls: spans and the duration's data points.
func instrumented(t *testing.T, handler func(*sdktrace.TracerProvider, *sdkmetric.MeterProvider) grpc.ServerOption) (tracetest.SpanStubs, metricdata.Metrics) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	srv := grpc.NewServer(handler(tp, mp))
	postbackv1.RegisterEventTypeServiceServer(srv, typesOK{})
	postbackv1.RegisterEventServiceServer(srv, eventsRefused{})
	healthpb.RegisterHealthServer(srv, health.NewServer())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The caller's trace context: every server span is its child.
	ctx := metadata.AppendToOutgoingContext(context.Background(), "traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	types := postbackv1.NewEventTypeServiceClient(conn)
	events := postbackv1.NewEventServiceClient(conn)
	for range 2 {
		if _, err := types.ListEventTypes(ctx, &postbackv1.ListEventTypesRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := events.Publish(ctx, &postbackv1.PublishRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("Publish: %v", err)
	}
	if _, err := events.PublishBatch(ctx, &postbackv1.PublishBatchRequest{}); status.Code(err) != codes.Unimplemented {
		t.Fatalf("PublishBatch: %v", err)
	}
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	srv.GracefulStop()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var duration metricdata.Metrics
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == "rpc.server.call.duration" {
				duration = m
			}
		}
	}
	return exp.GetSpans(), duration
}

// spanView is what a span says, but for the listening port.
func spanView(s tracetest.SpanStub) string {
	var attrs []string
	for _, a := range s.Attributes {
		if a.Key == semconv.ServerPortKey {
			a = attribute.Int(string(a.Key), 0)
		}
		attrs = append(attrs, string(a.Key)+"="+a.Value.Emit())
	}
	slices.Sort(attrs)
	return fmt.Sprintf("%s kind=%s trace=%s parent=%s status=%s %q attrs=[%s] events=%d", s.Name, s.SpanKind,
		s.SpanContext.TraceID(), s.Parent.SpanID(), s.Status.Code, s.Status.Description, strings.Join(attrs, " "), len(s.Events))
}

func pointsView(m metricdata.Metrics) []string {
	h, ok := m.Data.(metricdata.Histogram[float64])
	if !ok {
		return []string{fmt.Sprintf("not a float64 histogram: %T", m.Data)}
	}
	out := []string{"unit=" + m.Unit + " description=" + m.Description}
	for _, p := range h.DataPoints {
		var attrs []string
		for _, a := range p.Attributes.ToSlice() {
			attrs = append(attrs, string(a.Key)+"="+a.Value.Emit())
		}
		out = append(out, fmt.Sprintf("count=%d bounds=%v attrs=[%s]", p.Count, p.Bounds, strings.Join(attrs, " ")))
	}
	slices.Sort(out)
	return out
}

func TestRPCInstrumentationMatchesOtelgrpc(t *testing.T) {
	wantSpans, wantDuration := instrumented(t, func(tp *sdktrace.TracerProvider, mp *sdkmetric.MeterProvider) grpc.ServerOption {
		return grpc.StatsHandler(otelgrpc.NewServerHandler(otelgrpc.WithTracerProvider(tp), otelgrpc.WithMeterProvider(mp),
			otelgrpc.WithPropagators(Propagator()), otelgrpc.WithFilter(traced)))
	})
	gotSpans, gotDuration := instrumented(t, func(tp *sdktrace.TracerProvider, mp *sdkmetric.MeterProvider) grpc.ServerOption {
		return grpc.StatsHandler(newRPCServer(tp, mp, Propagator(), traced))
	})
	if len(wantSpans) != 4 {
		t.Fatalf("otelgrpc recorded %d spans, want 4 (the health check is left out)", len(wantSpans))
	}
	var want, got []string
	for _, s := range wantSpans {
		want = append(want, spanView(s))
	}
	for _, s := range gotSpans {
		got = append(got, spanView(s))
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("spans:\n%s\nwant (otelgrpc):\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if w, g := pointsView(wantDuration), pointsView(gotDuration); !slices.Equal(g, w) {
		t.Errorf("rpc.server.call.duration:\n%s\nwant (otelgrpc):\n%s", strings.Join(g, "\n"), strings.Join(w, "\n"))
	}
}

func TestTheMethodCacheHoldsNoMoreThanItsBound(t *testing.T) {
	h := newRPCServer(sdktrace.NewTracerProvider(), sdkmetric.NewMeterProvider(), Propagator(), nil)
	for i := range 3 * maxRPCMethods {
		m := h.method(fmt.Sprintf("/made.Up/Method%d", i))
		if m.name != fmt.Sprintf("made.Up/Method%d", i) {
			t.Fatalf("method %d named %q", i, m.name)
		}
	}
	n := 0
	h.methods.Range(func(any, any) bool { n++; return true })
	if n != maxRPCMethods {
		t.Fatalf("%d methods cached, want %d", n, maxRPCMethods)
	}
}
