package template

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/postback-dev/postback/pkg/event"
)

// FuzzParseRender parses arbitrary source for each event type and renders
// every template that parses, in every format, with the type's sample event
// (as Go values, as float64s and as json.Numbers from JSON) and with hostile
// data. It checks that nothing panics, that errors carry a sane position,
// that rendering is deterministic, and that a bounded render is the same
// text, or stops short of it with an error past its limit.
func FuzzParseRender(f *testing.F) {
	full, err := os.ReadFile("testdata/action_lifecycle.json")
	if err != nil {
		f.Fatal(err)
	}
	seeds := []string{
		string(full),
		"{CampaignId}",
		`{"campaign_id": "{CampaignId}", "items": [{join(items, i, "\{\"sku\":\"{i.sku}\"\}")}]}`,
		`{join(items, i, "{i.sku}", ";")}`,
		"{join(\n items ,\n i , \"{i.qty}\" )}",
		`https://example.com/{Oid}?p={Payout}&d={EventDate}`,
		`<a x="{Note}">{join(items, i, "<i>{i.name}</i>")}</a>`,
		`\{ \} \" \\ { {1} {"x"} }`,
		`{join(items, i, "{join(items, j, \"x\")}")}`,
		`{i.sku}`, `{Foo}`, `{join(Oid, i, "x")}`, `{join(items, i, "x`, "{Campaign",
	}
	for _, s := range seeds {
		for i := range event.Types() {
			f.Add(s, uint8(i))
		}
	}
	types := event.Types()
	data := make([][]map[string]any, len(types))
	for i, typ := range types {
		data[i] = fuzzData(f, typ)
	}
	formats := []Format{Text, URL, JSON, Form, XML}
	f.Fuzz(func(t *testing.T, src string, which uint8) {
		n := int(which) % len(types)
		typ := types[n]
		tpl, err := Parse(src, typ)
		if err != nil {
			var te *Error
			if !errors.As(err, &te) {
				t.Fatalf("error %v is not *Error", err)
			}
			lines := strings.Count(src, "\n") + 1
			if te.Line < 1 || te.Line > lines || te.Column < 1 || te.Message == "" {
				t.Fatalf("bad error position %+v for %q", te, src)
			}
			return
		}
		for _, data := range data[n] {
			for _, fm := range formats {
				a := tpl.Append(nil, data, fm)
				b := tpl.Append(make([]byte, 0, 7), data, fm)
				if string(a) != string(b) {
					t.Fatalf("rendering is not deterministic: %q vs %q", a, b)
				}
				if lit, ok := tpl.Literal(); ok && string(a) != lit {
					t.Fatalf("literal template rendered %q, Literal() = %q", a, lit)
				}
				// Bounded: the whole within its length, a prefix with a
				// TooLongError one byte short.
				if c, err := tpl.AppendLimited(nil, data, fm, len(a)); err != nil || string(c) != string(a) {
					t.Fatalf("AppendLimited(%d) = %q, %v; want %q", len(a), c, err, a)
				}
				if len(a) > 0 {
					c, err := tpl.AppendLimited(nil, data, fm, len(a)-1)
					if err == nil || !strings.HasPrefix(string(a), string(c)) {
						t.Fatalf("AppendLimited(%d) = %q, %v; want a prefix of %q and an error", len(a)-1, c, err, a)
					}
				}
			}
		}
	})
}

// fuzzData is the sample event as Go values, as float64s, as json.Numbers, no
// data at all, and hostile data (wrong types, NaN, huge exponents, invalid
// UTF-8, items that are not objects).
func fuzzData(t testing.TB, typ *event.Type) []map[string]any {
	sample := typ.Sample()
	raw, err := json.Marshal(sample)
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
	hostile := map[string]any{"items": []any{nil, 1, "x", map[string]any{"sku": math.NaN(), "qty": json.Number("1e999999"), "amt": []any{}}}}
	for i, dp := range typ.DataPoints {
		switch i % 6 {
		case 0:
			hostile[dp.Name] = math.Inf(-1)
		case 1:
			hostile[dp.Name] = json.Number("-0.000e-99999999999999999999")
		case 2:
			hostile[dp.Name] = "\xff\u2028\"<&>'\n{}"
		case 3:
			hostile[dp.Name] = map[string]any{"a": 1}
		case 4:
			hostile[dp.Name] = uint64(math.MaxUint64)
		case 5:
			hostile[dp.Name] = json.Number("not a number")
		}
	}
	return []map[string]any{sample, floats, numbers, nil, hostile}
}
