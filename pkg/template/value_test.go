package template

import (
	"encoding/json"
	"encoding/xml"
	"math"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/postback-dev/postback/pkg/event"
)

func TestNumbersRenderByCatalogueType(t *testing.T) {
	tests := []struct {
		name string
		v    any
		typ  event.DataPointType
		want string
	}{
		{"integer from float64", 9876.0, event.Integer, "9876"},
		{"large integer from float64, no exponent", 1e21, event.Integer, "1000000000000000000000"},
		{"integer from int64", int64(9876), event.Integer, "9876"},
		{"integer from int", -42, event.Integer, "-42"},
		{"integer from uint64", uint64(math.MaxUint64), event.Integer, "18446744073709551615"},
		{"integer from json.Number", json.Number("9876"), event.Integer, "9876"},
		{"integer from json.Number with .0", json.Number("9876.0"), event.Integer, "9876"},
		{"integer from json.Number in exponent form", json.Number("9.876e3"), event.Integer, "9876"},
		{"integer from json.Number with trailing zeros", json.Number("98760E-1"), event.Integer, "9876"},
		{"big integer from json.Number keeps every digit", json.Number("123456789012345678901234567890"), event.Integer, "123456789012345678901234567890"},
		{"fractional value for an integer is written as it is", 1.5, event.Integer, "1.5"},
		{"negative zero", math.Copysign(0, -1), event.Integer, "0"},
		{"decimal with one place", 10.5, event.Decimal, "10.50"},
		{"negative decimal", -5.0, event.Decimal, "-5.00"},
		{"decimal with three places", 10.125, event.Decimal, "10.125"},
		{"zero decimal", 0.0, event.Decimal, "0.00"},
		{"small decimal, no exponent", 1e-7, event.Decimal, "0.0000001"},
		{"large decimal, no exponent", 1.5e22, event.Decimal, "15000000000000000000000.00"},
		{"decimal from int", 100, event.Decimal, "100.00"},
		{"decimal from float32", float32(10.1), event.Decimal, "10.10"},
		{"decimal from json.Number", json.Number("10.5"), event.Decimal, "10.50"},
		{"decimal from json.Number keeps its places", json.Number("10.125"), event.Decimal, "10.125"},
		{"decimal from json.Number drops extra zeros", json.Number("10.5000"), event.Decimal, "10.50"},
		{"decimal from json.Number integer", json.Number("-5"), event.Decimal, "-5.00"},
		{"decimal from json.Number exponent", json.Number("1E2"), event.Decimal, "100.00"},
		{"decimal from json.Number negative exponent", json.Number("-1.5e-3"), event.Decimal, "-0.0015"},
		{"decimal from json.Number negative zero", json.Number("-0.0"), event.Decimal, "0.00"},
		{"decimal from json.Number beyond exact handling", json.Number("1e500"), event.Decimal, ""},
		{"malformed json.Number is escaped as text", json.Number("1 & 2"), event.Decimal, "1 & 2"},
		{"NaN renders empty", math.NaN(), event.Decimal, ""},
		{"infinity renders empty", math.Inf(1), event.Integer, ""},
		{"number in a string data point", 12.5, event.String, "12.5"},
		{"boolean", true, event.Boolean, "true"},
		{"false", false, event.Boolean, "false"},
		{"nil", nil, event.Decimal, ""},
		{"time for a date-time", time.Date(2026, 4, 8, 9, 0, 0, 0, time.UTC), event.DateTime, "2026-04-08T09:00:00Z"},
		{"time for a date", time.Date(2026, 4, 8, 9, 0, 0, 0, time.UTC), event.Date, "2026-04-08"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, f := range []Format{Text, URL, JSON, Form, XML} {
				got := string(AppendValue([]byte("x"), tt.v, tt.typ, f))
				if f == Text || f == JSON || !strings.ContainsAny(tt.want, " &:") {
					if got != "x"+tt.want {
						t.Errorf("%v: got %q, want %q", f, got[1:], tt.want)
					}
				}
			}
		})
	}
}

// awkward holds every character the brief asks about.
const awkward = "He said \"hi\" \\ & a=b <tag> 'q'\nline2\té 日本 +%"

func TestValuesAreEscapedForWhereTheyLand(t *testing.T) {
	tests := []struct {
		f    Format
		want string
	}{
		{Text, awkward},
		{URL, "He%20said%20%22hi%22%20%5C%20%26%20a%3Db%20%3Ctag%3E%20%27q%27%0Aline2%09%C3%A9%20%E6%97%A5%E6%9C%AC%20%2B%25"},
		{Form, "He+said+%22hi%22+%5C+%26+a%3Db+%3Ctag%3E+%27q%27%0Aline2%09%C3%A9+%E6%97%A5%E6%9C%AC+%2B%25"},
		{JSON, `He said \"hi\" \\ & a=b <tag> 'q'\nline2\té 日本 +%`},
		{XML, "He said &quot;hi&quot; \\ &amp; a=b &lt;tag&gt; &apos;q&apos;&#xA;line2&#x9;é 日本 +%"},
	}
	for _, tt := range tests {
		t.Run(tt.f.String(), func(t *testing.T) {
			got := string(AppendValue(nil, awkward, event.String, tt.f))
			if got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestEscapedValuesRoundTrip(t *testing.T) {
	values := []string{awkward, "", "\x00\x01\x1f\x7f", "a\u2028b\u2029c", "🙂 emoji", "%zz%", "\r\n"}
	typ := mustType(t, "action_lifecycle")
	for _, v := range values {
		data := map[string]any{"Note": v}

		// URL: a query component and a path segment decode to v.
		u := render(t, "https://example.com/p/{Note}?note={Note}&x=1", typ.Name, data, URL)
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatalf("%q: URL %q does not parse: %v", v, u, err)
		}
		if got := pu.Query().Get("note"); got != v || len(pu.Query()) != 2 {
			t.Errorf("%q: URL query gave %q (%v)", v, got, pu.Query())
		}
		if got := strings.TrimPrefix(pu.Path, "/p/"); got != v {
			t.Errorf("%q: URL path gave %q", v, got)
		}
		if url.QueryEscape(v) != render(t, "{Note}", typ.Name, data, Form) {
			t.Errorf("%q: Form differs from url.QueryEscape", v)
		}

		// Form body.
		q, err := url.ParseQuery(render(t, "note={Note}&x=1", typ.Name, data, Form))
		if err != nil || q.Get("note") != v || len(q) != 2 {
			t.Errorf("%q: form gave %v, %v", v, q, err)
		}

		// JSON body: valid, and the string comes back.
		body := render(t, `{"note": "{Note}", "id": {CampaignId}}`, typ.Name, map[string]any{"Note": v, "CampaignId": 1.0}, JSON)
		if !json.Valid([]byte(body)) {
			t.Fatalf("%q: invalid JSON %s", v, body)
		}
		var got struct{ Note string }
		if err := json.Unmarshal([]byte(body), &got); err != nil || got.Note != v {
			t.Errorf("%q: JSON gave %q, %v", v, got.Note, err)
		}

		// XML body: element content and an attribute both come back.
		doc := render(t, `<a note="{Note}"><n>{Note}</n></a>`, typ.Name, data, XML)
		var x struct {
			Attr string `xml:"note,attr"`
			N    string `xml:"n"`
		}
		if err := xml.Unmarshal([]byte(doc), &x); err != nil {
			t.Fatalf("%q: XML %s: %v", v, doc, err)
		}
		if x.N != xmlSafe(v) || x.Attr != xmlSafe(v) {
			t.Errorf("%q: XML gave element %q attr %q", v, x.N, x.Attr)
		}
	}
}

// xmlSafe is v as XML can carry it: characters XML 1.0 forbids (most C0
// controls, and FFFE/FFFF) become U+FFFD.
func xmlSafe(v string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r == 0xFFFE || r == 0xFFFF {
			return '\uFFFD'
		}
		return r
	}, v)
}

func TestInvalidUTF8StaysValidInJSONAndXML(t *testing.T) {
	v := "ok\xffbad\xc3"
	j := string(AppendValue(nil, v, event.String, JSON))
	if j != `ok\ufffdbad\ufffd` {
		t.Errorf("JSON %q", j)
	}
	x := string(AppendValue(nil, v, event.String, XML))
	if x != "ok\uFFFDbad\uFFFD" {
		t.Errorf("XML %q", x)
	}
}

func TestAppendJSONValueIsAlwaysValidJSON(t *testing.T) {
	tests := []struct {
		v    any
		typ  event.DataPointType
		want string
	}{
		{nil, event.String, "null"},
		{"a\"b", event.String, `"a\"b"`},
		{9876.0, event.Integer, "9876"},
		{10.5, event.Decimal, "10.50"},
		{json.Number("1e2"), event.Decimal, "100.00"},
		{json.Number("oops"), event.Decimal, `"oops"`},
		{json.Number("1e999"), event.Integer, "null"},
		{math.NaN(), event.Decimal, "null"},
		{float32(math.Inf(-1)), event.Decimal, "null"},
		{true, event.Boolean, "true"},
		{int8(-3), event.Integer, "-3"},
		{time.Date(2026, 4, 8, 0, 0, 0, 0, time.UTC), event.Date, `"2026-04-08"`},
		{[]any{1}, event.String, "null"},
		{map[string]any{"a": 1}, event.String, "null"},
	}
	for _, tt := range tests {
		got := string(AppendJSONValue(nil, tt.v, tt.typ))
		if got != tt.want || !json.Valid([]byte(got)) {
			t.Errorf("AppendJSONValue(%#v, %v) = %s, want %s", tt.v, tt.typ, got, tt.want)
		}
	}
}

func TestFormatString(t *testing.T) {
	for f, want := range map[Format]string{Text: "text", URL: "url", JSON: "json", Form: "form", XML: "xml", Format(9): "Format(9)"} {
		if f.String() != want {
			t.Errorf("%d.String() = %q", int(f), f.String())
		}
	}
}
