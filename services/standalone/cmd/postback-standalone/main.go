// Command postback-standalone runs all of Postback in one process (see
// package standalone). Configuration: the POSTBACK_* environment variables
// or the same names as flags (--grpc-addr, --nats-url, …).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/postback-dev/postback/pkg/config"
	"github.com/postback-dev/postback/services/standalone"
)

var version = "dev"

func main() {
	cfg, err := config.Load("postback-standalone", os.Args[1:], os.Getenv, os.Stderr)
	if err != nil {
		os.Exit(2)
	}
	log := cfg.Logger()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = standalone.Run(ctx, standalone.Config{Config: cfg, Version: version, Logger: log,
		Ready: func(a standalone.Addrs) {
			fmt.Printf("postback %s ready: grpc %s, http %s, nats %s\n", version, a.GRPC, a.HTTP, a.NATS)
		}})
	if err != nil {
		log.Error("postback-standalone stopped", "error", err)
		os.Exit(1)
	}
}
