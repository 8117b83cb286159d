// Package standalone runs all of Postback in one process: an embedded
// nats-server (JetStream under the data dir) unless POSTBACK_NATS_URL names
// one, an in-process limiter unless POSTBACK_REDIS_URL names a Redis, and the
// gateway, renderer, sender and retry services wired from the same packages
// the separate binaries use. This is what `make run` starts.
package standalone

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/postback-dev/postback/pkg/auth"
	"github.com/postback-dev/postback/pkg/broker"
	"github.com/postback-dev/postback/pkg/config"
	"github.com/postback-dev/postback/pkg/dispatch"
	"github.com/postback-dev/postback/pkg/health"
	"github.com/postback-dev/postback/pkg/stream"
	"github.com/postback-dev/postback/pkg/telemetry"
	"github.com/postback-dev/postback/services/gateway"
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
	// TracerProvider and MeterProvider, when set, replace the ones built
	// from the OTEL_* variables (tests pass in-memory ones).
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
}

// Addrs are where a running standalone listens.
type Addrs struct {
	GRPC, HTTP net.Addr
	NATS       string
}

// Run runs everything until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Logger
	if log == nil {
		log = cfg.Config.Logger()
	}
	log = telemetry.Logger(log)
	tel, err := telemetry.Setup(ctx, telemetry.Options{ServiceName: "postback-standalone", Version: cfg.Version,
		TracerProvider: cfg.TracerProvider, MeterProvider: cfg.MeterProvider})
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
	keyring, err := cfg.Keyring(true)
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
	lim, closeLimiter, err := cfg.Limiter()
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
		srv, err := broker.Start(broker.Options{Port: port, DataDir: cfg.DataDir})
		if err != nil {
			return err
		}
		defer srv.Stop()
		natsURL = srv.ClientURL()
		connect = srv.Connect
	} else {
		connect = func(name string) (*nats.Conn, error) {
			nc, err := nats.Connect(natsURL, nats.Name(name), nats.MaxReconnects(-1))
			if err != nil {
				return nil, fmt.Errorf("connect to NATS %s: %w", natsURL, err)
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
	for _, name := range []string{"standalone", "gateway", "renderer", "sender", "retry"} {
		c, err := connect("postback-" + name)
		if err != nil {
			return err
		}
		conns[name] = c
	}
	nc = conns["standalone"]
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	if err := stream.Ensure(ctx, js, layout); err != nil {
		return err
	}

	probes := health.New()
	probes.Add("nats", health.NATS(nc))
	probes.Add("streams", func(ctx context.Context) error { return stream.Present(ctx, js) })
	probes.Add("limiter", lim.Ready)

	dispatcher := dispatch.New(dispatch.Options{Allow: allow, Version: cfg.Version, Resolver: cfg.Resolver, TracerProvider: tel.TracerProvider})
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		addrs    = Addrs{NATS: natsURL}
		ready    sync.WaitGroup
	)
	targets, err := parseTargets(cfg.Targets)
	if err != nil {
		return err
	}
	run := func(name string, f func(context.Context) error) {
		if name != "http" && !targets[name] {
			if name == "gateway" {
				ready.Done()
			}
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil {
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
	if cfg.PProf {
		health.MountPProf(mux)
	}
	ready.Add(2)
	run("http", func(ctx context.Context) error {
		return health.Serve(ctx, cfg.HTTPAddr, probes.Handler(mux), func(a net.Addr) { addrs.HTTP = a; ready.Done() })
	})
	run("gateway", func(ctx context.Context) error {
		return gateway.Run(ctx, gateway.Config{
			GRPCAddr: cfg.GRPCAddr, NATS: conns["gateway"], Layout: layout, Keyring: keyring, Dispatcher: dispatcher,
			Auth: auth.New(tokens, log.With("service", "gateway")), TLS: serverTLS, ServerOptions: tel.GRPCServerOptions(), Readiness: probes,
			Logger: log.With("service", "gateway"), Ready: func(a net.Addr) { addrs.GRPC = a; ready.Done() },
		})
	})
	run("renderer", func(ctx context.Context) error {
		return renderer.Run(ctx, renderer.Config{NATS: conns["renderer"], Layout: layout, Logger: log.With("service", "renderer"),
			TracerProvider: tel.TracerProvider, MeterProvider: tel.MeterProvider})
	})
	run("sender", func(ctx context.Context) error {
		return sender.Run(ctx, sender.Config{NATS: conns["sender"], Layout: layout, Limiter: lim, Dispatcher: dispatcher,
			Keyring: keyring, Workers: cfg.SenderWorkers, InFlightPerEndpoint: cfg.InFlightPerEndpoint, Logger: log.With("service", "sender"), TracerProvider: tel.TracerProvider, MeterProvider: tel.MeterProvider})
	})
	run("retry", func(ctx context.Context) error {
		return retry.Run(ctx, retry.Config{NATS: conns["retry"], Layout: layout, Schedule: sched, Logger: log.With("service", "retry"),
			TracerProvider: tel.TracerProvider, MeterProvider: tel.MeterProvider})
	})
	go func() {
		ready.Wait()
		if ctx.Err() != nil {
			return
		}
		log.Info("postback standalone ready", "grpc_addr", fmt.Sprint(addrs.GRPC), "http_addr", fmt.Sprint(addrs.HTTP), "nats_url", addrs.NATS, "targets", cfg.Targets,
			"traces", tel.Traces, "metrics", tel.Metrics)
		if cfg.Ready != nil {
			cfg.Ready(addrs)
		}
	}()
	wg.Wait()
	return firstErr
}

// Targets standalone can run, after Loki's single binary with targets.
var allTargets = []string{"gateway", "renderer", "sender", "retry"}

func parseTargets(s string) (map[string]bool, error) {
	out := map[string]bool{}
	if strings.TrimSpace(s) == "" || s == "all" {
		for _, t := range allTargets {
			out[t] = true
		}
		return out, nil
	}
	for i, t := range strings.Split(s, ",") {
		t = strings.TrimSpace(t)
		if !slices.Contains(allTargets, t) {
			return nil, fmt.Errorf("POSTBACK_TARGETS: entry %d %q is not one of %s", i+1, t, strings.Join(allTargets, ", "))
		}
		out[t] = true
	}
	return out, nil
}
