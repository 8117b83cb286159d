package gateway

// The intake window: how PublishBatch keeps a burst from queueing ahead of
// everyone else's events.
//
// nats-server stores a stream's messages one at a time, in the order they
// arrive. PublishBatch publishes its events asynchronously, so a batch of
// 500 put 500 messages into EVENTS at once, and an event of another account
// published a moment later (a unary Publish, or another batch's first
// event) waited behind all of them: measured on two cores, a steady 200/s
// beside a 5,000-event backlog arriving in batches of 500 had its postbacks
// delayed 6-7 ms at the median (up to 27 ms) for the quarter second the
// backlog took to arrive (docs/benchmarks.md, eleventh round).
//
// So the batches' publishes go through one window, shared by every
// PublishBatch call of this gateway: at most intakeWindow of their messages
// (an event, or a group of one account's events: pkg/stream group.go) are
// published and not yet acknowledged at any moment. An event published
// alone is never held by it, and waits behind at most that many of a
// burst's messages. The window costs a burst little: it is refilled as each
// acknowledgement arrives, and 64 in flight keep the stream writing faster
// than the pipeline behind it renders and sends (a burst is accepted at a
// few times the pace it is delivered, rather than at once). Windows of 32,
// 64 and 128 measured alike for the other accounts' latency; the wider the
// window, the faster a burst is accepted.
//
// Failure policy: a place is given back when its publish is acknowledged,
// fails, or times out (the JetStream context's asynchronous publish timeout,
// stream.New), so a lost acknowledgement cannot keep a place for ever. A
// call whose context ends while it waits for a place returns its context's
// error; the events it published by then are stored, as they would be had
// it ended while waiting for their acknowledgements.

import (
	"context"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// intakeWindow is how many events of PublishBatch calls may be in flight to
// NATS at once, in all calls together.
const intakeWindow = 64

// window bounds the asynchronous publishes in flight across calls.
type window chan struct{}

func newWindow(n int) window { return make(window, n) }

// batchPublish publishes one PublishBatch call's events through w and
// collects their acknowledgements.
type batchPublish struct {
	w    window
	js   jetstream.JetStream
	errs []error // by event index, set when its publish failed
	wg   sync.WaitGroup
}

// publishBatch starts the publishes of a call of n events.
func (w window) publishBatch(js jetstream.JetStream, n int) *batchPublish {
	return &batchPublish{w: w, js: js, errs: make([]error, n)}
}

// publish takes a place (waiting for one while the window is full) and
// publishes msg, which carries the batch's events at places events (one
// event, or an event group: pkg/stream group.go); its outcome is each of
// theirs. The place is given back when this publish has its outcome,
// whatever the others' (a slow acknowledgement holds one place, not the
// window).
func (b *batchPublish) publish(ctx context.Context, msg *nats.Msg, events ...int) error {
	select {
	case b.w <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	f, err := b.js.PublishMsgAsync(msg)
	if err != nil {
		<-b.w
		return err
	}
	b.wg.Go(func() {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			for _, i := range events {
				b.errs[i] = err
			}
		}
		<-b.w
	})
	return nil
}

// wait returns once every publish has its outcome (then errs holds the
// failures), or ctx has ended; the places are given back either way as the
// outcomes come.
func (b *batchPublish) wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		b.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
