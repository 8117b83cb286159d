package renderer

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/postback-dev/postback/pkg/inflight"
	"github.com/postback-dev/postback/pkg/stream"
	"github.com/postback-dev/postback/pkg/stream/streamtest"
)

// publishGroup stores a group of events as the gateway does, and returns
// the message as the renderer's consumer hands it over.
func publishGroup(t *testing.T, js jetstream.JetStream, count string, evs ...stream.Event) jetstream.Msg {
	t.Helper()
	ctx := context.Background()
	var body []byte
	for i := range evs {
		b, err := stream.EncodeEvent(&evs[i])
		if err != nil {
			t.Fatal(err)
		}
		body = stream.AppendGroupEvent(body, b)
	}
	m := nats.NewMsg(stream.EventSubject("action_clearing", "brand-1"))
	m.Data = body
	m.Header.Set(stream.GroupHeader, count)
	if _, err := js.PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
	c, err := js.CreateConsumer(ctx, stream.EventsStream, jetstream.ConsumerConfig{FilterSubject: "events.action_clearing.>", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := c.Next()
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func clearingEvent(i int) stream.Event {
	return stream.Event{ID: "evt_g" + strconv.Itoa(i), AccountID: "brand-1", Type: "action_clearing", Time: time.Unix(5000, 0).UTC(),
		Data: map[string]any{"ActionId": "A-" + strconv.Itoa(i)}}
}

// redelivered is a message as it comes again after its ack was lost.
type redelivered struct{ jetstream.Msg }

func (m redelivered) Metadata() (*jetstream.MsgMetadata, error) {
	md, err := m.Msg.Metadata()
	if md != nil {
		again := *md
		again.NumDelivered = 2
		md = &again
	}
	return md, err
}

func TestAGroupQueuesEachOfItsEventsDeliveriesOnce(t *testing.T) {
	r, js := startRenderer(t) // two endpoints for brand-1's action_clearing
	ctx := context.Background()
	m := publishGroup(t, js, "3", clearingEvent(1), clearingEvent(2), clearingEvent(3))
	r.handle(ctx, m)
	if got := queuedJobs(t, js); got != 6 {
		t.Fatalf("%d jobs queued, want 6 (3 events × 2 endpoints)", got)
	}
	dls, err := inflight.OpenDeliveries(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	events := map[string]int{}
	if err := dls.Each(ctx, "brand-1", func(rec *inflight.Record) bool {
		ids[rec.Delivery.Id] = true
		events[rec.Delivery.EventId]++
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if len(ids) != 6 || len(events) != 3 {
		t.Fatalf("%d delivery ids over %d events (%v), want 6 distinct over 3", len(ids), len(events), events)
	}

	// Its ack lost, the group comes again: the same places, the same ids,
	// nothing queued twice.
	r.handle(ctx, redelivered{m})
	if got := queuedJobs(t, js); got != 6 {
		t.Fatalf("%d jobs queued after the redelivery, want still 6", got)
	}
}

func TestAGroupThatDoesNotDecodeIsDeadLetteredAndABadEventOfItAlone(t *testing.T) {
	bad := clearingEvent(2)
	bad.AccountID = ""
	for _, tc := range []struct {
		name  string
		count string
		evs   []stream.Event
		jobs  uint64 // queued for the events that render
		dead  string // the dead letter's reason starts so
	}{
		{"a count above what it holds: the group", "3", []stream.Event{clearingEvent(1), clearingEvent(2)}, 0, "event group: event 2 of 3 cut short"},
		{"an event that does not check: that event", "3", []stream.Event{clearingEvent(1), bad, clearingEvent(3)}, 4, "undecodable event 1 of a group of 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, js := startRenderer(t)
			ctx := context.Background()
			var err error
			if r.dead, err = stream.NewDeadLetters(js, stream.RendererConsumer, slog.New(slog.DiscardHandler), nil); err != nil {
				t.Fatal(err)
			}
			r.handle(ctx, publishGroup(t, js, tc.count, tc.evs...))
			if got := queuedJobs(t, js); got != tc.jobs {
				t.Errorf("%d jobs queued, want %d", got, tc.jobs)
			}
			dead, err := js.Stream(ctx, stream.DeadLettersStream)
			if err != nil {
				t.Fatal(err)
			}
			m, err := dead.GetLastMsgForSubject(ctx, stream.DeadLetterSubject(stream.RendererConsumer))
			if err != nil {
				t.Fatalf("no dead letter: %v", err)
			}
			if reason := m.Header.Get(stream.DeadReasonHeader); !strings.Contains(reason, tc.dead) {
				t.Errorf("dead letter's reason %q, want it to say %q", reason, tc.dead)
			}
			if st := streamtest.State(t, js, stream.DeadLettersStream); st.Msgs != 1 {
				t.Errorf("%d dead letters, want 1", st.Msgs)
			}
		})
	}
}
