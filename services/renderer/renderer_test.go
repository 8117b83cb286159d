package renderer

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/postback-dev/postback/pkg/endpoints"
	"github.com/postback-dev/postback/pkg/inflight"
	"github.com/postback-dev/postback/pkg/stream"
	"github.com/postback-dev/postback/pkg/stream/streamtest"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

func startRenderer(t *testing.T) (*renderer, jetstream.JetStream) {
	t.Helper()
	js := streamtest.JetStream(t)
	ctx := context.Background()
	eps, err := endpoints.OpenStore(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	for _, ep := range []*postbackv1.Endpoint{
		{Id: "ep_1", AccountId: "brand-1", EventType: "action_clearing", Url: "http://127.0.0.1:9/a", Method: postbackv1.HttpMethod_HTTP_METHOD_POST},
		{Id: "ep_2", AccountId: "brand-1", EventType: "action_clearing", Url: "http://127.0.0.1:9/b", Method: postbackv1.HttpMethod_HTTP_METHOD_POST},
	} {
		ep.UpdateTime = timestamppb.New(time.Unix(1000, 0))
		if err := eps.Put(ctx, ep); err != nil {
			t.Fatal(err)
		}
	}
	r, err := newRenderer(ctx, js, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return r, js
}

func queuedJobs(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	return streamtest.Work(t, js, stream.DeliveriesStream)
}

// A redelivered event (the renderer crashed, or its ack was lost) renders
// the same delivery ids; each delivery already queued or already recorded
// is left alone, so the second pass queues nothing, however late it comes
// (after the queue's dedupe window, only this lookup stops a second copy).
func TestARedeliveredEventQueuesOnlyDeliveriesThatHaveNeitherJobNorRecord(t *testing.T) {
	r, js := startRenderer(t)
	ctx := context.Background()
	ev := &stream.Event{ID: "evt_1", AccountID: "brand-1", Type: "action_clearing", Time: time.Unix(2000, 0).UTC(),
		Data: map[string]any{"ActionId": "A-1"}}

	n, err := r.render(ctx, ev, 7, false)
	if err != nil || n != 2 {
		t.Fatalf("first pass: %d queued, %v; want 2", n, err)
	}
	if got := queuedJobs(t, js); got != 2 {
		t.Fatalf("%d jobs queued, want 2", got)
	}
	dls, err := inflight.OpenDeliveries(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	if err := dls.Each(ctx, "brand-1", func(rec *inflight.Record) bool {
		if !rec.Queued || rec.Delivery.Status != postbackv1.DeliveryStatus_DELIVERY_STATUS_PENDING || rec.Job.EndpointVersion == 0 {
			t.Errorf("delivery %s: %+v, want a queued PENDING first send", rec.Delivery.Id, rec)
		}
		ids = append(ids, rec.Delivery.Id)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if len(ids) != 2 {
		t.Fatalf("deliveries %v, want 2", ids)
	}

	if n, err := r.render(ctx, ev, 7, true); err != nil || n != 0 {
		t.Fatalf("redelivery while both are queued: %d queued, %v; want 0", n, err)
	}

	// One was sent and recorded, and the queue let its job go.
	sent, err := dls.Find(ctx, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	sent.Delivery.Status = postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED
	if err := dls.Put(ctx, sent); err != nil {
		t.Fatal(err)
	}
	work, _ := js.Stream(ctx, stream.DeliveriesStream)
	if err := work.Purge(ctx, jetstream.WithPurgeSubject(stream.DeliverySubject("brand-1", sent.Delivery.EndpointId, sent.Delivery.Id))); err != nil {
		t.Fatal(err)
	}
	if n, err := r.render(ctx, ev, 7, true); err != nil || n != 0 {
		t.Fatalf("redelivery after one was sent: %d queued, %v; want 0", n, err)
	}
	if got := queuedJobs(t, js); got != 1 {
		t.Fatalf("%d jobs queued, want the 1 not yet sent", got)
	}

	// An event seen for the first time at another sequence is new work.
	if n, err := r.render(ctx, ev, 8, false); err != nil || n != 2 {
		t.Fatalf("another event: %d queued, %v; want 2", n, err)
	}
}
