// Package gateway is Postback's gRPC front door: it accepts events and
// publishes them to JetStream (one subject per event type), owns endpoint
// configuration (a NATS KV bucket), and answers delivery history, replay,
// preview and test calls. Server reflection and grpc.health.v1 are on.
package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/postback-dev/postback/pkg/accounts"
	"github.com/postback-dev/postback/pkg/auth"
	"github.com/postback-dev/postback/pkg/dispatch"
	"github.com/postback-dev/postback/pkg/endpointhealth"
	"github.com/postback-dev/postback/pkg/endpoints"
	pkghealth "github.com/postback-dev/postback/pkg/health"
	"github.com/postback-dev/postback/pkg/history"
	"github.com/postback-dev/postback/pkg/inflight"
	"github.com/postback-dev/postback/pkg/recent"
	"github.com/postback-dev/postback/pkg/render"
	"github.com/postback-dev/postback/pkg/secret"
	"github.com/postback-dev/postback/pkg/stream"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// Config is what the gateway needs.
type Config struct {
	// GRPCAddr is the listen address ("127.0.0.1:7070"); Listener, when set, is used instead.
	GRPCAddr string
	Listener net.Listener
	// NATS is an open connection; when nil, NATSURL is dialled.
	NATS    *nats.Conn
	NATSURL string
	Layout  stream.Options
	// Keyring seals secrets at rest and masks them in responses.
	Keyring *secret.Keyring
	// History is the delivery history store the delivery log reads
	// (required; the caller closes it).
	History history.Store
	// Dispatcher sends TestEndpoint's request (nil: TestEndpoint is Unavailable).
	Dispatcher *dispatch.Dispatcher
	Logger     *slog.Logger
	// Ready, when set, is called with the bound gRPC address once serving.
	Ready func(addr net.Addr)
	// Auth authenticates every call but gRPC health and reflection and puts
	// the caller's identity in its context; the handlers apply the tenancy
	// rules to it. Required: auth.New(nil, log) is the explicit choice of
	// accepting every call as an operator.
	Auth *auth.Authenticator
	// TLS, when set, serves gRPC over TLS (mutual TLS when it requires
	// client certificates); nil serves plaintext.
	TLS *tls.Config
	// Limits bound input (zero fields: DefaultLimits).
	Limits Limits
	// ServerOptions are extra gRPC server options (interceptors), added
	// after the gateway's own (so they run after authentication).
	ServerOptions []grpc.ServerOption
	// Readiness, when set, drives grpc.health.v1: NOT_SERVING while any of
	// its checks (NATS, streams, Redis) fails.
	Readiness *pkghealth.Probes
	// HTTPMux, when set, gets the brand console under /console/ (console_mount.go).
	HTTPMux *http.ServeMux
}

// Server implements the postback.v1 services.
type Server struct {
	postbackv1.UnimplementedEventServiceServer
	postbackv1.UnimplementedEventTypeServiceServer
	postbackv1.UnimplementedEndpointServiceServer
	postbackv1.UnimplementedDeliveryServiceServer
	postbackv1.UnimplementedOperationsServiceServer

	js         jetstream.JetStream
	endpoints  *endpoints.Store
	deliveries *inflight.Deliveries
	keyed      *keyedLog // publishes events with idempotency keys (idempotency.go)
	unary      *unaryLog // publishes unary calls' other events (unary.go)
	intake     window    // bounds PublishBatch's publishes in flight (intake.go)
	attempts   *inflight.Attempts
	history    history.Store
	health     *endpointhealth.Store // endpoint health (health.go)
	accounts   *accounts.Store       // account settings (operations.go)
	recent     *recent.Store         // the sample of recent events (recent.go)
	keyring    *secret.Keyring
	dispatcher *dispatch.Dispatcher
	log        *slog.Logger
	limits     Limits
	// rendered bounds a rendered request (pkg/render), its body held to
	// what a queued delivery can carry; zero: render.DefaultLimits.
	rendered render.Limits
	// attemptsAge is how long ATTEMPTS keeps a replaced attempt
	// (stream.Options.AttemptsAge).
	attemptsAge time.Duration
	now         func() time.Time
}

// NewServer binds the server to an open JetStream context (layout ensured).
func NewServer(ctx context.Context, js jetstream.JetStream, k *secret.Keyring, d *dispatch.Dispatcher, h history.Store, log *slog.Logger) (*Server, error) {
	if k == nil {
		return nil, errors.New("gateway: a keyring is required")
	}
	if h == nil {
		return nil, errors.New("gateway: a delivery history store is required")
	}
	eps, err := endpoints.OpenStore(ctx, js)
	if err != nil {
		return nil, err
	}
	dls, err := inflight.OpenDeliveries(ctx, js)
	if err != nil {
		return nil, err
	}
	hs, err := endpointhealth.OpenStore(ctx, js)
	if err != nil {
		return nil, err
	}
	acc, err := accounts.OpenStore(ctx, js)
	if err != nil {
		return nil, err
	}
	rec, err := recent.OpenStore(ctx, js)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	return &Server{js: js, health: hs, accounts: acc, recent: rec, endpoints: eps, deliveries: dls, keyed: newKeyedLog(js, stream.DefaultOptions().EventDedupe), unary: newUnaryLog(js.Conn()), attempts: inflight.NewAttempts(js), attemptsAge: stream.DefaultAttemptsAge, history: h,
		keyring: k, dispatcher: d, log: log, limits: DefaultLimits(), intake: newWindow(intakeWindow), rendered: render.DefaultLimits().WithMaxPayload(js.Conn().MaxPayload()), now: time.Now}, nil
}

// Register adds every postback.v1 service, health and reflection to g.
func (s *Server) Register(g *grpc.Server, hs *health.Server) {
	postbackv1.RegisterEventServiceServer(g, s)
	postbackv1.RegisterEventTypeServiceServer(g, s)
	postbackv1.RegisterEndpointServiceServer(g, s)
	postbackv1.RegisterDeliveryServiceServer(g, s)
	postbackv1.RegisterOperationsServiceServer(g, s)
	healthpb.RegisterHealthServer(g, hs)
	reflection.Register(g)
}

// Run serves the gateway until ctx ends.
// streamWorkers is how many goroutines serve gRPC calls (the bench's unary
// burst keeps 64 calls in flight).
const streamWorkers = 64

// ReadinessCheck is the name of the check Run adds to Config.Readiness:
// it passes only while the gateway serves gRPC.
const ReadinessCheck = "grpc"

const notServing = "the gateway is not serving gRPC"

// ExpectServing registers the gateway's readiness check as failing until
// Run adds it. A process that serves /readyz before it runs the gateway
// calls it first: without it, /readyz passed in the moment between the
// HTTP listener and Run, and a caller that trusted it found no gRPC
// listener.
func ExpectServing(p *pkghealth.Probes) { p.Expect(ReadinessCheck, notServing+" yet") }

func Run(ctx context.Context, cfg Config) error {
	if cfg.Auth == nil {
		return errors.New("gateway: Config.Auth is required (auth.New(nil, log) accepts every call as an operator)")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	// Ready only while serving gRPC: not before the listener is bound and
	// served, nor while it drains.
	var serving atomic.Bool
	if cfg.Readiness != nil {
		cfg.Readiness.Add(ReadinessCheck, func(context.Context) error {
			if !serving.Load() {
				return errors.New(notServing)
			}
			return nil
		})
	}
	js, closeNATS, err := stream.Open(ctx, cfg.NATS, cfg.NATSURL, "postback-gateway", cfg.Layout)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	defer closeNATS()
	srv, err := NewServer(ctx, js, cfg.Keyring, cfg.Dispatcher, cfg.History, log)
	if err != nil {
		return err
	}
	srv.limits = cfg.Limits.withDefaults()
	srv.deliveries.Grace = cfg.Layout.Grace
	if cfg.Layout.EventDedupe > 0 {
		srv.keyed = newKeyedLog(js, cfg.Layout.EventDedupe)
	}
	if cfg.Layout.AttemptsAge > 0 {
		srv.attemptsAge = cfg.Layout.AttemptsAge
	}
	if cfg.HTTPMux != nil {
		if err := mountConsole(cfg.HTTPMux, srv, cfg.Auth, log); err != nil {
			return err
		}
	}
	lis := cfg.Listener
	if lis == nil {
		lis, err = net.Listen("tcp", cfg.GRPCAddr)
		if err != nil {
			return fmt.Errorf("gateway: listen on %s: %w", cfg.GRPCAddr, err)
		}
	}
	opts := append(cfg.Auth.ServerOptions(), grpc.MaxRecvMsgSize(srv.limits.MaxMessageBytes),
		// Calls run on long-lived workers (a fresh goroutine per call when
		// all are busy): a new goroutine's stack grew and was copied on
		// every call, ~9 µs of a unary Publish's ~65 µs in the gateway.
		grpc.NumStreamWorkers(streamWorkers))
	if cfg.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg.TLS)))
	}
	// The codec and its interceptor last: the interceptor is the innermost,
	// after authentication and the caller's own.
	g := grpc.NewServer(append(append(opts, cfg.ServerOptions...), serverCodecOptions()...)...)
	hs := health.NewServer()
	srv.Register(g, hs)
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	for name := range g.GetServiceInfo() {
		hs.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	serving.Store(true) // the listener is bound: connections wait in its backlog until Serve takes them
	if cfg.Readiness != nil {
		go cfg.Readiness.Follow(ctx, 5*time.Second, func(ready bool) {
			st := healthpb.HealthCheckResponse_SERVING
			if !ready {
				st = healthpb.HealthCheckResponse_NOT_SERVING
			}
			hs.SetServingStatus("", st)
			for name := range g.GetServiceInfo() {
				hs.SetServingStatus(name, st)
			}
		})
	}
	errc := make(chan error, 1)
	go func() { errc <- g.Serve(lis) }()
	if cfg.Ready != nil {
		cfg.Ready(lis.Addr())
	}
	log.Info("gateway serving", "grpc_addr", lis.Addr().String(), "tls", cfg.TLS != nil,
		"mtls", cfg.TLS != nil && cfg.TLS.ClientAuth == tls.RequireAndVerifyClientCert, "auth", !cfg.Auth.Open())
	if cfg.TLS == nil && !cfg.Auth.Open() && !loopback(lis.Addr()) {
		log.Warn("bearer tokens are accepted over plaintext gRPC on a non-loopback address: set POSTBACK_TLS_CERT and POSTBACK_TLS_KEY, or terminate TLS in front of the gateway",
			"grpc_addr", lis.Addr().String())
	}
	select {
	case <-ctx.Done():
		serving.Store(false)
		hs.Shutdown()
		stopped := make(chan struct{})
		go func() { g.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(5 * time.Second):
			g.Stop()
		}
		return nil
	case err := <-errc:
		serving.Store(false)
		return fmt.Errorf("gateway: serve: %w", err)
	}
}

// serverCodecOptions are the gateway server's codec, the proto codec but
// leaving a published event's data for eventData to decode straight into a
// map and marking a request with invalid UTF-8 (codec.go), and the
// interceptor that goes with it (requestChecks, errors.go), which refuses a
// marked request and bounds every error. Given after every other server
// option, the interceptor is the innermost.
func serverCodecOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ForceServerCodecV2(newServerCodec()),
		grpc.ChainUnaryInterceptor(requestChecks),
	}
}

// loopback reports whether a is a loopback TCP address.
func loopback(a net.Addr) bool {
	t, ok := a.(*net.TCPAddr)
	return ok && t.IP.IsLoopback()
}
