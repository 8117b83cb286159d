package eventdata

import (
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// StructVisitor judges the values AppendStructWireJSON meets; returning
// false abandons the transcoding.
type StructVisitor interface {
	// Field is a top-level key with a scalar value: nil, float64 (finite),
	// string or bool.
	Field(key string, v any) bool
	// List is a top-level key whose value is a list of n objects.
	List(key string, n int) bool
	// Item is a key with a scalar value in the i-th object of that list.
	Item(i int, key string, v any) bool
}

// AppendStructWireJSON is the fast path of FromStructWire followed by
// AppendJSON for event data of the usual shape: it appends b, the wire bytes
// of a google.protobuf.Struct, to dst as a JSON object, in one pass and
// without building the map, showing every value to visit on the way. The
// keys come in wire order, not sorted; read back, the JSON gives the same
// map as the general path.
//
// The usual shape is what every protobuf library writes for a Struct of
// scalars and one level of lists of objects of scalars: each map entry a
// key then a value, each Value one kind, a list's values all objects, no
// number NaN or infinite, every string valid UTF-8. For anything else
// (which proto.Unmarshal may still read: repeated fields, merged messages,
// deeper nesting), and whenever visit refuses a value, it returns false
// and the caller takes the general path, which also words the errors.
// Repeated keys are for visit to refuse: here the last would win when the
// JSON is read, as in the map.
func AppendStructWireJSON(dst, b []byte, visit StructVisitor) ([]byte, bool) {
	t := transcoder{structDecoder: structDecoder{b: b, s: string(b)}, visit: visit}
	return t.object(dst, 0, len(b), -1)
}

// transcoder reads the wire bytes with FromStructWire's decoder (keys and
// strings are substrings of its one copy).
type transcoder struct {
	structDecoder
	visit StructVisitor
}

// object transcodes the Struct s[start:end]; item is the index of the list
// element it is, or -1 for the top level.
func (t *transcoder) object(dst []byte, start, end, item int) ([]byte, bool) {
	dst = append(dst, '{')
	first := true
	for i := start; i < end; {
		es, ee, next, ok := t.field(i, end, structFields)
		if !ok {
			return nil, false
		}
		i = next
		ks, ke, vstart, ok := t.field(es, ee, entryKey)
		if !ok {
			return nil, false
		}
		vs, ve, after, ok := t.field(vstart, ee, entryValue)
		if !ok || after != ee {
			return nil, false
		}
		key, err := t.str(ks, ke)
		if err != nil {
			return nil, false
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = AppendString(dst, key)
		dst = append(dst, ':')
		if item < 0 && vs < ve && protowire.Number(t.b[vs]>>3) == valueList {
			if dst, ok = t.list(dst, key, vs, ve); !ok {
				return nil, false
			}
			continue
		}
		v, ok := t.scalar(vs, ve)
		if !ok {
			return nil, false
		}
		if item < 0 {
			ok = t.visit.Field(key, v)
		} else {
			ok = t.visit.Item(item, key, v)
		}
		if !ok {
			return nil, false
		}
		switch v := v.(type) {
		case nil:
			dst = append(dst, "null"...)
		case float64:
			dst, _ = appendFloat(dst, v) // finite: no error
		case string:
			dst = AppendString(dst, v)
		case bool:
			if v {
				dst = append(dst, "true"...)
			} else {
				dst = append(dst, "false"...)
			}
		}
	}
	return append(dst, '}'), true
}

// list transcodes the Value s[start:end] holding a list of objects.
func (t *transcoder) list(dst []byte, key string, start, end int) ([]byte, bool) {
	ls, le, next, ok := t.field(start, end, valueList)
	if !ok || next != end {
		return nil, false
	}
	n := 0
	for i := ls; i < le; n++ {
		_, _, next, ok := t.field(i, le, listValues)
		if !ok {
			return nil, false
		}
		i = next
	}
	if !t.visit.List(key, n) {
		return nil, false
	}
	dst = append(dst, '[')
	for i, k := ls, 0; i < le; k++ {
		vs, ve, next, _ := t.field(i, le, listValues)
		i = next
		ss, se, after, ok := t.field(vs, ve, valueStruct)
		if !ok || after != ve {
			return nil, false
		}
		if k > 0 {
			dst = append(dst, ',')
		}
		if dst, ok = t.object(dst, ss, se, k); !ok {
			return nil, false
		}
	}
	return append(dst, ']'), true
}

// scalar decodes the Value s[start:end] holding exactly one scalar kind.
func (t *transcoder) scalar(start, end int) (any, bool) {
	num, typ, n := t.tag(start, end)
	if n <= 0 {
		return nil, false // no kind, or malformed: the general path decides
	}
	i := start + n
	var v any
	switch {
	case num == valueNull && typ == protowire.VarintType:
		x, m := protowire.ConsumeVarint(t.b[i:end])
		if m < 0 || x != 0 {
			return nil, false
		}
		i += m
	case num == valueNumber && typ == protowire.Fixed64Type:
		bits, m := protowire.ConsumeFixed64(t.b[i:end])
		if m < 0 {
			return nil, false
		}
		f := math.Float64frombits(bits)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, false
		}
		v, i = f, i+m
	case num == valueString && typ == protowire.BytesType:
		ss, se, err := t.bytes(i, end)
		if err != nil {
			return nil, false
		}
		str, err := t.str(ss, se)
		if err != nil {
			return nil, false
		}
		v, i = str, se
	case num == valueBool && typ == protowire.VarintType:
		x, m := protowire.ConsumeVarint(t.b[i:end])
		if m < 0 || x > 1 {
			return nil, false
		}
		v, i = x == 1, i+m
	default:
		return nil, false
	}
	if i != end {
		return nil, false // more than one field: the general path merges them
	}
	return v, true
}

// field reads, at b[i:end], a length-delimited field numbered num and
// returns its payload's bounds and where the next field starts.
func (t *transcoder) field(i, end int, num protowire.Number) (start, stop, next int, ok bool) {
	fn, typ, n := t.tag(i, end)
	if n < 0 || fn != num || typ != protowire.BytesType {
		return 0, 0, 0, false
	}
	start, stop, err := t.bytes(i+n, end)
	if err != nil {
		return 0, 0, 0, false
	}
	return start, stop, stop, true
}
