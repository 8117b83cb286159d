// Command postback-sender runs the sender on its own; several replicas share
// the endpoints' limits through Redis (POSTBACK_REDIS_URL).
package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"

	"github.com/postback-dev/postback/pkg/config"
	"github.com/postback-dev/postback/pkg/dispatch"
	"github.com/postback-dev/postback/pkg/health"
	"github.com/postback-dev/postback/services/sender"
)

var version = "dev"

func main() {
	cfg, err := config.Load("postback-sender", os.Args[1:], os.Getenv, os.Stderr)
	if err != nil {
		os.Exit(2)
	}
	log := cfg.Logger().With("service", "sender")
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
		probes := health.New()
		probes.Add("limiter", lim.Ready)
		go func() { _ = health.Serve(ctx, cfg.HTTPAddr, probes.Handler(nil), nil) }()
		return sender.Run(ctx, sender.Config{NATSURL: cfg.NATSURL, Layout: layout, Limiter: lim,
			Dispatcher: dispatch.New(dispatch.Options{Allow: allow, Version: version}), Keyring: keyring, Logger: log})
	}()
	if err != nil {
		log.Error("postback-sender stopped", "error", err)
		os.Exit(1)
	}
}
