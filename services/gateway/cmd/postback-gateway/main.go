// Command postback-gateway runs the gRPC front door on its own.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/postback-dev/postback/pkg/auth"
	"github.com/postback-dev/postback/pkg/config"
	"github.com/postback-dev/postback/pkg/dispatch"
	"github.com/postback-dev/postback/pkg/health"
	"github.com/postback-dev/postback/pkg/stream"
	"github.com/postback-dev/postback/pkg/telemetry"
	"github.com/postback-dev/postback/services/gateway"
)

var version = "dev"

func main() {
	cfg, err := config.Load("postback-gateway", os.Args[1:], os.Getenv, os.Stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "postback-gateway:", err)
		}
		os.Exit(2)
	}
	log := cfg.Logger().With("service", "gateway")
	if err := run(cfg, log); err != nil {
		log.Error("postback-gateway stopped", "error", err)
		os.Exit(1)
	}
}

// authenticator is the API's authentication: POSTBACK_TOKENS, or, only with
// POSTBACK_INSECURE_NO_AUTH=true, none at all (every call an operator). A
// gateway is meant to be reached over a network, so without tokens it does
// not start unless told so explicitly.
func authenticator(cfg config.Config, log *slog.Logger) (*auth.Authenticator, error) {
	tokens, err := cfg.AuthTokens()
	if err != nil {
		return nil, err
	}
	if tokens.Len() == 0 {
		if !cfg.InsecureNoAuth {
			return nil, errors.New("POSTBACK_TOKENS is required (token=account pairs, or file:/path); " +
				"set POSTBACK_INSECURE_NO_AUTH=true (--insecure-no-auth) to accept every call without authentication")
		}
		log.Warn("POSTBACK_INSECURE_NO_AUTH is set and no API tokens are configured: every gRPC call is accepted as an operator, without authentication")
	} else if cfg.InsecureNoAuth {
		log.Warn("POSTBACK_INSECURE_NO_AUTH is ignored: API tokens are configured")
	}
	return auth.New(tokens, log), nil
}

func run(cfg config.Config, log *slog.Logger) error {
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
	authn, err := authenticator(cfg, log)
	if err != nil {
		return err
	}
	serverTLS, err := cfg.ServerTLS()
	if err != nil {
		return err
	}
	allow, err := cfg.Allow()
	if err != nil {
		return err
	}
	tel, err := telemetry.Setup(ctx, telemetry.Options{ServiceName: "postback-gateway", Version: version})
	if err != nil {
		return err
	}
	tel.Install()
	defer func() {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tel.Shutdown(c)
	}()
	nc, err := nats.Connect(cfg.NATSURL, nats.Name("postback-gateway"), nats.MaxReconnects(-1))
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
	return gateway.Run(ctx, gateway.Config{
		GRPCAddr: cfg.GRPCAddr, NATS: nc, Layout: layout, Keyring: keyring, Auth: authn, TLS: serverTLS,
		Dispatcher: dispatch.New(dispatch.Options{Allow: allow, Version: version, TracerProvider: tel.TracerProvider}),
		Logger:     cfg.Logger().With("service", "gateway"), ServerOptions: tel.GRPCServerOptions(), Readiness: probes,
		Ready: func(a net.Addr) { log.Info("postback-gateway ready", "grpc_addr", a.String(), "version", version) },
	})
}
