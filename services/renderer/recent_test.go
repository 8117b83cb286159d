package renderer

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/postback-dev/postback/pkg/recent"
	"github.com/postback-dev/postback/pkg/stream"
)

// The renderer keeps a sample of the events it renders (pkg/recent), off
// the render's path: the event is rendered and acked, and its id, time
// and data reach the sample's bucket.
func TestRenderedEventsAreSampled(t *testing.T) {
	r, js := startRenderer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if r.sample == nil {
		t.Fatal("no sampler")
	}
	ev := stream.Event{ID: "evt_s1", AccountID: "brand-1", Type: "action_clearing", Time: time.Unix(3000, 0).UTC(),
		Data: map[string]any{"ActionId": "A-42"}}
	body, err := stream.EncodeEvent(&ev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, stream.EventSubject(ev.Type, ev.AccountID), body); err != nil {
		t.Fatal(err)
	}
	c, err := js.CreateConsumer(ctx, stream.EventsStream, jetstream.ConsumerConfig{FilterSubject: "events.action_clearing.>", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.Next()
	if err != nil {
		t.Fatal(err)
	}
	r.handle(ctx, m)
	if got := queuedJobs(t, js); got != 2 {
		t.Fatalf("%d jobs queued, want 2", got)
	}
	store, err := recent.OpenStore(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	for {
		got, err := store.List(ctx, "brand-1", "action_clearing")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 1 {
			if got[0].ID != "evt_s1" || string(got[0].Data) != `{"ActionId":"A-42"}` || !got[0].Time.Equal(ev.Time) {
				t.Fatalf("sampled %+v", got[0])
			}
			return
		}
		time.Sleep(10 * time.Millisecond) // the sampler writes in the background
	}
}
