package gateway

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/postback-dev/postback/pkg/event"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// thousandsOfJoins is the tester's template: 65 KB of 2,500 joins over the
// items, 502 MB rendered for 1,000 items before templates were bounded.
var thousandsOfJoins = strings.Repeat(`{join(items, i,"{i.sku}")}`, 2500)

// fieldViolation is the BadRequest violation of field in err, if any.
func fieldViolation(err error, field string) (string, bool) {
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.FieldViolations {
				if v.Field == field {
					return v.Description, true
				}
			}
		}
	}
	return "", false
}

// A template whose worst case for an event at the size limits passes the
// limits of a rendered request is refused when it is saved (create and
// update share validateForSave) and previewed, InvalidArgument naming the
// field and saying how large it can get.
func TestATemplateThatMultipliesItsEventIsRefusedAtSaveAndPreview(t *testing.T) {
	s := fuzzServer(t, Limits{})
	tests := []struct {
		name  string
		ep    *postbackv1.Endpoint
		field string
		says  []string
	}{
		{"2,500 joins over the items", &postbackv1.Endpoint{AccountId: "brand-1", EventType: "action_lifecycle", Url: "https://brand.example/pb",
			Method: postbackv1.HttpMethod_HTTP_METHOD_POST, BodyFormat: postbackv1.BodyFormat_BODY_FORMAT_TEXT, BodyTemplate: thousandsOfJoins},
			"endpoint.body_template", []string{"renders up to 657857500 bytes for an event at the size limits (256 KiB, 1000 items)",
				"over the limit of 1 MiB (1048576 bytes) for a rendered body", "each item's sku is written 2500 times"}},
		{"a string written once per item", &postbackv1.Endpoint{AccountId: "brand-1", EventType: "action_lifecycle", Url: "https://brand.example/pb",
			Method: postbackv1.HttpMethod_HTTP_METHOD_POST, BodyTemplate: `[{join(items, i, "\"{CampaignName}\"")}]`},
			"endpoint.body_template", []string{"{CampaignName} is written 1000 times"}},
		{"a URL whose own text at 1,000 items is too long", &postbackv1.Endpoint{AccountId: "brand-1", EventType: "action_lifecycle",
			Url: `https://brand.example/pb?{join(items, i, "sku={i.sku}&qty={i.qty}", "&")}`},
			"endpoint.url", []string{"its own text renders", "over the limit of 8 KiB (8192 bytes) for a rendered URL"}},
		{"a secret header value that multiplies its event", &postbackv1.Endpoint{AccountId: "brand-1", EventType: "action_lifecycle",
			Url: "https://brand.example/pb", Headers: []*postbackv1.Header{{Name: "X-A", Value: "a"},
				{Name: "Authorization", Value: "Bearer " + thousandsOfJoins[:26*5], Secret: true}}},
			"endpoint.headers[1].value", []string{"each item's sku is written 5 times"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for call, err := range map[string]error{
				"save": s.validateForSave(tt.ep),
				"preview": func() error {
					_, err := s.PreviewEndpoint(operatorCtx(), &postbackv1.PreviewEndpointRequest{Endpoint: tt.ep})
					return err
				}(),
			} {
				desc, ok := fieldViolation(err, tt.field)
				if status.Code(err) != codes.InvalidArgument || !ok {
					t.Fatalf("%s: %v, want InvalidArgument with a violation of %s", call, err, tt.field)
				}
				for _, w := range tt.says {
					if !strings.Contains(desc, w) {
						t.Errorf("%s: %q does not say %q", call, desc, w)
					}
				}
				if strings.Contains(err.Error(), "Bearer") {
					t.Errorf("%s: the secret is quoted: %v", call, err)
				}
			}
		})
	}
}

// The seed's templates, the default payloads and the README's URL are all
// accepted: the model refuses what multiplies an event, not what carries
// one.
func TestTheSeedsTemplatesAreStillAcceptedAtSave(t *testing.T) {
	s := fuzzServer(t, Limits{})
	for _, typ := range event.Types() {
		src, err := os.ReadFile(filepath.Join("..", "..", "pkg", "render", "testdata", "templates", typ.Name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		for _, ep := range []*postbackv1.Endpoint{
			{AccountId: "brand-1", EventType: typ.Name, Url: "https://brand.example/pb", BodyTemplate: string(src),
				Headers: []*postbackv1.Header{{Name: "X-Id", Value: "{" + typ.DataPoints[0].Name + "}"}, {Name: "Authorization", Value: "Bearer t0k3n", Secret: true}}},
			{AccountId: "brand-1", EventType: typ.Name, Url: "https://brand.example/pb", Method: postbackv1.HttpMethod_HTTP_METHOD_POST},
			{AccountId: "brand-1", EventType: typ.Name, Url: "https://brand.example/pb"},
			{AccountId: "brand-1", EventType: typ.Name, Url: "http://127.0.0.1:9000/?id={" + typ.DataPoints[0].Name + "}&again={" + typ.DataPoints[0].Name + "}"},
		} {
			if err := s.validateForSave(ep); err != nil {
				t.Errorf("%s %q, body %d bytes: %v", typ.Name, ep.Url, len(ep.BodyTemplate), err)
			}
		}
	}
}

// Preview renders within the same limits as the renderer: data that makes
// an ordinary template pass one (XML writes each of 200 KiB of apostrophes
// as "&apos;") is ResourceExhausted naming the field, and the render stops
// at the limit instead of holding the whole.
func TestPreviewOfDataOverALimitStopsAtTheLimit(t *testing.T) {
	s := fuzzServer(t, Limits{})
	data, err := structpb.NewStruct(map[string]any{"Note": strings.Repeat("'", 200<<10)})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, field, says string
		ep                *postbackv1.Endpoint
	}{
		{"body", "endpoint.body_template", "the rendered body is over the limit of 1 MiB (1048576 bytes)", &postbackv1.Endpoint{
			EventType: "action_lifecycle", Url: "https://brand.example/pb", Method: postbackv1.HttpMethod_HTTP_METHOD_POST,
			BodyFormat: postbackv1.BodyFormat_BODY_FORMAT_XML, BodyTemplate: "<note>{Note}</note>"}},
		{"URL", "endpoint.url", "the rendered URL is over the limit of 8 KiB (8192 bytes)", &postbackv1.Endpoint{
			EventType: "action_lifecycle", Url: "https://brand.example/pb?note={Note}"}},
		{"header", "endpoint.headers[0].value", "the rendered value of header X-Note is over the limit of 8 KiB", &postbackv1.Endpoint{
			EventType: "action_lifecycle", Url: "https://brand.example/pb?a=1", Headers: []*postbackv1.Header{{Name: "X-Note", Value: "{Note}"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := &postbackv1.PreviewEndpointRequest{Endpoint: tt.ep, Data: data}
			if _, err := s.PreviewEndpoint(operatorCtx(), &postbackv1.PreviewEndpointRequest{Endpoint: tt.ep}); err != nil {
				t.Fatalf("the sample: %v", err)
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err := s.PreviewEndpoint(operatorCtx(), req)
			runtime.ReadMemStats(&after)
			msg := status.Convert(err).Message()
			if status.Code(err) != codes.ResourceExhausted || !strings.HasPrefix(msg, tt.field+":") || !strings.Contains(msg, tt.says) {
				t.Fatalf("got %v, want ResourceExhausted naming %s: %s", err, tt.field, tt.says)
			}
			// The data's own checks take a few copies of its 200 KiB; the
			// render stops at 1 MiB.
			if n := after.TotalAlloc - before.TotalAlloc; n > 8<<20 {
				t.Errorf("the preview allocated %d bytes", n)
			}
		})
	}
}
