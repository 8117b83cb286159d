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

	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// The seed's own JSON body style: no escaping needed, a join over items.
const lifecycleTemplate = `{"campaign_id": "{CampaignId}", "action": "{ActionId}", "payout": {Payout},
 "items": [{join(items, i, "\{\"sku\":\"{i.sku}\",\"qty\":{i.qty},\"price\":{i.amt}\}")}]}`

func TestTemplatesRenderIntoURLHeadersAndBody(t *testing.T) {
	h := start(t, "", nil)
	rc := newReceiver(t)
	ctx := context.Background()
	if _, err := h.endpoints.CreateEndpoint(ctx, &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{
		AccountId: "brand-1", EventType: "action_lifecycle",
		Url:          rc.URL + "/pb/{CampaignId}?oid={Oid}&status={Status}",
		Method:       postbackv1.HttpMethod_HTTP_METHOD_POST,
		Headers:      []*postbackv1.Header{{Name: "X-Action", Value: "{ActionId}"}, {Name: "X-Static", Value: "brand"}},
		BodyTemplate: lifecycleTemplate,
	}}); err != nil {
		t.Fatal(err)
	}
	data := map[string]any{"CampaignId": 9876, "ActionId": "ACT-778899", "Oid": "ORD 55&44", "Status": "MODIFIED", "Payout": 10.5,
		"items": []any{map[string]any{"sku": "SKU-1", "qty": 2, "amt": 25}, map[string]any{"sku": `S"Q`, "qty": 1, "amt": 50.25}}}
	s, err := structpb.NewStruct(data)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.events.Publish(ctx, &postbackv1.PublishRequest{AccountId: "brand-1", EventType: "action_lifecycle", Data: s}); err != nil {
		t.Fatal(err)
	}
	got := rc.next(t, 10*time.Second)
	if got.Path != "/pb/9876" || got.Query != "oid=ORD%2055%2644&status=MODIFIED" {
		t.Fatalf("URL = %s?%s", got.Path, got.Query)
	}
	if got.Header.Get("X-Action") != "ACT-778899" || got.Header.Get("X-Static") != "brand" || got.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("headers = %v", got.Header)
	}
	want := `{"campaign_id": "9876", "action": "ACT-778899", "payout": 10.50,
 "items": [{"sku":"SKU-1","qty":2,"price":25.00},{"sku":"S\"Q","qty":1,"price":50.25}]}`
	if string(got.Body) != want {
		t.Fatalf("body =\n%s\nwant\n%s", got.Body, want)
	}
	if !json.Valid(got.Body) {
		t.Fatal("body is not valid JSON")
	}
}

// Many producers carry money and counts as JSON strings. A decimal or
// integer data point sent as a string holding a number of its type renders
// as that number, exactly as if it had been sent as one; the seed quotes
// rbt in its items template, so rbt is a string data point, sent as text;
// any other string for a number is refused, naming the field.
func TestNumbersSentAsStringsRenderByTheirType(t *testing.T) {
	h := start(t, "", nil)
	rc := newReceiver(t)
	ctx := context.Background()
	if _, err := h.endpoints.CreateEndpoint(ctx, &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{
		AccountId: "brand-1", EventType: "action_lifecycle", Url: rc.URL + "/pb/{CampaignId}",
		Method:       postbackv1.HttpMethod_HTTP_METHOD_POST,
		BodyTemplate: `{"payout": {Payout}, "items": [{join(items, i, "\{\"qty\":{i.qty},\"price\":{i.amt},\"rbt\":\"{i.rbt}\"\}")}]}`,
	}}); err != nil {
		t.Fatal(err)
	}
	data := map[string]any{"CampaignId": "9876", "Payout": "10.5",
		"items": []any{map[string]any{"qty": "2", "amt": "25", "rbt": "1.25"}, map[string]any{"qty": 1, "amt": 50.25, "rbt": "0.00"}}}
	s, err := structpb.NewStruct(data)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.events.Publish(ctx, &postbackv1.PublishRequest{AccountId: "brand-1", EventType: "action_lifecycle", Data: s}); err != nil {
		t.Fatal(err)
	}
	got := rc.next(t, 10*time.Second)
	want := `{"payout": 10.50, "items": [{"qty":2,"price":25.00,"rbt":"1.25"},{"qty":1,"price":50.25,"rbt":"0.00"}]}`
	if got.Path != "/pb/9876" || string(got.Body) != want {
		t.Fatalf("got %s with\n%s\nwant /pb/9876 with\n%s", got.Path, got.Body, want)
	}

	refused := []struct {
		name  string
		data  map[string]any
		field string
	}{
		{"a decimal that is not a number", map[string]any{"Payout": "ten"}, "data.Payout"},
		{"an integer with a fraction", map[string]any{"CampaignId": "98.5"}, "data.CampaignId"},
		{"an item quantity with a unit", map[string]any{"items": []any{map[string]any{"qty": "2 pcs"}}}, "data.items[0].qty"},
		{"a number for the string rbt", map[string]any{"items": []any{map[string]any{"rbt": 1.25}}}, "data.items[0].rbt"},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			s, err := structpb.NewStruct(c.data)
			if err != nil {
				t.Fatal(err)
			}
			_, err = h.events.Publish(ctx, &postbackv1.PublishRequest{AccountId: "brand-1", EventType: "action_lifecycle", Data: s})
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), c.field) {
				t.Errorf("got %v, want InvalidArgument naming %s", err, c.field)
			}
		})
	}
}

func TestSavingABadTemplateNamesTheFieldAndPosition(t *testing.T) {
	h := start(t, "", nil)
	cases := []struct {
		name string
		ep   *postbackv1.Endpoint
		want string
	}{
		{"unknown data point in the body", &postbackv1.Endpoint{AccountId: "b", EventType: "action_clearing", Url: "http://127.0.0.1:1/",
			Method: postbackv1.HttpMethod_HTTP_METHOD_POST, BodyTemplate: "{\"a\": \"{ActionIds}\",\n \"b\": \"{Bogus}\"}"},
			"endpoint.body_template: line 2, column 8"},
		{"unterminated join", &postbackv1.Endpoint{AccountId: "b", EventType: "action_lifecycle", Url: "http://127.0.0.1:1/",
			Method: postbackv1.HttpMethod_HTTP_METHOD_POST, BodyTemplate: `[{join(items, i, "{i.sku}"]`},
			"endpoint.body_template: line 1"},
		{"unknown data point in the URL", &postbackv1.Endpoint{AccountId: "b", EventType: "action_clearing", Url: "http://127.0.0.1:1/?x={Nope}"},
			"endpoint.url: line 1, column 23"},
		{"unknown data point in a header", &postbackv1.Endpoint{AccountId: "b", EventType: "action_clearing", Url: "http://127.0.0.1:1/",
			Headers: []*postbackv1.Header{{Name: "X", Value: "{Nope}"}}},
			"endpoint.headers[0].value: line 1, column 1"},
		{"a JSON body that renders invalid JSON", &postbackv1.Endpoint{AccountId: "b", EventType: "action_clearing", Url: "http://127.0.0.1:1/",
			Method: postbackv1.HttpMethod_HTTP_METHOD_POST, BodyTemplate: `{"ids": {ActionIds}}`},
			"rendered sample is not valid JSON"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := h.endpoints.CreateEndpoint(context.Background(), &postbackv1.CreateEndpointRequest{Endpoint: c.ep})
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), c.want) {
				t.Fatalf("got %v, want InvalidArgument containing %q", err, c.want)
			}
		})
	}
}

func TestPreviewRendersSampleOrGivenDataAndSendsNothing(t *testing.T) {
	h := start(t, "", nil)
	rc := newReceiver(t)
	ep := &postbackv1.Endpoint{AccountId: "brand-1", EventType: "action_inquiry",
		Url: rc.URL + "/inq?id={Id}&status={ResolutionStatus}", Method: postbackv1.HttpMethod_HTTP_METHOD_GET}
	sample, err := h.endpoints.PreviewEndpoint(context.Background(), &postbackv1.PreviewEndpointRequest{Endpoint: ep})
	if err != nil {
		t.Fatal(err)
	}
	if sample.Method != "GET" || sample.Url != rc.URL+"/inq?id=554433&status=PENDING" || sample.Body != "" {
		t.Fatalf("preview with the sample = %v", sample)
	}
	given, err := h.endpoints.PreviewEndpoint(context.Background(), &postbackv1.PreviewEndpointRequest{Endpoint: ep,
		Data: &structpb.Struct{Fields: map[string]*structpb.Value{"Id": structpb.NewNumberValue(7), "ResolutionStatus": structpb.NewStringValue("A&B")}}})
	if err != nil {
		t.Fatal(err)
	}
	if given.Url != rc.URL+"/inq?id=7&status=A%26B" {
		t.Fatalf("preview with data = %v", given.Url)
	}
	time.Sleep(200 * time.Millisecond)
	if n := len(rc.requests()); n != 0 {
		t.Fatalf("preview sent %d requests", n)
	}
}

func TestEventTypesListEveryDataPointAndPublishChecksTypes(t *testing.T) {
	h := start(t, "", nil)
	ctx := context.Background()
	list, err := h.types.ListEventTypes(ctx, &postbackv1.ListEventTypesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	points := map[string]map[string]*postbackv1.DataPoint{}
	for _, et := range list.EventTypes {
		names = append(names, et.Name)
		points[et.Name] = map[string]*postbackv1.DataPoint{}
		for _, dp := range et.DataPoints {
			points[et.Name][dp.Name] = dp
		}
	}
	if strings.Join(names, ",") != "action_lifecycle,action_inquiry,action_clearing,tracking_value_request,job_completed,publisher_application,operational_event" {
		t.Fatalf("event types = %v", names)
	}
	for _, c := range []struct {
		typ, name string
		want      postbackv1.DataPointType
		item      bool
	}{
		{"action_lifecycle", "CampaignId", postbackv1.DataPointType_DATA_POINT_TYPE_INTEGER, false},
		{"action_lifecycle", "Payout", postbackv1.DataPointType_DATA_POINT_TYPE_DECIMAL, false},
		{"action_lifecycle", "EventDate", postbackv1.DataPointType_DATA_POINT_TYPE_DATE_TIME, false},
		{"action_lifecycle", "Date1", postbackv1.DataPointType_DATA_POINT_TYPE_DATE, false},
		{"action_lifecycle", "qty", postbackv1.DataPointType_DATA_POINT_TYPE_INTEGER, true},
		{"publisher_application", "PastRelationship", postbackv1.DataPointType_DATA_POINT_TYPE_BOOLEAN, false},
		{"job_completed", "ResultDownloadUrlExp60", postbackv1.DataPointType_DATA_POINT_TYPE_STRING, false},
	} {
		dp := points[c.typ][c.name]
		if dp == nil || dp.Type != c.want || dp.Item != c.item || dp.Description == "" {
			t.Errorf("%s.%s = %v, want type %s item %v with a description", c.typ, c.name, dp, c.want, c.item)
		}
	}
	_, err = h.events.Publish(ctx, &postbackv1.PublishRequest{AccountId: "brand-1", EventType: "action_lifecycle",
		Data: &structpb.Struct{Fields: map[string]*structpb.Value{
			"CampaignId": structpb.NewStringValue("abc"), "Bogus": structpb.NewBoolValue(true)}}})
	msg := status.Convert(err).Message()
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(msg, "data.CampaignId") || !strings.Contains(msg, "data.Bogus") {
		t.Fatalf("got %v, want InvalidArgument naming data.CampaignId and data.Bogus", err)
	}
}
