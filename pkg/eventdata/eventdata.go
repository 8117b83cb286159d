// Package eventdata encodes and decodes an event's data points: generic JSON
// values as encoding/json represents them in an any (map[string]any, []any,
// string, json.Number or float64, bool, nil). Every event passes through both
// directions once (the gateway encodes the data it accepted, the renderer
// decodes it again), and encoding/json's reflection dominated both services'
// profiles, so this package does the same work with a type switch and a
// hand-written parser over the byte slice.
//
// The wire format does not change; it is exactly encoding/json's, and the
// tests (tables and fuzz targets against encoding/json) enforce that:
//
//   - AppendJSON writes what json.Marshal writes, byte for byte, for the
//     types it handles itself (map[string]any, []any, string, float64,
//     json.Number, bool, nil, int, int64): object keys sorted, strings
//     escaped as encoding/json escapes them (HTML-safe, U+2028 and U+2029
//     escaped, invalid UTF-8 replaced by U+FFFD), float64 in encoding/json's
//     format (the renderer renders a number from its JSON text, so the text
//     must not change). It fails where json.Marshal fails (NaN, ±Inf, a
//     malformed json.Number), with the same errors. Any other type, and any
//     value nested deeper than encoding/json starts looking for cycles, is
//     handed to json.Marshal.
//   - Parse returns exactly what a json.Decoder with UseNumber decodes into
//     an any: map[string]any (the last of duplicate keys wins), []any,
//     string (unescaped as encoding/json unescapes, lone surrogates and
//     invalid UTF-8 becoming U+FFFD), json.Number, bool and nil. It accepts
//     exactly the inputs json.Valid accepts, including encoding/json's
//     nesting limit of 10000.
//   - ParseObject is Parse for an object whose members the caller takes one
//     by one, with each value's text as written (pkg/stream decodes the event
//     envelope with it, handing the time to time.Time's UnmarshalJSON).
//
// FromStructWire is the gateway's other way in: it decodes the protobuf
// wire bytes of a google.protobuf.Struct (a published event's data) straight
// into what proto.Unmarshal into a structpb.Struct and AsMap return,
// map[string]any, []any, string, float64 (NaN and ±Inf as AsMap's strings
// "NaN", "Infinity", "-Infinity"), bool and nil, failing exactly where
// proto.Unmarshal fails; a table and a fuzz target against protobuf-go
// enforce that. Like Parse, it copies its input once into a string that the
// keys and strings are substrings of, and sizes maps and slices up front.
//
// Parse allocates the result and little else: the input is copied once into
// a string and strings without escapes, and numbers, are substrings of that
// copy (never of the caller's buffer); maps and slices are allocated at their
// final size; scratch space comes from a pool. AppendJSON allocates nothing
// but the growth of dst.
package eventdata

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// AppendJSON appends v to dst as JSON, exactly as json.Marshal(v) would write
// it, and returns the extended buffer. On error it returns dst (whose spare
// capacity may have been written to) and json.Marshal's error.
func AppendJSON(dst []byte, v any) ([]byte, error) {
	e := encoderPool.Get().(*encoder)
	out, err := e.value(dst, v, 0)
	if cap(e.members) <= maxScratch {
		clear(e.members) // members an error left; popped ones are cleared
		e.members = e.members[:0]
		encoderPool.Put(e)
	}
	if err != nil {
		return dst, err
	}
	return out, nil
}

// encoder holds the members of the objects being written, each object's
// above its parent's, to sort them by key.
type encoder struct {
	members []member
}

var encoderPool = sync.Pool{New: func() any { return new(encoder) }}

// maxDepth is how deeply AppendJSON nests objects and arrays itself. Deeper
// values go to json.Marshal, which detects cycles (a map holding itself) from
// this depth on; values from Parse or structpb have no cycles, and nest far
// less.
const maxDepth = 1000

func (e *encoder) value(dst []byte, v any, depth int) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case string:
		return AppendString(dst, v), nil
	case map[string]any:
		if v == nil {
			return append(dst, "null"...), nil
		}
		if depth >= maxDepth {
			return appendMarshal(dst, v)
		}
		return e.object(dst, v, depth+1)
	case []any:
		if v == nil {
			return append(dst, "null"...), nil
		}
		if depth >= maxDepth {
			return appendMarshal(dst, v)
		}
		dst = append(dst, '[')
		for i, elem := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = e.value(dst, elem, depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	case float64:
		return appendFloat(dst, v)
	case json.Number:
		return appendNumber(dst, v)
	case bool:
		if v {
			return append(dst, "true"...), nil
		}
		return append(dst, "false"...), nil
	case int:
		return strconv.AppendInt(dst, int64(v), 10), nil
	case int64:
		return strconv.AppendInt(dst, v, 10), nil
	}
	return appendMarshal(dst, v)
}

// appendMarshal is the fallback for everything encoder.value does not handle.
func appendMarshal(dst []byte, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return dst, err
	}
	return append(dst, b...), nil
}

// member is one object member, for sorting.
type member struct {
	key   string
	value any
}

// object writes m with its keys sorted, as encoding/json does (the order is
// not part of JSON's meaning, but it keeps the output identical to
// json.Marshal's, and deterministic).
func (e *encoder) object(dst []byte, m map[string]any, depth int) ([]byte, error) {
	mark := len(e.members)
	for k, v := range m {
		e.members = append(e.members, member{k, v})
	}
	members := e.members[mark:]
	slices.SortFunc(members, func(a, b member) int { return strings.Compare(a.key, b.key) })
	dst = append(dst, '{')
	for i := range members {
		if i > 0 {
			dst = append(dst, ',')
		}
		mb := e.members[mark+i] // e.members may have moved: nested objects append to it
		dst = AppendString(dst, mb.key)
		dst = append(dst, ':')
		var err error
		if dst, err = e.value(dst, mb.value, depth); err != nil {
			return dst, err
		}
	}
	clear(e.members[mark:])
	e.members = e.members[:mark]
	return append(dst, '}'), nil
}

// appendFloat writes f as encoding/json's floatEncoder does: like
// strconv.FormatFloat(f, 'f', -1, 64), switching to exponent notation below
// 1e-6 and from 1e21 on, with a one-digit negative exponent written e-7, not
// e-07. NaN and infinities are errors.
func appendFloat(dst []byte, f float64) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return dst, &json.UnsupportedValueError{Value: reflect.ValueOf(f), Str: strconv.FormatFloat(f, 'g', -1, 64)}
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// e-09 becomes e-9.
		if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst, nil
}

// appendNumber writes a json.Number's text, refusing text that is not a JSON
// number; the empty Number is 0, as for encoding/json.
func appendNumber(dst []byte, n json.Number) ([]byte, error) {
	s := string(n)
	if s == "" {
		s = "0"
	}
	if end, ok := scanNumber(s); !ok || end != len(s) {
		return dst, fmt.Errorf("json: invalid number literal %q", s)
	}
	return append(dst, s...), nil
}

// scanNumber returns the end of the JSON number at the start of s (ok false
// when s does not start with one).
func scanNumber[T string | []byte](s T) (end int, ok bool) {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i >= len(s):
		return i, false
	case s[i] == '0':
		i++
	case '1' <= s[i] && s[i] <= '9':
		i++
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
	default:
		return i, false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			return i, false
		}
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			return i, false
		}
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
	}
	return i, true
}

const hex = "0123456789abcdef"

// safe holds the ASCII bytes a JSON string carries unescaped: encoding/json's
// htmlSafeSet (everything but control characters, '"', '\\', '<', '>' and
// '&').
var safe = func() (t [utf8.RuneSelf]bool) {
	for c := ' '; c < utf8.RuneSelf; c++ {
		t[c] = true
	}
	for _, c := range `"\<>&` {
		t[c] = false
	}
	return t
}()

// AppendString appends s as a JSON string, escaped exactly as json.Marshal
// escapes it: '"', '\\' and control characters, '<', '>' and '&' (as
// \u003c...), U+2028 and U+2029; each byte of invalid UTF-8 becomes \ufffd.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if safe[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '\\', '"':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
