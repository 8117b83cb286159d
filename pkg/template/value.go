package template

// Value formatting and escaping. Every rendered value goes through
// AppendValue: numbers are written by their catalogue type (not by the Go type
// they arrived as), then strings are escaped for the format of the place they
// land. Numbers need no escaping in any format: they are written only with
// digits, "-" and "." (never exponent notation).

import (
	"encoding/json"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/postback-dev/postback/pkg/event"
)

// Format says where a rendered value lands and so how it is escaped.
type Format int

const (
	// Text leaves values as they are (header values, text bodies).
	Text Format = iota
	// URL percent-encodes values as a query component (url.QueryEscape's
	// set: everything but A-Z a-z 0-9 - _ . ~), with a space as %20 so the
	// result is right in a path as well as in a query.
	URL
	// JSON escapes values as the inside of a JSON string (the template
	// supplies the quotes); numbers and booleans are written raw.
	JSON
	// Form escapes for application/x-www-form-urlencoded (space as "+").
	Form
	// XML escapes & < > " ' as entities and tab, newline and carriage
	// return as character references (as encoding/xml.EscapeText does), so
	// a value is right in element content and in attributes; characters
	// XML cannot hold become U+FFFD.
	XML
)

var formatNames = [...]string{Text: "text", URL: "url", JSON: "json", Form: "form", XML: "xml"}

func (f Format) String() string {
	if f >= 0 && int(f) < len(formatNames) {
		return formatNames[f]
	}
	return "Format(" + strconv.Itoa(int(f)) + ")"
}

// AppendValue appends v, formatted for a data point of type typ and escaped
// for f, to dst. nil appends nothing.
//
// Numbers are formatted by typ: Integer without a decimal point ("9876");
// Decimal with at least two decimal places ("10.50", "-5.00", "10.125");
// never exponent notation. A json.Number is formatted exactly from its text.
// NaN and infinities append nothing. Strings are escaped for f, booleans are
// "true"/"false", a time.Time is written as RFC 3339 (or 2006-01-02 for a
// Date). Values of any other Go type append nothing.
func AppendValue(dst []byte, v any, typ event.DataPointType, f Format) []byte {
	switch v := v.(type) {
	case nil:
		return dst
	case string:
		return appendEscaped(dst, v, f)
	case bool:
		if v {
			return append(dst, "true"...)
		}
		return append(dst, "false"...)
	case float64:
		return appendFloat(dst, v, typ, 64)
	case json.Number:
		return appendNumberText(dst, string(v), typ, f)
	case int64:
		return appendInt(dst, v, typ)
	case int:
		return appendInt(dst, int64(v), typ)
	case int32:
		return appendInt(dst, int64(v), typ)
	case float32:
		return appendFloat(dst, float64(v), typ, 32)
	case int8:
		return appendInt(dst, int64(v), typ)
	case int16:
		return appendInt(dst, int64(v), typ)
	case uint:
		return appendUint(dst, uint64(v), typ)
	case uint8:
		return appendUint(dst, uint64(v), typ)
	case uint16:
		return appendUint(dst, uint64(v), typ)
	case uint32:
		return appendUint(dst, uint64(v), typ)
	case uint64:
		return appendUint(dst, v, typ)
	case time.Time:
		var buf [64]byte
		var b []byte
		if typ == event.Date {
			b = v.AppendFormat(buf[:0], time.DateOnly)
		} else {
			b = v.AppendFormat(buf[:0], time.RFC3339Nano)
		}
		return appendEscaped(dst, string(b), f)
	}
	return dst
}

// AppendJSONValue appends v as a complete JSON value for a data point of type
// typ: strings quoted and escaped, numbers formatted as AppendValue does,
// booleans, and null for nil and for anything JSON cannot hold. The result is
// always valid JSON.
func AppendJSONValue(dst []byte, v any, typ event.DataPointType) []byte {
	switch n := v.(type) {
	case nil:
		return append(dst, "null"...)
	case bool:
		return AppendValue(dst, v, typ, JSON)
	case string, time.Time:
		dst = append(dst, '"')
		dst = AppendValue(dst, v, typ, JSON)
		return append(dst, '"')
	case float64:
		if math.IsNaN(n) || math.IsInf(n, 0) {
			return append(dst, "null"...)
		}
	case float32:
		if math.IsNaN(float64(n)) || math.IsInf(float64(n), 0) {
			return append(dst, "null"...)
		}
	case json.Number:
		if _, _, _, _, ok := parseNumber(string(n)); !ok {
			dst = append(dst, '"')
			dst = appendEscaped(dst, string(n), JSON)
			return append(dst, '"')
		}
		start := len(dst)
		dst = AppendValue(dst, v, typ, JSON)
		if len(dst) == start {
			return append(dst, "null"...)
		}
		return dst
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
	default:
		return append(dst, "null"...)
	}
	return AppendValue(dst, v, typ, JSON)
}

func appendInt(dst []byte, n int64, typ event.DataPointType) []byte {
	dst = strconv.AppendInt(dst, n, 10)
	if typ == event.Decimal {
		dst = append(dst, ".00"...)
	}
	return dst
}

func appendUint(dst []byte, n uint64, typ event.DataPointType) []byte {
	dst = strconv.AppendUint(dst, n, 10)
	if typ == event.Decimal {
		dst = append(dst, ".00"...)
	}
	return dst
}

func appendFloat(dst []byte, v float64, typ event.DataPointType, bits int) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return dst
	}
	if v == 0 {
		v = 0 // no "-0"
	}
	start := len(dst)
	// 'f' with precision -1: the shortest text that reads back as v, never
	// exponent notation; integral values have no decimal point.
	dst = strconv.AppendFloat(dst, v, 'f', -1, bits)
	if typ == event.Decimal {
		dst = padDecimals(dst, start)
	}
	return dst
}

// padDecimals makes the number in dst[start:] have at least two decimal
// places.
func padDecimals(dst []byte, start int) []byte {
	for i := start; i < len(dst); i++ {
		if dst[i] == '.' {
			switch len(dst) - i - 1 {
			case 0:
				return append(dst, "00"...)
			case 1:
				return append(dst, '0')
			}
			return dst
		}
	}
	return append(dst, ".00"...)
}

// parseNumber splits JSON number text into sign, integer digits, fraction
// digits and exponent.
func parseNumber(s string) (neg bool, ip, fp string, exp int, ok bool) {
	i := 0
	if i < len(s) && s[i] == '-' {
		neg = true
		i++
	}
	start := i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	ip = s[start:i]
	if len(ip) == 0 || len(ip) > 1 && ip[0] == '0' {
		return false, "", "", 0, false
	}
	if i < len(s) && s[i] == '.' {
		i++
		start = i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		fp = s[start:i]
		if len(fp) == 0 {
			return false, "", "", 0, false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		eneg := false
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			eneg = s[i] == '-'
			i++
		}
		start = i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			if exp < 1e6 {
				exp = exp*10 + int(s[i]-'0')
			}
			i++
		}
		if i == start {
			return false, "", "", 0, false
		}
		if eneg {
			exp = -exp
		}
	}
	if i != len(s) {
		return false, "", "", 0, false
	}
	return neg, ip, fp, exp, true
}

// digits is the digit string ip+fp of a number, read without concatenating;
// positions outside it read as '0'.
type digits struct{ ip, fp string }

func (d digits) at(k int) byte {
	switch {
	case k < 0 || k >= len(d.ip)+len(d.fp):
		return '0'
	case k < len(d.ip):
		return d.ip[k]
	}
	return d.fp[k-len(d.ip)]
}

// appendNumberText formats JSON number text by catalogue type exactly,
// moving the decimal point by the exponent instead of going through float64.
// Text that is not a JSON number is escaped as a string.
func appendNumberText(dst []byte, s string, typ event.DataPointType, f Format) []byte {
	neg, ip, fp, exp, ok := parseNumber(s)
	if !ok {
		return appendEscaped(dst, s, f)
	}
	if exp > 400 || exp < -400 {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil && !math.IsInf(v, 0) {
			return dst
		}
		return appendFloat(dst, v, typ, 64)
	}
	d := digits{ip, fp}
	n := len(ip) + len(fp)
	point := len(ip) + exp // digits before point: [0, point)
	first := 0             // first significant integer digit
	if point > 0 {
		for first < point && d.at(first) == '0' {
			first++
		}
	}
	end := n // fraction digits are [point, end)
	for end > point && d.at(end-1) == '0' {
		end--
	}
	if end < point {
		end = point
	}
	if neg && (first < point || end > point) {
		dst = append(dst, '-')
	}
	if first >= point {
		dst = append(dst, '0')
	} else {
		for k := first; k < point; k++ {
			dst = append(dst, d.at(k))
		}
	}
	places := end - point
	if places == 0 && typ != event.Decimal {
		return dst
	}
	dst = append(dst, '.')
	for k := point; k < end; k++ {
		dst = append(dst, d.at(k))
	}
	if typ == event.Decimal {
		for ; places < 2; places++ {
			dst = append(dst, '0')
		}
	}
	return dst
}

const upperhex = "0123456789ABCDEF"

// queryKeep reports the bytes url.QueryEscape leaves alone.
var queryKeep = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	t['-'], t['_'], t['.'], t['~'] = true, true, true, true
	return t
}()

func appendEscaped(dst []byte, s string, f Format) []byte {
	switch f {
	case URL, Form:
		return appendQueryEscaped(dst, s, f == Form)
	case JSON:
		return appendJSONEscaped(dst, s)
	case XML:
		return appendXMLEscaped(dst, s)
	}
	return append(dst, s...)
}

func appendQueryEscaped(dst []byte, s string, spacePlus bool) []byte {
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if queryKeep[c] {
			continue
		}
		dst = append(dst, s[start:i]...)
		if c == ' ' && spacePlus {
			dst = append(dst, '+')
		} else {
			dst = append(dst, '%', upperhex[c>>4], upperhex[c&15])
		}
		start = i + 1
	}
	return append(dst, s[start:]...)
}

func appendJSONEscaped(dst []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', upperhex[c>>4], upperhex[c&15])
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
			// Valid JSON, but not valid inside JavaScript string literals.
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\u202`...)
			dst = append(dst, upperhex[r&15])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	return append(dst, s[start:]...)
}

func appendXMLEscaped(dst []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		var esc string
		size := 1
		if c < utf8.RuneSelf {
			switch c {
			case '&':
				esc = "&amp;"
			case '<':
				esc = "&lt;"
			case '>':
				esc = "&gt;"
			case '"':
				esc = "&quot;"
			case '\'':
				esc = "&apos;"
			case '\t':
				esc = "&#x9;"
			case '\n':
				esc = "&#xA;"
			case '\r':
				esc = "&#xD;"
			default:
				if c < 0x20 {
					esc = "\uFFFD"
				}
			}
		} else {
			var r rune
			r, size = utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 || r == 0xFFFE || r == 0xFFFF {
				esc = "\uFFFD"
			}
		}
		if esc == "" {
			i += size
			continue
		}
		dst = append(dst, s[start:i]...)
		dst = append(dst, esc...)
		i += size
		start = i
	}
	return append(dst, s[start:]...)
}
