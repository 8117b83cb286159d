// Package template implements the {DataPoint} macro language of endpoint URL,
// header and body templates (docs/architecture.md, decision 2).
//
// Language:
//
//   - {Name} substitutes the top-level data point Name of the event.
//   - {join(items, i, "inner")} renders the quoted inner template once per item
//     of the items collection, joined with ","; {join(items, i, "inner", ";")}
//     gives another separator. Inside the inner template {i.sku} names a field
//     of the current item; top-level macros such as {CampaignId} work there too.
//     Whitespace (newlines included) may surround the join's arguments, so the
//     seed's multi-line join block parses as written.
//   - \{ \} and \" are a literal brace or quote everywhere (inside the quoted
//     inner template \" is how a quote is written). Every other backslash is
//     literal text.
//   - A "{" opens a macro only when an ASCII letter follows it; any other "{"
//     is literal, so JSON bodies need no escaping.
//
// Parse compiles a template once into a flat slice of segments (literal text,
// a data point with its catalogue type resolved, an item field, or a join with
// its own inner segments), so rendering is a single pass that appends to a
// caller's buffer: no re-parsing, no reflection, no intermediate strings.
// Values are formatted by their catalogue type and escaped for where they land
// (see Format and AppendValue in value.go).
//
// Errors carry the 1-based line and column of the fault; columns count
// characters (runes), not bytes. A macro that names something unknown is
// located at its opening "{"; a syntax error at the offending character; an
// unterminated macro or string at its opening "{" or quote.
package template

import (
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/postback-dev/postback/pkg/event"
)

// Error is a template that does not parse, with the position of the fault.
type Error struct {
	Line, Column int // 1-based
	Message      string
}

func (e *Error) Error() string {
	return "line " + strconv.Itoa(e.Line) + ", column " + strconv.Itoa(e.Column) + ": " + e.Message
}

type segKind uint8

const (
	segLiteral   segKind = iota // text: literal output
	segField                    // text: top-level data point name
	segItemField                // text: item field name
	segJoin                     // inner rendered per item, sep between
)

type segment struct {
	kind  segKind
	typ   event.DataPointType
	text  string
	sep   string
	inner []segment
}

// Template is a parsed template, safe for concurrent use.
type Template struct {
	src    string
	typ    *event.Type
	segs   []segment
	fields []string
}

// Source returns the template text as given to Parse.
func (t *Template) Source() string { return t.src }

// EventType returns the event type the template was parsed for.
func (t *Template) EventType() *event.Type { return t.typ }

// Fields returns the top-level data points the template references, in order
// of first use, each once; "items" is included when the template joins over
// the items collection.
func (t *Template) Fields() []string {
	return append([]string(nil), t.fields...)
}

// Literal reports whether the template has no macros, and if so returns the
// text it always renders (escapes resolved).
func (t *Template) Literal() (string, bool) {
	switch len(t.segs) {
	case 0:
		return "", true
	case 1:
		if t.segs[0].kind == segLiteral {
			return t.segs[0].text, true
		}
	}
	return "", false
}

// Append renders the template for one event's data, appends the result to dst
// and returns the extended buffer. Values are formatted by catalogue type and
// escaped for f; null or absent values render empty. It never panics,
// whatever data holds. It has no bound: a caller that renders for others
// uses AppendLimited.
func (t *Template) Append(dst []byte, data map[string]any, f Format) []byte {
	dst, _ = appendSegments(dst, t.segs, data, nil, f, math.MaxInt)
	return dst
}

// TooLongError is a render that AppendLimited stopped because its output
// passed the limit.
type TooLongError struct {
	Limit int // bytes
}

func (e *TooLongError) Error() string {
	return "renders more than " + strconv.Itoa(e.Limit) + " bytes"
}

// AppendLimited is Append with a bound: once the text it appends passes
// limit bytes it stops, and returns dst as far as it got with a
// *TooLongError. It stops as soon as it knows: before a literal or a
// string value that would pass the limit is copied (escaping never makes
// a string shorter), after each piece of a few KiB of a string that its
// escaping makes longer, and after any other value (a number), so a
// render never holds more than the limit and a few KiB, whatever the
// template and the data (thousands of joins over a thousand items
// included), and allocates about twice that in all.
func (t *Template) AppendLimited(dst []byte, data map[string]any, f Format, limit int) ([]byte, error) {
	end := math.MaxInt
	if limit < math.MaxInt-len(dst) {
		end = len(dst) + max(limit, 0)
	}
	dst, ok := appendSegments(dst, t.segs, data, nil, f, end)
	if !ok {
		return dst, &TooLongError{Limit: limit}
	}
	return dst, nil
}

// appendSegments appends segs; ok is false when it stopped because dst
// would have passed end bytes.
func appendSegments(dst []byte, segs []segment, data, item map[string]any, f Format, end int) (_ []byte, ok bool) {
	for i := range segs {
		s := &segs[i]
		switch s.kind {
		case segLiteral:
			if len(s.text) > end-len(dst) {
				return dst, false
			}
			dst = append(grow(dst, len(s.text), end), s.text...)
		case segField:
			if v, found := data[s.text]; found {
				if dst, ok = appendValueWithin(dst, v, s.typ, f, end); !ok {
					return dst, false
				}
			}
		case segItemField:
			if v, found := item[s.text]; found {
				if dst, ok = appendValueWithin(dst, v, s.typ, f, end); !ok {
					return dst, false
				}
			}
		case segJoin:
			switch items := data[event.ItemsName].(type) {
			case []any:
				for j, it := range items {
					if j > 0 {
						if len(s.sep) > end-len(dst) {
							return dst, false
						}
						dst = append(grow(dst, len(s.sep), end), s.sep...)
					}
					m, _ := it.(map[string]any)
					if dst, ok = appendSegments(dst, s.inner, data, m, f, end); !ok {
						return dst, false
					}
				}
			case []map[string]any:
				for j, m := range items {
					if j > 0 {
						if len(s.sep) > end-len(dst) {
							return dst, false
						}
						dst = append(grow(dst, len(s.sep), end), s.sep...)
					}
					if dst, ok = appendSegments(dst, s.inner, data, m, f, end); !ok {
						return dst, false
					}
				}
			}
		}
	}
	return dst, true
}

// appendValueWithin is AppendValue that refuses (ok false) to let dst pass
// end bytes: a string longer than the room left is not copied at all.
func appendValueWithin(dst []byte, v any, typ event.DataPointType, f Format, end int) (_ []byte, ok bool) {
	if s, isString := v.(string); isString {
		if len(s) > end-len(dst) {
			return dst, false
		}
		if f != Text && end != math.MaxInt {
			// Escaping may make it several times longer: a piece at a
			// time, each cut before the start of a character (escaping
			// works a character at a time, an invalid byte alone), so a
			// value stops a few KiB past the limit, not six times it.
			for len(s) > escapeChunk {
				cut := escapeChunk
				for cut > 0 && !utf8.RuneStart(s[cut]) {
					cut--
				}
				if cut == 0 {
					cut = escapeChunk
				}
				dst = appendEscaped(grow(dst, maxEscape*cut, end), s[:cut], f)
				if len(dst) > end {
					return dst, false
				}
				s = s[cut:]
			}
			dst = appendEscaped(grow(dst, maxEscape*len(s), end), s, f)
			return dst, len(dst) <= end
		}
		dst = grow(dst, len(s), end)
	}
	dst = AppendValue(dst, v, typ, f)
	return dst, len(dst) <= end
}

// escapeChunk is the piece of a long string a bounded render escapes at a
// time, and maxEscape the most bytes escaping writes for one (a control
// character in JSON, an apostrophe in XML).
const (
	escapeChunk = 4 << 10
	maxEscape   = 6
)

// grow makes room for n more bytes in dst, when it has not, for a bounded
// render (end < math.MaxInt): it doubles the capacity, but not past end
// and the room of one escaped piece (maxEscape*escapeChunk), so a render
// that reaches its limit allocates about twice the limit in all, where
// append's growth (a quarter at a time, for large slices) would allocate
// five times.
func grow(dst []byte, n, end int) []byte {
	if cap(dst)-len(dst) >= n || end >= math.MaxInt-maxEscape*escapeChunk {
		return dst
	}
	c := min(max(2*cap(dst), len(dst)+n), end+maxEscape*escapeChunk)
	if c < len(dst)+n {
		c = len(dst) + n
	}
	return append(make([]byte, 0, c), dst...)
}

// Parse compiles src for events of type t. A template that does not parse, or
// names a data point t does not have, gives an *Error with the position of
// the fault.
func Parse(src string, t *event.Type) (*Template, error) {
	if t == nil {
		return nil, &Error{Line: 1, Column: 1, Message: "no event type"}
	}
	p := &parser{src: src, typ: t, seen: map[string]bool{}}
	segs, err := p.sequence("", -1)
	if err != nil {
		return nil, err
	}
	return &Template{src: src, typ: t, segs: segs, fields: p.fields}, nil
}

type parser struct {
	src    string
	pos    int
	typ    *event.Type
	fields []string
	seen   map[string]bool
}

func (p *parser) errorAt(pos int, msg string) *Error {
	if pos > len(p.src) {
		pos = len(p.src)
	}
	line, col := 1, 1
	for _, r := range p.src[:pos] {
		if r == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return &Error{Line: line, Column: col, Message: msg}
}

func (p *parser) use(name string) {
	if !p.seen[name] {
		p.seen[name] = true
		p.fields = append(p.fields, name)
	}
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func isIdent(c byte) bool { return isLetter(c) || c >= '0' && c <= '9' || c == '_' }

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// sequence parses literal text and macros. With quoteAt < 0 it runs to the
// end of src (a whole template); otherwise it is the inner template of a join
// whose opening quote is at quoteAt, ends at the closing quote and knows the
// join's variable.
func (p *parser) sequence(joinVar string, quoteAt int) ([]segment, error) {
	var segs []segment
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			segs = append(segs, segment{kind: segLiteral, text: lit.String()})
			lit.Reset()
		}
	}
	for {
		if p.pos >= len(p.src) {
			if quoteAt >= 0 {
				return nil, p.errorAt(quoteAt, "unterminated string: missing closing \"")
			}
			flush()
			return segs, nil
		}
		c := p.src[p.pos]
		switch {
		case c == '\\' && p.pos+1 < len(p.src) && strings.IndexByte(`{}"`, p.src[p.pos+1]) >= 0:
			lit.WriteByte(p.src[p.pos+1])
			p.pos += 2
		case c == '"' && quoteAt >= 0:
			p.pos++
			flush()
			return segs, nil
		case c == '{' && p.pos+1 < len(p.src) && isLetter(p.src[p.pos+1]):
			flush()
			seg, err := p.macro(joinVar)
			if err != nil {
				return nil, err
			}
			segs = append(segs, seg)
		default:
			lit.WriteByte(c)
			p.pos++
		}
	}
}

func (p *parser) ident() string {
	start := p.pos
	for p.pos < len(p.src) && isIdent(p.src[p.pos]) {
		p.pos++
	}
	return p.src[start:p.pos]
}

// found describes what sits at pos for "expected X, found Y" messages.
func (p *parser) found() string {
	if p.pos >= len(p.src) {
		return "end of template"
	}
	r, _ := utf8.DecodeRuneInString(p.src[p.pos:])
	switch r {
	case '\n':
		return "newline"
	case '"':
		return `'"'`
	}
	return strconv.QuoteRune(r)
}

// macro parses {Name}, {v.field} or {join(...)} with p.pos at the "{".
func (p *parser) macro(joinVar string) (segment, error) {
	open := p.pos
	p.pos++
	nameAt := p.pos
	name := p.ident()
	if name == "join" && p.pos < len(p.src) && p.src[p.pos] == '(' {
		if joinVar != "" {
			return segment{}, p.errorAt(open, "join cannot be nested inside a join")
		}
		return p.join(open)
	}
	fieldAt := -1
	var field string
	if p.pos < len(p.src) && p.src[p.pos] == '.' {
		p.pos++
		fieldAt = p.pos
		field = p.ident()
	}
	if p.pos >= len(p.src) {
		return segment{}, p.errorAt(open, "unterminated macro: missing \"}\" after {"+p.src[nameAt:p.pos])
	}
	if p.src[p.pos] != '}' {
		return segment{}, p.errorAt(p.pos, "expected \"}\" to close {"+p.src[nameAt:p.pos]+", found "+p.found())
	}
	p.pos++

	if fieldAt >= 0 {
		ref := name + "." + field
		switch {
		case joinVar == "":
			return segment{}, p.errorAt(open, "item field {"+ref+"} used outside a join")
		case name != joinVar:
			return segment{}, p.errorAt(open, "unknown join variable \""+name+"\" in {"+ref+"}: the join's variable is \""+joinVar+"\"")
		case field == "":
			return segment{}, p.errorAt(fieldAt, "missing item field name after \""+name+".\"")
		}
		dp, ok := p.typ.ItemField(field)
		if !ok {
			return segment{}, p.errorAt(open, "unknown item field \""+field+"\" for event type "+p.typ.Name)
		}
		return segment{kind: segItemField, typ: dp.Type, text: field}, nil
	}
	if name == event.ItemsName && p.typ.HasItems() {
		return segment{}, p.errorAt(open, "items is a collection: render it with {join(items, i, \"...\")}")
	}
	dp, ok := p.typ.Field(name)
	if !ok {
		return segment{}, p.errorAt(open, "unknown data point \""+name+"\" for event type "+p.typ.Name)
	}
	p.use(name)
	return segment{kind: segField, typ: dp.Type, text: name}, nil
}

func (p *parser) skipSpace() {
	for p.pos < len(p.src) && isSpace(p.src[p.pos]) {
		p.pos++
	}
}

// expect consumes c after optional whitespace, or fails with a join syntax
// error (or an unterminated macro at open when the template ends).
func (p *parser) expect(c byte, open int, what string) error {
	p.skipSpace()
	if p.pos >= len(p.src) {
		return p.errorAt(open, "unterminated macro: {join( is not closed")
	}
	if p.src[p.pos] != c {
		return p.errorAt(p.pos, "bad join syntax: expected "+what+", found "+p.found())
	}
	p.pos++
	return nil
}

// join parses the rest of {join(items, v, "inner"[, "sep"])} with p.pos at
// the "(".
func (p *parser) join(open int) (segment, error) {
	p.pos++ // (
	p.skipSpace()
	if p.pos >= len(p.src) {
		return segment{}, p.errorAt(open, "unterminated macro: {join( is not closed")
	}
	collAt := p.pos
	coll := p.ident()
	switch {
	case coll == "":
		return segment{}, p.errorAt(collAt, "bad join syntax: expected items as the first argument, found "+p.found())
	case coll != event.ItemsName:
		return segment{}, p.errorAt(collAt, "join works only over items, not \""+coll+"\"")
	case !p.typ.HasItems():
		return segment{}, p.errorAt(collAt, "event type "+p.typ.Name+" has no items collection to join")
	}
	p.use(event.ItemsName)
	if err := p.expect(',', open, "\",\" after items"); err != nil {
		return segment{}, err
	}
	p.skipSpace()
	if p.pos >= len(p.src) {
		return segment{}, p.errorAt(open, "unterminated macro: {join( is not closed")
	}
	varAt := p.pos
	if !isLetter(p.src[p.pos]) {
		return segment{}, p.errorAt(varAt, "bad join syntax: expected a variable name such as i, found "+p.found())
	}
	v := p.ident()
	if err := p.expect(',', open, "\",\" after the variable "+v); err != nil {
		return segment{}, err
	}
	if err := p.expect('"', open, "a quoted template"); err != nil {
		return segment{}, err
	}
	inner, err := p.sequence(v, p.pos-1)
	if err != nil {
		return segment{}, err
	}
	sep := ","
	p.skipSpace()
	if p.pos < len(p.src) && p.src[p.pos] == ',' {
		p.pos++
		if err := p.expect('"', open, "a quoted separator"); err != nil {
			return segment{}, err
		}
		if sep, err = p.stringLiteral(p.pos - 1); err != nil {
			return segment{}, err
		}
	}
	if err := p.expect(')', open, "\")\""); err != nil {
		return segment{}, err
	}
	if err := p.expect('}', open, "\"}\" after \")\""); err != nil {
		return segment{}, err
	}
	return segment{kind: segJoin, inner: inner, sep: sep}, nil
}

// stringLiteral reads a quoted string without macros (the join separator),
// with p.pos just after the opening quote at quoteAt.
func (p *parser) stringLiteral(quoteAt int) (string, error) {
	var b strings.Builder
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		switch {
		case c == '\\' && p.pos+1 < len(p.src) && strings.IndexByte(`{}"`, p.src[p.pos+1]) >= 0:
			b.WriteByte(p.src[p.pos+1])
			p.pos += 2
		case c == '"':
			p.pos++
			return b.String(), nil
		default:
			b.WriteByte(c)
			p.pos++
		}
	}
	return "", p.errorAt(quoteAt, "unterminated string: missing closing \"")
}
