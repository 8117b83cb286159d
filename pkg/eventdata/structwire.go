package eventdata

import (
	"errors"
	"math"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers of google/protobuf/struct.proto.
const (
	structFields     = 1 // Struct.fields, map<string, Value>
	entryKey         = 1 // map entry key
	entryValue       = 2 // map entry value
	valueNull        = 1 // Value.null_value, enum
	valueNumber      = 2 // Value.number_value, double
	valueString      = 3 // Value.string_value
	valueBool        = 4 // Value.bool_value
	valueStruct      = 5 // Value.struct_value, Struct
	valueList        = 6 // Value.list_value, ListValue
	listValues       = 1 // ListValue.values, repeated Value
	maxMessageDepth  = protowire.DefaultRecursionLimit
	errStructWirePre = "eventdata: malformed google.protobuf.Struct: "
)

var (
	errWireMalformed = errors.New(errStructWirePre + "truncated or invalid field")
	errWireUTF8      = errors.New(errStructWirePre + "string field contains invalid UTF-8")
	errWireDepth     = errors.New(errStructWirePre + "exceeded maximum recursion depth")
)

// FromStructWire decodes b, the protobuf wire bytes of a
// google.protobuf.Struct, into exactly what proto.Unmarshal into a
// structpb.Struct followed by AsMap returns: map[string]any, []any, string,
// float64, bool and nil (for null_value and for a Value with no kind), with
// NaN and ±Inf as AsMap gives them: the strings "NaN", "Infinity" and
// "-Infinity". It fails exactly where proto.Unmarshal fails (see
// structDecoder), with an error starting "eventdata: ". Strings
// never alias b; they share one copy of it.
func FromStructWire(b []byte) (map[string]any, error) {
	d := structDecoder{b: b, s: string(b)}
	m, err := d.structValue(0, len(b), nil, maxMessageDepth)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// structDecoder walks the wire bytes b by offset; s is one copy of b that
// keys and string values are substrings of. Each method decodes the message
// b[start:end] with depth levels of nesting left, as protobuf-go's
// unmarshaller counts them: every message, the top one included, takes one,
// and so does each entry of a Struct's map, so a chain of nested structs
// reaches the limit after 3333 levels and one of nested lists after 5000.
//
// proto.Unmarshal's rules, followed here: a field with an unknown number, or
// a known number with the wrong wire type, is skipped (protobuf-go keeps it
// as an unknown field); truncated input, and strings (keys included: the
// file is proto3) that are not valid UTF-8, are errors; the last of
// duplicate map keys wins; the last field set in a Value wins, except that
// struct_value and list_value merge into a struct_value or list_value the
// Value already holds (as protobuf merges a repeated message field), and so
// do two values in one map entry.
type structDecoder struct {
	b []byte
	s string
}

// structValue decodes a Struct into m (a new map when m is nil).
func (d *structDecoder) structValue(start, end int, m map[string]any, depth int) (map[string]any, error) {
	if depth--; depth < 0 {
		return nil, errWireDepth
	}
	if m == nil {
		m = make(map[string]any, d.count(start, end, structFields))
	}
	for i := start; i < end; {
		num, typ, n := d.tag(i, end)
		if n < 0 {
			return nil, errWireMalformed
		}
		i += n
		if num == structFields && depth == 0 {
			// protobuf-go counts a map entry as a level, whatever its wire type.
			return nil, errWireDepth
		}
		if num == structFields && typ == protowire.BytesType {
			s, e, err := d.bytes(i, end)
			if err != nil {
				return nil, err
			}
			if err := d.entry(s, e, m, depth-1); err != nil {
				return nil, err
			}
			i = e
			continue
		}
		if i, n = d.skip(i, end, num, typ); n < 0 {
			return nil, errWireMalformed
		}
	}
	return m, nil
}

// entry decodes one map entry of a Struct into m (depth already counts the
// entry: protobuf-go counts it as a level of its own).
func (d *structDecoder) entry(start, end int, m map[string]any, depth int) error {
	var key string
	var v any
	for i := start; i < end; {
		num, typ, n := d.tag(i, end)
		if n < 0 {
			return errWireMalformed
		}
		i += n
		if typ == protowire.BytesType && (num == entryKey || num == entryValue) {
			s, e, err := d.bytes(i, end)
			if err != nil {
				return err
			}
			if num == entryKey {
				if key, err = d.str(s, e); err != nil {
					return err
				}
			} else if v, err = d.value(s, e, v, depth); err != nil {
				return err
			}
			i = e
			continue
		}
		if i, n = d.skip(i, end, num, typ); n < 0 {
			return errWireMalformed
		}
	}
	m[key] = v
	return nil
}

// value decodes a Value merged into v, what the Value holds so far (nil when
// new): a map[string]any only ever comes from struct_value and a []any from
// list_value, so v's type tells which of those the Value holds.
func (d *structDecoder) value(start, end int, v any, depth int) (any, error) {
	if depth--; depth < 0 {
		return nil, errWireDepth
	}
	for i := start; i < end; {
		num, typ, n := d.tag(i, end)
		if n < 0 {
			return nil, errWireMalformed
		}
		i += n
		switch {
		case (num == valueNull || num == valueBool) && typ == protowire.VarintType:
			x, n := protowire.ConsumeVarint(d.b[i:end])
			if n < 0 {
				return nil, errWireMalformed
			}
			i += n
			if num == valueNull {
				v = nil
			} else {
				v = x != 0
			}
		case num == valueNumber && typ == protowire.Fixed64Type:
			x, n := protowire.ConsumeFixed64(d.b[i:end])
			if n < 0 {
				return nil, errWireMalformed
			}
			i += n
			v = number(math.Float64frombits(x))
		case (num == valueString || num == valueStruct || num == valueList) && typ == protowire.BytesType:
			s, e, err := d.bytes(i, end)
			if err != nil {
				return nil, err
			}
			switch num {
			case valueString:
				v, err = d.str(s, e)
			case valueStruct:
				m, _ := v.(map[string]any)
				v, err = d.structValue(s, e, m, depth)
			default:
				l, _ := v.([]any)
				v, err = d.list(s, e, l, depth)
			}
			if err != nil {
				return nil, err
			}
			i = e
		default:
			if i, n = d.skip(i, end, num, typ); n < 0 {
				return nil, errWireMalformed
			}
		}
	}
	return v, nil
}

// list decodes a ListValue appended to l (a new slice when l is nil; never
// nil, as AsSlice's is not).
func (d *structDecoder) list(start, end int, l []any, depth int) ([]any, error) {
	if depth--; depth < 0 {
		return nil, errWireDepth
	}
	if l == nil {
		l = make([]any, 0, d.count(start, end, listValues))
	}
	for i := start; i < end; {
		num, typ, n := d.tag(i, end)
		if n < 0 {
			return nil, errWireMalformed
		}
		i += n
		if num == listValues && typ == protowire.BytesType {
			s, e, err := d.bytes(i, end)
			if err != nil {
				return nil, err
			}
			v, err := d.value(s, e, nil, depth)
			if err != nil {
				return nil, err
			}
			l = append(l, v)
			i = e
			continue
		}
		if i, n = d.skip(i, end, num, typ); n < 0 {
			return nil, errWireMalformed
		}
	}
	return l, nil
}

// number is a number_value as AsMap gives it: a float64, but NaN and ±Inf
// as the strings "NaN", "Infinity" and "-Infinity" (their JSON mapping).
func number(f float64) any {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return f
}

// tag reads the field's tag at b[i:end] as protobuf-go does: a field
// number out of range is an error (protowire.ConsumeTag lets one above
// protowire.MaxValidNumber through).
func (d *structDecoder) tag(i, end int) (protowire.Number, protowire.Type, int) {
	num, typ, n := protowire.ConsumeTag(d.b[i:end])
	if n >= 0 && num > protowire.MaxValidNumber {
		return 0, 0, -1
	}
	return num, typ, n
}

// bytes reads the length prefix at b[i:end] and returns where the
// length-delimited payload starts and ends.
func (d *structDecoder) bytes(i, end int) (int, int, error) {
	l, n := protowire.ConsumeVarint(d.b[i:end])
	if n < 0 || l > uint64(end-i-n) {
		return 0, 0, errWireMalformed
	}
	return i + n, i + n + int(l), nil
}

// str is the string b[start:end], which must be valid UTF-8.
func (d *structDecoder) str(start, end int) (string, error) {
	s := d.s[start:end]
	if !utf8.ValidString(s) {
		return "", errWireUTF8
	}
	return s, nil
}

// skip skips the value of a field proto.Unmarshal keeps as unknown and
// returns where the next field starts; n < 0 if the value is malformed.
func (d *structDecoder) skip(i, end int, num protowire.Number, typ protowire.Type) (next, n int) {
	n = protowire.ConsumeFieldValue(num, typ, d.b[i:end])
	return i + n, n
}

// count is how many length-delimited fields numbered num b[start:end]
// holds, at most: the size of the map or slice to make. It stops counting at
// the first malformed field, which the decoder then reports.
func (d *structDecoder) count(start, end int, num protowire.Number) int {
	c := 0
	for i := start; i < end; {
		fn, typ, n := protowire.ConsumeTag(d.b[i:end])
		if n < 0 {
			break
		}
		i += n
		if n = protowire.ConsumeFieldValue(fn, typ, d.b[i:end]); n < 0 {
			break
		}
		i += n
		if fn == num && typ == protowire.BytesType {
			c++
		}
	}
	return c
}
