// Command postback-gateway runs the gRPC front door on its own.
package main

import (
	"context"
	"errors"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/postback-dev/postback/pkg/config"
	"github.com/postback-dev/postback/pkg/dispatch"
	"github.com/postback-dev/postback/pkg/health"
	"github.com/postback-dev/postback/services/gateway"
)

var version = "dev"

func main() {
	cfg, err := config.Load("postback-gateway", os.Args[1:], os.Getenv, os.Stderr)
	if err != nil {
		os.Exit(2)
	}
	log := cfg.Logger().With("service", "gateway")
	if err := run(cfg, log); err != nil {
		log.Error("postback-gateway stopped", "error", err)
		os.Exit(1)
	}
}

func run(cfg config.Config, log interface {
	Info(string, ...any)
	Warn(string, ...any)
}) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cfg.NATSURL == "" {
		return errors.New("POSTBACK_NATS_URL is required (postback-standalone embeds a server; this binary does not)")
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
	probes := health.New()
	go func() { _ = health.Serve(ctx, cfg.HTTPAddr, probes.Handler(nil), nil) }()
	return gateway.Run(ctx, gateway.Config{
		GRPCAddr: cfg.GRPCAddr, NATSURL: cfg.NATSURL, Layout: layout, Keyring: keyring,
		Dispatcher: dispatch.New(dispatch.Options{Allow: allow, Version: version}), Logger: cfg.Logger().With("service", "gateway"),
		Ready: func(a net.Addr) { log.Info("postback-gateway ready", "grpc_addr", a.String(), "version", version) },
	})
}
