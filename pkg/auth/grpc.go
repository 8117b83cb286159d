package auth

import (
	"context"
	"log/slog"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// MetadataKey is the gRPC metadata key that carries "Bearer <token>".
const MetadataKey = "authorization"

// Public reports whether a full gRPC method name ("/pkg.Service/Method") is
// answered without a token: gRPC health (probes) and server reflection (the
// API's shape, which docs/api.md publishes anyway).
func Public(fullMethod string) bool {
	for _, p := range []string{
		"/grpc.health.v1.Health/",
		"/grpc.reflection.v1.ServerReflection/",
		"/grpc.reflection.v1alpha.ServerReflection/",
	} {
		if strings.HasPrefix(fullMethod, p) {
			return true
		}
	}
	return false
}

// Authenticator checks the bearer token of every non-public call. With no
// tokens it is open: every call is AnonymousOperator.
type Authenticator struct {
	tokens *Tokens
	log    *slog.Logger
}

// New returns an authenticator for tokens; nil or empty tokens accept every
// call as AnonymousOperator (the caller is expected to warn about it). log
// (nil: no logging) gets one debug line per refused call, never the token.
func New(tokens *Tokens, log *slog.Logger) *Authenticator {
	return &Authenticator{tokens: tokens, log: log}
}

// Open reports whether every call is accepted without a token.
func (a *Authenticator) Open() bool { return a.tokens.Len() == 0 }

// Authenticate returns the identity of the caller whose incoming gRPC
// metadata ctx carries. Errors are Unauthenticated statuses.
func (a *Authenticator) Authenticate(ctx context.Context) (Identity, error) {
	if a.Open() {
		return AnonymousOperator, nil
	}
	values := metadata.ValueFromIncomingContext(ctx, MetadataKey) // no copy of the whole metadata
	switch len(values) {
	case 0:
		return Identity{}, status.Error(codes.Unauthenticated, "missing authorization metadata: send \"authorization: Bearer <token>\"")
	case 1:
	default:
		return Identity{}, status.Error(codes.Unauthenticated, "authorization metadata given more than once")
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(values[0]), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return Identity{}, status.Error(codes.Unauthenticated, "authorization metadata: want \"Bearer <token>\"")
	}
	id, found := a.tokens.Lookup(strings.TrimSpace(token))
	if !found {
		return Identity{}, status.Error(codes.Unauthenticated, "unknown token")
	}
	return id, nil
}

func (a *Authenticator) check(ctx context.Context, method string) (context.Context, error) {
	if Public(method) {
		return ctx, nil
	}
	id, err := a.Authenticate(ctx)
	if err != nil {
		if a.log != nil {
			addr := ""
			if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
				addr = p.Addr.String()
			}
			a.log.DebugContext(ctx, "call refused", "method", method, "peer", addr, "reason", status.Convert(err).Message())
		}
		return nil, err
	}
	return NewContext(ctx, id), nil
}

// UnaryServerInterceptor authenticates unary calls.
func (a *Authenticator) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := a.check(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor authenticates streaming calls.
func (a *Authenticator) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := a.check(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		return handler(srv, &identityStream{ServerStream: ss, ctx: ctx})
	}
}

// ServerOptions are the two interceptors as gRPC server options (chained, so
// they compose with others).
func (a *Authenticator) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(a.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(a.StreamServerInterceptor()),
	}
}

type identityStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *identityStream) Context() context.Context { return s.ctx }

// WithBearer returns ctx with the token as outgoing "authorization" metadata
// (for clients and tests).
func WithBearer(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, MetadataKey, "Bearer "+token)
}

// Bearer is per-RPC credentials that send a token with every call
// (grpc.WithPerRPCCredentials). With RequireTLS, gRPC refuses to send it over
// a connection without transport security.
type Bearer struct {
	Token      string
	RequireTLS bool
}

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (b Bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{MetadataKey: "Bearer " + b.Token}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials.
func (b Bearer) RequireTransportSecurity() bool { return b.RequireTLS }

// String hides the token.
func (b Bearer) String() string { return "auth.Bearer{…}" }

// GoString hides the token.
func (b Bearer) GoString() string { return b.String() }

var _ credentials.PerRPCCredentials = Bearer{}
