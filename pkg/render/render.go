// Package render turns one event into the HTTP request an endpoint asks for:
// its URL, header values and body are {DataPoint} templates (pkg/template),
// compiled once by Compile and rendered per event by Endpoint.Render.
//
// Rules (docs/architecture.md, decisions 2–4):
//   - The URL template renders with template.URL escaping (macros in the path
//     and in the query are both percent-encoded) and must then be an absolute
//     http or https URL; otherwise Render returns a *URLError, which the
//     sender treats as a final, non-retryable failure.
//   - Header values render as text; any control character (CR and LF
//     included, tab excepted) in a rendered value becomes a space, so a value
//     can never split or smuggle a header. Header values without macros are
//     rendered once at Compile and copied.
//   - The body renders with the escaping of its format: JSON
//     (application/json), FORM (application/x-www-form-urlencoded), XML
//     (application/xml) or TEXT (text/plain; charset=utf-8).
//   - An empty method means GET without a body template and POST with one; an
//     empty body format means JSON.
//   - Default payloads: a GET whose URL template has no "?" gets every present
//     (non-null) top-level data point appended as a query parameter, in
//     catalogue order, formatted by type (items are left out; a join in the
//     template carries them). A POST with no body template sends the whole
//     event as JSON (see AppendEventJSON). A GET sends no body.
//
// Compile refuses what cannot work, naming the field and, for templates, the
// line and column: templates that do not parse, a URL that is not absolute
// http(s) once the event type's sample is rendered into it, and a JSON body
// template whose rendered sample is not valid JSON.
//
// A rendered request is bounded (Limits, limits.go): RenderWithin stops as
// soon as its URL, a header value, its headers or its body passes its
// limit, and WorstCase tells, before any event, the most each part can
// render.
package render

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"net/url"
	"strconv"
	"strings"

	"github.com/postback-dev/postback/pkg/event"
	"github.com/postback-dev/postback/pkg/template"
)

// Method is an endpoint's HTTP method.
type Method string

// The supported methods.
const (
	MethodGet  Method = "GET"
	MethodPost Method = "POST"
)

// BodyFormat is the format of a POST body.
type BodyFormat string

// The supported body formats.
const (
	BodyJSON BodyFormat = "JSON"
	BodyForm BodyFormat = "FORM"
	BodyXML  BodyFormat = "XML"
	BodyText BodyFormat = "TEXT"
)

// Header is one configured (or rendered) request header. Secret values must
// not be logged or returned by the API.
type Header struct {
	Name   string
	Value  string
	Secret bool
}

// Spec is the part of an endpoint's configuration that shapes its requests.
type Spec struct {
	EventType    string
	URL          string
	Method       Method
	Headers      []Header
	BodyFormat   BodyFormat
	BodyTemplate string
}

// Request is one rendered request.
type Request struct {
	Method string
	URL    string
	// Headers are the endpoint's configured headers, values rendered.
	Headers     []Header
	Body        []byte
	ContentType string // empty when there is no body
}

// FieldError is a Spec that Compile refuses: Field names the offending field
// ("event_type", "url", "method", "headers[2].name", "headers[2].value",
// "body_format", "body_template"); Line and Column (1-based) locate a
// template fault and are 0 otherwise.
type FieldError struct {
	Field        string
	Line, Column int
	Message      string
}

func (e *FieldError) Error() string {
	if e.Line > 0 {
		return e.Field + ": line " + strconv.Itoa(e.Line) + ", column " + strconv.Itoa(e.Column) + ": " + e.Message
	}
	return e.Field + ": " + e.Message
}

// URLError is a rendered URL that is not an absolute http or https URL. A
// sender treats it as a final failure: retrying renders the same URL.
type URLError struct {
	URL    string // the rendered URL (may hold data; log with care)
	Reason string
}

func (e *URLError) Error() string {
	return "rendered URL is not an absolute http(s) URL: " + e.Reason
}

type compiledHeader struct {
	name   string
	secret bool
	tpl    *template.Template // nil when static
	static string
}

// Endpoint is a compiled Spec, safe for concurrent use.
type Endpoint struct {
	spec         Spec
	typ          *event.Type
	url          *template.Template
	defaultQuery bool
	headers      []compiledHeader
	body         *template.Template // nil: default payload (POST) or no body (GET)
	bodyFormat   template.Format
	contentType  string
}

var contentTypes = map[BodyFormat]string{
	BodyJSON: "application/json",
	BodyForm: "application/x-www-form-urlencoded",
	BodyXML:  "application/xml",
	BodyText: "text/plain; charset=utf-8",
}

var bodyFormats = map[BodyFormat]template.Format{
	BodyJSON: template.JSON,
	BodyForm: template.Form,
	BodyXML:  template.XML,
	BodyText: template.Text,
}

// Compile parses the URL, header value and body templates of s once and
// checks them against the event type's sample. Errors are *FieldError.
func Compile(s Spec) (*Endpoint, error) {
	typ, ok := event.Lookup(s.EventType)
	if !ok {
		return nil, &FieldError{Field: "event_type", Message: "unknown event type " + strconv.Quote(s.EventType)}
	}
	e := &Endpoint{typ: typ}

	s.Method = Method(strings.ToUpper(string(s.Method)))
	switch s.Method {
	case "":
		s.Method = MethodGet
		if s.BodyTemplate != "" {
			s.Method = MethodPost
		}
	case MethodGet, MethodPost:
	default:
		return nil, &FieldError{Field: "method", Message: "unsupported method " + strconv.Quote(string(s.Method)) + ": want GET or POST"}
	}
	s.BodyFormat = BodyFormat(strings.ToUpper(string(s.BodyFormat)))
	if s.BodyFormat == "" {
		s.BodyFormat = BodyJSON
	}
	if _, ok := bodyFormats[s.BodyFormat]; !ok {
		return nil, &FieldError{Field: "body_format", Message: "unsupported body format " + strconv.Quote(string(s.BodyFormat)) + ": want JSON, FORM, XML or TEXT"}
	}
	s.Headers = append([]Header(nil), s.Headers...)
	e.spec = s

	if strings.TrimSpace(s.URL) == "" {
		return nil, &FieldError{Field: "url", Message: "required"}
	}
	u, err := template.Parse(s.URL, typ)
	if err != nil {
		return nil, templateError("url", err)
	}
	e.url = u
	e.defaultQuery = s.Method == MethodGet && !strings.Contains(s.URL, "?")

	for i, h := range s.Headers {
		field := "headers[" + strconv.Itoa(i) + "]"
		if !validHeaderName(h.Name) {
			return nil, &FieldError{Field: field + ".name", Message: "not a valid header name: " + strconv.Quote(h.Name)}
		}
		t, err := template.Parse(h.Value, typ)
		if err != nil {
			return nil, templateError(field+".value", err)
		}
		ch := compiledHeader{name: h.Name, secret: h.Secret}
		if lit, ok := t.Literal(); ok {
			ch.static = string(cleanHeaderValue([]byte(lit)))
		} else {
			ch.tpl = t
		}
		e.headers = append(e.headers, ch)
	}

	switch {
	case s.Method == MethodGet && s.BodyTemplate != "":
		return nil, &FieldError{Field: "body_template", Message: "a GET request has no body: use POST or clear the body template"}
	case s.Method == MethodPost && s.BodyTemplate == "":
		e.contentType = contentTypes[BodyJSON]
	case s.Method == MethodPost:
		b, err := template.Parse(s.BodyTemplate, typ)
		if err != nil {
			return nil, templateError("body_template", err)
		}
		e.body = b
		e.bodyFormat = bodyFormats[s.BodyFormat]
		e.contentType = contentTypes[s.BodyFormat]
	}

	// The sample renders within the body limit whatever the part: a
	// template whose sample passes it is refused for its worst case anyway.
	sample := typ.Sample()
	if _, err := e.renderURL(sample, DefaultMaxBodyBytes); err != nil {
		var ue *URLError
		if errors.As(err, &ue) {
			return nil, &FieldError{Field: "url", Message: "with the sample " + typ.Name + " event: " + ue.Error()}
		}
		return nil, &FieldError{Field: "url", Message: "with the sample " + typ.Name + " event: " + err.Error()}
	}
	if e.body != nil && s.BodyFormat == BodyJSON {
		b, err := e.body.AppendLimited(nil, sample, template.JSON, DefaultMaxBodyBytes)
		if err != nil {
			return nil, &FieldError{Field: "body_template", Message: "with the sample " + typ.Name + " event: " + (&LimitError{Field: "body_template", Limit: DefaultMaxBodyBytes}).Error()}
		}
		if !json.Valid(b) {
			var v any
			msg := "invalid JSON"
			if err := json.Unmarshal(b, &v); err != nil {
				msg = err.Error()
			}
			return nil, &FieldError{Field: "body_template", Message: "rendered sample is not valid JSON: " + msg}
		}
	}
	return e, nil
}

func templateError(field string, err error) error {
	var te *template.Error
	if errors.As(err, &te) {
		return &FieldError{Field: field, Line: te.Line, Column: te.Column, Message: te.Message}
	}
	return &FieldError{Field: field, Message: err.Error()}
}

// Spec returns the compiled spec with defaults applied (method, body format).
func (e *Endpoint) Spec() Spec {
	s := e.spec
	s.Headers = append([]Header(nil), s.Headers...)
	return s
}

// EventType returns the endpoint's event type.
func (e *Endpoint) EventType() *event.Type { return e.typ }

// Render renders the request for one event's data (as produced by
// structpb.Struct.AsMap or encoding/json) within DefaultLimits: see
// RenderWithin.
func (e *Endpoint) Render(data map[string]any) (Request, error) {
	return e.RenderWithin(data, DefaultLimits())
}

// RenderWithin renders the request for one event's data, each part within
// its limit in l (zero fields take the defaults). The errors are a
// *URLError and a *LimitError: a part that passes its limit stops the
// render as soon as it does, so a render holds about the limits at most,
// whatever the template and the data.
func (e *Endpoint) RenderWithin(data map[string]any, l Limits) (Request, error) {
	l = l.withDefaults()
	u, err := e.renderURL(data, l.URL)
	if err != nil {
		return Request{}, err
	}
	req := Request{Method: string(e.spec.Method), URL: u, ContentType: e.contentType}
	if len(e.headers) > 0 {
		req.Headers = make([]Header, len(e.headers))
		total := 0
		for i, h := range e.headers {
			v := h.static
			if h.tpl != nil {
				b, err := h.tpl.AppendLimited(make([]byte, 0, 64), data, template.Text, l.HeaderValue)
				if err != nil {
					return Request{}, &LimitError{Field: "headers[" + strconv.Itoa(i) + "].value", Header: h.name, Limit: l.HeaderValue}
				}
				v = string(cleanHeaderValue(b))
			} else if len(v) > l.HeaderValue {
				return Request{}, &LimitError{Field: "headers[" + strconv.Itoa(i) + "].value", Header: h.name, Limit: l.HeaderValue}
			}
			if total += len(h.name) + len(v); total > l.Headers {
				return Request{}, &LimitError{Field: "headers", Limit: l.Headers}
			}
			req.Headers[i] = Header{Name: h.name, Value: v, Secret: h.secret}
		}
	}
	switch {
	case e.body != nil:
		b, err := e.body.AppendLimited(make([]byte, 0, min(len(e.body.Source())+256, l.Body)), data, e.bodyFormat, l.Body)
		if err != nil {
			return Request{}, &LimitError{Field: "body_template", Limit: l.Body}
		}
		req.Body = b
	case e.spec.Method == MethodPost:
		b, ok := appendEventJSON(make([]byte, 0, min(1024, l.Body)), e.typ, data, l.Body)
		if !ok {
			return Request{}, &LimitError{Field: "body_template", Limit: l.Body}
		}
		req.Body = b
	}
	return req, nil
}

// renderURL renders the URL, default query included, in at most limit
// bytes (a *LimitError past them), and checks it (a *URLError).
func (e *Endpoint) renderURL(data map[string]any, limit int) (string, error) {
	b, err := e.url.AppendLimited(make([]byte, 0, min(len(e.spec.URL)+64, limit)), data, template.URL, limit)
	if err != nil {
		return "", &LimitError{Field: "url", Limit: limit}
	}
	if e.defaultQuery {
		var ok bool
		if b, ok = appendDefaultQuery(b, e.typ, data, limit); !ok {
			return "", &LimitError{Field: "url", Limit: limit}
		}
	}
	s := string(b)
	return s, checkURL(s)
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return &URLError{URL: s, Reason: err.Error()}
	}
	switch {
	case u.Scheme == "":
		return &URLError{URL: s, Reason: "no scheme"}
	case !strings.EqualFold(u.Scheme, "http") && !strings.EqualFold(u.Scheme, "https"):
		return &URLError{URL: s, Reason: "scheme " + strconv.Quote(u.Scheme) + " is not http or https"}
	case u.Host == "" || u.Hostname() == "":
		return &URLError{URL: s, Reason: "no host"}
	}
	return nil
}

// appendDefaultQuery appends every present top-level data point as a query
// parameter, in catalogue order, before any #fragment of the URL; ok is
// false when the URL would pass end bytes (it stops there).
func appendDefaultQuery(u []byte, t *event.Type, data map[string]any, end int) (_ []byte, ok bool) {
	var fragment string
	if i := bytes.IndexByte(u, '#'); i >= 0 {
		fragment = string(u[i:])
		u = u[:i]
	}
	end -= len(fragment)
	sep := byte('?')
	for _, dp := range t.DataPoints {
		if dp.Item {
			continue
		}
		v, ok := data[dp.Name]
		if !ok || v == nil {
			continue
		}
		if s, isString := v.(string); isString && len(s)+len(dp.Name)+2 > end-len(u) {
			return u, false
		}
		u = append(u, sep)
		sep = '&'
		u = template.AppendValue(u, dp.Name, event.String, template.URL)
		u = append(u, '=')
		if u = template.AppendValue(u, v, dp.Type, template.URL); len(u) > end {
			return u, false
		}
	}
	return append(u, fragment...), true
}

// AppendEventJSON appends the whole event as one JSON object: top-level data
// points in catalogue order with the items collection where the seed's
// example has it, numbers formatted by catalogue type (integers without a
// decimal point, decimals with at least two places), absent data points left
// out, nulls as null, items as an array of objects with their fields in
// catalogue order. Keys data does not know from the catalogue are left out.
// This is the default POST payload.
func AppendEventJSON(dst []byte, t *event.Type, data map[string]any) []byte {
	dst, _ = appendEventJSON(dst, t, data, math.MaxInt)
	return dst
}

// appendEventJSON is AppendEventJSON that stops (ok false) once dst passes
// end bytes.
func appendEventJSON(dst []byte, t *event.Type, data map[string]any, end int) (_ []byte, ok bool) {
	ok = true
	dst = append(dst, '{')
	first := true
	key := func(name string) {
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, '"')
		dst = template.AppendValue(dst, name, event.String, template.JSON)
		dst = append(dst, '"', ':')
	}
	itemsAt := t.ItemsIndex()
	top := 0
	writeItems := func() {
		v, found := data[event.ItemsName]
		if !found {
			return
		}
		key(event.ItemsName)
		dst, ok = appendItemsJSON(dst, t, v, end)
	}
	for _, dp := range t.DataPoints {
		if dp.Item {
			continue
		}
		if top == itemsAt {
			if writeItems(); !ok {
				return dst, false
			}
		}
		top++
		if v, found := data[dp.Name]; found {
			if s, isString := v.(string); isString && len(s) > end-len(dst) {
				return dst, false
			}
			key(dp.Name)
			if dst = template.AppendJSONValue(dst, v, dp.Type); len(dst) > end {
				return dst, false
			}
		}
	}
	if top == itemsAt {
		if writeItems(); !ok {
			return dst, false
		}
	}
	dst = append(dst, '}')
	return dst, len(dst) <= end
}

// appendItemsJSON appends the items collection; ok is false when it stopped
// because dst passed end bytes.
func appendItemsJSON(dst []byte, t *event.Type, v any, end int) (_ []byte, ok bool) {
	var list []any
	switch v := v.(type) {
	case []any:
		list = v
	case []map[string]any:
		dst = append(dst, '[')
		for i, m := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst = appendItemJSON(dst, t, m); len(dst) > end {
				return dst, false
			}
		}
		return append(dst, ']'), true
	default:
		return append(dst, "null"...), true
	}
	dst = append(dst, '[')
	for i, it := range list {
		if i > 0 {
			dst = append(dst, ',')
		}
		m, isMap := it.(map[string]any)
		if !isMap {
			dst = append(dst, "null"...)
			continue
		}
		if dst = appendItemJSON(dst, t, m); len(dst) > end {
			return dst, false
		}
	}
	return append(dst, ']'), true
}

func appendItemJSON(dst []byte, t *event.Type, item map[string]any) []byte {
	dst = append(dst, '{')
	first := true
	for _, dp := range t.DataPoints {
		if !dp.Item {
			continue
		}
		v, ok := item[dp.Name]
		if !ok {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, '"')
		dst = append(dst, dp.Name...)
		dst = append(dst, '"', ':')
		dst = template.AppendJSONValue(dst, v, dp.Type)
	}
	return append(dst, '}')
}

// validHeaderName reports whether name is an RFC 9110 token.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			continue
		}
		if strings.IndexByte("!#$%&'*+-.^_`|~", c) < 0 {
			return false
		}
	}
	return true
}

// cleanHeaderValue replaces control characters other than tab (CR and LF
// above all) with a space, in place.
func cleanHeaderValue(b []byte) []byte {
	for i, c := range b {
		if c < 0x20 && c != '\t' || c == 0x7f {
			b[i] = ' '
		}
	}
	return b
}
