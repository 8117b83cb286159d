package client

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// Option configures New.
type Option func(*config)

type config struct {
	token     string
	tls       *tls.Config
	insecure  bool
	dialOpts  []grpc.DialOption
	retry     retryPolicy
	propagate bool
}

// WithToken sends "authorization: Bearer <token>" metadata on every call
// (docs/api.md, "Authentication"). Over a plaintext connection the token
// travels in clear: that is only the default for loopback addresses.
func WithToken(token string) Option {
	return func(c *config) { c.token = token }
}

// WithTLS makes the connection use TLS with cfg (nil: the system roots and
// the address's host name). It overrides the default transport choice.
func WithTLS(cfg *tls.Config) Option {
	return func(c *config) {
		if cfg == nil {
			cfg = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		c.tls, c.insecure = cfg, false
	}
}

// WithInsecure makes the connection plaintext whatever the address.
func WithInsecure() Option {
	return func(c *config) { c.insecure, c.tls = true, nil }
}

// WithDialOptions adds gRPC dial options, after the client's own (so a
// transport credential given here wins over the default choice).
func WithDialOptions(o ...grpc.DialOption) Option {
	return func(c *config) { c.dialOpts = append(c.dialOpts, o...) }
}

// WithRetry sets how Publish and Publisher retry a call answered
// Unavailable or ResourceExhausted (back-pressure): at most maxAttempts
// attempts in all (1: no retry; 0 or less: until the context ends), the
// n-th retry after a delay drawn uniformly from [d/2, d] where
// d = min(max, base·2^(n-1)). The default is WithRetry(10, 100ms, 5s):
// about 20 s of retries, enough to ride out a gateway restart.
func WithRetry(maxAttempts int, base, max time.Duration) Option {
	return func(c *config) {
		c.retry.maxAttempts, c.retry.base, c.retry.max = maxAttempts, base, max
	}
}

// Client is a connection to a Postback gateway and typed access to its
// services. It is safe for concurrent use.
type Client struct {
	conn       *grpc.ClientConn
	events     postbackv1.EventServiceClient
	endpoints  postbackv1.EndpointServiceClient
	deliveries postbackv1.DeliveryServiceClient
	eventTypes postbackv1.EventTypeServiceClient
	operations postbackv1.OperationsServiceClient
	retry      retryPolicy
}

// New returns a client of the gateway at addr ("host:port", or any gRPC
// target such as "dns:///host:port"). It does not connect: the connection
// is made by the first call (grpc.NewClient), so New fails only on bad
// options; ctx is not used for dialing.
//
// Transport: WithTLS or WithInsecure decide it. Without either, the
// connection is plaintext when addr's host is a loopback address
// ("localhost", 127.0.0.0/8, ::1) or a unix socket, and TLS with the system
// roots otherwise, so that a token never leaves the machine in clear by
// default.
func New(ctx context.Context, addr string, opts ...Option) (*Client, error) {
	_ = ctx
	cfg := config{retry: defaultRetry(), propagate: true}
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.retry.validate(); err != nil {
		return nil, err
	}
	var creds credentials.TransportCredentials
	switch {
	case cfg.tls != nil:
		creds = credentials.NewTLS(cfg.tls)
	case cfg.insecure || isLoopback(addr):
		creds = insecure.NewCredentials()
	default:
		creds = credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12})
	}
	var unary []grpc.UnaryClientInterceptor
	var stream []grpc.StreamClientInterceptor
	if cfg.propagate {
		unary = append(unary, propagateUnary)
		stream = append(stream, propagateStream)
	}
	if cfg.token != "" {
		if strings.ContainsAny(cfg.token, "\r\n") {
			return nil, errors.New("postback client: token holds a line break")
		}
		md := "Bearer " + cfg.token
		unary = append(unary, func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			return invoker(metadata.AppendToOutgoingContext(ctx, authorizationKey, md), method, req, reply, cc, opts...)
		})
		stream = append(stream, func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			return streamer(metadata.AppendToOutgoingContext(ctx, authorizationKey, md), desc, cc, method, opts...)
		})
	}
	dial := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithChainUnaryInterceptor(unary...),
		grpc.WithChainStreamInterceptor(stream...),
	}
	conn, err := grpc.NewClient(addr, append(dial, cfg.dialOpts...)...)
	if err != nil {
		return nil, err
	}
	return &Client{
		conn:       conn,
		events:     postbackv1.NewEventServiceClient(conn),
		endpoints:  postbackv1.NewEndpointServiceClient(conn),
		deliveries: postbackv1.NewDeliveryServiceClient(conn),
		eventTypes: postbackv1.NewEventTypeServiceClient(conn),
		operations: postbackv1.NewOperationsServiceClient(conn),
		retry:      cfg.retry,
	}, nil
}

// authorizationKey is the metadata key of the bearer token (pkg/auth).
const authorizationKey = "authorization"

// isLoopback reports whether target names a loopback host or a unix socket.
func isLoopback(target string) bool {
	if strings.HasPrefix(target, "unix:") || strings.HasPrefix(target, "unix-abstract:") {
		return true
	}
	// Strip a scheme ("dns:///host:port", "passthrough:///host:port").
	if i := strings.Index(target, ":///"); i >= 0 {
		target = target[i+4:]
	}
	host := target
	if h, _, err := net.SplitHostPort(target); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Close closes the connection. Close Publishers first.
func (c *Client) Close() error { return c.conn.Close() }

// Conn is the underlying connection (for other services, e.g. health).
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// Events is the raw EventService stub (no retries, no idempotency keys:
// see Publish and NewPublisher for those).
func (c *Client) Events() postbackv1.EventServiceClient { return c.events }

// Endpoints is the EndpointService stub.
func (c *Client) Endpoints() postbackv1.EndpointServiceClient { return c.endpoints }

// Deliveries is the DeliveryService stub (see also EachDelivery).
func (c *Client) Deliveries() postbackv1.DeliveryServiceClient { return c.deliveries }

// EventTypes is the EventTypeService stub.
func (c *Client) EventTypes() postbackv1.EventTypeServiceClient { return c.eventTypes }

// Operations is the OperationsService stub: the operational events stream
// (WatchOperationalEvents) and account settings.
func (c *Client) Operations() postbackv1.OperationsServiceClient { return c.operations }
