// Command postbackctl is the command line of the Postback gRPC API
// (docs/api.md): event types, endpoints, events and deliveries.
//
// Connection settings come from flags, then the environment, then a config
// file (flag > env > file > default):
//
//	--addr      POSTBACK_ADDR         addr      (default 127.0.0.1:7070)
//	--token     POSTBACK_TOKEN        token     (never printed)
//	--tls       POSTBACK_TLS          tls
//	--tls-ca    POSTBACK_TLS_CA       tls_ca
//	--tls-cert  POSTBACK_CLIENT_CERT  tls_cert  (client certificate, mutual TLS)
//	--tls-key   POSTBACK_CLIENT_KEY   tls_key
//	--insecure  POSTBACK_INSECURE     insecure  (plaintext)
//	--output    POSTBACK_OUTPUT       output    (table, json or yaml)
//	--config    POSTBACK_CONFIG                 (default $XDG_CONFIG_HOME/postback/config.yaml)
//
// Relative paths in the config file are relative to its folder.
//
// Exit codes: 0 ok; 1 a server or other error; 2 usage or bad input; 3 not
// found; 4 unauthenticated or permission denied. Errors go to stderr as
// "postbackctl: <message>".
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}
