package gateway

// Group commit of unary Publishes.
//
// A unary Publish without an idempotency key is one event, and it used to
// be one EVENTS message each. Under concurrent calls (a service publishing
// from many goroutines) nats-server then stores, delivers, acks and
// removes a message per event, which PublishBatch avoids with event groups
// (pkg/stream group.go).
//
// So concurrent unary events bound for one subject share a group too. The
// first call for a subject publishes at once, alone: a call with no other
// beside it waits for nothing more than it did. Calls that come while a
// publish of their subject is in flight wait for it to end, and then go
// together as one group of up to stream.MaxGroupEvents events or
// stream.MaxGroupBytes bytes, and so on while calls keep coming: at most
// one publish of a subject is in flight at once, and the calls behind it
// are its next group. (Keyed events group-commit on their own path, with
// their markers: idempotency.go.) In the benchmark's unary burst (64
// callers) about 18 events share a message; its CPU per postback did not
// change measurably with it (docs/benchmarks.md, fifteenth round): a unary
// burst's cost over a batched one lies mostly elsewhere (a gRPC call per
// event, and less batching downstream of an intake no faster than delivery).
//
// Traces: every call's trace goes on through the renderer. A group's
// message carries its first event's trace context, as any message does,
// and every event's in stream.EventTracesHeader; the renderer continues
// each event of the group in its caller's trace.
//
// Failure policy: a call is answered once its group is stored, or with its
// group's publish error (Unavailable; ResourceExhausted when the stream is
// full), as its lone publish would have been. A call whose context ends
// while it waits is taken out of the line and answered with its context's
// error, its event unpublished; one whose group is already in flight is
// answered with its context's error too, and its event may be stored, as
// with a lone publish whose answer did not come back in time (what
// idempotency keys are for).

import (
	"context"
	"slices"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/postback-dev/postback/pkg/stream"
)

// unaryLog group-commits unary events to EVENTS, per subject.
type unaryLog struct {
	nc *nats.Conn

	mu    sync.Mutex
	lines map[string]*unaryLine // subjects with a publish in flight
}

// unaryLine is the calls waiting behind a subject's publish in flight.
type unaryLine struct {
	waiting []*unaryEvent
}

// unaryEvent is one call's event, waiting for its group.
type unaryEvent struct {
	ctx  context.Context // the call's: its trace context
	body []byte
	done chan error // its group's publish result (buffered)
}

func newUnaryLog(nc *nats.Conn) *unaryLog {
	return &unaryLog{nc: nc, lines: map[string]*unaryLine{}}
}

// publish stores one event on subject: at once and alone when no publish
// of subject is in flight, else in a group with the calls waiting beside
// it once that publish ends.
func (l *unaryLog) publish(ctx context.Context, subject string, body []byte) error {
	e := &unaryEvent{ctx: ctx, body: body, done: make(chan error, 1)}
	l.mu.Lock()
	if line, busy := l.lines[subject]; busy {
		line.waiting = append(line.waiting, e)
		l.mu.Unlock()
		select {
		case err := <-e.done:
			return err
		case <-ctx.Done():
			l.mu.Lock()
			if i := slices.Index(line.waiting, e); i >= 0 {
				line.waiting = slices.Delete(line.waiting, i, i+1)
			}
			l.mu.Unlock()
			return ctx.Err()
		}
	}
	line := &unaryLine{}
	l.lines[subject] = line
	l.mu.Unlock()
	_, err := stream.Publish(ctx, l.nc, stream.NewMsg(ctx, subject, body, ""))
	l.mu.Lock()
	if len(line.waiting) == 0 {
		delete(l.lines, subject)
		l.mu.Unlock()
		return err
	}
	l.mu.Unlock()
	go l.drain(subject, line) // the calls behind this one: their turn
	return err
}

// drain publishes the calls waiting on line, a group at a time, until none
// is left; then the subject has no publish in flight.
func (l *unaryLog) drain(subject string, line *unaryLine) {
	for {
		l.mu.Lock()
		var g eventGroup // a PublishBatch's bounds on a group
		for i, e := range line.waiting {
			if !g.fits(subject, e.body) {
				break
			}
			g.add(i, subject, e.body)
		}
		n := len(g.bodies)
		if n == 0 {
			delete(l.lines, subject)
			l.mu.Unlock()
			return
		}
		group := slices.Clone(line.waiting[:n])
		line.waiting = slices.Delete(line.waiting, 0, n)
		l.mu.Unlock()
		// No call's context: the group is every caller's. The plain
		// publish timeout bounds it.
		_, err := stream.Publish(context.Background(), l.nc, groupMsg(subject, group, g.size))
		for _, e := range group {
			e.done <- err
		}
	}
}

// groupMsg is the message of a group of waiting events (a lone one as its
// own message), with each event's trace context.
func groupMsg(subject string, group []*unaryEvent, size int) *nats.Msg {
	bodies := make([][]byte, len(group))
	ctxs := make([]context.Context, len(group))
	for i, e := range group {
		bodies[i], ctxs[i] = e.body, e.ctx
	}
	msg := groupMessage(group[0].ctx, subject, bodies, size)
	if len(group) > 1 {
		stream.SetEventTraces(msg, ctxs)
	}
	return msg
}
