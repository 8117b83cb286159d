package stream

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// work runs handler on the renderer's consumers until the test ends.
func work(t *testing.T, js jetstream.JetStream, handler Handler) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cs, err := RendererConsumers(ctx, js, 30*time.Second, 64)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = WorkAll(ctx, cs, 4, handler) }()
	t.Cleanup(func() { cancel(); <-done })
}

// rendererBox is the renderer's dead-letter box.
func rendererBox(t *testing.T, js jetstream.JetStream) *DeadLetters {
	t.Helper()
	box, err := NewDeadLetters(js, RendererConsumer, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	return box
}

func deadLetters(t *testing.T, js jetstream.JetStream, want int) []DeadLetter {
	t.Helper()
	var got []DeadLetter
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var err error
		if got, _, err = ListDeadLetters(context.Background(), js, "", 0, 100); err != nil {
			t.Fatal(err)
		}
		if len(got) >= want {
			return got
		}
	}
	t.Fatalf("%d dead letters, want %d", len(got), want)
	return nil
}

func TestAPoisonMessageIsDeadLetteredAtOnceWithItsReason(t *testing.T) {
	js := startJetStream(t)
	box := rendererBox(t, js)
	var calls atomic.Int64
	work(t, js, box.Guard(func(ctx context.Context, m jetstream.Msg) {
		calls.Add(1)
		ev, err := DecodeEvent(m.Data())
		if err == nil {
			err = ev.Check()
		} else {
			err = Poison("undecodable event: %v", err)
		}
		if err != nil {
			box.Reject(ctx, m, err, time.Second)
			return
		}
		_ = m.Ack()
	}))
	ctx := context.Background()
	junk := map[string]string{
		"not JSON":      "\x00\x01junk",
		"no account":    `{"id":"evt_1","account_id":"","event_type":"action_clearing","time":"2026-04-15T12:00:00Z","data":{}}`,
		"unknown type":  `{"id":"evt_2","account_id":"brand-1","event_type":"nope","time":"2026-04-15T12:00:00Z","data":{}}`,
		"account dots":  `{"id":"evt_3","account_id":"a.b.>","event_type":"action_clearing","time":"2026-04-15T12:00:00Z","data":{}}`,
		"missing times": `{"id":"evt_4","account_id":"brand-1","event_type":"action_clearing","data":{}}`,
	}
	for name, body := range junk {
		if _, err := js.PublishMsg(ctx, NewMsg(ctx, "events.action_clearing", []byte(body), "junk-"+name)); err != nil {
			t.Fatal(err)
		}
	}
	got := deadLetters(t, js, len(junk))
	reasons := map[string]string{}
	for _, d := range got {
		if d.Consumer != RendererConsumer || d.Subject != "events.action_clearing" || d.Tries != 1 {
			t.Errorf("dead letter %+v: want consumer renderer, subject events.action_clearing, 1 try", d)
		}
		reasons[string(d.Data)] = d.Reason
	}
	for name, body := range junk {
		if reasons[body] == "" {
			t.Errorf("%s: not dead-lettered", name)
		}
	}
	if r := reasons[junk["no account"]]; !strings.Contains(r, "account_id") {
		t.Errorf("an event without an account is dead-lettered as %q, want the field named", r)
	}
	time.Sleep(200 * time.Millisecond)
	if n := calls.Load(); n != int64(len(junk)) {
		t.Errorf("the handler ran %d times for %d poison messages: one try each is all they get", n, len(junk))
	}
	if info, err := js.Stream(ctx, EventsStream); err != nil || info.CachedInfo().State.Msgs != 0 {
		t.Errorf("the events stream still holds the poison: %v", err)
	}
}

func TestAHandlerThatPanicsGetsBoundedTriesThenTheMessageIsDeadLettered(t *testing.T) {
	js := startJetStream(t)
	box := rendererBox(t, js)
	var tries atomic.Int64
	work(t, js, box.Guard(func(ctx context.Context, m jetstream.Msg) {
		if string(m.Data()) == "boom" {
			tries.Add(1)
			panic(errors.New("a bug"))
		}
		_ = m.Ack()
	}))
	ctx := context.Background()
	if _, err := js.PublishMsg(ctx, NewMsg(ctx, "events.action_clearing", []byte("boom"), "boom")); err != nil {
		t.Fatal(err)
	}
	got := deadLetters(t, js, 1)
	if got[0].Tries != PoisonTries || !strings.Contains(got[0].Reason, "panicked") {
		t.Fatalf("dead letter after %d tries, reason %q; want %d tries and the panic", got[0].Tries, got[0].Reason, PoisonTries)
	}
	time.Sleep(500 * time.Millisecond)
	if n := tries.Load(); n != PoisonTries {
		t.Fatalf("the panicking handler ran %d times, want %d", n, PoisonTries)
	}
	// Paging: the one letter, then no more.
	page, next, err := ListDeadLetters(ctx, js, RendererConsumer, got[0].Sequence, 10)
	if err != nil || len(page) != 0 || next != 0 {
		t.Fatalf("after the last letter: %d letters, next %d, %v", len(page), next, err)
	}
}
