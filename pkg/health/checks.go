package health

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
)

// NATS is a check that nc is connected (it reconnects by itself; while it
// does, the process is not ready).
func NATS(nc *nats.Conn) Check {
	return func(context.Context) error {
		if nc == nil || !nc.IsConnected() {
			return errors.New("not connected")
		}
		return nil
	}
}

// Follow runs the probes at once and then every interval until ctx ends,
// and calls set with the readiness each time it changes (the first time
// too). The gateway uses it to make grpc.health.v1 answer NOT_SERVING while
// /readyz fails.
func (p *Probes) Follow(ctx context.Context, interval time.Duration, set func(ready bool)) {
	if interval <= 0 {
		interval = 5 * time.Second
	}
	check := func(first bool, last bool) bool {
		cctx, cancel := context.WithTimeout(ctx, min(interval, 2*time.Second))
		ready := len(p.Ready(cctx)) == 0
		cancel()
		if ctx.Err() != nil {
			return last
		}
		if first || ready != last {
			set(ready)
		}
		return ready
	}
	last := check(true, false)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			last = check(false, last)
		}
	}
}
