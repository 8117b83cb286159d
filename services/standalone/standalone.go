// Package standalone runs all of Postback in one process: an embedded
// nats-server (JetStream under the data dir) unless POSTBACK_NATS_URL names
// one, an in-process limiter unless POSTBACK_REDIS_URL names a Redis, the
// delivery history in an SQLite file in the data dir unless
// POSTBACK_HISTORY_URL names a PostgreSQL, and the gateway, renderer,
// sender, retry and history writer services (the targets table) wired from
// the same packages the separate binaries use. This is what `make run`
// starts.
package standalone

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/postback-dev/postback/pkg/auth"
	"github.com/postback-dev/postback/pkg/broker"
	"github.com/postback-dev/postback/pkg/config"
	"github.com/postback-dev/postback/pkg/datadir"
	"github.com/postback-dev/postback/pkg/dispatch"
	"github.com/postback-dev/postback/pkg/health"
	"github.com/postback-dev/postback/pkg/history"
	"github.com/postback-dev/postback/pkg/limiter"
	"github.com/postback-dev/postback/pkg/schedule"
	"github.com/postback-dev/postback/pkg/secret"
	"github.com/postback-dev/postback/pkg/stream"
	"github.com/postback-dev/postback/pkg/telemetry"
	"github.com/postback-dev/postback/services/gateway"
	"github.com/postback-dev/postback/services/historian"
	"github.com/postback-dev/postback/services/renderer"
	"github.com/postback-dev/postback/services/retry"
	"github.com/postback-dev/postback/services/sender"
)

// Config is the process configuration plus hooks for tests.
type Config struct {
	config.Config
	Version string
	Logger  *slog.Logger
	// NATSPort is the embedded server's client port (0: 4222 is not used;
	// -1 picks a free port, which is the default).
	NATSPort int
	// Resolver resolves postback destinations (nil = the system resolver);
	// tests point it at a DNS server on loopback.
	Resolver *net.Resolver
	// Ready, when set, is called once every service is serving.
	Ready func(Addrs)
	// Grace, when set, replaces how long a final delivery record stays in
	// the hot state (tests shorten it to see the history serve it).
	Grace time.Duration
	// AttemptsAge, when set, replaces how long NATS keeps a replaced
	// attempt (tests shorten it to see ListAttempts read the history).
	AttemptsAge time.Duration
	// TracerProvider and MeterProvider, when set, replace the ones built
	// from the OTEL_* variables (tests pass in-memory ones).
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	// SpanExporter, when set (and TracerProvider is not), receives every
	// span synchronously through the providers standalone builds itself,
	// one per target with its service.name (tests pass an in-memory one).
	SpanExporter sdktrace.SpanExporter
}

// Addrs are where a running standalone listens.
type Addrs struct {
	GRPC, HTTP net.Addr
	// NATS is the broker's URL; the embedded server's carries the admin
	// user's credentials (log it only through stream.RedactURLs).
	NATS string
}

// Run runs everything until ctx ends. A stop asked while it is still
// starting is a clean stop too: it returns nil.
func Run(ctx context.Context, cfg Config) error {
	err := run(ctx, cfg)
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func run(ctx context.Context, cfg Config) error {
	log := cfg.Logger
	if log == nil {
		log = cfg.Config.Logger()
	}
	log = telemetry.Logger(log)
	tel, err := telemetry.Setup(ctx, telemetry.Options{ServiceName: "postback-standalone", Version: cfg.Version,
		TracerProvider: cfg.TracerProvider, MeterProvider: cfg.MeterProvider, SpanExporter: cfg.SpanExporter})
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = tel.Shutdown(sctx)
	}()
	layout, err := cfg.Layout()
	if err != nil {
		return err
	}
	layout.Grace, layout.AttemptsAge = cfg.Grace, cfg.AttemptsAge
	// A data dir that holds anything is a restart (looked at before the
	// keyring writes its key there): an earlier process may have just sent
	// to any endpoint. With an external broker, assume so too.
	entries, _ := os.ReadDir(cfg.DataDir)
	restarted := cfg.NATSURL != "" || slices.ContainsFunc(entries, func(e os.DirEntry) bool { return e.Name() != datadir.LockFile })
	// One process per data dir: a second standalone on it would consume the
	// same embedded store behind this one's back.
	release, err := datadir.Lock(cfg.DataDir)
	if err != nil {
		return err
	}
	defer release()
	keyring, err := cfg.Keyring(true)
	if err != nil {
		return err
	}
	jobKey, err := cfg.JobKeyring(true)
	if err != nil {
		return err
	}
	allow, err := cfg.Allow()
	if err != nil {
		return err
	}
	sched, err := cfg.Schedule()
	if err != nil {
		return err
	}
	lim, closeLimiter, err := cfg.Limiter(restarted)
	if err != nil {
		return err
	}
	defer closeLimiter()
	tokens, err := cfg.AuthTokens()
	if err != nil {
		return err
	}
	serverTLS, err := cfg.ServerTLS()
	if err != nil {
		return err
	}
	if cfg.Tokens == "" {
		log.Warn("NO API TOKENS CONFIGURED: every gRPC call is accepted without authentication; set POSTBACK_TOKENS before exposing this process")
	}

	// Each service gets its own connection, as it has in the multi-process
	// shape: one shared connection put every publish and ack of every
	// service through one client lock and one server read loop.
	var connect func(name string) (*nats.Conn, error)
	var nc *nats.Conn
	natsURL := cfg.NATSURL
	if natsURL == "" {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return fmt.Errorf("data dir %s: %w", cfg.DataDir, err)
		}
		port := cfg.NATSPort
		if port == 0 {
			port = -1
		}
		// The embedded server is locked: each service connects as its own
		// user with the permissions of pkg/broker users.go; the passwords
		// are generated into the data dir (0600) on the first start.
		creds, err := broker.LoadOrCreateCredentials(cfg.DataDir)
		if err != nil {
			return err
		}
		srv, err := broker.Start(broker.Options{Port: port, DataDir: cfg.DataDir, Credentials: creds, Logger: log})
		if err != nil {
			return err
		}
		defer srv.Stop()
		natsURL = srv.URL()
		connect = func(name string) (*nats.Conn, error) {
			user := strings.TrimPrefix(name, "postback-")
			if user == "standalone" {
				user = broker.AdminUser
			}
			return srv.Connect(user, stream.ClientOptions(name, log)...)
		}
	} else {
		connect = func(name string) (*nats.Conn, error) {
			nc, err := nats.Connect(natsURL, append(stream.ClientOptions(name, log), cfg.NATSOptions()...)...)
			if err != nil {
				return nil, fmt.Errorf("connect to NATS %s: %w", stream.RedactURLs(natsURL), err)
			}
			return nc, nil
		}
	}
	conns := map[string]*nats.Conn{}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for _, name := range append([]string{"standalone"}, targetNames()...) {
		c, err := connect("postback-" + name)
		if err != nil {
			return err
		}
		conns[name] = c
	}
	nc = conns["standalone"]
	js, err := stream.New(nc)
	if err != nil {
		return err
	}
	if err := stream.Ensure(ctx, js, layout); err != nil {
		return err
	}

	store, err := cfg.History(ctx)
	if err != nil {
		return err
	}
	defer store.Close()

	probes := health.New()
	probes.Add("nats", health.NATS(nc))
	probes.Add("streams", func(ctx context.Context) error { return stream.Present(ctx, js) })
	probes.Add("limiter", lim.Ready)

	// Each target traces under its own service.name (postback-gateway, …),
	// as the separate binaries do; they share one exporter.
	tels := map[string]*telemetry.Telemetry{}
	for _, name := range targetNames() {
		if tels[name], err = tel.ForService(ctx, "postback-"+name); err != nil {
			return err
		}
	}
	w := &wiring{cfg: cfg, layout: layout, keyring: keyring, jobKey: jobKey, sched: sched, limiter: lim, store: store, probes: probes,
		tokens: tokens, serverTLS: serverTLS, tel: tels, log: log, conns: conns,
		dispatchers: map[string]*dispatch.Dispatcher{}}
	// The sender's requests, and the gateway's TestEndpoint, each under
	// their service's name.
	for _, name := range []string{"gateway", "sender"} {
		w.dispatchers[name] = dispatch.New(dispatch.Options{Allow: allow, Version: cfg.Version, Resolver: cfg.Resolver, TracerProvider: tels[name].TracerProvider})
	}
	stopping := ctx // done when the caller asks the process to stop
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		addrs    = Addrs{NATS: natsURL}
		ready    sync.WaitGroup
	)
	chosen, err := parseTargets(cfg.Targets)
	if err != nil {
		return err
	}
	run := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := f(ctx)
			if err != nil && stopping.Err() != nil {
				// Asked to stop, maybe while still starting: what a
				// service says as it is cut short is not a failure.
				log.Info("stopped", "service", name, "error", err)
				return
			}
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = fmt.Errorf("%s: %w", name, err)
				}
				mu.Unlock()
				cancel()
			}
		}()
	}
	mux := tel.Mux()
	w.httpMux = mux // the gateway target mounts the brand console on it
	if cfg.PProf {
		health.MountPProf(mux)
	}
	if chosen["gateway"] {
		// /readyz waits for the gateway's listener, not only for the
		// dependencies it checks before the gateway has started.
		gateway.ExpectServing(probes)
	}
	ready.Add(2) // the HTTP listener and the gateway's (or no gateway)
	run("http", func(ctx context.Context) error {
		return health.Serve(ctx, cfg.HTTPAddr, probes.Handler(mux), func(a net.Addr) { addrs.HTTP = a; ready.Done() })
	})
	w.grpcReady = func(a net.Addr) { addrs.GRPC = a; ready.Done() }
	if !chosen["gateway"] {
		ready.Done()
	}
	for _, t := range targets {
		if chosen[t.name] {
			run(t.name, func(ctx context.Context) error { return t.run(ctx, w) })
		}
	}
	go func() {
		ready.Wait()
		if ctx.Err() != nil {
			return
		}
		log.Info("postback standalone ready", "grpc_addr", fmt.Sprint(addrs.GRPC), "http_addr", fmt.Sprint(addrs.HTTP), "nats_url", stream.RedactURLs(addrs.NATS), "targets", cfg.Targets,
			"traces", tel.Traces, "metrics", tel.Metrics)
		if cfg.Ready != nil {
			cfg.Ready(addrs)
		}
	}()
	wg.Wait()
	return firstErr
}

// wiring is what standalone builds once and its targets share: every
// service gets the same layout, keyring, limiter, history store and
// telemetry, and a NATS connection of its own (as it has in the
// multi-process shape: one shared connection put every publish and ack of
// every service through one client lock and one server read loop).
type wiring struct {
	cfg       Config
	layout    stream.Options
	keyring   *secret.Keyring
	jobKey    *secret.Keyring
	sched     schedule.Schedule
	limiter   limiter.Limiter
	store     history.Store
	probes    *health.Probes
	tokens    *auth.Tokens
	serverTLS *tls.Config
	// dispatchers and tel are by target name.
	dispatchers map[string]*dispatch.Dispatcher
	tel         map[string]*telemetry.Telemetry
	log         *slog.Logger
	conns       map[string]*nats.Conn
	grpcReady   func(net.Addr)
	httpMux     *http.ServeMux // the HTTP listener's mux: the gateway mounts /console/ on it
}

// A target is one service standalone can run (POSTBACK_TARGETS), after
// Loki's single binary with targets. Adding a service to standalone is one
// entry here: its connection, its place in POSTBACK_TARGETS and its start
// all follow from it.
type target struct {
	name string
	run  func(ctx context.Context, w *wiring) error
}

var targets = []target{
	{"gateway", func(ctx context.Context, w *wiring) error {
		return gateway.Run(ctx, gateway.Config{
			GRPCAddr: w.cfg.GRPCAddr, NATS: w.conns["gateway"], Layout: w.layout, Keyring: w.keyring, History: w.store, Dispatcher: w.dispatchers["gateway"],
			Auth: auth.New(w.tokens, w.log.With("service", "gateway")), TLS: w.serverTLS, ServerOptions: append(w.tel["gateway"].GRPCServerOptions(), gateway.PublishSpans(w.tel["gateway"].TracerProvider, w.tel["gateway"].MeterProvider)), Readiness: w.probes,
			Logger: w.log.With("service", "gateway"), Ready: w.grpcReady, HTTPMux: w.httpMux,
		})
	}},
	{"renderer", func(ctx context.Context, w *wiring) error {
		return renderer.Run(ctx, renderer.Config{NATS: w.conns["renderer"], Layout: w.layout, JobKey: w.jobKey, Logger: w.log.With("service", "renderer"),
			TracerProvider: w.tel["renderer"].TracerProvider, MeterProvider: w.tel["renderer"].MeterProvider})
	}},
	{"sender", func(ctx context.Context, w *wiring) error {
		return sender.Run(ctx, sender.Config{NATS: w.conns["sender"], Layout: w.layout, JobKey: w.jobKey, Limiter: w.limiter, Dispatcher: w.dispatchers["sender"],
			Keyring: w.keyring, Workers: w.cfg.SenderWorkers, InFlightPerEndpoint: w.cfg.InFlightPerEndpoint, Logger: w.log.With("service", "sender"),
			MaxRetryAfter:  sender.LongestStep(w.sched), // a Retry-After holds an endpoint back no longer than the schedule waits
			TracerProvider: w.tel["sender"].TracerProvider, MeterProvider: w.tel["sender"].MeterProvider})
	}},
	{"retry", func(ctx context.Context, w *wiring) error {
		return retry.Run(ctx, retry.Config{NATS: w.conns["retry"], Layout: w.layout, Schedule: w.sched, Logger: w.log.With("service", "retry"),
			TracerProvider: w.tel["retry"].TracerProvider, MeterProvider: w.tel["retry"].MeterProvider})
	}},
	{"historian", func(ctx context.Context, w *wiring) error {
		return historian.Run(ctx, historian.Config{NATS: w.conns["historian"], Layout: w.layout, Store: w.store,
			Logger: w.log.With("service", "historian"), MeterProvider: w.tel["historian"].MeterProvider})
	}},
}

func targetNames() []string {
	out := make([]string, len(targets))
	for i, t := range targets {
		out[i] = t.name
	}
	return out
}

func parseTargets(s string) (map[string]bool, error) {
	out := map[string]bool{}
	names := targetNames()
	if strings.TrimSpace(s) == "" || s == "all" {
		for _, t := range names {
			out[t] = true
		}
		return out, nil
	}
	for i, t := range strings.Split(s, ",") {
		t = strings.TrimSpace(t)
		if !slices.Contains(names, t) {
			return nil, fmt.Errorf("POSTBACK_TARGETS: entry %d %q is not one of %s", i+1, t, strings.Join(names, ", "))
		}
		out[t] = true
	}
	return out, nil
}
