package client

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// The client injects the caller's trace context (and baggage) into every
// call's gRPC metadata, where the gateway reads it (W3C trace context: the
// "traceparent", "tracestate" and "baggage" keys), so the gateway's server
// span is a child of the caller's span. It uses the global propagator
// (otel.SetTextMapPropagator) when one is installed, and W3C trace context
// plus baggage, the gateway's own choice, when none is.

var defaultPropagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

func propagator() propagation.TextMapPropagator {
	if p := otel.GetTextMapPropagator(); len(p.Fields()) > 0 {
		return p
	}
	return defaultPropagator
}

// outgoing is the call's outgoing metadata as a propagation carrier.
type outgoing struct{ md metadata.MD }

func (c outgoing) Get(k string) string {
	if v := c.md.Get(k); len(v) > 0 {
		return v[0]
	}
	return ""
}
func (c outgoing) Set(k, v string) { c.md.Set(k, v) }
func (c outgoing) Keys() []string {
	keys := make([]string, 0, len(c.md))
	for k := range c.md {
		keys = append(keys, k)
	}
	return keys
}

// inject returns ctx with its trace context added to the outgoing metadata
// (ctx unchanged when there is nothing to add).
func inject(ctx context.Context) context.Context {
	add := metadata.MD{}
	propagator().Inject(ctx, outgoing{add})
	if len(add) == 0 {
		return ctx // no span, no baggage: nothing to copy
	}
	md, _ := metadata.FromOutgoingContext(ctx) // a copy
	if md == nil {
		md = metadata.MD{}
	}
	for k, v := range add {
		md[k] = v
	}
	return metadata.NewOutgoingContext(ctx, md)
}

func propagateUnary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	return invoker(inject(ctx), method, req, reply, cc, opts...)
}

func propagateStream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return streamer(inject(ctx), desc, cc, method, opts...)
}
