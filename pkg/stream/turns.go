package stream

// How a pool of workers is shared between the consumers it serves (the
// partitions of one stream's work), so that one account's burst does not
// slow down everyone else's postbacks.
//
// Taking turns (WorkAll) decides the order in which a free worker takes
// the consumers' messages: one from each consumer with a message waiting,
// in turn. That is not enough on its own. A burst that arrives while the
// pool is otherwise idle fills every worker, and most of what a worker
// does is wait for NATS to acknowledge what it published; each
// acknowledgement wakes one of them. With hundreds of handlers of one
// burst runnable at once, a message of another partition waits behind all
// of them for the CPU at every hop through the pipeline. Measured on two
// cores (docs/benchmarks.md, tenth round): 60 s of goroutine scheduling
// delay summed over 2 s of taking in a 5,000-event backlog, and a steady
// 200/s beside it went from a p99 of 2 ms to 33-53 ms.
//
// So a consumer's handlers are also bounded while it crowds another: a
// consumer may run at most Share handlers at once while some other
// consumer is light, that is, has had a message in the last Window and had
// fewer than Share more waiting behind it then (it keeps up with its
// flow). A consumer that is alone (the whole pool for one burst), or
// beside others that are all as backlogged as it is, runs as many as there
// are workers: the rule costs a lone burst nothing, and gives a light
// consumer an almost idle machine beside a burst, which then runs at the
// pace Share handlers allow. (Whether a consumer is light is judged by its
// backlog, not by its handlers running: a light flow may have a few
// handlers running at a moment without losing its place.)
//
// The renderer's handlers use the CPU or wait for NATS. The sender's may
// also wait for seconds on a brand's server; counted as running, a slow
// server's requests in flight would hold its partition to its share and
// stall every other endpoint of the partition. So a handler says when it
// waits on something that takes no CPU (Waiting): it stops counting until
// it resumes, and resuming never waits for the rule (what it does then,
// record the answer and ack, is not held back behind new messages).
//
// Failure policy: the rule only delays handing a message to a worker; the
// message stays held (and signalled in progress) meanwhile, so nothing is
// lost or handed out twice. Clock: now is injected (tests use a fake one).

import (
	"context"
	"runtime"
	"sync"
	"time"
)

// Pool is how many handlers WorkAll runs at once, and how they are shared
// between its consumers.
type Pool struct {
	// Workers is how many handlers run at once in all (at least 1).
	Workers int
	// Share, when positive and below Workers, is how many handlers one
	// consumer may run at once while another consumer is light (see
	// turns.go). Zero: no bound beyond Workers.
	Share int
	// Window is how recently a consumer must have had a message to count
	// as active (0: DefaultShareWindow).
	Window time.Duration
}

// DefaultShare is the Share the renderer and the sender use by default:
// two handlers in hand per CPU. A handler alternates between the CPU and
// waiting for NATS, so this keeps the cores busy with a burst and no more
// than a few of its handlers ahead of another partition's message in the
// run queue.
func DefaultShare() int { return 2 * runtime.GOMAXPROCS(0) }

// DefaultShareWindow is how long a consumer counts as active after its
// last message: a flow of one message a second or more keeps its place.
const DefaultShareWindow = time.Second

// turns applies a Pool's share rule to its consumers.
type turns struct {
	share  int
	window time.Duration
	now    func() time.Time

	mu      sync.Mutex
	running []int       // handlers running, by consumer
	last    []time.Time // when each consumer last had a message admitted
	backlog []int       // messages waiting behind it then, by consumer
	blocked []bool      // the consumer's next message waits on the rule
	waiting int         // admissions blocked on the rule
	changed chan struct{}
}

func newTurns(p Pool, consumers int, now func() time.Time) *turns {
	t := &turns{share: p.Share, window: p.Window, now: now,
		running: make([]int, consumers), last: make([]time.Time, consumers), backlog: make([]int, consumers),
		blocked: make([]bool, consumers), changed: make(chan struct{})}
	if t.share <= 0 || t.share >= p.Workers {
		t.share = 0 // no bound
	}
	if t.window <= 0 {
		t.window = DefaultShareWindow
	}
	return t
}

// admit waits until consumer i may run one more handler, and counts it
// as running; backlog is how many of its messages wait behind this one.
// False when ctx ended first.
func (t *turns) admit(ctx context.Context, i, backlog int) bool {
	for {
		t.mu.Lock()
		now := t.now()
		if t.share == 0 || t.running[i] < t.share || !t.lightBeside(i, now) {
			t.running[i]++
			t.last[i], t.backlog[i], t.blocked[i] = now, backlog, false
			t.mu.Unlock()
			return true
		}
		t.blocked[i] = true
		t.waiting++
		changed := t.changed
		t.mu.Unlock()
		// Looked at again when a handler ends, and at least every quarter
		// of the window, when a light consumer may have gone quiet.
		timer := time.NewTimer(t.window / 4)
		select {
		case <-changed:
		case <-timer.C:
		case <-ctx.Done():
		}
		timer.Stop()
		t.mu.Lock()
		t.waiting--
		t.mu.Unlock()
		if ctx.Err() != nil {
			return false
		}
	}
}

// done counts one handler of consumer i as ended.
func (t *turns) done(i int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.running[i]--
	if t.waiting > 0 {
		close(t.changed)
		t.changed = make(chan struct{})
	}
}

// resume counts a handler of consumer i that stopped waiting (Waiting)
// as running again. It does not wait for the rule: the handler was
// admitted once, and what it does after its wait (record the answer, ack)
// must not be held back behind the consumer's new messages.
func (t *turns) resume(i int) {
	t.mu.Lock()
	t.running[i]++
	t.mu.Unlock()
}

// Waiting tells the pool running ctx's handler (WorkShared) that the
// handler is about to wait for something outside the process that takes
// no CPU (a brand's server, a rate limit's slot): until it calls resume,
// it does not count toward its consumer's share, so a consumer whose
// handlers mostly wait on slow servers is not held to its share of the
// pool by them, and the share bounds only the handlers that compete for
// the CPU. resume is called from the handler's goroutine; a second call,
// a wait inside a wait, and a handler not run by a shared pool get a
// resume that does nothing. A handler that ends without resuming (a
// panic) is counted out once (turnMark.end).
func Waiting(ctx context.Context) (resume func()) {
	m, _ := ctx.Value(turnKey{}).(*turnMark)
	if m == nil || m.t.share == 0 || m.waiting { // not shared, or already waiting
		return func() {}
	}
	m.waiting = true
	m.t.done(m.i)
	resumed := false
	return func() {
		if !resumed {
			resumed, m.waiting = true, false
			m.t.resume(m.i)
		}
	}
}

// turnKey is the context key of a handler's turnMark.
type turnKey struct{}

// turnMark is which pool and consumer a handler runs for, and whether it
// is waiting (Waiting). It is used from the handler's goroutine only.
type turnMark struct {
	t       *turns
	i       int
	waiting bool
}

// end counts the handler's end. A handler that ends while waiting (it
// panicked, or returned without resuming) stopped counting when it began
// to wait: counted again, it would give its consumer one more place in
// the share for good.
func (m *turnMark) end() {
	if !m.waiting {
		m.t.done(m.i)
	}
}

// lightBeside reports whether a consumer other than i is light: active
// within the window, with fewer than share messages waiting behind its
// last one and none held back by the rule. t.mu is held.
func (t *turns) lightBeside(i int, now time.Time) bool {
	for j, last := range t.last {
		if j != i && !last.IsZero() && now.Sub(last) < t.window && t.backlog[j] < t.share && !t.blocked[j] {
			return true
		}
	}
	return false
}
