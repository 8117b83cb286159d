package main

import (
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// tally is what one scenario's endpoint received.
type tally struct {
	mu        sync.Mutex
	ids       map[string]int
	distinct  int // len(ids), kept as requests arrive: counts() is polled
	requests  int // sum over ids
	latencies []time.Duration
	first     time.Time
	last      time.Time
	arrived   chan struct{} // one send per request, never blocking
}

func newTally() *tally {
	return &tally{ids: make(map[string]int, 1<<15), arrived: make(chan struct{}, 1)}
}

func (t *tally) add(id string, sent int64, now time.Time) {
	t.mu.Lock()
	if id != "" {
		n := t.ids[id]
		t.ids[id] = n + 1
		if n == 0 {
			t.distinct++
		}
		t.requests++
	}
	if sent > 0 {
		t.latencies = append(t.latencies, now.Sub(time.Unix(0, sent)))
	}
	if t.first.IsZero() {
		t.first = now
	}
	t.last = now
	t.mu.Unlock()
	select {
	case t.arrived <- struct{}{}:
	default:
	}
}

// counts are distinct deliveries, requests and duplicates. The scenarios
// poll it on every arrival, so it reads counters kept by add instead of
// walking ids (which made the poll quadratic and took a third of the bench
// process's CPU from the pipeline it measures).
func (t *tally) counts() (distinct, requests, dupes int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.distinct, t.requests, t.requests - t.distinct
}

func (t *tally) percentiles() (p50, p90, p99, maxLatency time.Duration) {
	t.mu.Lock()
	l := slices.Clone(t.latencies)
	t.mu.Unlock()
	if len(l) == 0 {
		return
	}
	slices.Sort(l)
	at := func(q float64) time.Duration { return l[min(len(l)-1, int(q*float64(len(l))))] }
	return at(0.50), at(0.90), at(0.99), l[len(l)-1]
}

// receiver is the brands' server: /r/<scenario>?t=<publish unix nanos>.
type receiver struct {
	addr   string
	mu     sync.Mutex
	tallys map[string]*tally
	srv    *http.Server
}

func startReceiver() (*receiver, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &receiver{addr: l.Addr().String(), tallys: map[string]*tally{}}
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = r.srv.Serve(l) }()
	return r, nil
}

func (r *receiver) tally(scenario string) *tally {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.tallys[scenario]
	if !ok {
		t = newTally()
		r.tallys[scenario] = t
	}
	return t
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	now := time.Now()
	_, _ = io.Copy(io.Discard, req.Body)
	scenario := strings.TrimPrefix(req.URL.Path, "/r/")
	sent, _ := strconv.ParseInt(req.URL.Query().Get("t"), 10, 64)
	id := req.Header.Get("Postback-Delivery-Id")
	if id == "" {
		id = req.Header.Get("X-Raw-Id")
	}
	r.tally(scenario).add(id, sent, now)
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "OK")
}
