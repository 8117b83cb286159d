// Package health serves a process's probes: /healthz (the process is alive)
// and /readyz (every dependency check passes: NATS, Redis when configured,
// streams present). Other handlers (/metrics) can be mounted beside them.
package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// Check reports a dependency's state: nil when ready.
type Check func(ctx context.Context) error

// Probes is a set of named readiness checks.
type Probes struct {
	mu     sync.RWMutex
	checks map[string]Check
}

// New returns an empty set of probes.
func New() *Probes { return &Probes{checks: map[string]Check{}} }

// Add registers a named check.
func (p *Probes) Add(name string, c Check) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.checks[name] = c
}

// Expect registers name as a check that fails, saying reason, until a
// check of that name is added. A caller that serves /readyz before the
// part that adds a check has started (the gateway adds "grpc" once its
// listener is bound) expects it first, so that /readyz cannot pass in
// between.
func (p *Probes) Expect(name, reason string) {
	p.Add(name, func(context.Context) error { return errors.New(reason) })
}

// Ready runs every check and returns the failures by name.
func (p *Probes) Ready(ctx context.Context) map[string]error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	failed := map[string]error{}
	for name, c := range p.checks {
		if err := c(ctx); err != nil {
			failed[name] = err
		}
	}
	return failed
}

// Handler serves /healthz and /readyz, and mux's other routes.
func (p *Probes) Handler(mux *http.ServeMux) http.Handler {
	if mux == nil {
		mux = http.NewServeMux()
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		failed := p.Ready(ctx)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if len(failed) == 0 {
			fmt.Fprintln(w, "ready")
			return
		}
		names := make([]string, 0, len(failed))
		for n := range failed {
			names = append(names, n)
		}
		sort.Strings(names)
		var b strings.Builder
		for _, n := range names {
			fmt.Fprintf(&b, "%s: %v\n", n, failed[n])
		}
		http.Error(w, "not ready\n"+b.String(), http.StatusServiceUnavailable)
	})
	return mux
}

// Serve serves h on addr until ctx ends. ready, when set, gets the bound address.
func Serve(ctx context.Context, addr string, h http.Handler, ready func(net.Addr)) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	if ready != nil {
		ready(lis.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	select {
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
		return nil
	case err := <-errc:
		return fmt.Errorf("serve http on %s: %w", addr, err)
	}
}
