// Command postback-standalone runs all of Postback in one process (see
// package standalone). Configuration: the POSTBACK_* environment variables
// or the same names as flags (--grpc-addr, --nats-url, …).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/postback-dev/postback/pkg/process"
	"github.com/postback-dev/postback/pkg/stream"
	"github.com/postback-dev/postback/pkg/telemetry"
	"github.com/postback-dev/postback/services/standalone"
)

var version = "dev"

// memoryLimit is standalone's soft memory limit unless GOMEMLIMIT is set.
// Most of standalone's heap is the embedded nats-server's message-block
// buffers (4-8 MB each, pooled and cached for seconds), so under a burst
// the heap target of GOGC alone lets the process grow without bound; with
// this limit the collector runs earlier instead. It was 256 MiB, which
// no longer held the benchmark's bursts near 300 MB (470 MB peak RSS with
// the history store) and cost a seventh of the process's CPU in
// collections; at 512 MiB bursts run about 9% faster for a peak of about
// 720 MB, and the delivery-log benchmark stays at 176-234 MB (docs/
// benchmarks.md, nineteenth round). Set GOMEMLIMIT lower on a small box,
// higher for larger backlogs.
const memoryLimit = 512 << 20

func main() {
	process.TuneGC()
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
		debug.SetMemoryLimit(memoryLimit)
	}
	// Every setting is checked before anything starts: a bad one is one
	// line on stderr and exit code 2.
	cfg := process.LoadConfig("postback-standalone")
	log := cfg.Logger()
	telemetry.LogErrors(log) // exporter errors as JSON lines, not plain text
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := standalone.Run(ctx, standalone.Config{Config: cfg, Version: version, Logger: log,
		Ready: func(a standalone.Addrs) {
			// The embedded server's URL carries the admin's password: it
			// is printed redacted (the passwords are in the data dir's
			// nats-credentials file, 0600).
			fmt.Printf("postback %s ready: grpc %s, http %s, nats %s\n", version, a.GRPC, a.HTTP, stream.RedactURLs(a.NATS))
		}})
	if err != nil {
		log.Error("postback-standalone stopped", "error", err)
		os.Exit(1)
	}
}
