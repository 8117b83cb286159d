package gateway

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/postback-dev/postback/pkg/auth"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// inProcess is a grpc.ClientConnInterface that calls the gateway's own
// handlers in this process, through the same checks a call on the gRPC
// listener passes: the caller's outgoing "authorization" metadata is
// authenticated by the same Authenticator (so the same tenancy rules
// apply in the handlers), then requestChecks bounds the handler's errors
// as it does on the wire. The console (services/gateway/console) uses it,
// so it never goes around the API. Errors come back as plain statuses, as
// a remote client sees them. Only unary calls are served.
type inProcess struct {
	methods     map[string]inProcessMethod // by full method name, "/postback.v1.EndpointService/GetEndpoint"
	interceptor grpc.UnaryServerInterceptor
}

type inProcessMethod struct {
	impl    any
	handler grpc.MethodHandler
	info    *grpc.UnaryServerInfo
}

// InProcess returns a client connection that calls s's postback.v1
// services in process, authenticated by a (see inProcess).
func (s *Server) InProcess(a *auth.Authenticator) grpc.ClientConnInterface {
	c := &inProcess{methods: map[string]inProcessMethod{}}
	for _, sd := range []*grpc.ServiceDesc{
		&postbackv1.EventService_ServiceDesc, &postbackv1.EventTypeService_ServiceDesc,
		&postbackv1.EndpointService_ServiceDesc, &postbackv1.DeliveryService_ServiceDesc,
	} {
		for _, m := range sd.Methods {
			full := "/" + sd.ServiceName + "/" + m.MethodName
			c.methods[full] = inProcessMethod{impl: s, handler: m.Handler, info: &grpc.UnaryServerInfo{Server: s, FullMethod: full}}
		}
	}
	authenticate := a.UnaryServerInterceptor()
	c.interceptor = func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		return authenticate(ctx, req, info, func(ctx context.Context, req any) (any, error) {
			return requestChecks(ctx, req, info, handler)
		})
	}
	return c
}

// Invoke implements grpc.ClientConnInterface.
func (c *inProcess) Invoke(ctx context.Context, method string, args, reply any, _ ...grpc.CallOption) error {
	m, ok := c.methods[method]
	if !ok {
		return status.Errorf(codes.Unimplemented, "method %s is not served in process", method)
	}
	in, ok := args.(proto.Message)
	if !ok {
		return status.Errorf(codes.Internal, "in-process call %s: request %T is not a proto message", method, args)
	}
	md, _ := metadata.FromOutgoingContext(ctx)
	ctx = metadata.NewIncomingContext(ctx, md.Copy())
	// The handler gets its own copy, as it would decoding the wire bytes.
	decode := func(dst any) error {
		msg, ok := dst.(proto.Message)
		if !ok {
			return fmt.Errorf("in-process call %s: request %T is not a proto message", method, dst)
		}
		proto.Merge(msg, in)
		return nil
	}
	resp, err := m.handler(m.impl, ctx, decode, func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		return c.interceptor(ctx, req, m.info, handler)
	})
	if err != nil {
		return status.Convert(err).Err()
	}
	out, ok := reply.(proto.Message)
	if !ok {
		return status.Errorf(codes.Internal, "in-process call %s: reply %T is not a proto message", method, reply)
	}
	proto.Reset(out)
	proto.Merge(out, resp.(proto.Message))
	return nil
}

// NewStream implements grpc.ClientConnInterface; no streaming call is served in process.
func (c *inProcess) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, status.Error(codes.Unimplemented, "streaming calls are not served in process")
}
