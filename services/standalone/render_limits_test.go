package standalone

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/postback-dev/postback/pkg/stream"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// The tester's template, 65 KB of 2,500 joins over the items (502 MB
// rendered for 1,000 items), is refused when it is saved and previewed,
// naming the field and the limit (1 MiB, held to what a queued delivery can
// carry: the embedded NATS server's 1 MiB messages less 16 KiB), and
// nothing is stored.
func TestATemplateThatMultipliesItsEventIsRefusedOverTheRenderedBodyLimit(t *testing.T) {
	h := start(t, "", nil)
	ctx := context.Background()
	ep := &postbackv1.Endpoint{AccountId: "brand-1", EventType: "action_lifecycle", Url: "http://127.0.0.1:1/",
		Method: postbackv1.HttpMethod_HTTP_METHOD_POST, BodyFormat: postbackv1.BodyFormat_BODY_FORMAT_TEXT,
		BodyTemplate: strings.Repeat(`{join(items, i,"{i.sku}")}`, 2500)}
	_, err := h.endpoints.CreateEndpoint(ctx, &postbackv1.CreateEndpointRequest{Endpoint: ep})
	msg := status.Convert(err).Message()
	if status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(msg, "endpoint.body_template: renders up to ") ||
		!strings.Contains(msg, "over the limit of 1008 KiB (1032192 bytes) for a rendered body") {
		t.Fatalf("create: %v, want InvalidArgument naming endpoint.body_template and the limit", err)
	}
	_, err = h.endpoints.PreviewEndpoint(ctx, &postbackv1.PreviewEndpointRequest{Endpoint: ep})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "endpoint.body_template: renders up to ") {
		t.Fatalf("preview: %v, want the same refusal", err)
	}
	l, err := h.endpoints.ListEndpoints(ctx, &postbackv1.ListEndpointsRequest{AccountId: "brand-1"})
	if err != nil || len(l.Endpoints) != 0 {
		t.Fatalf("endpoints stored: %v, %v", l, err)
	}
}

// An ordinary template (one value in an XML body) meets an event the
// gateway accepts whose value XML writes six times longer (200 KiB of
// apostrophes): the render stops at the body's limit, the delivery is
// FAILED with the reason for GetDelivery and ListDeliveries, no request is
// made, and the event is acked once, not rendered again and again.
func TestAnEventThatRendersOverTheBodyLimitIsAFailedDeliveryAndIsAcked(t *testing.T) {
	h := start(t, "", nil)
	rc := newReceiver(t)
	ctx := context.Background()
	if _, err := h.endpoints.CreateEndpoint(ctx, &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{
		AccountId: "brand-1", EventType: "action_lifecycle", Url: rc.URL + "/pb", Method: postbackv1.HttpMethod_HTTP_METHOD_POST,
		BodyFormat: postbackv1.BodyFormat_BODY_FORMAT_XML, BodyTemplate: "<note>{Note}</note>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.events.Publish(ctx, &postbackv1.PublishRequest{AccountId: "brand-1", EventType: "action_lifecycle",
		Data: &structpb.Struct{Fields: map[string]*structpb.Value{"Note": structpb.NewStringValue(strings.Repeat("'", 200<<10))}}}); err != nil {
		t.Fatal(err)
	}
	d := settled(t, h, 10*time.Second)
	const reason = "the rendered body is over the limit of "
	if d.Status != postbackv1.DeliveryStatus_DELIVERY_STATUS_FAILED || d.AttemptCount != 0 || !strings.HasPrefix(d.Reason, reason) {
		t.Fatalf("delivery %s, %d attempts, reason %q; want FAILED before any attempt: %q…", d.Status, d.AttemptCount, d.Reason, reason)
	}
	got, err := h.deliveries.GetDelivery(ctx, &postbackv1.GetDeliveryRequest{Id: d.Id})
	if err != nil || got.Status != d.Status || got.Reason != d.Reason {
		t.Fatalf("GetDelivery = %v, %v; want %s, %q", got, err, d.Status, d.Reason)
	}

	// Longer than a nak's delay and a render: a loop would show.
	time.Sleep(2500 * time.Millisecond)
	js := h.jetStream(t)
	events, err := js.Stream(ctx, stream.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	consumers := events.ListConsumers(ctx)
	for info := range consumers.Info() {
		if strings.HasPrefix(info.Name, stream.RendererConsumer) && (info.NumAckPending != 0 || info.NumRedelivered != 0 || info.NumPending != 0) {
			t.Errorf("renderer consumer %s: %d waiting for an ack, %d redelivered, %d pending; want the event acked once",
				info.Name, info.NumAckPending, info.NumRedelivered, info.NumPending)
		}
	}
	if err := consumers.Err(); err != nil {
		t.Fatal(err)
	}
	if n := len(rc.requests()); n != 0 {
		t.Fatalf("the receiver got %d requests", n)
	}
}
