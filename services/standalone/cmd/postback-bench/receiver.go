package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The receiver's behaviours, the first element of a request's path.
const (
	answerOK      = "r"       // 200 at once
	answerSlow    = "slow"    // 200 after slowAnswer, until told to answer at once
	answerEndless = "endless" // 200, then a body that never ends, until told to answer at once
	answerLimited = "limited" // 200 up to limitedRate a second, else 429 (pacingrx.go)
)

const (
	// slowAnswer is just under an endpoint's default timeout (10 s): a
	// sender that waits it out gets every answer, and ties up a worker for
	// as long on each.
	slowAnswer = 9 * time.Second
	// endlessChunk is written every endlessEvery for as long as the client
	// reads; endlessLimit ends the body all the same, long after the
	// largest timeout an endpoint can have (60 s): a sender that enforces
	// it never sees the end, and the loop stays bounded.
	endlessChunk = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n"
	endlessEvery = 10 * time.Millisecond
	endlessLimit = 3 * time.Minute
)

// tally is what one scenario's endpoint received.
type tally struct {
	mu        sync.Mutex
	ids       map[string]int
	distinct  int // len(ids), kept as requests arrive: counts() is polled
	requests  int // sum over ids
	latencies []time.Duration
	sents     []int64 // when each of latencies' postbacks was published, unix ns
	first     time.Time
	last      time.Time
	arrived   chan struct{} // one send per request, never blocking
	// hangUps are requests of a slow or endless answer the client hung up
	// on before the answer was complete; longestHangUp is the longest of
	// them, from arrival to hang-up (for an endless body: the client's
	// timeout).
	hangUps       int
	longestHangUp time.Duration
	// open are the requests held open right now (a slow answer waited
	// for, an endless body being read), by hold number, with their
	// arrival: how many of the sender's workers the endpoint ties up, and
	// for how long.
	open     map[int]time.Time
	nextHold int
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
		t.sents = append(t.sents, sent)
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

// hungUp records a request the client gave up on after d.
func (t *tally) hungUp(d time.Duration) {
	t.mu.Lock()
	t.hangUps++
	t.longestHangUp = max(t.longestHangUp, d)
	t.mu.Unlock()
}

// hold counts a request that arrived at arrived as held open until the
// func it returns is called.
func (t *tally) hold(arrived time.Time) (done func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.open == nil {
		t.open = map[int]time.Time{}
	}
	n := t.nextHold
	t.nextHold++
	t.open[n] = arrived
	return func() {
		t.mu.Lock()
		delete(t.open, n)
		t.mu.Unlock()
	}
}

// held are the requests held open now and how long the oldest has been.
func (t *tally) held(now time.Time) (n int, oldest time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, arrived := range t.open {
		oldest = max(oldest, now.Sub(arrived))
	}
	return len(t.open), oldest
}

// hangUpCounts are the requests the client hung up on and the longest it
// held one.
func (t *tally) hangUpCounts() (n int, longest time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.hangUps, t.longestHangUp
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

// receiver is the brands' server: /<behaviour>/<scenario>?t=<publish unix
// nanos>, where behaviour is answerOK, answerSlow or answerEndless.
type receiver struct {
	addr   string
	mu     sync.Mutex
	tallys map[string]*tally
	// atOnce holds, per scenario, a channel closed when its slow or
	// endless answers are to be given at once (answerAtOnce): per scenario
	// and so per shape, so one shape's switch never reaches the next's.
	atOnce map[string]chan struct{}
	// limited holds, per scenario, the accepted requests of the last
	// second of a rate-limited receiver (pacingrx.go).
	limited map[string]*rateWindow
	srv     *http.Server
}

func startReceiver() (*receiver, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &receiver{addr: l.Addr().String(), tallys: map[string]*tally{}, atOnce: map[string]chan struct{}{}, limited: map[string]*rateWindow{}}
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

// answered is the channel closed when scenario's slow or endless answers
// are to be given at once.
func (r *receiver) answered(scenario string) chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.atOnceLocked(scenario)
}

// answerAtOnce makes scenario's slow and endless answers, those waiting
// and those to come, answers at once.
func (r *receiver) answerAtOnce(scenario string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.atOnceLocked(scenario)
	select {
	case <-c: // already told
	default:
		close(c)
	}
}

// atOnceLocked is scenario's channel of answered; r.mu is held.
func (r *receiver) atOnceLocked(scenario string) chan struct{} {
	c, ok := r.atOnce[scenario]
	if !ok {
		c = make(chan struct{})
		r.atOnce[scenario] = c
	}
	return c
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	now := time.Now()
	_, _ = io.Copy(io.Discard, req.Body)
	behaviour, scenario, _ := strings.Cut(strings.TrimPrefix(req.URL.Path, "/"), "/")
	sent, _ := strconv.ParseInt(req.URL.Query().Get("t"), 10, 64)
	id := req.Header.Get("Postback-Delivery-Id")
	if id == "" {
		id = req.Header.Get("X-Raw-Id")
	}
	t := r.tally(scenario)
	switch behaviour {
	case answerSlow:
		r.answerSlowly(w, req, t, scenario, id, sent, now)
	case answerEndless:
		r.answerEndlessly(w, req, t, scenario, id, sent, now)
	case answerLimited:
		r.answerLimitedly(w, t, scenario, id, sent, now)
	default:
		t.add(id, sent, now)
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "OK")
	}
}

// answerSlowly answers 200 after slowAnswer, or at once when told to. The
// request counts as delivered when it is answered, not when it arrives: a
// sender that gives up before the answer has not delivered it (a hang-up),
// and its next attempt is not a duplicate.
func (r *receiver) answerSlowly(w http.ResponseWriter, req *http.Request, t *tally, scenario, id string, sent int64, arrived time.Time) {
	defer t.hold(arrived)()
	timer := time.NewTimer(slowAnswer)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-r.answered(scenario):
	case <-req.Context().Done():
		t.hungUp(time.Since(arrived))
		return
	}
	t.add(id, sent, time.Now())
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "OK")
}

// answerEndlessly writes a 200 status and then a chunk every endlessEvery
// until the client hangs up (a failed write or the request's context),
// endlessLimit passes or it is told to answer at once (the body then ends).
// The request counts as delivered as it arrives: its status says success,
// and whether the sender waits for a body that never ends is the question.
func (r *receiver) answerEndlessly(w http.ResponseWriter, req *http.Request, t *tally, scenario, id string, sent int64, arrived time.Time) {
	t.add(id, sent, arrived)
	defer t.hold(arrived)()
	rc := http.NewResponseController(w)
	w.WriteHeader(http.StatusOK)
	if rc.Flush() != nil {
		t.hungUp(time.Since(arrived))
		return
	}
	atOnce := r.answered(scenario)
	tick := time.NewTicker(endlessEvery)
	defer tick.Stop()
	limit := time.NewTimer(endlessLimit)
	defer limit.Stop()
	for {
		select {
		case <-tick.C:
		case <-atOnce:
			return
		case <-limit.C:
			return
		case <-req.Context().Done():
			t.hungUp(time.Since(arrived))
			return
		}
		if _, err := io.WriteString(w, endlessChunk); err != nil || rc.Flush() != nil {
			t.hungUp(time.Since(arrived))
			return
		}
	}
}

// writeTimeline writes one line per postback received: when it was
// published (unix nanoseconds) and how long it took to arrive
// (microseconds), in arrival order: where in a scenario the slow ones were.
func (t *tally) writeTimeline(path string) error {
	t.mu.Lock()
	var b strings.Builder
	for i, l := range t.latencies {
		fmt.Fprintf(&b, "%d %d\n", t.sents[i], l.Microseconds())
	}
	t.mu.Unlock()
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
