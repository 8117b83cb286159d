// Package process is what every separate Postback binary sets up around its
// service, written once: configuration from the environment and flags, the
// JSON logger with trace ids, OpenTelemetry from OTEL_*, the NATS
// connection, readiness probes (NATS, streams) and the HTTP server for
// /healthz, /readyz and /metrics (and /debug/pprof/ with POSTBACK_PPROF).
// Each cmd main only builds its service's Config. (Standalone wires the same
// pieces itself, around an embedded server.)
package process

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/postback-dev/postback/pkg/config"
	"github.com/postback-dev/postback/pkg/health"
	"github.com/postback-dev/postback/pkg/stream"
	"github.com/postback-dev/postback/pkg/telemetry"
)

// Process is a running binary's shared set-up.
type Process struct {
	Name      string // "postback-sender"
	Version   string
	Config    config.Config
	Log       *slog.Logger
	Telemetry *telemetry.Telemetry
	NATS      *nats.Conn
	JetStream jetstream.JetStream
	// Probes already check NATS and the streams; a service adds its own
	// (the sender its limiter) before it runs.
	Probes *health.Probes
	// Mux is the HTTP listener's mux (POSTBACK_HTTP_ADDR): the gateway mounts its console on it.
	Mux *http.ServeMux
}

// Main runs fn inside a set-up process until SIGINT or SIGTERM. It exits 2
// on bad configuration, saying so in one line on stderr before it starts
// anything, and 1 when set-up or fn fails.
func Main(name, version string, fn func(ctx context.Context, p *Process) error, opts ...Option) {
	TuneGC()
	cfg := LoadConfig(name)
	log := telemetry.Logger(cfg.Logger()).With("service", strings.TrimPrefix(name, "postback-"))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, &Process{Name: name, Version: version, Config: cfg, Log: log}, fn, opts...); err != nil {
		log.Error(name+" stopped", "error", err)
		stop()
		os.Exit(1)
	}
}

// LoadConfig is the configuration of the binary name from os.Args and the
// environment, checked (config.Load, then Config.Require). When a setting
// is bad it prints one line to stderr, "name: what is wrong", and exits 2;
// with -h it prints the flags and exits 0. Every binary calls it before it
// starts anything.
func LoadConfig(name string) config.Config {
	cfg, code := loadConfig(name, os.Args[1:], os.Getenv, os.Stderr)
	if code >= 0 {
		os.Exit(code)
	}
	return cfg
}

// loadConfig is LoadConfig without the exit: code is -1 when the process
// may go on, else the exit code.
func loadConfig(name string, args []string, getenv func(string) string, stderr io.Writer) (cfg config.Config, code int) {
	cfg, err := config.Load(name, args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return cfg, 0
	}
	if err == nil {
		err = cfg.Require(name)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %s\n", name, oneLine(err.Error()))
		return cfg, 2
	}
	return cfg, -1
}

// oneLine keeps an error on one line, whatever a library put in it.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}

// Option adjusts how Main sets a process up.
type Option func(*options)

type options struct {
	probes []func(*health.Probes)
}

// WithProbes has Main call f on the process's probes before its HTTP
// listener serves /readyz: a service registers there the checks it adds
// only once it runs (gateway.ExpectServing).
func WithProbes(f func(*health.Probes)) Option {
	return func(o *options) { o.probes = append(o.probes, f) }
}

func run(ctx context.Context, p *Process, fn func(ctx context.Context, p *Process) error, opts ...Option) error {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if p.Config.NATSURL == "" {
		return errors.New("POSTBACK_NATS_URL is required (postback-standalone embeds a server; this binary does not)")
	}
	telemetry.LogErrors(p.Log) // exporter errors as JSON lines, not plain text
	tel, err := telemetry.Setup(ctx, telemetry.Options{ServiceName: p.Name, Version: p.Version})
	if err != nil {
		return err
	}
	tel.Install()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tel.Shutdown(sctx)
	}()
	p.Telemetry = tel
	p.NATS, err = nats.Connect(p.Config.NATSURL, append(stream.ClientOptions(p.Name, p.Log), p.Config.NATSOptions()...)...)
	if err != nil {
		return fmt.Errorf("connect to NATS %s: %w", stream.RedactURLs(p.Config.NATSURL), err)
	}
	defer p.NATS.Close()
	if p.JetStream, err = stream.New(p.NATS); err != nil {
		return err
	}
	p.Probes = health.New()
	p.Probes.Add("nats", health.NATS(p.NATS))
	p.Probes.Add("streams", func(ctx context.Context) error { return stream.Present(ctx, p.JetStream) })
	for _, f := range o.probes {
		f(p.Probes)
	}
	mux := tel.Mux()
	p.Mux = mux
	if p.Config.PProf {
		health.MountPProf(mux)
	}
	go func() {
		if err := health.Serve(ctx, p.Config.HTTPAddr, p.Probes.Handler(mux), nil); err != nil {
			p.Log.Error("health server stopped", "error", err)
		}
	}()
	p.Log.Info(p.Name+" starting", "version", p.Version, "traces", tel.Traces, "metrics", tel.Metrics)
	return fn(ctx, p)
}
