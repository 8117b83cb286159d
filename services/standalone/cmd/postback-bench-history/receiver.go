package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// receiver is the brand's server on loopback: it answers every request 200
// at once and counts the distinct deliveries (Postback-Delivery-Id) each
// path got.
type receiver struct {
	addr    string
	srv     *http.Server
	mu      sync.Mutex
	byPath  map[string]map[string]bool
	arrived chan struct{} // one send per request, never blocking
}

func startReceiver() (*receiver, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &receiver{addr: l.Addr().String(), byPath: map[string]map[string]bool{}, arrived: make(chan struct{}, 1)}
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = r.srv.Serve(l) }()
	return r, nil
}

func (r *receiver) close() { _ = r.srv.Close() }

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	_, _ = io.Copy(io.Discard, req.Body)
	path := strings.TrimPrefix(req.URL.Path, "/")
	if id := req.Header.Get("Postback-Delivery-Id"); id != "" {
		r.mu.Lock()
		ids := r.byPath[path]
		if ids == nil {
			ids = map[string]bool{}
			r.byPath[path] = ids
		}
		ids[id] = true
		r.mu.Unlock()
	}
	select {
	case r.arrived <- struct{}{}:
	default:
	}
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "OK")
}

// distinct is how many distinct deliveries path has got.
func (r *receiver) distinct(path string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.byPath[path])
}

// waitFor blocks until path has got want distinct deliveries, limit passes
// or ctx ends, and returns how many it has.
func (r *receiver) waitFor(ctx context.Context, path string, want int, limit time.Duration) int {
	deadline := time.Now().Add(limit)
	for {
		n := r.distinct(path)
		if n >= want || time.Now().After(deadline) || ctx.Err() != nil {
			return n
		}
		select {
		case <-r.arrived:
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
		}
	}
}
