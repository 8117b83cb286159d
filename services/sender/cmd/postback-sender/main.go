// Command postback-sender runs the sender on its own; several replicas share
// the endpoints' limits through Redis (POSTBACK_REDIS_URL).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/postback-dev/postback/pkg/config"
	"github.com/postback-dev/postback/pkg/dispatch"
	"github.com/postback-dev/postback/pkg/health"
	"github.com/postback-dev/postback/pkg/stream"
	"github.com/postback-dev/postback/pkg/telemetry"
	"github.com/postback-dev/postback/services/sender"
)

var version = "dev"

func main() {
	cfg, err := config.Load("postback-sender", os.Args[1:], os.Getenv, os.Stderr)
	if err != nil {
		os.Exit(2)
	}
	log := telemetry.Logger(cfg.Logger()).With("service", "sender")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = func() error {
		if cfg.NATSURL == "" {
			return errors.New("POSTBACK_NATS_URL is required")
		}
		layout, err := cfg.Layout()
		if err != nil {
			return err
		}
		keyring, err := cfg.Keyring(false)
		if err != nil {
			return err
		}
		allow, err := cfg.Allow()
		if err != nil {
			return err
		}
		lim, closeLimiter, err := cfg.Limiter()
		if err != nil {
			return err
		}
		defer closeLimiter()
		tel, err := telemetry.Setup(ctx, telemetry.Options{ServiceName: "postback-sender", Version: version})
		if err != nil {
			return err
		}
		tel.Install()
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = tel.Shutdown(sctx)
		}()
		nc, err := nats.Connect(cfg.NATSURL, nats.Name("postback-sender"), nats.MaxReconnects(-1))
		if err != nil {
			return fmt.Errorf("connect to NATS %s: %w", cfg.NATSURL, err)
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		probes := health.New()
		probes.Add("nats", health.NATS(nc))
		probes.Add("streams", func(ctx context.Context) error { return stream.Present(ctx, js) })
		probes.Add("limiter", lim.Ready)
		go func() { _ = health.Serve(ctx, cfg.HTTPAddr, probes.Handler(tel.Mux()), nil) }()
		log.Info("postback-sender starting", "version", version, "traces", tel.Traces, "metrics", tel.Metrics)
		return sender.Run(ctx, sender.Config{NATS: nc, Layout: layout, Limiter: lim,
			Dispatcher: dispatch.New(dispatch.Options{Allow: allow, Version: version, TracerProvider: tel.TracerProvider}),
			Keyring:    keyring, Logger: log, TracerProvider: tel.TracerProvider, MeterProvider: tel.MeterProvider})
	}()
	if err != nil {
		log.Error("postback-sender stopped", "error", err)
		os.Exit(1)
	}
}
