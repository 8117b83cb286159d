// Command postback-retry runs the retry service on its own.
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
	"github.com/postback-dev/postback/pkg/health"
	"github.com/postback-dev/postback/pkg/stream"
	"github.com/postback-dev/postback/pkg/telemetry"
	"github.com/postback-dev/postback/services/retry"
)

var version = "dev"

func main() {
	cfg, err := config.Load("postback-retry", os.Args[1:], os.Getenv, os.Stderr)
	if err != nil {
		os.Exit(2)
	}
	log := telemetry.Logger(cfg.Logger()).With("service", "retry")
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
		sched, err := cfg.Schedule()
		if err != nil {
			return err
		}
		tel, err := telemetry.Setup(ctx, telemetry.Options{ServiceName: "postback-retry", Version: version})
		if err != nil {
			return err
		}
		tel.Install()
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = tel.Shutdown(sctx)
		}()
		nc, err := nats.Connect(cfg.NATSURL, nats.Name("postback-retry"), nats.MaxReconnects(-1))
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
		go func() { _ = health.Serve(ctx, cfg.HTTPAddr, probes.Handler(tel.Mux()), nil) }()
		log.Info("postback-retry starting", "version", version, "traces", tel.Traces, "metrics", tel.Metrics)
		return retry.Run(ctx, retry.Config{NATS: nc, Layout: layout, Schedule: sched, Logger: log,
			TracerProvider: tel.TracerProvider, MeterProvider: tel.MeterProvider})
	}()
	if err != nil {
		log.Error("postback-retry stopped", "error", err)
		os.Exit(1)
	}
}
