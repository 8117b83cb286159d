package telemetry

import (
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"
)

// GRPCServerOptions instrument the gateway's gRPC server; pass them as
// gateway.Config.ServerOptions (they run after authentication):
//
// server spans and the rpc.server.call.duration metric as otelgrpc
//
//	records them (rpc.go), with the W3C propagator, for every call but
//	grpc.health.v1 and reflection (probes would drown the traces);
//
// The gateway adds the PRODUCER span around a publish itself
// (gateway.PublishSpans): it knows the subjects, this package does not.
func (t *Telemetry) GRPCServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.StatsHandler(newRPCServer(t.TracerProvider, t.MeterProvider, Propagator(), traced)),
	}
}

// traced leaves out health checks and reflection.
func traced(info *stats.RPCTagInfo) bool {
	m := info.FullMethodName
	return !strings.HasPrefix(m, "/grpc.health.v1.") && !strings.HasPrefix(m, "/grpc.reflection.")
}
