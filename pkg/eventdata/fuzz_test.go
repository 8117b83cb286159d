package eventdata

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"testing"
)

// FuzzParse: for any input, Parse succeeds exactly when encoding/json accepts
// the input as one value, and then returns what a json.Decoder with UseNumber
// returns. ParseObject agrees with Parse on objects, and what Parse returns
// is written back by AppendJSON as json.Marshal writes it.
func FuzzParse(f *testing.F) {
	for _, s := range malformed {
		f.Add([]byte(s))
	}
	for _, s := range sampleEvents(f) {
		f.Add(s)
	}
	for _, s := range []string{
		`{"a":1,"b":[true,false,null],"c":{"d":"e"}}`, `[]`, `{}`, `""`, `0`, `-0.0e-0`,
		`"\ud83c\udf89 \ud800 \udc00 \u00e9 \n"`, "\"\xff\xed\xa0\x80\"", `{"a":1,"a":2}`,
		`  [ 1 , { "x" : [ ] } ]  `, `1E400`, `"a\u2028b"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		want, ok := decodeStd(b)
		got, err := Parse(b)
		if !ok {
			if err == nil {
				t.Fatalf("Parse accepts %q, encoding/json does not: %#v", b, got)
			}
			return
		}
		if err != nil {
			t.Fatalf("Parse refuses %q, encoding/json accepts it: %v", b, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("Parse(%q)\n got %#v\nwant %#v", b, got, want)
		}
		if m, isObject := got.(map[string]any); isObject {
			members := map[string]any{}
			err := ParseObject(b, func(k string, v any, raw []byte) error {
				members[k] = v
				if rv, err := Parse(raw); err != nil || !reflect.DeepEqual(rv, v) {
					t.Fatalf("ParseObject: member %q has text %q, which parses to %#v, %v, not %#v", k, raw, rv, err, v)
				}
				return nil
			})
			if err != nil || !reflect.DeepEqual(members, m) {
				t.Fatalf("ParseObject(%q): %v, members %#v, want %#v", b, err, members, m)
			}
		}
		checkAppend(t, got)
	})
}

// FuzzAppendJSON: AppendJSON writes what json.Marshal writes, byte for byte,
// or fails with json.Marshal's error, for values built from arbitrary JSON
// (numbers as json.Number and, decoded again, as float64), arbitrary strings
// (invalid UTF-8 included), float64 bit patterns and integers; and what it
// writes parses back to what encoding/json reads from json.Marshal's output.
func FuzzAppendJSON(f *testing.F) {
	for _, s := range sampleEvents(f) {
		f.Add(s, "Spring Global Promotion", math.Float64bits(10.5), int64(9876))
	}
	f.Add([]byte(`[1e-7,1e21,123456789.125,-0,5e-324]`), "a\xffb<\u2028>\x00\"\\", math.Float64bits(1e-7), int64(-1))
	f.Add([]byte(`{"a":"b"}`), "01", math.Float64bits(math.NaN()), int64(math.MinInt64))
	f.Add([]byte(`[]`), "1.5e+3", math.Float64bits(math.Inf(-1)), int64(0))
	f.Add([]byte(`{"x":1e400}`), "", math.Float64bits(math.MaxFloat64), int64(1))
	f.Fuzz(func(t *testing.T, data []byte, s string, bits uint64, n int64) {
		fl := math.Float64frombits(bits)
		var numbers, floats any
		if json.Valid(data) {
			dec := json.NewDecoder(bytes.NewReader(data))
			dec.UseNumber()
			_ = dec.Decode(&numbers)
			_ = json.Unmarshal(data, &floats) // may fail (1e400): floats stays nil
		}
		values := []any{
			s, fl, n, int(n), json.Number(s), numbers, floats,
			map[string]any{s: fl, "n": n, "s": s, "numbers": numbers, "floats": floats, "list": []any{s, fl, nil, true}},
		}
		for _, v := range values {
			out := checkAppend(t, v)
			if out == nil {
				continue
			}
			want, ok := decodeStd(out)
			if !ok {
				t.Fatalf("json.Marshal wrote invalid JSON %q", out)
			}
			if got, err := Parse(out); err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("Parse(%s) = %#v, %v; want %#v", out, got, err, want)
			}
		}
	})
}
