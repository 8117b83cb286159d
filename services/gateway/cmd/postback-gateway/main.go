// Command postback-gateway runs the gRPC front door on its own.
package main

import (
	"context"
	"errors"
	"log/slog"
	"net"

	"github.com/postback-dev/postback/pkg/auth"
	"github.com/postback-dev/postback/pkg/config"
	"github.com/postback-dev/postback/pkg/dispatch"
	"github.com/postback-dev/postback/pkg/process"
	"github.com/postback-dev/postback/services/gateway"
)

var version = "dev"

func main() {
	process.Main("postback-gateway", version, run, process.WithProbes(gateway.ExpectServing))
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

func run(ctx context.Context, p *process.Process) error {
	cfg := p.Config
	layout, err := cfg.Layout()
	if err != nil {
		return err
	}
	keyring, err := cfg.Keyring(false)
	if err != nil {
		return err
	}
	authn, err := authenticator(cfg, p.Log)
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
	store, err := cfg.History(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	tel := p.Telemetry
	return gateway.Run(ctx, gateway.Config{
		GRPCAddr: cfg.GRPCAddr, NATS: p.NATS, Layout: layout, Keyring: keyring, History: store, Auth: authn, TLS: serverTLS,
		Dispatcher: dispatch.New(dispatch.Options{Allow: allow, Version: version, TracerProvider: tel.TracerProvider}),
		Logger:     p.Log, ServerOptions: append(tel.GRPCServerOptions(), gateway.PublishSpans(tel.TracerProvider, tel.MeterProvider)), Readiness: p.Probes, HTTPMux: p.Mux,
		Ready: func(a net.Addr) { p.Log.Info("postback-gateway ready", "grpc_addr", a.String(), "version", version) },
	})
}
