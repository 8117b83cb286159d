package eventdata

import (
	"encoding/json"
	"strconv"
	"sync"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// maxNesting is encoding/json's limit on nested objects and arrays.
const maxNesting = 10000

// SyntaxError describes input that is not one well-formed JSON value.
type SyntaxError struct {
	msg string
	// Offset is where in the input the problem was found.
	Offset int64
}

func (e *SyntaxError) Error() string {
	return e.msg + " at offset " + strconv.FormatInt(e.Offset, 10)
}

// Parse parses b, one JSON value with optional surrounding whitespace, into
// what a json.Decoder with UseNumber decodes into an any: map[string]any,
// []any, string, json.Number, bool or nil. It fails exactly where
// json.Valid(b) is false, with a *SyntaxError. Strings never alias b, which
// the caller may reuse; they share one copy of it instead (see parser).
func Parse(b []byte) (any, error) {
	var p parser
	p.init(b)
	defer p.release()
	p.skipSpace()
	v, err := p.value()
	if err != nil {
		return nil, err
	}
	if err := p.end(); err != nil {
		return nil, err
	}
	return v, nil
}

// ParseObject parses b, one JSON object with optional surrounding whitespace,
// like Parse, but instead of building a map it calls f for each member in
// order: with the member's key, its value as Parse returns it, and raw,
// the value's text exactly as written in b (raw aliases b). It stops at the
// first error, a *SyntaxError, an error from f, or one saying that b
// holds some other JSON value.
func ParseObject(b []byte, f func(key string, value any, raw []byte) error) error {
	var p parser
	p.init(b)
	defer p.release()
	p.skipSpace()
	if p.i >= len(b) || b[p.i] != '{' {
		v, err := p.value()
		if err != nil {
			return err
		}
		if err := p.end(); err != nil {
			return err
		}
		return &TypeError{Got: kind(v)}
	}
	p.depth = 1
	p.i++
	p.skipSpace()
	more, err := p.first('}')
	for more && err == nil {
		var key string
		if key, err = p.key(); err != nil {
			return err
		}
		start := p.i
		var v any
		if v, err = p.value(); err != nil {
			return err
		}
		if err = f(key, v, b[start:p.i]); err != nil {
			return err
		}
		more, err = p.next('}', "after object key:value pair")
	}
	if err != nil {
		return err
	}
	return p.end()
}

// TypeError says that ParseObject found a JSON value other than an object.
type TypeError struct {
	Got string // "array", "string", "number", "boolean" or "null"
}

func (e *TypeError) Error() string {
	return "eventdata: want a JSON object, got " + e.Got
}

func kind(v any) string {
	switch v.(type) {
	case []any:
		return "array"
	case string:
		return "string"
	case json.Number:
		return "number"
	case bool:
		return "boolean"
	case nil:
		return "null"
	}
	return "object"
}

// parser reads one JSON value from b.
//
// s is a copy of b: strings without escapes, and numbers, are taken from it
// as substrings, which saves an allocation per string but keeps the whole
// copy alive as long as any of them is (for event data, the event is the
// unit anyway). Strings never alias b itself, which the caller may reuse.
//
// Objects and arrays collect their members on the stacks kvs and vals,
// shared by every nesting level, and are allocated once their size is known.
// The stacks and buf are pooled.
type parser struct {
	b     []byte
	s     string
	i     int
	depth int
	*scratch
}

type scratch struct {
	kvs  []member
	vals []any
	buf  []byte // an unescaped string
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func (p *parser) init(b []byte) {
	p.b = b
	p.s = string(b)
	p.scratch = scratchPool.Get().(*scratch)
}

// maxScratch bounds the scratch kept for the next parse.
const maxScratch = 1 << 12

func (p *parser) release() {
	sc := p.scratch
	p.scratch = nil
	if cap(sc.kvs) > maxScratch || cap(sc.vals) > maxScratch || cap(sc.buf) > maxScratch*16 {
		return
	}
	clear(sc.kvs) // members left over by an error
	clear(sc.vals)
	sc.kvs, sc.vals, sc.buf = sc.kvs[:0], sc.vals[:0], sc.buf[:0]
	scratchPool.Put(sc)
}

func (p *parser) skipSpace() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// end checks that only whitespace follows the value.
func (p *parser) end() error {
	p.skipSpace()
	if p.i < len(p.b) {
		return p.errorf("after top-level value")
	}
	return nil
}

func (p *parser) value() (any, error) {
	if p.i >= len(p.b) {
		return nil, p.eof()
	}
	switch c := p.b[p.i]; c {
	case '{':
		return p.object()
	case '[':
		return p.array()
	case '"':
		return p.str()
	case 't':
		return true, p.literal("true")
	case 'f':
		return false, p.literal("false")
	case 'n':
		return nil, p.literal("null")
	default:
		if c == '-' || '0' <= c && c <= '9' {
			return p.number()
		}
		return nil, p.errorf("looking for beginning of value")
	}
}

func (p *parser) literal(lit string) error {
	for j := 0; j < len(lit); j++ {
		if p.i >= len(p.b) {
			return p.eof()
		}
		if p.b[p.i] != lit[j] {
			return p.errorf("in literal " + lit + " (expecting " + quoteChar(lit[j]) + ")")
		}
		p.i++
	}
	return nil
}

func (p *parser) number() (any, error) {
	start := p.i
	end, ok := scanNumber(p.b[start:])
	p.i = start + end
	if !ok {
		if p.i >= len(p.b) {
			return nil, p.eof()
		}
		return nil, p.errorf("in numeric literal")
	}
	return json.Number(p.s[start:p.i]), nil
}

// nest enters an object or array.
func (p *parser) nest() error {
	if p.depth++; p.depth > maxNesting {
		return &SyntaxError{msg: "exceeded max depth", Offset: int64(p.i)}
	}
	p.i++
	p.skipSpace()
	return nil
}

// first reports whether an object or array that has just begun has a first
// member (false when close comes at once, which it consumes).
func (p *parser) first(close byte) (bool, error) {
	if p.i >= len(p.b) {
		return false, p.eof()
	}
	if p.b[p.i] == close {
		p.i++
		p.depth--
		return false, nil
	}
	return true, nil
}

// next reads the ',' or close after a member or element and reports whether
// another follows.
func (p *parser) next(close byte, context string) (bool, error) {
	p.skipSpace()
	if p.i >= len(p.b) {
		return false, p.eof()
	}
	switch p.b[p.i] {
	case ',':
		p.i++
		p.skipSpace()
		return true, nil
	case close:
		p.i++
		p.depth--
		return false, nil
	}
	return false, p.errorf(context)
}

// key reads an object key and its colon, and the whitespace after both.
func (p *parser) key() (string, error) {
	if p.i >= len(p.b) {
		return "", p.eof()
	}
	if p.b[p.i] != '"' {
		return "", p.errorf("looking for beginning of object key string")
	}
	k, err := p.str()
	if err != nil {
		return "", err
	}
	p.skipSpace()
	if p.i >= len(p.b) {
		return "", p.eof()
	}
	if p.b[p.i] != ':' {
		return "", p.errorf("after object key")
	}
	p.i++
	p.skipSpace()
	return k, nil
}

func (p *parser) object() (any, error) {
	if err := p.nest(); err != nil {
		return nil, err
	}
	mark := len(p.kvs)
	more, err := p.first('}')
	for more && err == nil {
		var k string
		if k, err = p.key(); err != nil {
			return nil, err
		}
		var v any
		if v, err = p.value(); err != nil {
			return nil, err
		}
		p.kvs = append(p.kvs, member{k, v})
		more, err = p.next('}', "after object key:value pair")
	}
	if err != nil {
		return nil, err
	}
	m := make(map[string]any, len(p.kvs)-mark)
	for _, kv := range p.kvs[mark:] {
		m[kv.key] = kv.value // the last of duplicate keys wins
	}
	clear(p.kvs[mark:])
	p.kvs = p.kvs[:mark]
	return m, nil
}

func (p *parser) array() (any, error) {
	if err := p.nest(); err != nil {
		return nil, err
	}
	mark := len(p.vals)
	more, err := p.first(']')
	for more && err == nil {
		var v any
		if v, err = p.value(); err != nil {
			return nil, err
		}
		p.vals = append(p.vals, v)
		more, err = p.next(']', "after array element")
	}
	if err != nil {
		return nil, err
	}
	a := make([]any, len(p.vals)-mark)
	copy(a, p.vals[mark:])
	clear(p.vals[mark:])
	p.vals = p.vals[:mark]
	return a, nil
}

// plain holds the bytes a string carries as they are: ASCII but for '"',
// '\\' and control characters.
var plain = func() (t [256]bool) {
	for c := ' '; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// str reads a string; p.b[p.i] is its opening quote.
func (p *parser) str() (string, error) {
	b := p.b
	start := p.i + 1
	i := start
	for i < len(b) {
		if plain[b[i]] {
			i++
			continue
		}
		c := b[i]
		if c == '"' {
			p.i = i + 1
			return p.s[start:i], nil
		}
		if c < utf8.RuneSelf {
			break // an escape or a control character
		}
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			break
		}
		i += size
	}
	return p.unescape(start, i)
}

// unescape reads the rest of a string that needs rewriting, as
// encoding/json's unquote does: escapes decoded (a \u escape of a lone
// surrogate becomes U+FFFD) and each byte of invalid UTF-8 replaced by
// U+FFFD. start is where the string's text begins, i where the first byte to
// rewrite is.
func (p *parser) unescape(start, i int) (string, error) {
	b := p.b
	buf := append(p.buf[:0], b[start:i]...)
	for i < len(b) {
		c := b[i]
		switch {
		case c == '"':
			p.i = i + 1
			p.buf = buf // kept for the next string that needs rewriting
			return string(buf), nil
		case c == '\\':
			if i+1 >= len(b) {
				p.i = len(b)
				return "", p.eof()
			}
			switch e := b[i+1]; e {
			case '"', '\\', '/':
				buf = append(buf, e)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				r := getu4(b[i:])
				if r < 0 {
					p.i = i + 2
					for ; p.i < len(b) && p.i < i+6; p.i++ {
						if !isHex(b[p.i]) {
							return "", p.errorf("in \\u hexadecimal character escape")
						}
					}
					return "", p.eof()
				}
				i += 6
				if utf16.IsSurrogate(r) {
					if dec := utf16.DecodeRune(r, getu4(b[i:])); dec != unicode.ReplacementChar {
						i += 6
						buf = utf8.AppendRune(buf, dec)
						continue
					}
					r = unicode.ReplacementChar
				}
				buf = utf8.AppendRune(buf, r)
				continue
			default:
				p.i = i + 1
				return "", p.errorf("in string escape code")
			}
			i += 2
		case c < ' ':
			p.i = i
			return "", p.errorf("in string literal")
		case c < utf8.RuneSelf:
			buf = append(buf, c)
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				buf = append(buf, "\uFFFD"...)
			} else {
				buf = append(buf, b[i:i+size]...)
			}
			i += size
		}
	}
	p.i = len(b)
	return "", p.eof()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// getu4 decodes the \uXXXX escape at the start of s, or returns -1.
func getu4(s []byte) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range s[2:6] {
		switch {
		case '0' <= c && c <= '9':
			c = c - '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

func (p *parser) eof() error {
	return &SyntaxError{msg: "unexpected end of JSON input", Offset: int64(len(p.b))}
}

// errorf reports the byte at p.i as unexpected in context.
func (p *parser) errorf(context string) error {
	return &SyntaxError{msg: "invalid character " + quoteChar(p.b[p.i]) + " " + context, Offset: int64(p.i)}
}

func quoteChar(c byte) string {
	switch c {
	case '\'':
		return `'\''`
	case '"':
		return `'"'`
	}
	s := strconv.Quote(string(rune(c)))
	return "'" + s[1:len(s)-1] + "'"
}
