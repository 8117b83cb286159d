package eventdata

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/postback-dev/postback/pkg/event"
)

// decodeStd is the reference decoder: what the renderer used before, a
// json.Decoder with UseNumber, plus json.Valid for "the whole input is one
// value".
func decodeStd(b []byte) (any, bool) {
	if !json.Valid(b) {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, false
	}
	return v, true
}

// checkAppend asserts that AppendJSON writes v exactly as json.Marshal does,
// or fails with the same error.
func checkAppend(t *testing.T, v any) []byte {
	t.Helper()
	want, wantErr := json.Marshal(v)
	prefix := []byte("prefix:")
	got, err := AppendJSON(prefix, v)
	if wantErr != nil || err != nil {
		if wantErr == nil || err == nil || err.Error() != wantErr.Error() {
			t.Fatalf("AppendJSON(%#v) error %v, json.Marshal error %v", v, err, wantErr)
		}
		if string(got) != "prefix:" {
			t.Fatalf("AppendJSON(%#v) failed but returned %q, want dst", v, got)
		}
		return nil
	}
	if !bytes.HasPrefix(got, prefix) {
		t.Fatalf("AppendJSON(%#v) lost dst: %q", v, got)
	}
	if got := got[len(prefix):]; !bytes.Equal(got, want) {
		t.Fatalf("AppendJSON(%#v)\n got %s\nwant %s", v, got, want)
	}
	return want
}

// sampleEvents are the seed's example events (pkg/event's samples), as the
// gateway receives them (structpb gives float64 numbers) and as they travel.
func sampleEvents(t testing.TB) map[string][]byte {
	out := map[string][]byte{}
	for _, typ := range event.Types() {
		b, err := json.Marshal(typ.Sample())
		if err != nil {
			t.Fatal(err)
		}
		out[typ.Name] = b
	}
	return out
}

func TestAppendJSONWritesWhatMarshalWrites(t *testing.T) {
	nested := map[string]any{"a": []any{1.5, "x", nil, true, map[string]any{}, []any{}}, "b": map[string]any{"c": json.Number("12.50")}}
	cases := map[string]any{
		"nil":                nil,
		"true":               true,
		"false":              false,
		"string":             "Spring Global Promotion",
		"empty string":       "",
		"float":              10.5,
		"integral float":     9876.0,
		"int":                -42,
		"int64":              int64(math.MaxInt64),
		"number":             json.Number("10.50"),
		"empty number":       json.Number(""),
		"exponent number":    json.Number("-1.5E+300"),
		"nil map":            map[string]any(nil),
		"nil list":           []any(nil),
		"empty map":          map[string]any{},
		"empty list":         []any{},
		"nested":             nested,
		"keys sorted":        map[string]any{"b": 1.0, "a": 2.0, "B": 3.0, "": 4.0, "é": 5.0, "aa": 6.0},
		"escaped keys":       map[string]any{"a\"b": 1.0, "<k>": 2.0, "\x00": 3.0},
		"many keys":          manyKeys(100),
		"fallback struct":    struct{ A int }{A: 1},
		"fallback in map":    map[string]any{"t": time.Date(2026, 4, 8, 9, 0, 0, 0, time.UTC), "u": uint8(7), "s": []string{"x"}},
		"fallback float32":   float32(0.1),
		"fallback map type":  map[string]string{"b": "1", "a": "2"},
		"items of maps list": []map[string]any{{"sku": "A"}},
	}
	for _, typ := range event.Types() {
		cases["sample "+typ.Name] = typ.Sample()
	}
	for name, v := range cases {
		t.Run(name, func(t *testing.T) { checkAppend(t, v) })
	}
}

func manyKeys(n int) map[string]any {
	m := map[string]any{}
	for i := range n {
		m[strings.Repeat("k", i%7)+string(rune('a'+i%26))+strings.Repeat("z", i/26)] = float64(i)
	}
	return m
}

func TestFloatsAreFormattedAsMarshalFormatsThem(t *testing.T) {
	floats := []float64{
		0, math.Copysign(0, -1), 1, -1, 0.1, 10.5, 100, 9876, 33.25, 99.75,
		1e-6, 1e-7, -1e-7, 9.999999999999999e-7, 1.5e-9, 1e-10, 1e-100, 1.2345e-300,
		1e20, 1e21, -1e21, 999999999999999900000, 1.5e21, 1e100, 1e300,
		123456789.125, 0.000001234, 12345678901234567890,
		5e-324, -5e-324, math.SmallestNonzeroFloat64, math.MaxFloat64, -math.MaxFloat64,
		math.MaxInt64, math.MinInt64, 1 << 53, 1<<53 + 1, 0.1 + 0.2, 1.0 / 3,
	}
	for _, f := range floats {
		want, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := AppendJSON(nil, f)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%v: got %s (%v), want %s", f, got, err, want)
		}
	}
}

func TestStringsAreEscapedAsMarshalEscapesThem(t *testing.T) {
	strs := map[string]string{
		"plain":               "Organic cotton tee, size M",
		"quote and backslash": `say "hi" \ bye`,
		"short escapes":       "\b\f\n\r\t",
		"control characters":  "\x00\x01\x1f\x7f",
		"html":                "<script>a && b</script>",
		"line separators":     "a\u2028b\u2029c",
		"non-ASCII":           "Zürich, 東京, 🎉",
		"invalid UTF-8":       "a\xffb\xc3(c\xed\xa0\x80d",
		"truncated rune":      "é\xe2\x82",
		"replacement char":    "\uFFFD",
		"slash":               "a/b",
	}
	for name, s := range strs {
		t.Run(name, func(t *testing.T) {
			want := checkAppend(t, s)
			if got := AppendString(nil, s); !bytes.Equal(got, want) {
				t.Fatalf("AppendString: got %s, want %s", got, want)
			}
			// And what it writes parses back as encoding/json reads it.
			v, err := Parse(want)
			std, _ := decodeStd(want)
			if err != nil || v != std {
				t.Fatalf("Parse(%s) = %q, %v; encoding/json reads %q", want, v, err, std)
			}
		})
	}
}

func TestAppendJSONFailsWhereMarshalFails(t *testing.T) {
	cyclic := map[string]any{}
	cyclic["self"] = cyclic
	list := []any{nil}
	list[0] = list
	cases := map[string]any{
		"NaN":                  math.NaN(),
		"+Inf":                 math.Inf(1),
		"-Inf":                 math.Inf(-1),
		"NaN deep inside":      map[string]any{"items": []any{map[string]any{"amt": math.NaN()}}},
		"number leading zero":  json.Number("01"),
		"number not a number":  json.Number("abc"),
		"number trailing dot":  json.Number("1."),
		"number with plus":     json.Number("+1"),
		"number spaces":        json.Number(" 1"),
		"number bare exponent": json.Number("1e"),
		"unsupported type":     map[string]any{"c": make(chan int)},
		"cyclic map":           cyclic,
		"cyclic list":          list,
	}
	for name, v := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := json.Marshal(v); err == nil {
				t.Fatal("json.Marshal accepts it: a bad case")
			}
			checkAppend(t, v)
		})
	}
}

func TestAppendJSONHandsVeryDeepValuesToMarshal(t *testing.T) {
	var v any = "leaf"
	for i := range 2500 {
		if i%2 == 0 {
			v = []any{v}
		} else {
			v = map[string]any{"k": v}
		}
	}
	checkAppend(t, v)
}

func TestParseReadsWhatEncodingJSONReads(t *testing.T) {
	cases := map[string]string{
		"object":             `{"CampaignId":9876,"Payout":10.50,"CallerId":null,"ok":true,"no":false}`,
		"array":              `[1, "two", 3.0, null, [], {}, [[]]]`,
		"string":             `"Spring Global Promotion"`,
		"number":             `-1.5e+300`,
		"number forms":       `[0, -0, 0.0, 1E5, 1e-5, 12.34e+10, -0.5E-3, 100000000000000000000000000001]`,
		"literals":           ` true `,
		"null":               "null",
		"whitespace":         " \t\r\n{ \"a\" : [ 1 , 2 ] } \n",
		"duplicate keys":     `{"a":1,"b":2,"a":{"x":3}}`,
		"empty key":          `{"":1}`,
		"escapes":            `"\" \\ \/ \b \f \n \r \t \u0041 \u00e9 \u4e2d"`,
		"surrogate pair":     `"\ud83c\udf89"`,
		"lone high":          `"a\ud800b"`,
		"lone low":           `"a\udc00b"`,
		"high then escape":   `"\ud800\n"`,
		"high then non-low":  `"\ud800\u0041"`,
		"two highs":          `"\ud800\ud800\udc00"`,
		"invalid UTF-8":      "\"a\xffb\xc3(\xed\xa0\x80\"",
		"raw non-ASCII":      `"Zürich 東京 🎉"`,
		"raw U+2028":         "\"a\u2028b\"",
		"DEL unescaped":      "\"\x7f\"",
		"escaped key":        `{"\u0041\n":"v"}`,
		"nested":             `{"items":[{"sku":"SKU-0000","amt":33.25,"qty":1},{"sku":"SKU-0001","amt":34.25,"qty":2}]}`,
		"escape then plain":  `["a\nb", "plain", "\u00e9t\u00e9"]`,
		"long string":        `"` + strings.Repeat("abc", 1000) + `\n"`,
		"deep but in limits": strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
	}
	for name, s := range sampleEvents(t) {
		cases["sample "+name] = string(s)
	}
	for name, s := range cases {
		t.Run(name, func(t *testing.T) {
			want, ok := decodeStd([]byte(s))
			if !ok {
				t.Fatal("encoding/json refuses it: a bad case")
			}
			got, err := Parse([]byte(s))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("Parse\n got %#v\nwant %#v", got, want)
			}
		})
	}
}

func TestSampleEventsRoundTripByteForByte(t *testing.T) {
	for name, b := range sampleEvents(t) {
		v, err := Parse(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out, err := AppendJSON(nil, v)
		if err != nil || !bytes.Equal(out, b) {
			t.Fatalf("%s: round trip\n got %s (%v)\nwant %s", name, out, err, b)
		}
	}
}

// malformed are inputs encoding/json refuses, by what is wrong with them.
var malformed = map[string]string{
	"empty":                    "",
	"only whitespace":          " \n",
	"trailing comma in object": `{"a":1,}`,
	"trailing comma in array":  `[1,2,]`,
	"missing colon":            `{"a" 1}`,
	"missing value":            `{"a":}`,
	"missing comma":            `{"a":1 "b":2}`,
	"unquoted key":             `{a:1}`,
	"single quotes":            `{'a':1}`,
	"leading zero":             `01`,
	"leading zero in array":    `[01]`,
	"negative leading zero":    `-01`,
	"plus sign":                `+1`,
	"leading dot":              `.5`,
	"trailing dot":             `1.`,
	"dot then exponent":        `1.e5`,
	"bare exponent":            `1e`,
	"exponent sign only":       `1e+`,
	"minus only":               `-`,
	"hex number":               `0x10`,
	"NaN":                      `NaN`,
	"Infinity":                 `-Infinity`,
	"bad escape":               `"\x"`,
	"escaped quote char":       `"\'"`,
	"short unicode escape":     `"\u12"`,
	"bad unicode escape":       `"\u12g4"`,
	"bad second surrogate":     `"\ud800\u12g4"`,
	"unterminated string":      `"abc`,
	"unterminated escape":      `"abc\`,
	"raw newline in string":    "\"a\nb\"",
	"raw NUL in string":        "\"a\x00b\"",
	"unterminated object":      `{"a":1`,
	"unterminated array":       `[1,2`,
	"unclosed nested":          `{"a":[}`,
	"mismatched close":         `[1}`,
	"trailing garbage":         `{"a":1} x`,
	"two values":               `1 2`,
	"trailing garbage literal": `truex`,
	"misspelt literal":         `nul`,
	"capital literal":          `True`,
	"bare word":                `abc`,
	"comment":                  `{"a":1 /* no */}`,
	"BOM":                      "\xef\xbb\xbf{}",
	"vertical tab space":       "\v1",
	"depth overflow arrays":    strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	"depth overflow objects":   strings.Repeat(`{"a":`, 10001) + "1" + strings.Repeat("}", 10001),
	"depth overflow unclosed":  strings.Repeat("[", 20000),
}

func TestParseRefusesMalformedJSON(t *testing.T) {
	for name, s := range malformed {
		t.Run(name, func(t *testing.T) {
			if _, ok := decodeStd([]byte(s)); ok {
				t.Fatal("encoding/json accepts it: a bad case")
			}
			v, err := Parse([]byte(s))
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Parse = %#v, %v; want a *SyntaxError", v, err)
			}
			if se.Offset < 0 || se.Offset > int64(len(s)) {
				t.Fatalf("offset %d out of the input", se.Offset)
			}
		})
	}
}

func TestParseDepthLimitIsEncodingJSONs(t *testing.T) {
	for _, depth := range []int{9999, 10000, 10001} {
		for _, open := range []string{"[", `{"k":`} {
			close := map[string]string{"[": "]", `{"k":`: "}"}[open]
			s := []byte(strings.Repeat(open, depth) + "0" + strings.Repeat(close, depth))
			_, stdOK := decodeStd(s)
			_, err := Parse(s)
			if (err == nil) != stdOK || stdOK != (depth <= 10000) {
				t.Errorf("depth %d of %s: Parse error %v, encoding/json accepts: %v", depth, open, err, stdOK)
			}
		}
	}
}

func TestParsedStringsDoNotAliasTheInput(t *testing.T) {
	b := []byte(`{"key":"value","esc":"a\nb","list":["x"]}`)
	v, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = '#'
	}
	want := map[string]any{"key": "value", "esc": "a\nb", "list": []any{"x"}}
	if !reflect.DeepEqual(v, want) {
		t.Fatalf("after the input changed: %#v", v)
	}
}

func TestParseObjectGivesMembersInOrderWithTheirText(t *testing.T) {
	type got struct {
		key   string
		value any
		raw   string
	}
	var members []got
	err := ParseObject([]byte(` {"id" : "e1", "time":"2026-04-08T09:00:00Z","data":{"a":[1, 2]},"id":null,"t\u0041":1.50 } `),
		func(key string, value any, raw []byte) error {
			members = append(members, got{key, value, string(raw)})
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	want := []got{
		{"id", "e1", `"e1"`},
		{"time", "2026-04-08T09:00:00Z", `"2026-04-08T09:00:00Z"`},
		{"data", map[string]any{"a": []any{json.Number("1"), json.Number("2")}}, `{"a":[1, 2]}`},
		{"id", nil, `null`},
		{"tA", json.Number("1.50"), `1.50`},
	}
	if !reflect.DeepEqual(members, want) {
		t.Fatalf("members\n got %#v\nwant %#v", members, want)
	}
}

func TestParseObjectRefusesWhatIsNotOneObject(t *testing.T) {
	noop := func(string, any, []byte) error { return nil }
	for _, s := range []string{`[]`, `"s"`, `1`, `true`, `null`} {
		var te *TypeError
		if err := ParseObject([]byte(s), noop); !errors.As(err, &te) {
			t.Errorf("%s: error %v, want a *TypeError", s, err)
		}
	}
	for name, s := range malformed {
		var se *SyntaxError
		if err := ParseObject([]byte(s), noop); !errors.As(err, &se) {
			t.Errorf("%s: error %v, want a *SyntaxError", name, err)
		}
	}
	stop := errors.New("stop")
	calls := 0
	err := ParseObject([]byte(`{"a":1,"b":2}`), func(string, any, []byte) error { calls++; return stop })
	if err != stop || calls != 1 {
		t.Errorf("member's error: got %v after %d calls, want stop after 1", err, calls)
	}
}
