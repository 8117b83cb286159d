// Command postback-renderer runs the renderer on its own.
package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"

	"github.com/postback-dev/postback/pkg/config"
	"github.com/postback-dev/postback/pkg/health"
	"github.com/postback-dev/postback/services/renderer"
)

func main() {
	cfg, err := config.Load("postback-renderer", os.Args[1:], os.Getenv, os.Stderr)
	if err != nil {
		os.Exit(2)
	}
	log := cfg.Logger().With("service", "renderer")
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
		go func() { _ = health.Serve(ctx, cfg.HTTPAddr, health.New().Handler(nil), nil) }()
		return renderer.Run(ctx, renderer.Config{NATSURL: cfg.NATSURL, Layout: layout, Logger: log})
	}()
	if err != nil {
		log.Error("postback-renderer stopped", "error", err)
		os.Exit(1)
	}
}
