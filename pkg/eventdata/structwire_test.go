package eventdata

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// stdStruct is what the gateway did before FromStructWire: proto.Unmarshal
// into a structpb.Struct, then AsMap.
func stdStruct(b []byte) (map[string]any, error) {
	var s structpb.Struct
	if err := proto.Unmarshal(b, &s); err != nil {
		return nil, err
	}
	return s.AsMap(), nil
}

// marshalStruct is m as a Struct's wire bytes.
func marshalStruct(t testing.TB, m map[string]any) []byte {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sameData is reflect.DeepEqual for AsMap's values, but with NaN equal to
// NaN, and telling -0 from 0.
func sameData(a, b any) bool {
	switch a := a.(type) {
	case nil:
		return b == nil
	case float64:
		f, ok := b.(float64)
		if !ok {
			return false
		}
		if math.IsNaN(a) || math.IsNaN(f) {
			return math.IsNaN(a) && math.IsNaN(f)
		}
		return a == f && math.Signbit(a) == math.Signbit(f)
	case string, bool:
		return a == b
	case map[string]any:
		m, ok := b.(map[string]any)
		if !ok || (a == nil) != (m == nil) || len(a) != len(m) {
			return false
		}
		for k, v := range a {
			w, ok := m[k]
			if !ok || !sameData(v, w) {
				return false
			}
		}
		return true
	case []any:
		l, ok := b.([]any)
		if !ok || (a == nil) != (l == nil) || len(a) != len(l) {
			return false
		}
		for i := range a {
			if !sameData(a[i], l[i]) {
				return false
			}
		}
		return true
	}
	return false
}

// wire builds protobuf wire bytes field by field.
type wire []byte

func (w wire) bytes(num protowire.Number, b []byte) wire {
	w = protowire.AppendTag(w, num, protowire.BytesType)
	return protowire.AppendBytes(w, b)
}

func (w wire) str(num protowire.Number, s string) wire { return w.bytes(num, []byte(s)) }

func (w wire) varint(num protowire.Number, x uint64) wire {
	return protowire.AppendVarint(protowire.AppendTag(w, num, protowire.VarintType), x)
}

func (w wire) fixed64(num protowire.Number, x uint64) wire {
	return protowire.AppendFixed64(protowire.AppendTag(w, num, protowire.Fixed64Type), x)
}

func (w wire) fixed32(num protowire.Number, x uint32) wire {
	return protowire.AppendFixed32(protowire.AppendTag(w, num, protowire.Fixed32Type), x)
}

func (w wire) group(num protowire.Number, body wire) wire {
	w = append(protowire.AppendTag(w, num, protowire.StartGroupType), body...)
	return protowire.AppendTag(w, num, protowire.EndGroupType)
}

func num(f float64) wire { return wire{}.fixed64(2, math.Float64bits(f)) }
func str(s string) wire  { return wire{}.str(3, s) }
func entry(k string, v wire) wire {
	return wire{}.str(1, k).bytes(2, v)
}
func object(entries ...wire) wire {
	var w wire
	for _, e := range entries {
		w = w.bytes(1, e)
	}
	return w
}
func list(values ...wire) wire {
	var w wire
	for _, v := range values {
		w = w.bytes(1, v)
	}
	return w
}

// structWireCases are Struct wire bytes, as marshalled and as hand-built, that
// FromStructWire must decode as proto.Unmarshal and AsMap do (or fail where
// proto.Unmarshal fails).
func structWireCases(t testing.TB) map[string][]byte {
	cases := map[string][]byte{}
	for name, b := range sampleEvents(t) {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		cases["sample "+name] = marshalStruct(t, m)
	}
	cases["bench event"] = marshalStruct(t, benchData())
	// nested(d, inner) nests 1+3d levels as protobuf-go counts them (Struct,
	// then map entry, Value and Struct d times), the innermost Struct's
	// fields being inner.
	leaf := object(entry("a", wire{})) // two levels more: an entry, a Value
	nested := func(d int, inner wire) []byte {
		w := inner
		for range d {
			w = object(entry("a", wire{}.bytes(5, w)))
		}
		return w
	}
	// deepList(d) nests 3+2d messages: Struct, Value, ListValue, then Value
	// and ListValue d times.
	deepList := func(d int) []byte {
		w := wire{}.bytes(6, list())
		for range d {
			w = wire{}.bytes(6, list(w))
		}
		return object(entry("l", w))
	}
	for name, w := range map[string]wire{
		"empty struct":              object(),
		"null":                      object(entry("n", wire{}.varint(1, 0))),
		"null with another enum":    object(entry("n", wire{}.varint(1, 7))),
		"empty list":                object(entry("l", wire{}.bytes(6, list()))),
		"empty struct value":        object(entry("s", wire{}.bytes(5, object()))),
		"nested lists of structs":   object(entry("l", wire{}.bytes(6, list(wire{}.bytes(6, list(wire{}.bytes(5, object(entry("x", str("y")))), num(1))), wire{}.bytes(5, object()))))),
		"NaN":                       object(entry("n", num(math.NaN()))),
		"other NaN":                 object(entry("n", wire{}.fixed64(2, 0x7ff0000000000001))),
		"Inf":                       object(entry("p", num(math.Inf(1))), entry("m", num(math.Inf(-1)))),
		"minus zero":                object(entry("z", num(math.Copysign(0, -1)))),
		"unicode keys":              object(entry("ключ", str("значение")), entry("🎉", str("\u2028")), entry("", str(""))),
		"duplicate keys":            object(entry("a", num(1)), entry("b", str("x")), entry("a", str("last"))),
		"value with no kind":        object(entry("v", wire{})),
		"entry with no value":       object(wire{}.str(1, "k")),
		"entry with no key":         object(wire{}.bytes(2, num(3))),
		"empty entry":               object(wire{}),
		"key twice":                 object(wire{}.str(1, "a").str(1, "b").bytes(2, num(1))),
		"value before key":          object(wire{}.bytes(2, str("v")).str(1, "k")),
		"two kinds, last wins":      object(entry("v", str("x").varint(4, 1).fixed64(2, math.Float64bits(2)))),
		"kind then null":            object(entry("v", str("x").varint(1, 0))),
		"bool as large varint":      object(entry("b", wire{}.varint(4, 1<<40)), entry("f", wire{}.varint(4, 0))),
		"structs merge":             object(entry("s", wire{}.bytes(5, object(entry("a", num(1)), entry("b", num(2)))).bytes(5, object(entry("b", str("B")), entry("c", num(3)))))),
		"lists append":              object(entry("l", wire{}.bytes(6, list(num(1))).bytes(6, list(str("2"))))),
		"struct, other, struct":     object(entry("s", wire{}.bytes(5, object(entry("a", num(1)))).varint(4, 1).bytes(5, object(entry("b", num(2)))))),
		"values in one entry merge": object(wire{}.str(1, "k").bytes(2, wire{}.bytes(5, object(entry("a", num(1))))).bytes(2, wire{}.bytes(5, object(entry("b", num(2)))))),
		"entries replace":           object(entry("s", wire{}.bytes(5, object(entry("a", num(1))))), entry("s", wire{}.bytes(5, object(entry("b", num(2)))))),
		"unknown fields in Struct":  object(entry("a", num(1))).varint(2, 5).str(99, "x").fixed32(3, 1).group(4, wire{}.varint(1, 1)),
		"unknown fields in entry":   object(wire{}.varint(3, 1).str(1, "k").fixed64(9, 1).bytes(2, num(2)).str(4, "z")),
		"unknown fields in Value":   object(entry("v", num(2).varint(7, 1).str(8, "x").group(9, wire{}))),
		"unknown fields in list":    object(entry("l", wire{}.bytes(6, list(num(1)).varint(2, 3).str(3, "x")))),
		"wrong wire type: fields":   object(entry("a", num(1))).varint(1, 5),
		"wrong wire type: key":      object(wire{}.varint(1, 1).bytes(2, num(1))),
		"wrong wire type: value":    object(wire{}.str(1, "k").varint(2, 1)),
		"wrong wire type: null":     object(entry("v", num(1).str(1, "x"))),
		"wrong wire type: number":   object(entry("v", wire{}.varint(2, 1))),
		"wrong wire type: string":   object(entry("v", wire{}.varint(3, 1))),
		"wrong wire type: bool":     object(entry("v", wire{}.fixed64(4, 1))),
		"wrong wire type: struct":   object(entry("v", wire{}.varint(5, 1))),
		"wrong wire type: list":     object(entry("v", wire{}.fixed32(6, 1))),
		"wrong wire type: values":   object(entry("v", wire{}.bytes(6, wire{}.varint(1, 1)))),
		"invalid UTF-8 key":         object(entry("a\xff", num(1))),
		"invalid UTF-8 string":      object(entry("a", str("\xed\xa0\x80"))),
		"invalid UTF-8 unknown":     object(entry("a", num(1))).str(7, "\xff"),
		"field number 0":            wire{}.varint(0, 1),
		"end group":                 protowire.AppendTag(nil, 5, protowire.EndGroupType),
		"unterminated group":        protowire.AppendTag(nil, 5, protowire.StartGroupType),
		"reserved wire type":        {0x0e},
		"overlong varint":           append(wire{}.str(1, ""), 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01),
		"length past end":           {0x0a, 0x05, 0x0a, 0x01},
		"entry length past parent":  {0x0a, 0x03, 0x0a, 0x05, 'a'},
		"9999 levels, structs":      nested(3332, leaf),
		"10000 levels, structs":     nested(3333, object()),
		"10002 levels, structs":     nested(3333, leaf),
		"10003 levels, structs":     nested(3334, object()),
		"10001 levels, bad entry":   nested(3333, wire{}.varint(1, 1)),
		"10000 levels, unknown":     nested(3333, wire{}.varint(2, 1)),
		"9998 levels, lists":        deepList(4997),
		"10000 levels, lists":       deepList(4998),
		"10002 levels, lists":       deepList(4999),
	} {
		cases[name] = w
	}
	good := cases["bench event"]
	for _, n := range []int{1, 2, 10, len(good) / 2, len(good) - 1} {
		cases[fmt.Sprintf("bench event truncated to %d bytes", n)] = good[:n]
	}
	return cases
}

func TestFromStructWireIsUnmarshalAsMap(t *testing.T) {
	for name, b := range structWireCases(t) {
		t.Run(name, func(t *testing.T) {
			want, wantErr := stdStruct(b)
			got, err := FromStructWire(b)
			if wantErr != nil {
				if err == nil {
					t.Fatalf("FromStructWire accepts what proto.Unmarshal refuses (%v): %#v", wantErr, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("FromStructWire: %v; proto.Unmarshal accepts it", err)
			}
			if !sameData(got, want) {
				t.Fatalf("FromStructWire\n got %#v\nwant %#v", got, want)
			}
		})
	}
}

// TestFromStructWireCases pins what the cases above must do, so that a change
// of protobuf-go's behaviour shows up as a failure rather than as both
// sides agreeing on something new.
func TestFromStructWireCases(t *testing.T) {
	cases := structWireCases(t)
	for name, want := range map[string]any{
		"empty struct":              map[string]any{},
		"value with no kind":        map[string]any{"v": nil},
		"entry with no value":       map[string]any{"k": nil},
		"empty list":                map[string]any{"l": []any{}},
		"duplicate keys":            map[string]any{"a": "last", "b": "x"},
		"structs merge":             map[string]any{"s": map[string]any{"a": 1.0, "b": "B", "c": 3.0}},
		"lists append":              map[string]any{"l": []any{1.0, "2"}},
		"struct, other, struct":     map[string]any{"s": map[string]any{"b": 2.0}},
		"values in one entry merge": map[string]any{"k": map[string]any{"a": 1.0, "b": 2.0}},
		"entries replace":           map[string]any{"s": map[string]any{"b": 2.0}},
		"wrong wire type: number":   map[string]any{"v": nil},
		"minus zero":                map[string]any{"z": math.Copysign(0, -1)},
		"NaN":                       map[string]any{"n": "NaN"},
		"10000 levels, structs":     nil, // only that it decodes
		"10000 levels, lists":       nil,
		"Inf":                       map[string]any{"p": "Infinity", "m": "-Infinity"},
		"other NaN":                 map[string]any{"n": "NaN"},
	} {
		got, err := FromStructWire(cases[name])
		if err != nil || (want != nil && !sameData(got, want)) {
			t.Errorf("%s: got %#v, %v; want %#v", name, got, err, want)
		}
	}
	for _, name := range []string{"invalid UTF-8 key", "invalid UTF-8 string", "10002 levels, structs", "10001 levels, bad entry", "length past end", "field number 0", "end group"} {
		if got, err := FromStructWire(cases[name]); err == nil || !strings.HasPrefix(err.Error(), "eventdata: ") {
			t.Errorf("%s: got %#v, %v; want an eventdata error", name, got, err)
		}
	}
}

func TestFromStructWireStringsDoNotAliasTheInput(t *testing.T) {
	b := marshalStruct(t, map[string]any{"key": "value"})
	got, err := FromStructWire(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 'X'
	}
	if !sameData(got, map[string]any{"key": "value"}) {
		t.Fatalf("after overwriting the input: %#v", got)
	}
}

// FuzzFromStructWire: for any input, FromStructWire succeeds exactly when
// proto.Unmarshal into a structpb.Struct does, and then returns what AsMap
// returns.
func FuzzFromStructWire(f *testing.F) {
	for _, b := range structWireCases(f) {
		if len(b) < 4096 {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		in := bytes.Clone(b)
		want, wantErr := stdStruct(b)
		got, err := FromStructWire(b)
		if !bytes.Equal(in, b) {
			t.Fatal("FromStructWire changed its input")
		}
		if wantErr != nil {
			if err == nil {
				t.Fatalf("FromStructWire(%x) accepts what proto.Unmarshal refuses (%v): %#v", b, wantErr, got)
			}
			return
		}
		if err != nil {
			t.Fatalf("FromStructWire(%x): %v; proto.Unmarshal accepts it: %#v", b, err, want)
		}
		if !sameData(got, want) {
			t.Fatalf("FromStructWire(%x)\n got %#v\nwant %#v", b, got, want)
		}
	})
}

func BenchmarkFromStructWire(b *testing.B) {
	data := marshalStruct(b, benchData())
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := FromStructWire(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFromStructWireUnmarshalAsMap is what FromStructWire replaces.
func BenchmarkFromStructWireUnmarshalAsMap(b *testing.B) {
	data := marshalStruct(b, benchData())
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := stdStruct(data); err != nil {
			b.Fatal(err)
		}
	}
}
