package stream

// Keepers: one message that no consumer takes, kept near the end of each
// work stream, so that a stream whose consumers keep up does not roll to a
// new file for every message.
//
// The nats-server file store writes a stream in blocks. When the last
// message of the newest block is removed (a work queue removes a message
// when it is acked), the store starts a new block and writes a tombstone
// into it, so that it remembers the last sequence. A work stream whose
// consumers keep up empties its newest block with nearly every ack: at 200
// events a second EVENTS and DELIVERIES each rolled ~200 blocks a second
// (a file created, written, and removed each time), and every block takes
// a 256 KiB write buffer that stays in use until the block's cache expires
// (10 s) whenever the block was also read. Measured on two cores
// (docs/benchmarks.md, tenth round): during the slow-receiver scenario
// those buffers made ~230 MB of standalone's heap, the collector ran every
// 10 ms against the soft memory limit for 1.4 s, and a steady 200/s beside
// it saw its p99 at 3-15× its usual; a burst ran ~7% slower.
//
// So every service that consumes a work stream publishes, once at start and
// then every KeepEvery, a keeper message on the stream's own subject
// keep.<STREAM> (no consumer's filter matches it), with a subject roll-up
// so that it replaces the previous keeper. The newest block then almost
// always holds a message no ack removes, and acks only ever empty older
// blocks, which are simply removed.
//
// Failure policy: a keeper is an optimisation, never work. A publish that
// fails (a full stream, a broker away) is skipped until the next tick; a
// stream holds at most one keeper message whatever happens, and readers of
// a stream's contents (tests, the operator's "is the queue empty?") count
// its work subjects, not the keeper (WorkMessages).

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// KeepEvery is how often a work stream's keeper message is published
// again, so that the newest block holds one: a stream rolls to a new
// block by size at most every few seconds under load (8 MB blocks), so
// the churn left is a second's worth after each roll.
const KeepEvery = time.Second

// KeepSubject is the subject of a work stream's keeper message.
func KeepSubject(stream string) string { return "keep." + stream }

// Keep publishes the keeper message of each of streams now and every
// KeepEvery until ctx ends. Run it in its own goroutine.
func Keep(ctx context.Context, js jetstream.JetStream, streams ...string) {
	t := time.NewTicker(KeepEvery)
	defer t.Stop()
	for {
		for _, name := range streams {
			m := nats.NewMsg(KeepSubject(name))
			m.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
			pctx, cancel := context.WithTimeout(ctx, KeepEvery)
			_, _ = Publish(pctx, js.Conn(), m) // skipped on failure: see the failure policy
			cancel()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// WorkMessages is how many messages the stream named name holds apart
// from its keeper (and, in EVENTS, the idempotency keys' markers): the
// work waiting in it. Each of its work subjects is counted in one read
// (the per-subject counts of a filtered stream info), so a keeper
// published meanwhile is never taken for work, as it could be when the
// stream's total and its keeper were read apart.
func WorkMessages(ctx context.Context, js jetstream.JetStream, name string) (uint64, error) {
	s, err := js.Stream(ctx, name)
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, subject := range s.CachedInfo().Config.Subjects {
		if subject == KeepSubject(name) || (name == EventsStream && subject == "idem.>") {
			continue
		}
		info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
		if err != nil {
			return 0, err
		}
		for _, c := range info.State.Subjects {
			n += c
		}
	}
	return n, nil
}
