package render

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/postback-dev/postback/pkg/event"
)

// bounds are the gateway's default event limits.
var bounds = EventBounds{Bytes: 256 << 10, Items: 1000}

func TestDefaultRenderLimitsAreTheDocumentedOnes(t *testing.T) {
	want := Limits{URL: 8 << 10, HeaderValue: 8 << 10, Headers: 64 << 10, Body: 1 << 20}
	if got := DefaultLimits(); got != want {
		t.Fatalf("DefaultLimits() = %+v, want %+v (update docs/api.md with them)", got, want)
	}
	if got := (Limits{}).withDefaults(); got != want {
		t.Fatalf("zero Limits take %+v, want the defaults", got)
	}
}

func TestTheBodyLimitIsNeverMoreThanAQueuedDeliveryCanCarry(t *testing.T) {
	tests := []struct {
		name       string
		maxPayload int64
		body       int
	}{
		{"NATS's default 1 MiB", 1 << 20, 1<<20 - JobHeadroom},
		{"a server with 8 MiB messages keeps 1 MiB", 8 << 20, 1 << 20},
		{"a small server", 256 << 10, 256<<10 - JobHeadroom},
		{"unknown (not connected)", 0, 1 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := DefaultLimits().WithMaxPayload(tt.maxPayload)
			if l.Body != tt.body || l.URL != DefaultMaxURLBytes || l.HeaderValue != DefaultMaxHeaderValueBytes {
				t.Fatalf("WithMaxPayload(%d) = %+v, want a body of %d", tt.maxPayload, l, tt.body)
			}
		})
	}
}

// The model, on small cases whose answer can be worked out by hand (the
// comment at the top of limits.go).
func TestTheWorstCaseIsTheTemplatesTextPlusTheEventWhereItIsWrittenMost(t *testing.T) {
	small := EventBounds{Bytes: 1000, Items: 10}
	tests := []struct {
		name, body string
		b          EventBounds
		fixed      int64
		most       int64
		top        string
		times      int64
	}{
		{"literal", "hello", small, 5, 5, "", 0},
		{"one string: at most the event", "{ActionId}", small, 0, 1000, "{ActionId}", 1},
		{"two strings share the event", "{ActionId}{Oid}", small, 0, 1000, "{ActionId}", 1},
		{"a string written twice", "{ActionId}-{ActionId}", small, 1, 1 + 2000, "{ActionId}", 2},
		{"a date is 10 bytes at most, the rest goes to the next", "{Oid}{Date1}{Date1}{Date1}", small, 0,
			3*10 + 990, "{Oid}", 1},
		{"an integer inside a join: 310 bytes per item", `{join(items, i, "{CampaignId}")}`, small, 9, 9 + 10*310, "{CampaignId}", 10},
		{"an integer in a join, and a string", `{Oid}{join(items, i, "{CampaignId}")}`, small, 9, 9 + 10*310 + (1000 - 310), "{CampaignId}", 10},
		{"a string inside a join: the event per item", `{join(items, i, "{Oid}")}`, small, 9, 9 + 10*1000, "{Oid}", 10},
		{"an item field: every item's together at most the event", `{join(items, i, "<{i.sku}>")}`, small, 10*2 + 9, 29 + 1000,
			"each item's sku", 1},
		{"an item field in three joins", strings.Repeat(`{join(items, i, "{i.sku}")}`, 3), small, 27, 27 + 3000, "each item's sku", 3},
		{"a numeric item field: 310 bytes an item", `{join(items, i, "{i.qty}")}`, EventBounds{Bytes: 1 << 20, Items: 2}, 1, 1 + 620,
			"each item's qty", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := compile(t, Spec{EventType: "action_lifecycle", URL: hook, BodyTemplate: tt.body, BodyFormat: BodyText})
			got := e.WorstCase(tt.b).Body
			if got.Fixed != tt.fixed || got.Most != tt.most || got.Top != tt.top || got.Times != tt.times {
				t.Fatalf("worst case %+v, want fixed %d, most %d, the most from %s written %d times", got, tt.fixed, tt.most, tt.top, tt.times)
			}
		})
	}
}

// The seed's templates, the examples of the docs and the tests, the
// default payloads: all within the limits at worst, with room to spare.
func TestTheSeedsAndOrdinaryTemplatesAreWithinTheLimitsAtWorst(t *testing.T) {
	var specs []Spec
	for _, typ := range event.Types() {
		src, err := os.ReadFile(filepath.Join("testdata", "templates", typ.Name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		// The seed's are about one event at worst.
		seed := compile(t, Spec{EventType: typ.Name, URL: hook, BodyTemplate: string(src)})
		if w := seed.WorstCase(bounds); w.Body.Most > 400<<10 {
			t.Errorf("%s: the seed's template renders up to %d bytes", typ.Name, w.Body.Most)
		}
		specs = append(specs,
			Spec{EventType: typ.Name, URL: hook, BodyTemplate: string(src)},
			Spec{EventType: typ.Name, URL: hook, Method: MethodPost},
			Spec{EventType: typ.Name, URL: hook},
			Spec{EventType: typ.Name, URL: hook + "?id={" + typ.DataPoints[0].Name + "}", BodyFormat: BodyXML,
				BodyTemplate: "<e>" + "{" + typ.DataPoints[1].Name + "}</e>", Method: MethodPost},
			Spec{EventType: typ.Name, URL: hook, BodyFormat: BodyForm, Method: MethodPost,
				BodyTemplate: "a={" + typ.DataPoints[0].Name + "}&b={" + typ.DataPoints[0].Name + "}"},
		)
	}
	specs = append(specs,
		Spec{EventType: "action_lifecycle", URL: "https://brand.example/pb/{CampaignId}/{ActionId}?status={Status}&payout={Payout}&delta={DeltaPayout}&at={EventDate}&d={Date1}&caller={CallerId}&skus={join(items, i, \"{i.sku}:{i.qty}\")}"},
		Spec{EventType: "tracking_value_request", URL: "https://brand.example/tv?amount={Amount}&prices={join(items, i, \"{i.amt}\", \"|\")}&click={RefClickId}"},
		Spec{EventType: "action_lifecycle", URL: "https://brand.example/pb?id={ActionId}&ref={ActionId}",
			Headers: []Header{{Name: "X-Action", Value: "{ActionId}"}, {Name: "X-Items", Value: `{join(items, i, "{i.sku}={i.qty}")}`},
				{Name: "Authorization", Value: "Bearer " + strings.Repeat("t", 4000), Secret: true}}},
		Spec{EventType: "action_lifecycle", URL: hook, BodyTemplate: `{"campaign_id": "{CampaignId}", "action": "{ActionId}", "payout": {Payout},
 "items": [{join(items, i, "\{\"sku\":\"{i.sku}\",\"qty\":{i.qty},\"price\":{i.amt}\}")}]}`},
		Spec{EventType: "action_lifecycle", URL: hook, BodyTemplate: `{"campaign_id": {CampaignId}, "tracker": {ActionTrackerId}, "partner": {MediaPartnerId},
 "campaign": "{CampaignName}", "partner_name": "{MediaPartnerName}", "action_id": "{ActionId}",
 "status": "{Status}", "detail": "{StatusDetail}", "payout": {Payout}, "amount": {Amount},
 "currency": "{Currency}", "event_date": "{EventDate}", "order": "{Oid}", "promo": "{PromoCode}",
 "customer": "{CustomerId}", "city": "{CustomerCity}", "country": "{CustomerCountry}", "note": "{Note}",
 "items": [{join(items, i, "\{\"sku\":\"{i.sku}\",\"item_price\":{i.amt},\"category\":\"{i.cat}\",\"quantity\":{i.qty},\"name\":\"{i.name}\"\}")}]}`},
		// A top-level data point repeated in each item, as the language allows.
		Spec{EventType: "action_lifecycle", URL: hook, BodyTemplate: `[{join(items, i, "\{\"campaign\":{CampaignId},\"sku\":\"{i.sku}\"\}")}]`},
	)
	for _, s := range specs {
		e := compile(t, s)
		if errs := e.CheckWorstCase(bounds, DefaultLimits()); len(errs) > 0 {
			t.Errorf("%s %q %q: refused: %v", s.EventType, s.URL, s.BodyTemplate, errs)
		}
	}
}

// A template that multiplies its event is refused, naming the field and
// saying how large it can get and why.
func TestATemplateThatMultipliesTheEventIsRefusedNamingItsField(t *testing.T) {
	joins := strings.Repeat(`{join(items, i,"{i.sku}")}`, 2500) // 65 KB, the tester's
	tests := []struct {
		name  string
		spec  Spec
		field string
		says  []string
	}{
		{"2,500 joins over the items", Spec{EventType: "action_lifecycle", URL: hook, BodyTemplate: joins, BodyFormat: BodyText},
			"body_template", []string{"renders up to 657857500 bytes for an event at the size limits (256 KiB, 1000 items)",
				"over the limit of 1 MiB (1048576 bytes) for a rendered body", "each item's sku is written 2500 times"}},
		{"a string written per item", Spec{EventType: "action_lifecycle", URL: hook, BodyTemplate: `[{join(items, i, "\"{Note}\"")}]`},
			"body_template", []string{"{Note} is written 1000 times"}},
		{"a string written five times", Spec{EventType: "action_lifecycle", URL: hook, BodyFormat: BodyText,
			BodyTemplate: strings.Repeat("{Note}", 5)}, "body_template", []string{"renders up to 1310720 bytes", "{Note} is written 5 times"}},
		{"a join's own text in a URL", Spec{EventType: "action_lifecycle", URL: hook + `?{join(items, i, "sku={i.sku}&qty={i.qty}", "&")}`},
			"url", []string{"its own text renders", "for an event with 1000 items", "over the limit of 8 KiB (8192 bytes) for a rendered URL"}},
		{"a URL that multiplies its event", Spec{EventType: "action_lifecycle", URL: hook + `?c={join(items, i, "{Note}")}`},
			"url", []string{"over the limit of 1 MiB (1048576 bytes) for any rendered part of a request", "{Note} is written 1000 times"}},
		{"a header value that multiplies its event", Spec{EventType: "action_lifecycle", URL: hook,
			Headers: []Header{{Name: "X-A", Value: "a"}, {Name: "X-Skus", Value: joins[:26*5]}}},
			"headers[1].value", []string{"over the limit of 1 MiB (1048576 bytes) for any rendered part of a request", "each item's sku is written 5 times"}},
		{"headers whose own text is too long together", Spec{EventType: "action_lifecycle", URL: hook,
			Headers: func() (hs []Header) {
				for range 9 {
					hs = append(hs, Header{Name: "X-Big", Value: strings.Repeat("v", 8<<10)})
				}
				return hs
			}()}, "headers", []string{"over the limit of 64 KiB (65536 bytes) for all rendered headers"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := compile(t, tt.spec).CheckWorstCase(bounds, DefaultLimits())
			if len(errs) != 1 || errs[0].Field != tt.field {
				t.Fatalf("CheckWorstCase = %v, want one error for %s", errs, tt.field)
			}
			for _, s := range tt.says {
				if !strings.Contains(errs[0].Message, s) {
					t.Errorf("%q does not say %q", errs[0].Message, s)
				}
			}
			if len(errs[0].Message) > 512 {
				t.Errorf("a message of %d bytes", len(errs[0].Message))
			}
		})
	}
}

// bytesAllocated is how many bytes f allocates (the heap's total, so the
// test must not run in parallel with others).
func bytesAllocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// Each part of a request stops rendering as soon as it passes its limit,
// with a LimitError naming the field, so a render allocates about the limit
// at most, whatever the template (2,500 joins over 1,000 items rendered
// 502 MB before) and the data.
func TestARenderOverALimitStopsThereWithALimitError(t *testing.T) {
	items := make([]any, 1000)
	for i := range items {
		items[i] = map[string]any{"sku": "SKU-12345678"}
	}
	many := map[string]any{"items": items}
	// An event the gateway accepts: 200 KiB of apostrophes (one byte each
	// in the event's JSON), which XML writes as "&apos;" and a URL as "%27".
	big := map[string]any{"Note": strings.Repeat("'", 200<<10), "items": items}
	tests := []struct {
		name  string
		spec  Spec
		data  map[string]any
		field string
		says  string
	}{
		{"2,500 joins over 1,000 items", Spec{EventType: "action_lifecycle", URL: hook, BodyFormat: BodyText,
			BodyTemplate: strings.Repeat(`{join(items, i,"{i.sku}")}`, 2500)}, many, "body_template",
			"the rendered body is over the limit of 1 MiB (1048576 bytes)"},
		{"XML entities make one value pass the body limit", Spec{EventType: "action_lifecycle", URL: hook, BodyFormat: BodyXML,
			BodyTemplate: "<n>{Note}</n>"}, big, "body_template", "the rendered body is over the limit of 1 MiB"},
		{"a URL", Spec{EventType: "action_lifecycle", URL: hook + "?n={Note}"}, big, "url",
			"the rendered URL is over the limit of 8 KiB (8192 bytes)"},
		{"the default query", Spec{EventType: "action_lifecycle", URL: hook}, big, "url", "the rendered URL is over"},
		{"a header value", Spec{EventType: "action_lifecycle", URL: hook + "?a=1", Headers: []Header{{Name: "X-Note", Value: "{Note}"}}}, big,
			"headers[0].value", "the rendered value of header X-Note is over the limit of 8 KiB"},
		{"the headers together", Spec{EventType: "action_lifecycle", URL: hook, Headers: func() (hs []Header) {
			for range 9 {
				hs = append(hs, Header{Name: "X-Skus", Value: `{join(items, i, "{i.sku}")}`})
			}
			return hs
		}()}, map[string]any{"items": items[:600]}, "headers", "the rendered headers, names and values together, are over the limit of 64 KiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := compile(t, tt.spec)
			var err error
			allocated := bytesAllocated(func() { _, err = e.Render(tt.data) })
			var le *LimitError
			if !errors.As(err, &le) || le.Field != tt.field || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("Render = %v, want a LimitError of %s saying %q", err, tt.field, tt.says)
			}
			if allocated > 4<<20 {
				t.Errorf("allocated %d bytes rendering it", allocated)
			}
		})
	}
	// The default payload is held too (the event is an event the gateway
	// would refuse, as the renderer could still be handed one).
	huge := map[string]any{"Note": strings.Repeat("x", 2<<20)}
	_, err := compile(t, Spec{EventType: "action_lifecycle", URL: hook, Method: MethodPost}).Render(huge)
	if le := (*LimitError)(nil); !errors.As(err, &le) || le.Field != "body_template" {
		t.Fatalf("default payload of a 2 MiB event: %v, want a LimitError of the body", err)
	}
	// Within the limits nothing changes, and other limits apply when given.
	e := compile(t, Spec{EventType: "action_lifecycle", URL: hook + "?n={Note}"})
	if _, err := e.RenderWithin(map[string]any{"Note": "n"}, Limits{URL: len(hook) + 4}); err != nil {
		t.Fatalf("a URL of exactly its limit: %v", err)
	}
	if _, err := e.RenderWithin(map[string]any{"Note": "nn"}, Limits{URL: len(hook) + 4}); err == nil {
		t.Fatal("a URL one byte over its limit rendered")
	}
}
