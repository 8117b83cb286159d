package renderer

// The history's PENDING entry of a delivery queued for its first send is
// logged only if the delivery is still waiting a while later.
//
// Why: most deliveries leave DELIVERIES within a second or two of being
// queued, and the sender's final entry then says all the history needs.
// Logging every queued delivery at once cost about 40 µs of CPU per
// postback over the renderer, nats-server and the history writer (a
// PENDING entry encoded, batched, stored, fetched, held and merged), about
// 15% of the whole pipeline in a burst (docs/benchmarks.md). Meanwhile the
// queued job itself stands for the delivery: GetDelivery and ListAttempts
// find it by id at every moment (pkg/inflight).
//
// Design: once its job is stored, a delivery waits here with the job's
// stream sequence. Every After/4, those queued at least After ago are
// looked at per partition: the sender's ack floor of that partition
// (stream.SenderAckFloor: one consumer info per partition) says which have
// left DELIVERIES for good; the sender has logged each of those itself (a
// final entry, or the record of a deferral) before acking its job. The
// others (still queued, in flight, or acked past a floor that an earlier
// job still holds) are logged PENDING through the queued log, batched, as
// before. An entry logged needlessly changes nothing: its version is its
// job's create time, below every change the sender makes, and the store
// keeps the highest version.
//
// Bounds and failure policy: at most maxWaiting deliveries wait here; past
// that, one is logged at once, its event acked only once the entry is
// stored, as if there were no wait. A failed log is tried again at the next
// look. A clean stop looks once more at everything waiting and logs what is
// still queued. A crash loses the waiting entries: such a delivery is
// listed when the sender records it (deferred, retried or ended), and is
// found by id meanwhile. So ListDeliveries lists a queued delivery about
// After (plus the history writer's hold) after it was queued, or when it
// ends if that is sooner.

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/postback-dev/postback/pkg/delivery"
)

// DefaultQueuedAfter is Config.QueuedAfter's default.
const DefaultQueuedAfter = 2 * time.Second

// maxWaiting bounds the deliveries waiting to be logged (a few seconds of
// a burst's rate).
const maxWaiting = 20_000

// queuedLog is what logs a PENDING entry: inflight.QueuedLog.
type queuedLog interface {
	Log(job *delivery.Job, body []byte) (<-chan error, error)
}

// ackFloor is the sender's ack floor of a partition (stream.SenderAckFloor).
type ackFloor func(ctx context.Context, partition string) (uint64, error)

// laterLog holds queued deliveries until they are logged or seen gone.
type laterLog struct {
	log   queuedLog
	floor ackFloor
	after time.Duration
	max   int
	now   func() time.Time
	logf  *slog.Logger

	mu      sync.Mutex
	waiting map[string][]waitingJob // by partition, in the order queued
	n       int
}

// waitingJob is a queued delivery not yet logged: its job's encoding
// alone (bytes the collector need not scan; a burst holds thousands),
// decoded again in the rare case it is logged.
type waitingJob struct {
	seq  uint64 // its job's stream sequence
	at   time.Time
	body []byte
}

func newLaterLog(log queuedLog, floor ackFloor, after time.Duration, logger *slog.Logger) *laterLog {
	return &laterLog{log: log, floor: floor, after: after, max: maxWaiting, now: time.Now, logf: logger, waiting: map[string][]waitingJob{}}
}

// add takes a delivery whose job is stored at seq in partition. It returns
// nil, or, when it logs the entry at once (no wait configured, or too many
// waiting), the channel of that entry's outcome.
func (l *laterLog) add(partition string, seq uint64, job *delivery.Job, body []byte) (<-chan error, error) {
	if l.after <= 0 {
		return l.log.Log(job, body)
	}
	l.mu.Lock()
	if l.n >= l.max {
		l.mu.Unlock()
		return l.log.Log(job, body)
	}
	l.waiting[partition] = append(l.waiting[partition], waitingJob{seq: seq, at: l.now(), body: body})
	l.n++
	l.mu.Unlock()
	return nil, nil
}

// run looks at the waiting deliveries every After/4 until ctx ends. A look
// waits for its logs under logging, which outlives ctx, so a look under
// way when ctx ends neither drops nor repeats what it took; the last look,
// at everything still waiting, is the renderer's, once its events in hand
// are done (Run).
func (l *laterLog) run(ctx, logging context.Context) {
	if l.after <= 0 {
		return
	}
	t := time.NewTicker(max(l.after/4, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			l.look(logging, false)
		}
	}
}

// look logs the waiting deliveries queued at least After ago (all of them
// with all set) that their partition's ack floor does not show gone, and
// drops those it does. It returns how many it logged.
func (l *laterLog) look(ctx context.Context, all bool) int {
	cutoff := l.now().Add(-l.after)
	type due struct {
		partition string
		jobs      []waitingJob
	}
	var dues []due
	l.mu.Lock()
	for p, ws := range l.waiting {
		i := len(ws)
		if !all {
			i = 0
			for i < len(ws) && !ws[i].at.After(cutoff) {
				i++
			}
		}
		if i == 0 {
			continue
		}
		dues = append(dues, due{p, ws[:i:i]})
		if i == len(ws) {
			delete(l.waiting, p)
		} else {
			l.waiting[p] = ws[i:]
		}
		l.n -= i
	}
	l.mu.Unlock()
	logged, unknown := 0, 0
	var failed []due
	for _, d := range dues {
		floor, err := l.floor(ctx, d.partition)
		if err != nil {
			floor = 0 // unknown: log them all (a needless entry changes nothing)
			unknown++
		}
		type sent struct {
			w       waitingJob
			outcome <-chan error
		}
		var sends []sent
		var kept []waitingJob
		for _, w := range d.jobs {
			if w.seq <= floor {
				continue // gone: the sender logged it
			}
			job := &delivery.Job{}
			if err := job.UnmarshalBinary(w.body); err != nil {
				l.logf.Error("queued delivery: its job does not decode; not logged PENDING", "error", err)
				continue
			}
			job.Queued = true // as the renderer queued it (stream.NewJobMsg's header)
			outcome, err := l.log.Log(job, w.body)
			if err != nil {
				kept = append(kept, w)
				continue
			}
			sends = append(sends, sent{w, outcome})
		}
		for _, s := range sends {
			var err error
			select {
			case err = <-s.outcome:
			case <-ctx.Done():
				err = ctx.Err()
			}
			if err != nil {
				kept = append(kept, s.w)
				continue
			}
			logged++
		}
		if len(kept) > 0 {
			failed = append(failed, due{d.partition, kept})
		}
	}
	if unknown > 0 {
		l.logf.Warn("queued deliveries: the sender's progress is unknown; logging them PENDING", "partitions", unknown)
	}
	if len(failed) > 0 && ctx.Err() == nil {
		n := 0
		l.mu.Lock()
		for _, d := range failed {
			l.waiting[d.partition] = append(d.jobs, l.waiting[d.partition]...)
			l.n += len(d.jobs)
			n += len(d.jobs)
		}
		l.mu.Unlock()
		l.logf.Warn("queued deliveries: logging PENDING failed; trying again", "deliveries", n)
	}
	return logged
}
