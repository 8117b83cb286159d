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
// blocks, which are simply removed. A block that fills up rolls the stream
// to a new one without a keeper, which churns again until the next keeper
// lands, so while a stream is busy (its sequence, read from the keepers'
// own acknowledgements, moves at keepBusyRate or more) its keeper goes
// every KeepBusyEvery instead: no extra request, and a quiet stream costs
// one publish a second as before.
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

// KeepEvery is how often a quiet work stream's keeper message is published
// again, so that the newest block holds one.
const KeepEvery = time.Second

// KeepBusyEvery is how often a busy stream's keeper is published again. A
// stream rolls to a new block by size (4 MB) every few seconds under
// steady load, and until the next keeper lands in the new block each ack
// empties it again: with a keeper a second, EVENTS at 1,000 events a second
// still started ~90 blocks a second (a few hundred after each roll), whose
// pooled write buffers made standalone's live heap 155 MB instead of 45 (docs/benchmarks.md,
// twentieth round). A keeper every 100 ms leaves a tenth of that.
const KeepBusyEvery = 100 * time.Millisecond

// keepBusyRate is the rate (messages a second, seen between two keepers)
// at which a stream counts as busy: below it, a second's churn after a roll
// is a few dozen blocks, not worth ten publishes a second. Other services'
// keepers on the same stream (at most ten a second each) stay below it.
const keepBusyRate = 100

// KeepSubject is the subject of a work stream's keeper message.
func KeepSubject(stream string) string { return "keep." + stream }

// nextKeep is how long to wait before the stream's next keeper, given
// that the stream took gap messages (the sequence numbers between our last
// two keepers, theirs included) in elapsed.
func nextKeep(gap uint64, elapsed time.Duration) time.Duration {
	if elapsed > 0 && float64(gap)/elapsed.Seconds() >= keepBusyRate {
		return KeepBusyEvery
	}
	return KeepEvery
}

// Keep publishes the keeper message of each of streams now and then again
// every KeepEvery, or every KeepBusyEvery while the stream is busy (its
// sequence moves at keepBusyRate a second or more between two keepers),
// until ctx ends. Run it in its own goroutine.
func Keep(ctx context.Context, js jetstream.JetStream, streams ...string) {
	type kept struct {
		due  time.Time // when the next keeper goes
		rate SeqRate   // the stream's sequence at our keepers
	}
	state := make([]kept, len(streams))
	t := time.NewTicker(KeepBusyEvery)
	defer t.Stop()
	for {
		for i, name := range streams {
			k, now := &state[i], time.Now()
			if now.Add(KeepBusyEvery / 2).Before(k.due) { // ticks run a little early or late
				continue
			}
			m := nats.NewMsg(KeepSubject(name))
			m.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
			pctx, cancel := context.WithTimeout(ctx, KeepEvery)
			ack, err := Publish(pctx, js.Conn(), m)
			cancel()
			if err != nil || ack.Sequence == 0 { // skipped: see the failure policy
				k.due = now.Add(KeepEvery)
				k.rate.Forget()
				continue
			}
			next := KeepEvery
			if gap, elapsed, ok := k.rate.Observe(ack.Sequence, now); ok {
				next = nextKeep(gap, elapsed)
			}
			k.due = now.Add(next)
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
