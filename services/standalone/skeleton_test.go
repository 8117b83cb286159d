package standalone

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/postback-dev/postback/pkg/event"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

func sampleData(t *testing.T, eventType string) *structpb.Struct {
	t.Helper()
	typ, ok := event.Lookup(eventType)
	if !ok {
		t.Fatalf("no event type %s", eventType)
	}
	s, err := structpb.NewStruct(typ.Sample())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPublishedEventArrivesOnceAtTheBrandsEndpoint(t *testing.T) {
	h := start(t, "", nil)
	rc := newReceiver(t)
	ctx := context.Background()
	ep, err := h.endpoints.CreateEndpoint(ctx, &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{
		AccountId: "brand-1", EventType: "action_clearing", Url: rc.URL + "/postback",
		Method: postbackv1.HttpMethod_HTTP_METHOD_POST,
	}})
	if err != nil {
		t.Fatalf("CreateEndpoint: %v", err)
	}
	if !strings.HasPrefix(ep.Id, "ep_") || !ep.GetEnabled() {
		t.Fatalf("created endpoint = %v", ep)
	}
	pub, err := h.events.Publish(ctx, &postbackv1.PublishRequest{AccountId: "brand-1", EventType: "action_clearing", Data: sampleData(t, "action_clearing")})
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	got := rc.next(t, 10*time.Second)
	if got.Method != "POST" || got.Path != "/postback" {
		t.Fatalf("got %s %s", got.Method, got.Path)
	}
	var body map[string]any
	if err := json.Unmarshal(got.Body, &body); err != nil {
		t.Fatalf("body is not JSON: %v: %s", err, got.Body)
	}
	if body["ActionIds"] != "ACT-101,ACT-102" || body["CampaignId"] != float64(9876) {
		t.Fatalf("body does not carry the event's data: %s", got.Body)
	}
	dlvID := got.Header.Get("Postback-Delivery-Id")
	if !strings.HasPrefix(dlvID, "dlv_") || got.Header.Get("Postback-Attempt") != "0" ||
		got.Header.Get("Postback-Event-Type") != "action_clearing" || !strings.HasPrefix(got.Header.Get("User-Agent"), "Postback/") {
		t.Fatalf("postback headers = %v", got.Header)
	}
	var d *postbackv1.Delivery
	eventually(t, 5*time.Second, "delivery SUCCEEDED", func() bool {
		d, err = h.deliveries.GetDelivery(ctx, &postbackv1.GetDeliveryRequest{Id: dlvID})
		return err == nil && d.Status == postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED
	})
	if d.EventId != pub.EventId || d.EndpointId != ep.Id || d.AttemptCount != 1 || d.LastStatusCode != 200 {
		t.Fatalf("delivery = %v", d)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(rc.requests()); n != 1 {
		t.Fatalf("receiver got %d requests, want exactly 1", n)
	}
}

func TestGetWithoutTemplateSendsEveryPresentDataPointAsQuery(t *testing.T) {
	h := start(t, "", nil)
	rc := newReceiver(t)
	ctx := context.Background()
	if _, err := h.endpoints.CreateEndpoint(ctx, &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{
		AccountId: "brand-1", EventType: "job_completed", Url: rc.URL + "/hook",
	}}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.events.Publish(ctx, &postbackv1.PublishRequest{AccountId: "brand-1", EventType: "job_completed",
		Data: &structpb.Struct{Fields: map[string]*structpb.Value{"JobId": structpb.NewNumberValue(10293847), "JobType": structpb.NewStringValue("REPORT_EXPORT")}}}); err != nil {
		t.Fatal(err)
	}
	got := rc.next(t, 10*time.Second)
	if got.Method != "GET" || got.Query != "JobId=10293847&JobType=REPORT_EXPORT" || len(got.Body) != 0 {
		t.Fatalf("got %s ?%s body %q", got.Method, got.Query, got.Body)
	}
}

func TestOnlyTheAccountsEnabledEndpointsForTheEventTypeReceive(t *testing.T) {
	h := start(t, "", nil)
	ctx := context.Background()
	match, other, disabled, otherAccount := newReceiver(t), newReceiver(t), newReceiver(t), newReceiver(t)
	create := func(acc, typ, url string, enabled bool) {
		t.Helper()
		if _, err := h.endpoints.CreateEndpoint(ctx, &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{
			AccountId: acc, EventType: typ, Url: url, Enabled: &enabled}}); err != nil {
			t.Fatal(err)
		}
	}
	create("brand-1", "action_inquiry", match.URL, true)
	create("brand-1", "action_clearing", other.URL, true)
	create("brand-1", "action_inquiry", disabled.URL, false)
	create("brand-2", "action_inquiry", otherAccount.URL, true)
	if _, err := h.events.Publish(ctx, &postbackv1.PublishRequest{AccountId: "brand-1", EventType: "action_inquiry", Data: sampleData(t, "action_inquiry")}); err != nil {
		t.Fatal(err)
	}
	match.next(t, 10*time.Second)
	time.Sleep(500 * time.Millisecond)
	for name, rc := range map[string]*receiver{"other event type": other, "disabled": disabled, "other account": otherAccount} {
		if n := len(rc.requests()); n != 0 {
			t.Errorf("%s endpoint got %d requests", name, n)
		}
	}
}

func TestPublishedWhileSenderIsDownArrivesAfterRestart(t *testing.T) {
	dir := t.TempDir()
	rc := newReceiver(t)
	ctx := context.Background()
	// Everything but the sender runs: the event is accepted and rendered,
	// and the delivery waits in JetStream.
	h := start(t, dir, func(c *Config) { c.Targets = "gateway,renderer,retry,historian" })
	if _, err := h.endpoints.CreateEndpoint(ctx, &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{
		AccountId: "brand-1", EventType: "action_clearing", Url: rc.URL}}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.events.Publish(ctx, &postbackv1.PublishRequest{AccountId: "brand-1", EventType: "action_clearing", Data: sampleData(t, "action_clearing")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "a PENDING delivery", func() bool {
		l, err := h.deliveries.ListDeliveries(ctx, &postbackv1.ListDeliveriesRequest{AccountId: "brand-1"})
		return err == nil && len(l.Deliveries) == 1 && l.Deliveries[0].Status == postbackv1.DeliveryStatus_DELIVERY_STATUS_PENDING
	})
	h.stop()
	if n := len(rc.requests()); n != 0 {
		t.Fatalf("delivered while the sender was down: %d", n)
	}
	// The whole process restarts on the same data dir, sender included.
	start(t, dir, nil)
	rc.next(t, 10*time.Second)
	time.Sleep(300 * time.Millisecond)
	if n := len(rc.requests()); n != 1 {
		t.Fatalf("receiver got %d requests, want 1", n)
	}
}

func TestBadInputIsRefusedNamingTheField(t *testing.T) {
	h := start(t, "", nil)
	ctx := context.Background()
	data := sampleData(t, "action_clearing")
	cases := []struct {
		name  string
		call  func() error
		field string
	}{
		{"unknown event type", func() error {
			_, err := h.events.Publish(ctx, &postbackv1.PublishRequest{AccountId: "brand-1", EventType: "action_unknown", Data: data})
			return err
		}, "event_type"},
		{"missing data", func() error {
			_, err := h.events.Publish(ctx, &postbackv1.PublishRequest{AccountId: "brand-1", EventType: "action_clearing"})
			return err
		}, "data"},
		{"unknown data point", func() error {
			_, err := h.events.Publish(ctx, &postbackv1.PublishRequest{AccountId: "brand-1", EventType: "action_clearing",
				Data: &structpb.Struct{Fields: map[string]*structpb.Value{"Bogus": structpb.NewStringValue("x")}}})
			return err
		}, "data.Bogus"},
		{"bad account", func() error {
			_, err := h.events.Publish(ctx, &postbackv1.PublishRequest{AccountId: "brand 1", EventType: "action_clearing", Data: data})
			return err
		}, "account_id"},
		{"relative URL", func() error {
			_, err := h.endpoints.CreateEndpoint(ctx, &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{
				AccountId: "brand-1", EventType: "action_clearing", Url: "/postback"}})
			return err
		}, "url"},
		{"negative limit", func() error {
			_, err := h.endpoints.CreateEndpoint(ctx, &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{
				AccountId: "brand-1", EventType: "action_clearing", Url: "http://127.0.0.1:1/x", MaxRequestsPerSecond: -1}})
			return err
		}, "max_requests_per_second"},
		{"negative delay", func() error {
			_, err := h.endpoints.CreateEndpoint(ctx, &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{
				AccountId: "brand-1", EventType: "action_clearing", Url: "http://127.0.0.1:1/x", MinDelaySeconds: -0.5}})
			return err
		}, "min_delay_seconds"},
		{"negative share of the sender", func() error {
			_, err := h.endpoints.CreateEndpoint(ctx, &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{
				AccountId: "brand-1", EventType: "action_clearing", Url: "http://127.0.0.1:1/x", MaxInFlight: -1}})
			return err
		}, "max_in_flight"},
		{"endpoint of unknown event type", func() error {
			_, err := h.endpoints.CreateEndpoint(ctx, &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{
				AccountId: "brand-1", EventType: "nope", Url: "http://127.0.0.1:1/x"}})
			return err
		}, "event_type"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("got %v, want InvalidArgument", err)
			}
			if !strings.Contains(status.Convert(err).Message(), c.field) {
				t.Fatalf("message %q does not name %q", status.Convert(err).Message(), c.field)
			}
		})
	}
	// Nothing was stored or published.
	list, err := h.endpoints.ListEndpoints(ctx, &postbackv1.ListEndpointsRequest{AccountId: "brand-1"})
	if err != nil || len(list.Endpoints) != 0 {
		t.Fatalf("endpoints stored after refusals: %v %v", list, err)
	}
	dl, err := h.deliveries.ListDeliveries(ctx, &postbackv1.ListDeliveriesRequest{})
	if err != nil || len(dl.Deliveries) != 0 {
		t.Fatalf("deliveries after refusals: %v %v", dl, err)
	}
}
