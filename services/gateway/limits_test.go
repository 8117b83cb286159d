package gateway

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/postback-dev/postback/pkg/auth"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

func TestDefaultLimitsAreTheDocumentedOnes(t *testing.T) {
	l := Limits{}.withDefaults()
	want := Limits{MaxMessageBytes: 8 << 20, MaxBatch: 1000, MaxEventBytes: 256 << 10, MaxItems: 1000,
		MaxURLBytes: 8 << 10, MaxBodyTemplateBytes: 64 << 10, MaxHeaders: 32, MaxHeaderNameBytes: 256,
		MaxHeaderValueBytes: 8 << 10, MaxResponseRuleBytes: 4 << 10}
	if l != want {
		t.Fatalf("defaults = %+v\nwant       %+v (update docs/security.md with them)", l, want)
	}
}

func TestAnEventOverALimitIsResourceExhaustedNamingIt(t *testing.T) {
	s := fuzzServer(t, Limits{})
	items := make([]any, 1001)
	for i := range items {
		items[i] = map[string]any{"sku": "S"}
	}
	cases := []struct {
		name, field, limit string
		data               map[string]any
	}{
		{"too many items", "data.items", "1000 items", map[string]any{"ActionId": "A", "items": items}},
		{"too large", "data", "256 KiB", map[string]any{"ActionId": strings.Repeat("x", 300<<10)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data, err := structpb.NewStruct(c.data)
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.prepare("events[2].", &postbackv1.PublishRequest{AccountId: "brand-1", EventType: "action_lifecycle", Data: data})
			msg := status.Convert(err).Message()
			if status.Code(err) != codes.ResourceExhausted || !strings.HasPrefix(msg, "events[2]."+c.field+":") || !strings.Contains(msg, c.limit) {
				t.Fatalf("got %v, want ResourceExhausted naming events[2].%s and %s", err, c.field, c.limit)
			}
		})
	}
}

func TestAnEndpointOverALimitIsResourceExhaustedNamingIt(t *testing.T) {
	s := fuzzServer(t, Limits{})
	base := func() *postbackv1.Endpoint {
		return &postbackv1.Endpoint{AccountId: "brand-1", EventType: "action_clearing", Url: "https://brand.example/pb"}
	}
	many := make([]*postbackv1.Header, 33)
	for i := range many {
		many[i] = &postbackv1.Header{Name: "X-H", Value: "v"}
	}
	cases := []struct {
		name, field, limit string
		edit               func(*postbackv1.Endpoint)
	}{
		{"URL", "endpoint.url", "8 KiB", func(e *postbackv1.Endpoint) { e.Url += "?" + strings.Repeat("a", 8<<10) }},
		{"body template", "endpoint.body_template", "64 KiB", func(e *postbackv1.Endpoint) {
			e.Method = postbackv1.HttpMethod_HTTP_METHOD_POST
			e.BodyFormat = postbackv1.BodyFormat_BODY_FORMAT_TEXT
			e.BodyTemplate = strings.Repeat("b", 64<<10+1)
		}},
		{"header count", "endpoint.headers", "32 headers", func(e *postbackv1.Endpoint) { e.Headers = many }},
		{"header name", "endpoint.headers[0].name", "256 bytes", func(e *postbackv1.Endpoint) {
			e.Headers = []*postbackv1.Header{{Name: strings.Repeat("N", 257), Value: "v"}}
		}},
		{"secret header value", "endpoint.headers[0].value", "8 KiB", func(e *postbackv1.Endpoint) {
			e.Headers = []*postbackv1.Header{{Name: "Authorization", Value: strings.Repeat("v", 8<<10+1), Secret: true}}
		}},
		{"success response", "endpoint.success_response", "4 KiB", func(e *postbackv1.Endpoint) { e.SuccessResponse = strings.Repeat("o", 4<<10+1) }},
		{"error response", "endpoint.error_response", "4 KiB", func(e *postbackv1.Endpoint) { e.ErrorResponse = strings.Repeat("e", 4<<10+1) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := base()
			c.edit(e)
			for call, err := range map[string]error{
				"save": s.validateForSave(e),
				"preview": func() error {
					_, err := s.PreviewEndpoint(operatorCtx(), &postbackv1.PreviewEndpointRequest{Endpoint: e})
					return err
				}(),
			} {
				msg := status.Convert(err).Message()
				if status.Code(err) != codes.ResourceExhausted || !strings.HasPrefix(msg, c.field+":") || !strings.Contains(msg, c.limit) {
					t.Fatalf("%s: got %v, want ResourceExhausted naming %s and %s", call, err, c.field, c.limit)
				}
			}
		})
	}
	// Just under every limit is fine.
	e := base()
	e.Url += "?" + strings.Repeat("a", 8<<10-len(e.Url)-1)
	if err := s.validateForSave(e); err != nil {
		t.Fatalf("a URL of exactly 8 KiB: %v", err)
	}
}

func operatorCtx() context.Context {
	return auth.NewContext(context.Background(), auth.Identity{Account: auth.OperatorAccount, TokenID: "t"})
}

func TestSecretsAreNeverQuotedByRefusals(t *testing.T) {
	s := fuzzServer(t, Limits{})
	const value = "Bearer s3cr3t-{Token}-value-XYZ"
	e := &postbackv1.Endpoint{AccountId: "brand-1", EventType: "action_clearing", Url: "https://brand.example/pb",
		Headers: []*postbackv1.Header{{Name: "Authorization", Value: value, Secret: true}}}
	err := s.validateForSave(e)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "headers[0].value") {
		t.Fatalf("got %v, want InvalidArgument naming headers[0].value", err)
	}
	if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "Token") {
		t.Fatalf("refusal quotes the secret: %v", err)
	}
	_, err = s.PreviewEndpoint(operatorCtx(), &postbackv1.PreviewEndpointRequest{Endpoint: e})
	if err == nil || strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "Token") {
		t.Fatalf("preview: %v", err)
	}

	e.Headers = nil
	e.SigningSecret = "whsec_not-base64-s3cr3t!!"
	err = s.validateForSave(e)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "signing_secret") || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("bad signing secret: %v", err)
	}
}

func TestSecretsInTheSealedFormAreRefused(t *testing.T) {
	sealed := "enc:v1:k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	cases := []struct {
		name    string
		headers []*postbackv1.Header
		signing string
		field   string
	}{
		{"secret header", []*postbackv1.Header{{Name: "A", Value: "x"}, {Name: "B", Value: sealed, Secret: true}}, "", "endpoint.headers[1].value"},
		{"plain header", []*postbackv1.Header{{Name: "A", Value: sealed}}, "", "endpoint.headers[0].value"},
		{"signing secret", nil, sealed, "endpoint.signing_secret"},
	}
	for _, c := range cases {
		err := refuseSealed(c.headers, c.signing)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), c.field) || strings.Contains(err.Error(), sealed) {
			t.Errorf("%s: got %v, want InvalidArgument naming %s", c.name, err, c.field)
		}
	}
	if err := refuseSealed([]*postbackv1.Header{{Name: "A", Value: "enc:v2 is fine"}}, "whsec_x"); err != nil {
		t.Errorf("clear values refused: %v", err)
	}
}

func TestHandlersWithoutAnIdentityActOnNothing(t *testing.T) {
	s := fuzzServer(t, Limits{})
	ctx := context.Background() // no auth interceptor ran
	if _, err := s.Publish(ctx, &postbackv1.PublishRequest{AccountId: "brand-1"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("Publish: %v", err)
	}
	if _, err := s.CreateEndpoint(ctx, &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{AccountId: "brand-1"}}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("CreateEndpoint: %v", err)
	}
	if _, err := listScope(ctx, ""); status.Code(err) != codes.Unauthenticated {
		t.Errorf("listScope: %v", err)
	}
	if visible(ctx, "brand-1") {
		t.Error("visible without identity")
	}
}
