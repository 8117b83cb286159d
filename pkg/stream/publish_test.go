package stream

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/postback-dev/postback/pkg/broker/brokertest"
)

func TestPubAcksReadAsJetStreamWritesThem(t *testing.T) {
	cases := []struct {
		name     string
		ack      string
		seq      uint64
		dup      bool
		err      error
		conflict bool
	}{
		{name: "plain ack", ack: `{"stream":"KV_postback-deliveries","seq":42}`, seq: 42},
		{name: "ack with a domain", ack: `{"stream":"KV_postback-deliveries","domain":"hub","seq":7}`, seq: 7},
		{name: "large sequence", ack: `{"stream":"DELIVERIES","seq":18446744073709551615}`, seq: 18446744073709551615},
		{name: "duplicate, as nats-server writes it", ack: `{"stream":"DELIVERIES","seq":3,"duplicate": true}`, seq: 3, dup: true},
		{name: "duplicate without the space", ack: `{"stream":"DELIVERIES","seq":3,"duplicate":true}`, seq: 3, dup: true},
		{name: "duplicate before the sequence", ack: `{"stream":"EVENTS","duplicate":true,"seq":12}`, seq: 12, dup: true},
		{name: "sequence first", ack: `{"seq":9,"stream":"EVENTS"}`, seq: 9},
		{name: "wrong last sequence is a conflict",
			ack: `{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 5"},"stream":"KV_postback-deliveries","seq":0}`, conflict: true},
		{name: "other API error", ack: `{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}`},
		{name: "not JSON", ack: `+OK`, err: jetstream.ErrInvalidJSAck},
		{name: "no stream", ack: `{"seq":4}`, err: jetstream.ErrInvalidJSAck},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ack, err := parsePubAck([]byte(c.ack))
			var apiErr *jetstream.APIError
			switch {
			case c.conflict:
				if !IsExists(err) {
					t.Fatalf("err = %v, want a wrong-last-sequence API error", err)
				}
			case c.err != nil:
				if !errors.Is(err, c.err) {
					t.Fatalf("err = %v, want %v", err, c.err)
				}
			case c.seq == 0:
				if !errors.As(err, &apiErr) || IsExists(err) {
					t.Fatalf("err = %v, want an API error other than a conflict", err)
				}
			default:
				if err != nil || ack.Sequence != c.seq || ack.Duplicate != c.dup {
					t.Fatalf("got %+v, %v; want seq %d duplicate %v", ack, err, c.seq, c.dup)
				}
			}
		})
	}
}

// A server that takes a message and dies never answers it. A JetStream
// context from New fails such an asynchronous publish after publishTimeout,
// so the service waiting on it hands its work back instead of holding it
// for good (jetstream's default waits forever).
func TestAnAsyncPublishNobodyAnswersFailsAfterTheTimeout(t *testing.T) {
	nc := brokertest.JetStream(t).Conn()
	js, err := New(nc)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := nc.SubscribeSync("taken.but.never.answered") // takes the message, as a dying server would
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	f, err := js.PublishAsync("taken.but.never.answered", []byte("job"))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-f.Ok():
		t.Fatal("acknowledged by nobody")
	case err := <-f.Err():
		if !errors.Is(err, jetstream.ErrAsyncPublishTimeout) {
			t.Errorf("failed with %v, want the async publish timeout", err)
		}
	case <-time.After(publishTimeout + 5*time.Second):
		t.Fatalf("still waiting %s after the publish, over the %s timeout", publishTimeout+5*time.Second, publishTimeout)
	}
}
