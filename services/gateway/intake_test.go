package gateway

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/postback-dev/postback/pkg/stream"
	"github.com/postback-dev/postback/pkg/stream/streamtest"
)

func TestABatchThroughANarrowWindowStoresEveryEventAndGivesEveryPlaceBack(t *testing.T) {
	js := streamtest.JetStream(t)
	w := newWindow(4)
	const n = 300
	b := w.publishBatch(js, n)
	for i := range n {
		msg := nats.NewMsg(stream.EventSubject("action_clearing", "acc_window"))
		msg.Data = fmt.Appendf(nil, `{"n":%d}`, i)
		if err := b.publish(context.Background(), msg, i); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if len(w) > cap(w) {
			t.Fatalf("%d in flight through a window of %d", len(w), cap(w))
		}
	}
	if err := b.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i, err := range b.errs {
		if err != nil {
			t.Errorf("event %d: %v", i, err)
		}
	}
	if got := streamtest.Work(t, js, stream.EventsStream); got != n {
		t.Errorf("EVENTS holds %d events, want %d", got, n)
	}
	if len(w) != 0 {
		t.Errorf("%d places still taken after every acknowledgement", len(w))
	}
}

func TestAFailedPublishIsItsEventsErrorAndGivesItsPlaceBack(t *testing.T) {
	// With the gateway's asynchronous publish timeout, as in production: a
	// publish that no stream answers fails by it at the latest.
	js, err := stream.New(streamtest.JetStream(t).Conn())
	if err != nil {
		t.Fatal(err)
	}
	w := newWindow(2)
	const n = 6
	b := w.publishBatch(js, n)
	for i := range n {
		// No stream takes this subject: each publish fails (no responders).
		if err := b.publish(context.Background(), nats.NewMsg("nowhere.window"), i); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	if err := b.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i, err := range b.errs {
		if err == nil {
			t.Errorf("event %d: no error for a publish no stream took", i)
		}
	}
	if len(w) != 0 {
		t.Errorf("%d places still taken after every publish failed", len(w))
	}
}

func TestACallWaitingForAPlaceEndsWithItsContext(t *testing.T) {
	js := streamtest.JetStream(t)
	w := newWindow(1)
	w <- struct{}{} // another call holds the only place
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b := w.publishBatch(js, 1)
	err := b.publish(ctx, nats.NewMsg(stream.EventSubject("action_clearing", "acc_window")), 0)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("publish with the window full and its context ended = %v, want context.Canceled", err)
	}
	if err := b.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := streamtest.Work(t, js, stream.EventsStream); got != 0 {
		t.Errorf("EVENTS holds %d events, want none", got)
	}
}
