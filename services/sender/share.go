package sender

// An endpoint's share of the sender's workers.
//
// A worker that sends a postback waits for the brand's server, up to the
// endpoint's timeout. Without a bound, one server that answers slowly (or
// never) with a backlog queued would hold every worker, and every other
// brand's postbacks would wait behind it. So each endpoint has a number of
// places, its requests in flight at once in this sender (the endpoint's
// max_in_flight, by default an eighth of the workers, never more than half):
//
//   - a job whose endpoint has a free place takes it and is sent; while
//     the endpoint answers fast (shareFast) and sets no max_in_flight of
//     its own, it has up to half the workers' places, so one endpoint's
//     burst is not slowed down for nothing: the share is there for
//     servers that are slow;
//   - a job whose endpoint is full waits in the worker for the next place
//     only when that wait is expected to be short (maxWait): the expected
//     wait is the endpoint's request time (an average of its recent
//     requests, or the age of its oldest request in flight if that is
//     longer) times the jobs ahead of it over its places (its share, or
//     its requests in flight when it holds more: each that ends hands its
//     place to the next job waiting). A fast endpoint's burst so queues
//     for a moment in the workers; a slow one's does not. Until one of
//     an endpoint's requests has ended, no more of its jobs wait than it
//     has places: its request time is then only the age of its oldest
//     request, a few milliseconds when its backlog arrives, and without
//     the bound its jobs filled every worker, each waiting out maxWait
//     for a place its server held for 9 s, while every other endpoint's
//     jobs waited for a worker (docs/benchmarks.md, seventeenth round);
//   - any other job is deferred: handed to a JetStream message schedule that
//     fires it when its turn is expected, booked one request time over the
//     places after the endpoint's last booking (a job that would be booked
//     more than maxDefer ahead is looked at again at a random time in the
//     second half of maxDefer, so that those jobs do not all come back at
//     once), and acked. It holds no worker and no place in
//     the consumer's ack-pending window while it waits, so the consumer goes
//     on handing out other endpoints' jobs. When it fires and finds the
//     endpoint still full, it is deferred again: nothing is lost, it only
//     waits longer.
//
// Places are counted per sender process: with several replicas an endpoint
// can have that many places in each. The count is memory only; a crash
// frees a process's places with it.

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/postback-dev/postback/pkg/stream"
)

// Defaults of the shares.
const (
	// shareMaxWait is the longest a worker waits for a place. Deferring a
	// job costs far more than a short wait (a schedule and a record
	// written, the job read again when it fires): a burst to a fast
	// endpoint, whose places free every few milliseconds, must queue in
	// the workers, not be deferred. Only an endpoint whose request time
	// over its places is longer than this defers at once.
	shareMaxWait = 250 * time.Millisecond
	// shareMaxDefer is the furthest ahead a deferred job is booked: it is
	// looked at again by then, so a server that speeds up is used again
	// soon, whatever was booked behind it.
	shareMaxDefer = 30 * time.Second
	// shareFast is the request time up to which an endpoint is fast: its
	// share widens (to half the workers, unless the endpoint sets its own
	// max_in_flight), so that one endpoint's burst is sent as fast as the
	// sender can. Once its oldest request in flight is older than this,
	// it has its usual share again: a fast server that stops answering
	// holds at most the wide share, for at most its timeout.
	shareFast = 50 * time.Millisecond
	// shareMinSpacing keeps the bookings of an endpoint whose request time
	// is tiny from all firing at once (one whose request time is not known
	// yet is spaced by shareUnknown). Deferred jobs come back no faster
	// than this, so it must not be much slower than the sender: at 10 ms, a
	// burst's jobs deferred in a moment of CPU starvation came back at
	// 100/s, seconds after the rest of the burst (docs/benchmarks.md,
	// twelfth round).
	shareMinSpacing = time.Millisecond
	// shareUnknown is the request time assumed before any is known.
	shareUnknown = time.Second
	// shareSweepAt is how many endpoints are tracked before idle ones are
	// forgotten (with their request times: an endpoint is kept while idle
	// so that a slow one is known as slow when its next burst comes).
	shareSweepAt = 10000
)

// shares tracks every endpoint's places in this sender.
type shares struct {
	now      func() time.Time
	maxWait  time.Duration
	maxDefer time.Duration

	mu         sync.Mutex
	byEndpoint map[string]*share
}

// share is one endpoint's places.
type share struct {
	started     map[uint64]time.Time // the requests in flight, by place id
	nextID      uint64
	waiting     []*waiter // oldest first
	average     time.Duration
	bookedUntil time.Time
}

type waiter struct {
	granted chan uint64 // the place id handed over; buffered, written once
}

func newShares() *shares {
	return &shares{now: time.Now, maxWait: shareMaxWait, maxDefer: shareMaxDefer, byEndpoint: map[string]*share{}}
}

// place is a held place of an endpoint; done gives it back.
type place struct {
	s        *shares
	endpoint string
	id       uint64
}

// take gets one of the endpoint's places, waiting for one only when the
// wait is expected to be short; ok is false when the job should be
// deferred instead. The endpoint has limit places, or widest while it is
// fast (see share).
func (s *shares) take(ctx context.Context, endpointID string, limit, widest int) (p place, ok bool) {
	limit = max(limit, 1)
	now := s.now()
	s.mu.Lock()
	sh := s.byEndpoint[endpointID]
	if sh == nil {
		if len(s.byEndpoint) >= shareSweepAt {
			s.sweep(now)
		}
		sh = &share{started: map[uint64]time.Time{}}
		s.byEndpoint[endpointID] = sh
	}
	free := func() bool { return len(sh.started) < limit && len(sh.waiting) == 0 }
	if !free() {
		// Past the usual share: how fast the endpoint is decides (one scan
		// of its requests in flight, and none while it is within its share).
		rt := sh.requestTime(now)
		if widest > limit && sh.average > 0 && rt <= shareFast {
			limit = widest
		}
		if !free() {
			places := sh.freeing(limit)
			if sh.average == 0 && len(sh.waiting) >= places {
				// None of its requests has ended yet: their age says they
				// are fast, and a new endpoint's backlog would hold every
				// worker until the waits ran out. No longer a line than
				// one round of its requests until one has ended.
				s.mu.Unlock()
				return place{}, false
			}
			return s.wait(ctx, sh, endpointID, rt*time.Duration(len(sh.waiting)+1)/time.Duration(places))
		}
	}
	id := sh.start(now)
	s.mu.Unlock()
	return place{s, endpointID, id}, true
}

// wait queues for the endpoint's next place when the expected wait is
// short enough; s.mu is held on entry and released.
func (s *shares) wait(ctx context.Context, sh *share, endpointID string, expected time.Duration) (place, bool) {
	if expected > s.maxWait {
		s.mu.Unlock()
		return place{}, false
	}
	w := &waiter{granted: make(chan uint64, 1)}
	sh.waiting = append(sh.waiting, w)
	s.mu.Unlock()
	resume := stream.Waiting(ctx) // the wait takes no CPU: it holds a worker, not the partition's share
	defer resume()

	timer := time.NewTimer(s.maxWait)
	defer timer.Stop()
	select {
	case id := <-w.granted:
		return place{s, endpointID, id}, true
	case <-timer.C:
	case <-ctx.Done():
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case id := <-w.granted: // handed over just as the wait ended
		return place{s, endpointID, id}, true
	default:
	}
	for i, x := range sh.waiting {
		if x == w {
			sh.waiting = append(sh.waiting[:i], sh.waiting[i+1:]...)
			break
		}
	}
	return place{}, false
}

// done gives the place back after a request that took took (0: no request
// was sent), handing it to the oldest waiting worker if there is one.
func (p place) done(took time.Duration) {
	if p.s == nil {
		return
	}
	s := p.s
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	sh := s.byEndpoint[p.endpoint]
	if sh == nil {
		return
	}
	if _, held := sh.started[p.id]; !held {
		return // given back already
	}
	delete(sh.started, p.id)
	if took > 0 {
		if sh.average == 0 {
			sh.average = took
		} else {
			sh.average = (7*sh.average + took) / 8
		}
	}
	if len(sh.waiting) > 0 {
		w := sh.waiting[0]
		sh.waiting = sh.waiting[1:]
		w.granted <- sh.start(now)
	}
}

// later books the time a deferred job of the endpoint should be looked at
// again: its expected turn after the jobs already booked, at most maxDefer
// ahead.
func (s *shares) later(endpointID string, limit int) time.Time {
	limit = max(limit, 1)
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	sh := s.byEndpoint[endpointID]
	if sh == nil {
		sh = &share{started: map[uint64]time.Time{}}
		s.byEndpoint[endpointID] = sh
	}
	spacing := max(sh.requestTime(now)/time.Duration(sh.freeing(limit)), shareMinSpacing)
	at := sh.bookedUntil
	if at.Before(now) {
		at = now
	}
	at = at.Add(spacing)
	if latest := now.Add(s.maxDefer); at.After(latest) {
		// Past the horizon: looked at again somewhere in its second half,
		// so the jobs beyond it do not all come back at once.
		return latest.Add(-time.Duration(rand.Int64N(int64(s.maxDefer/2) + 1)))
	}
	sh.bookedUntil = at
	return at
}

// inFlight is how many of the endpoint's places are held.
func (s *shares) inFlight(endpointID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sh := s.byEndpoint[endpointID]; sh != nil {
		return len(sh.started)
	}
	return 0
}

// freeing is how many places free up, one request time after another, for
// the jobs that wait or are deferred: the endpoint's share, or the requests
// it has in flight when there are more (a fast endpoint's burst holds its
// widened share when its share narrows again: a server that slowed down
// for a moment, or a sender short of CPU for one, must not have the jobs
// behind it deferred as if its requests were spread over the narrow
// share; each request that ends hands its place to the next waiting job).
func (sh *share) freeing(limit int) int {
	return max(limit, len(sh.started), 1)
}

func (sh *share) start(now time.Time) uint64 {
	sh.nextID++
	sh.started[sh.nextID] = now
	return sh.nextID
}

// requestTime is how long a request of the endpoint is expected to take:
// the average of its recent requests, or the age of its oldest request in
// flight when that is longer (a server that has not answered yet is at
// least that slow); shareUnknown when nothing is known.
func (sh *share) requestTime(now time.Time) time.Duration {
	if sh.average == 0 && len(sh.started) == 0 {
		return shareUnknown
	}
	t := sh.average
	for _, at := range sh.started {
		t = max(t, now.Sub(at))
	}
	return t
}

// sweep forgets endpoints with nothing in flight, waiting or booked.
func (s *shares) sweep(now time.Time) {
	for id, sh := range s.byEndpoint {
		if len(sh.started) == 0 && len(sh.waiting) == 0 && !now.Before(sh.bookedUntil) {
			delete(s.byEndpoint, id)
		}
	}
}
