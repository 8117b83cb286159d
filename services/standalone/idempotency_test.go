package standalone

import (
	"context"
	"strings"
	"testing"
	"time"

	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// docs/architecture.md, decision 10: an exact repeat with the same idempotency key within
// the dedupe window is dropped; a later version of the same event (the
// seed's publisher-application note) delivers again.
func TestRepeatsWithTheSameIdempotencyKeyAreDroppedAndNewVersionsDelivered(t *testing.T) {
	h := start(t, "", nil)
	rc := newReceiver(t)
	ctx := context.Background()
	if _, err := h.endpoints.CreateEndpoint(ctx, &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{
		AccountId: "brand-1", EventType: "publisher_application", Url: rc.URL, Method: postbackv1.HttpMethod_HTTP_METHOD_POST}}); err != nil {
		t.Fatal(err)
	}
	publish := func(key string) *postbackv1.PublishResponse {
		t.Helper()
		res, err := h.events.Publish(ctx, &postbackv1.PublishRequest{AccountId: "brand-1", EventType: "publisher_application",
			Data: sampleData(t, "publisher_application"), IdempotencyKey: key, EventId: "app-112233"})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	first := publish("app-112233-v1")
	again := publish("app-112233-v1")
	if first.Duplicate || !again.Duplicate || again.EventId != first.EventId {
		t.Fatalf("first = %v, repeat = %v; want the repeat marked duplicate with the same event id", first, again)
	}
	rc.next(t, 10*time.Second)
	time.Sleep(300 * time.Millisecond)
	if n := len(rc.requests()); n != 1 {
		t.Fatalf("receiver got %d requests after a repeat, want 1", n)
	}
	if later := publish("app-112233-v2"); later.Duplicate {
		t.Fatalf("a later version was dropped as a duplicate: %v", later)
	}
	rc.next(t, 10*time.Second)
	var ds []*postbackv1.Delivery
	eventually(t, 5*time.Second, "both deliveries in the delivery log", func() bool { ds = listAll(t, h); return len(ds) >= 2 })
	if len(ds) != 2 || ds[0].Id == ds[1].Id {
		t.Fatalf("deliveries = %v, want two distinct deliveries of the same event id", ds)
	}
}

func TestABadEventInABatchDoesNotSinkTheRest(t *testing.T) {
	h := start(t, "", nil)
	rc := newReceiver(t)
	ctx := context.Background()
	postTo(t, h, rc.URL)
	good := &postbackv1.PublishRequest{AccountId: "brand-1", EventType: "action_clearing", Data: sampleData(t, "action_clearing")}
	res, err := h.events.PublishBatch(ctx, &postbackv1.PublishBatchRequest{Events: []*postbackv1.PublishRequest{
		good, {AccountId: "brand-1", EventType: "no_such_type", Data: sampleData(t, "action_clearing")}, good}})
	if err != nil {
		t.Fatal(err)
	}
	r := res.Results
	if len(r) != 3 || r[0].Error != nil || r[2].Error != nil || r[0].EventId == "" || r[0].EventId == r[2].EventId {
		t.Fatalf("results = %v", r)
	}
	if r[1].Error == nil || r[1].Error.Code != 3 /* InvalidArgument */ || r[1].EventId != "" {
		t.Fatalf("the bad event's result = %v, want InvalidArgument", r[1])
	}
	if msg := r[1].Error.Message; !strings.Contains(msg, "events[1].event_type") {
		t.Fatalf("error %q does not name events[1].event_type", msg)
	}
	eventually(t, 10*time.Second, "both good events delivered", func() bool { return len(rc.requests()) == 2 })
}

// A repeat with the same idempotency key is a duplicate of the first event,
// answered with its id, within a run and after a restart (the server's own
// dedupe window is rebuilt from the events it still stores, and it stores
// none the renderer has taken), and in a batch as in a single publish.
func TestARepeatWithTheSameIdempotencyKeyIsTheFirstEventAcrossARestart(t *testing.T) {
	dir := t.TempDir()
	h := start(t, dir, nil)
	rc := newReceiver(t)
	ctx := context.Background()
	if _, err := h.endpoints.CreateEndpoint(ctx, &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{
		AccountId: "brand-1", EventType: "publisher_application", Url: rc.URL, Method: postbackv1.HttpMethod_HTTP_METHOD_POST}}); err != nil {
		t.Fatal(err)
	}
	event := func(key string) *postbackv1.PublishRequest {
		return &postbackv1.PublishRequest{AccountId: "brand-1", EventType: "publisher_application",
			Data: sampleData(t, "publisher_application"), IdempotencyKey: key}
	}
	publish := func(h *harness, key string) *postbackv1.PublishResponse {
		t.Helper()
		res, err := h.events.Publish(ctx, event(key))
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	first := publish(h, "app-7-v1")
	time.Sleep(5 * time.Millisecond) // a later millisecond: an id made anew would differ
	if again := publish(h, "app-7-v1"); first.Duplicate || !again.Duplicate || again.EventId != first.EventId {
		t.Fatalf("first = %v, repeat = %v; want the repeat a duplicate with the first event's id", first, again)
	}
	rc.next(t, 10*time.Second)

	h.stop()
	h = start(t, dir, nil)
	if after := publish(h, "app-7-v1"); !after.Duplicate || after.EventId != first.EventId {
		t.Fatalf("after a restart: repeat = %v; want a duplicate of %s", after, first.EventId)
	}
	batch, err := h.events.PublishBatch(ctx, &postbackv1.PublishBatchRequest{Events: []*postbackv1.PublishRequest{
		event("app-7-v1"), event("app-8-v1"), event("app-8-v1")}})
	if err != nil {
		t.Fatal(err)
	}
	r := batch.Results
	if len(r) != 3 || !r[0].Duplicate || r[0].EventId != first.EventId || r[1].Duplicate || r[1].Error != nil ||
		!r[2].Duplicate || r[2].EventId != r[1].EventId {
		t.Fatalf("batch results = %v; want the old key a duplicate of %s, the new key new once and then a duplicate", r, first.EventId)
	}
	rc.next(t, 10*time.Second) // app-8-v1
	time.Sleep(500 * time.Millisecond)
	if n := len(rc.requests()); n != 2 {
		t.Fatalf("receiver got %d requests, want 2 (one per key)", n)
	}
}
