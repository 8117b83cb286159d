// Tests of rendering against the seed's example events.
//
// testdata/templates/<type>.json is the seed's example payload for each type
// with every value replaced by its macro ("{CampaignId}", quoted for strings
// and dates) and the seed's own join block kept verbatim for items.
// testdata/golden holds the exact expected bytes: <type>.default.json (the
// default POST payload), <type>.custom.json (the template above rendered with
// the sample) and <type>.default-get.txt (the default GET URL). After an
// intended change, regenerate them with `go test ./render -update` and review
// the diff.
package render

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"flag"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/postback-dev/postback/pkg/event"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

const hook = "https://hooks.example.com/postback"

// golden compares got with testdata/golden/name (or rewrites it with -update).
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs\n got: %s\nwant: %s", path, got, want)
	}
}

func compile(t *testing.T, s Spec) *Endpoint {
	t.Helper()
	e, err := Compile(s)
	if err != nil {
		t.Fatalf("Compile(%+v): %v", s, err)
	}
	return e
}

func renderOK(t *testing.T, e *Endpoint, data map[string]any) Request {
	t.Helper()
	r, err := e.Render(data)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	return r
}

// asArrived returns the sample as structpb.Struct.AsMap (float64 numbers)
// and as encoding/json with UseNumber would give it.
func asArrived(t *testing.T, typ *event.Type) []map[string]any {
	raw, err := json.Marshal(typ.Sample())
	if err != nil {
		t.Fatal(err)
	}
	var floats, numbers map[string]any
	if err := json.Unmarshal(raw, &floats); err != nil {
		t.Fatal(err)
	}
	d := json.NewDecoder(strings.NewReader(string(raw)))
	d.UseNumber()
	if err := d.Decode(&numbers); err != nil {
		t.Fatal(err)
	}
	return []map[string]any{floats, numbers}
}

func TestDefaultPOSTPayloadIsTheWholeEventInCatalogueOrder(t *testing.T) {
	for _, typ := range event.Types() {
		t.Run(typ.Name, func(t *testing.T) {
			e := compile(t, Spec{EventType: typ.Name, URL: hook, Method: MethodPost})
			r := renderOK(t, e, typ.Sample())
			if r.Method != "POST" || r.URL != hook || r.ContentType != "application/json" {
				t.Errorf("request %s %s %q", r.Method, r.URL, r.ContentType)
			}
			if !json.Valid(r.Body) {
				t.Fatalf("invalid JSON: %s", r.Body)
			}
			golden(t, typ.Name+".default.json", r.Body)

			// Same bytes however the numbers arrived.
			for _, data := range asArrived(t, typ) {
				if got := renderOK(t, e, data).Body; string(got) != string(r.Body) {
					t.Errorf("numbers as %T render differently:\n%s", data["items"], got)
				}
			}

			// Keys in catalogue order, items where the seed has them.
			var want []string
			for i, dp := range typ.DataPoints {
				if i == typ.ItemsIndex() {
					want = append(want, "items")
				}
				if !dp.Item {
					want = append(want, dp.Name)
				}
			}
			if got := topLevelKeys(t, r.Body); !reflect.DeepEqual(got, want) {
				t.Errorf("keys %v\nwant %v", got, want)
			}
		})
	}
}

func topLevelKeys(t *testing.T, body []byte) []string {
	d := json.NewDecoder(strings.NewReader(string(body)))
	if _, err := d.Token(); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for d.More() {
		k, err := d.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.(string))
		var skip json.RawMessage
		if err := d.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

func TestDefaultPOSTPayloadLeavesOutAbsentAndKeepsNulls(t *testing.T) {
	e := compile(t, Spec{EventType: "tracking_value_request", URL: hook, Method: MethodPost})
	r := renderOK(t, e, map[string]any{
		"Oid": "O-1", "Amount": json.Number("150"), "Currency": nil, "CampaignId": 9876.0,
		"items":   []any{map[string]any{"qty": 2.0, "sku": "S\"1", "amt": nil}, "not an object"},
		"Unknown": "dropped",
	})
	want := `{"CampaignId":9876,"Amount":150.00,"Currency":null,"Oid":"O-1","items":[{"sku":"S\"1","amt":null,"qty":2},null]}`
	if string(r.Body) != want {
		t.Errorf("got  %s\nwant %s", r.Body, want)
	}
	r = renderOK(t, e, map[string]any{"items": nil})
	if string(r.Body) != `{"items":null}` {
		t.Errorf("null items: %s", r.Body)
	}
	r = renderOK(t, e, nil)
	if string(r.Body) != `{}` {
		t.Errorf("no data: %s", r.Body)
	}
}

func TestCustomJSONTemplateWithTheSeedJoinBlock(t *testing.T) {
	for _, typ := range event.Types() {
		t.Run(typ.Name, func(t *testing.T) {
			src, err := os.ReadFile(filepath.Join("testdata", "templates", typ.Name+".json"))
			if err != nil {
				t.Fatal(err)
			}
			if typ.HasItems() != strings.Contains(string(src), "{join(items, i,") {
				t.Fatal("template and type disagree about items")
			}
			e := compile(t, Spec{EventType: typ.Name, URL: hook, BodyTemplate: string(src)})
			r := renderOK(t, e, typ.Sample())
			if r.Method != "POST" || r.ContentType != "application/json" {
				t.Errorf("request %s %q", r.Method, r.ContentType)
			}
			if !json.Valid(r.Body) {
				t.Fatalf("invalid JSON: %s", r.Body)
			}
			golden(t, typ.Name+".custom.json", r.Body)
			for _, data := range asArrived(t, typ) {
				if got := renderOK(t, e, data).Body; string(got) != string(r.Body) {
					t.Errorf("numbers as they arrived render differently:\n%s", got)
				}
			}
			if typ.HasItems() {
				var doc struct{ Items []map[string]any }
				if err := json.Unmarshal(r.Body, &doc); err != nil || len(doc.Items) != 2 {
					t.Fatalf("items: %v %v", doc.Items, err)
				}
			}
		})
	}
}

func TestGETTemplateRendersTheExactURL(t *testing.T) {
	tests := []struct {
		typ, url, want string
	}{
		{"action_lifecycle",
			"https://brand.example/pb/{CampaignId}/{ActionId}?status={Status}&payout={Payout}&delta={DeltaPayout}&at={EventDate}&d={Date1}&caller={CallerId}&skus={join(items, i, \"{i.sku}:{i.qty}\")}",
			"https://brand.example/pb/9876/ACT-778899?status=MODIFIED&payout=10.50&delta=-5.00&at=2026-04-08T09%3A00%3A00Z&d=2026-04-08&caller=&skus=SKU-1001:1,SKU-2002:2"},
		{"action_inquiry",
			"https://brand.example/inquiry?id={Id}&type={InquiryType}&expected={ExpectedPayout}&link={TrackingLink}&final={FinalPayout}",
			"https://brand.example/inquiry?id=554433&type=MISSING_ACTION&expected=25.00&link=https%3A%2F%2Fproweb.com%2Fclick%3Fcid%3D1%26pid%3D555&final=0.00"},
		{"action_clearing",
			"http://brand.example:8080/clear?actions={ActionIds}&orders={OrderIds}&cleared={ClearedDate}",
			"http://brand.example:8080/clear?actions=ACT-101%2CACT-102&orders=ORD-9921%2CORD-9922&cleared=2026-04-15T12%3A00%3A00Z"},
		{"tracking_value_request",
			"https://brand.example/tv?amount={Amount}&prices={join(items, i, \"{i.amt}\", \"|\")}&click={RefClickId}",
			"https://brand.example/tv?amount=150.00&prices=100.00|25.00&click=CLK9988776655"},
		{"job_completed",
			"https://brand.example/jobs/{JobId}/done?records={RecordsProcessed}&file={ResultDownloadUrlExp5}",
			"https://brand.example/jobs/10293847/done?records=5240&file=https%3A%2F%2Fdownload.impact.com%2Ffile%3Ftoken%3Da1b2...%26exp%3D5min"},
		{"publisher_application",
			"https://brand.example/apply/{PublisherId}?name={Name}&size={PublisherSize}&past={PastRelationship}&approved={MarketplaceApproved}",
			"https://brand.example/apply/555?name=Elite%20Content%20Creators&size=M&past=false&approved=true"},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			e := compile(t, Spec{EventType: tt.typ, URL: tt.url})
			typ, _ := event.Lookup(tt.typ)
			r := renderOK(t, e, typ.Sample())
			if r.Method != "GET" || r.Body != nil || r.ContentType != "" {
				t.Errorf("GET request has %s, body %q, content type %q", r.Method, r.Body, r.ContentType)
			}
			if r.URL != tt.want {
				t.Errorf("URL\n got %s\nwant %s", r.URL, tt.want)
			}
		})
	}
}

func TestDefaultGETAppendsEveryPresentDataPoint(t *testing.T) {
	for _, typ := range event.Types() {
		t.Run(typ.Name, func(t *testing.T) {
			e := compile(t, Spec{EventType: typ.Name, URL: hook})
			r := renderOK(t, e, typ.Sample())
			golden(t, typ.Name+".default-get.txt", []byte(r.URL+"\n"))
			u, err := url.Parse(r.URL)
			if err != nil {
				t.Fatal(err)
			}
			q := u.Query()
			if q.Has("items") || q.Has("CallerId") || q.Has("RejectReason") {
				t.Errorf("items or null data points in the query: %s", r.URL)
			}
			for _, dp := range typ.DataPoints {
				if v := typ.Sample()[dp.Name]; !dp.Item && v != nil && !q.Has(dp.Name) {
					t.Errorf("%s missing from the query", dp.Name)
				}
			}
		})
	}
	clearing := compile(t, Spec{EventType: "action_clearing", URL: "https://brand.example/c#frag"})
	r := renderOK(t, clearing, map[string]any{"CampaignId": 9876.0, "OrderIds": "a b,c", "LedgerDate": nil, "CampaignName": "Spring & Co"})
	if want := "https://brand.example/c?CampaignId=9876&CampaignName=Spring%20%26%20Co&OrderIds=a%20b%2Cc#frag"; r.URL != want {
		t.Errorf("got  %s\nwant %s", r.URL, want)
	}
	if r := renderOK(t, clearing, nil); r.URL != "https://brand.example/c#frag" {
		t.Errorf("no data: %s", r.URL)
	}
	own := compile(t, Spec{EventType: "action_clearing", URL: "https://brand.example/c?id={CampaignId}"})
	if r := renderOK(t, own, map[string]any{"CampaignId": 1.0, "OrderIds": "x"}); r.URL != "https://brand.example/c?id=1" {
		t.Errorf("a template with a query got defaults: %s", r.URL)
	}
}

func TestMethodAndBodyFormatDefaults(t *testing.T) {
	tests := []struct {
		name              string
		spec              Spec
		method, ctype     string
		body              string
		wantMethod, wantF string
	}{
		{"no method, no body: GET", Spec{URL: hook + "?x=1"}, "GET", "", "", "GET", "JSON"},
		{"no method with a body: POST JSON", Spec{URL: hook, BodyTemplate: `{"id":{CampaignId}}`}, "POST", "application/json", `{"id":9876}`, "POST", "JSON"},
		{"lower-case names are accepted", Spec{URL: hook, Method: "post", BodyFormat: "form", BodyTemplate: `id={CampaignId}&n={CampaignName}`}, "POST", "application/x-www-form-urlencoded", "id=9876&n=Spring+Global+Promotion", "POST", "FORM"},
		{"XML", Spec{URL: hook, BodyFormat: BodyXML, BodyTemplate: `<e id="{CampaignId}">{Status}</e>`}, "POST", "application/xml", `<e id="9876">MODIFIED</e>`, "POST", "XML"},
		{"TEXT", Spec{URL: hook, BodyFormat: BodyText, BodyTemplate: `{CampaignName} / {Payout}`}, "POST", "text/plain; charset=utf-8", "Spring Global Promotion / 10.50", "POST", "TEXT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.spec.EventType = "action_lifecycle"
			e := compile(t, tt.spec)
			typ, _ := event.Lookup("action_lifecycle")
			r := renderOK(t, e, typ.Sample())
			if r.Method != tt.method || r.ContentType != tt.ctype || string(r.Body) != tt.body {
				t.Errorf("got %s %q %q", r.Method, r.ContentType, r.Body)
			}
			if s := e.Spec(); string(s.Method) != tt.wantMethod || string(s.BodyFormat) != tt.wantF {
				t.Errorf("Spec() = %s %s", s.Method, s.BodyFormat)
			}
			if e.EventType() != typ {
				t.Error("EventType()")
			}
		})
	}
}

func TestHeaders(t *testing.T) {
	e := compile(t, Spec{EventType: "action_lifecycle", URL: hook, Headers: []Header{
		{Name: "Authorization", Value: "Bearer s3cr3t", Secret: true},
		{Name: "X-Campaign", Value: "{CampaignId}-{Payout}"},
		{Name: "X-Note", Value: "note: {Note}"},
		{Name: "X-Literal", Value: `\{CampaignId\}`},
		{Name: "X-Empty", Value: ""},
	}})
	r := renderOK(t, e, map[string]any{"CampaignId": 9876.0, "Payout": 10.5, "Note": "a\r\nInjected: yes\x00\tb"})
	want := []Header{
		{Name: "Authorization", Value: "Bearer s3cr3t", Secret: true},
		{Name: "X-Campaign", Value: "9876-10.50"},
		{Name: "X-Note", Value: "note: a  Injected: yes \tb"},
		{Name: "X-Literal", Value: "{CampaignId}"},
		{Name: "X-Empty", Value: ""},
	}
	if !reflect.DeepEqual(r.Headers, want) {
		t.Errorf("headers\n got %+v\nwant %+v", r.Headers, want)
	}
	// Rendering never changes the compiled static values.
	r.Headers[0].Value = "changed"
	if r2 := renderOK(t, e, nil); r2.Headers[0].Value != "Bearer s3cr3t" || r2.Headers[1].Value != "-" {
		t.Errorf("second render %+v", r2.Headers)
	}
}

// awkward holds every character the brief asks about.
const awkward = "He said \"hi\" \\ & a=b <tag> 'q'\nline2 é 日本"

func TestAwkwardValuesLandCorrectlyInEveryFormat(t *testing.T) {
	data := map[string]any{"Note": awkward, "CampaignId": 9876.0}
	base := Spec{EventType: "action_lifecycle", URL: "https://brand.example/n/{Note}?note={Note}&id={CampaignId}",
		Headers: []Header{{Name: "X-Note", Value: "{Note}"}}}

	json1 := base
	json1.BodyTemplate = `{"note": "{Note}", "id": {CampaignId}}`
	r := renderOK(t, compile(t, json1), data)
	if !json.Valid(r.Body) {
		t.Fatalf("invalid JSON %s", r.Body)
	}
	var doc struct {
		Note string
		ID   int
	}
	if err := json.Unmarshal(r.Body, &doc); err != nil || doc.Note != awkward || doc.ID != 9876 {
		t.Errorf("JSON round trip: %+v %v", doc, err)
	}
	if want := `{"note": "He said \"hi\" \\ & a=b <tag> 'q'\nline2 é 日本", "id": 9876}`; string(r.Body) != want {
		t.Errorf("JSON body\n got %s\nwant %s", r.Body, want)
	}

	u, err := url.Parse(r.URL)
	if err != nil || u.Query().Get("note") != awkward || u.Query().Get("id") != "9876" || u.Path != "/n/"+awkward {
		t.Errorf("URL %s: %v", r.URL, err)
	}
	if want := "He%20said%20%22hi%22%20%5C%20%26%20a%3Db%20%3Ctag%3E%20%27q%27%0Aline2%20%C3%A9%20%E6%97%A5%E6%9C%AC"; !strings.HasSuffix(r.URL, "?note="+want+"&id=9876") {
		t.Errorf("URL %s", r.URL)
	}
	if r.Headers[0].Value != strings.ReplaceAll(awkward, "\n", " ") {
		t.Errorf("header %q", r.Headers[0].Value)
	}

	form := base
	form.BodyFormat, form.BodyTemplate = BodyForm, "note={Note}&id={CampaignId}"
	r = renderOK(t, compile(t, form), data)
	q, err := url.ParseQuery(string(r.Body))
	if err != nil || q.Get("note") != awkward || q.Get("id") != "9876" {
		t.Errorf("form %s: %v", r.Body, err)
	}
	if string(r.Body) != "note="+url.QueryEscape(awkward)+"&id=9876" {
		t.Errorf("form body %s", r.Body)
	}

	xmlSpec := base
	xmlSpec.BodyFormat, xmlSpec.BodyTemplate = BodyXML, `<?xml version="1.0"?><e note="{Note}"><note>{Note}</note></e>`
	r = renderOK(t, compile(t, xmlSpec), data)
	var x struct {
		Attr string `xml:"note,attr"`
		Note string `xml:"note"`
	}
	if err := xml.Unmarshal(r.Body, &x); err != nil || x.Note != awkward || x.Attr != awkward {
		t.Errorf("XML %s: %+v %v", r.Body, x, err)
	}

	text := base
	text.BodyFormat, text.BodyTemplate = BodyText, "{Note}"
	if r = renderOK(t, compile(t, text), data); string(r.Body) != awkward {
		t.Errorf("text %q", r.Body)
	}
}

func TestCompileRefusesWithFieldAndPosition(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		want FieldError
		text string
	}{
		{"unknown data point in the body",
			Spec{EventType: "action_lifecycle", URL: hook, BodyTemplate: `{"campaign_id":"{Foo}"}`},
			FieldError{Field: "body_template", Line: 1, Column: 17, Message: `unknown data point "Foo" for event type action_lifecycle`},
			`body_template: line 1, column 17: unknown data point "Foo" for event type action_lifecycle`},
		{"multi-line body with a bad join",
			Spec{EventType: "action_lifecycle", URL: hook, BodyTemplate: "{\n  \"items\": [{join(items, i,\n    \"{i.sku}\" \"x\")}]\n}"},
			FieldError{Field: "body_template", Line: 3, Column: 15, Message: `bad join syntax: expected ")", found '"'`}, ""},
		{"URL template that does not parse",
			Spec{EventType: "job_completed", URL: "https://brand.example/{JobId"},
			FieldError{Field: "url", Line: 1, Column: 23, Message: `unterminated macro: missing "}" after {JobId`}, ""},
		{"header value with an unknown data point",
			Spec{EventType: "job_completed", URL: hook, Headers: []Header{{Name: "A", Value: "x"}, {Name: "B", Value: "x"}, {Name: "X-Id", Value: "{Id}"}}},
			FieldError{Field: "headers[2].value", Line: 1, Column: 1, Message: `unknown data point "Id" for event type job_completed`},
			`headers[2].value: line 1, column 1: unknown data point "Id" for event type job_completed`},
		{"bad header name",
			Spec{EventType: "job_completed", URL: hook, Headers: []Header{{Name: "Bad Name", Value: "x"}}},
			FieldError{Field: "headers[0].name", Message: `not a valid header name: "Bad Name"`}, ""},
		{"rendered sample body is not JSON",
			Spec{EventType: "action_lifecycle", URL: hook, BodyTemplate: `{"id": {CampaignId}`},
			FieldError{Field: "body_template", Message: "rendered sample is not valid JSON: unexpected end of JSON input"},
			"body_template: rendered sample is not valid JSON: unexpected end of JSON input"},
		{"null sample value left unquoted",
			Spec{EventType: "action_lifecycle", URL: hook, BodyTemplate: `{"caller": {CallerId}}`},
			FieldError{Field: "body_template", Message: "rendered sample is not valid JSON: invalid character '}' looking for beginning of value"}, ""},
		{"relative URL",
			Spec{EventType: "action_lifecycle", URL: "/postback?id={CampaignId}"},
			FieldError{Field: "url", Message: "with the sample action_lifecycle event: rendered URL is not an absolute http(s) URL: no scheme"}, ""},
		{"URL that is a macro (its value is percent-encoded)",
			Spec{EventType: "action_lifecycle", URL: "{LandingPageUrl}"},
			FieldError{Field: "url", Message: "with the sample action_lifecycle event: rendered URL is not an absolute http(s) URL: no scheme"}, ""},
		{"ftp URL",
			Spec{EventType: "action_lifecycle", URL: "ftp://brand.example/x"},
			FieldError{Field: "url", Message: `with the sample action_lifecycle event: rendered URL is not an absolute http(s) URL: scheme "ftp" is not http or https`}, ""},
		{"missing URL", Spec{EventType: "action_lifecycle"}, FieldError{Field: "url", Message: "required"}, "url: required"},
		{"unknown event type", Spec{EventType: "order_created", URL: hook}, FieldError{Field: "event_type", Message: `unknown event type "order_created"`}, ""},
		{"unsupported method", Spec{EventType: "action_lifecycle", URL: hook, Method: "PUT"}, FieldError{Field: "method", Message: `unsupported method "PUT": want GET or POST`}, ""},
		{"unsupported body format", Spec{EventType: "action_lifecycle", URL: hook, BodyFormat: "YAML"}, FieldError{Field: "body_format", Message: `unsupported body format "YAML": want JSON, FORM, XML or TEXT`}, ""},
		{"GET with a body", Spec{EventType: "action_lifecycle", URL: hook, Method: MethodGet, BodyTemplate: "x"}, FieldError{Field: "body_template", Message: "a GET request has no body: use POST or clear the body template"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(tt.spec)
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Compile = %v, want *FieldError", err)
			}
			if *fe != tt.want {
				t.Errorf("got  %+v\nwant %+v", *fe, tt.want)
			}
			if tt.text != "" && err.Error() != tt.text {
				t.Errorf("Error() = %q\nwant      %q", err.Error(), tt.text)
			}
		})
	}
}

func TestRenderedURLThatIsNotHTTPIsAURLError(t *testing.T) {
	e := compile(t, Spec{EventType: "action_lifecycle", URL: "https://{ReferringDomain}/pb?id={CampaignId}"})
	tests := []struct {
		name   string
		data   map[string]any
		reason string
	}{
		{"empty host", map[string]any{"ReferringDomain": ""}, "no host"},
		{"absent host", map[string]any{}, "no host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.Render(tt.data)
			var ue *URLError
			if !errors.As(err, &ue) || ue.Reason != tt.reason {
				t.Fatalf("Render = %v, want URLError %q", err, tt.reason)
			}
			if !strings.Contains(err.Error(), tt.reason) || ue.URL == "" {
				t.Errorf("Error() = %q, URL %q", err.Error(), ue.URL)
			}
		})
	}
	if r, err := e.Render(map[string]any{"ReferringDomain": "blog.partner.com", "CampaignId": 1}); err != nil || r.URL != "https://blog.partner.com/pb?id=1" {
		t.Errorf("good host: %q %v", r.URL, err)
	}
}
