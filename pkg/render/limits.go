package render

// Size limits of a rendered request (docs/api.md, "Size limits"). They are
// kept in three places, all from here:
//
//   - at save, the gateway refuses templates whose worst case for an event
//     at its size limits passes them (WorstCase, CheckWorstCase; the model
//     is below);
//   - in preview, and
//   - at render (RenderWithin), which stops as soon as a part passes its
//     limit: a render never holds much more than the limits, whatever the
//     template and the event. The renderer records such a delivery FAILED
//     with the LimitError as its reason.
//
// The worst-case model. An event the gateway accepts is at most
// EventBounds.Bytes of JSON with at most EventBounds.Items items. What a
// template renders for it is its own text plus the values it writes:
//
//   - Its own text (Size.Fixed) is each literal once, and a join's literals
//     and separator once per item, at the most items.
//   - Every value takes room in the event, so all the values of one event
//     together are at most its bytes. A value is counted at the size it has
//     there: escaping and number formatting are taken not to make it
//     longer. (They can: percent-encoding triples a string of spaces, XML
//     entities make an apostrophe six bytes, a decimal sent as 1e-300
//     renders three hundred digits. Those events fail at render, with
//     the reason; the model is about what the template multiplies.) A value
//     is also at most what its type can be: 310 bytes an integer (float64's
//     largest integral value has 309 digits), 5 a boolean, 10 a date;
//     strings, decimals (any number of places) and date-times (any
//     fraction of a second) up to the whole event.
//   - A value written k times adds k times its size. A top-level data point
//     is written once per use outside a join and once per item per use
//     inside one; an item field's values (every item's, together bounded by
//     the event) once per use.
//
// So the data adds at most the event's bytes placed where they are written
// most often: the value written most times filled up to its bound, then
// the next, until the event's bytes are spent (Size.Most). A template that
// writes each value once adds at most one event (256 KiB with the default
// limits): the seed's templates render at most about 360 KiB, within the
// 1 MiB of a body. One that writes a string data point inside a join, or
// joins over the items again and again, multiplies the event, and is
// refused: 2,500 joins over the items write each item's sku 2,500 times,
// up to 640 MiB.
//
// The URL and header values are held to their own text: one data point can
// be as long as the event, far more than their 8 KiB, so no template that
// writes one could be promised to fit. At save their own text must fit
// their limits, and their worst case the body's (no part of a request may
// render more than a body); their data is checked in preview and at render.

import (
	"sort"
	"strconv"
	"strings"

	"github.com/postback-dev/postback/pkg/event"
	"github.com/postback-dev/postback/pkg/template"
)

// Limits bound a rendered request. Zero fields take the defaults.
type Limits struct {
	URL         int // the rendered URL, default query included
	HeaderValue int // each rendered header value
	Headers     int // every header's name and rendered value together
	Body        int // the rendered body
}

// The default limits (DefaultLimits).
const (
	DefaultMaxURLBytes         = 8 << 10
	DefaultMaxHeaderValueBytes = 8 << 10
	DefaultMaxHeadersBytes     = 64 << 10
	DefaultMaxBodyBytes        = 1 << 20
)

// JobHeadroom is what a queued delivery needs in a NATS message beside its
// job's encoding: the message headers (trace context, dedupe id, schedule),
// and in the records that carry the job the delivery itself and its last
// attempt (its URL of up to 8 KiB, the first 4 KiB of the response, the
// error).
const JobHeadroom = 16 << 10

// DefaultLimits are the limits docs/api.md states.
func DefaultLimits() Limits {
	return Limits{URL: DefaultMaxURLBytes, HeaderValue: DefaultMaxHeaderValueBytes, Headers: DefaultMaxHeadersBytes, Body: DefaultMaxBodyBytes}
}

// withDefaults fills zero fields from DefaultLimits.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	for _, f := range []struct{ v, def *int }{{&l.URL, &d.URL}, {&l.HeaderValue, &d.HeaderValue}, {&l.Headers, &d.Headers}, {&l.Body, &d.Body}} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	return l
}

// WithMaxPayload holds the body to what a queued delivery can carry over a
// NATS connection whose largest message is maxPayload bytes (nats.Conn's
// MaxPayload): maxPayload less JobHeadroom, when that is less than l.Body.
// (The job carries its URL and templated headers too: a job that still does
// not fit one message fails to render, with that reason.)
func (l Limits) WithMaxPayload(maxPayload int64) Limits {
	l = l.withDefaults()
	if room := maxPayload - JobHeadroom; room > 0 && room < int64(l.Body) {
		l.Body = int(room)
	}
	return l
}

// LimitError is a rendered request over one of its Limits; rendering stopped
// there. Field names the endpoint's field whose template passed it, as
// FieldError does: "url", "headers[2].value", "headers" (all of them
// together) or "body_template" (the body, templated or not).
type LimitError struct {
	Field  string
	Header string // the header's name, for a header's value
	Limit  int    // bytes
}

func (e *LimitError) Error() string {
	var part string
	switch {
	case e.Field == "url":
		part = "URL is"
	case e.Field == "headers":
		part = "headers, names and values together, are"
	case e.Header != "":
		part = "value of header " + e.Header + " is"
	case strings.HasPrefix(e.Field, "headers["):
		part = "value of " + e.Field + " is"
	default:
		part = "body is"
	}
	return "the rendered " + part + " over the limit of " + HumanBytes(e.Limit)
}

// HumanBytes is a size limit in a person's units: "1 MiB (1048576 bytes)",
// "8 KiB (8192 bytes)", "100 bytes".
func HumanBytes(n int) string {
	b := strconv.Itoa(n) + " bytes"
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.Itoa(n>>20) + " MiB (" + b + ")"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.Itoa(n>>10) + " KiB (" + b + ")"
	}
	return b
}

// shortBytes is HumanBytes without the exact count: "256 KiB", "100 bytes".
func shortBytes(n int) string {
	h := HumanBytes(n)
	if i := strings.Index(h, " ("); i >= 0 {
		return h[:i]
	}
	return h
}

// EventBounds are the size limits of the events an endpoint renders: the
// gateway's (gateway.Limits MaxEventBytes and MaxItems).
type EventBounds struct {
	Bytes int // an event as published: its data as JSON, and its envelope
	Items int // its items collection
}

// Size is the worst case of one part of a request (see the model above).
type Size struct {
	// Fixed is its own text: literals, and joins at the most items.
	Fixed int64
	// Most is Fixed plus the most an event's data can add to it.
	Most int64
	// Top is the value that adds the most ("{CampaignName}", or "each
	// item's sku"), written Times times; empty when it writes no value.
	Top   string
	Times int64
	added int64 // what Top adds
}

// WorstCase is the worst case of each part of an endpoint's request.
type WorstCase struct {
	URL     Size   // default query included
	Headers []Size // one per header, in order (a literal value is all Fixed)
	Body    Size   // templated or the default payload; zero for a GET
}

// WorstCase returns the most each part of the endpoint's request can render
// for an event at the bounds b (the model is in the comment at the top of
// this file).
func (e *Endpoint) WorstCase(b EventBounds) WorstCase {
	var w WorstCase
	url := e.url.Shape(b.Items)
	if e.defaultQuery {
		for _, dp := range e.typ.DataPoints {
			if !dp.Item {
				url.Fixed += int64(len(dp.Name) + 2) // "&Name="
				url.Uses[dp.Name]++
			}
		}
	}
	w.URL = e.measure(url, b)
	for _, h := range e.headers {
		if h.tpl == nil {
			w.Headers = append(w.Headers, Size{Fixed: int64(len(h.static)), Most: int64(len(h.static))})
			continue
		}
		w.Headers = append(w.Headers, e.measure(h.tpl.Shape(b.Items), b))
	}
	switch {
	case e.body != nil:
		w.Body = e.measure(e.body.Shape(b.Items), b)
	case e.spec.Method == MethodPost:
		// The default payload is the event's data as JSON, about the size
		// it has in the event: every value written once, keys and
		// punctuation taken within the event's bytes.
		all := template.Shape{Uses: map[string]int64{}}
		for _, dp := range e.typ.DataPoints {
			if dp.Item {
				all.Uses[template.ItemFieldKey(dp.Name)]++
			} else {
				all.Uses[dp.Name]++
			}
		}
		w.Body = e.measure(all, b)
	}
	return w
}

// valueBound is the longest a value of type t can render, at most
// eventBytes (see the model).
func valueBound(t event.DataPointType, eventBytes int64) int64 {
	switch t {
	case event.Integer:
		return min(310, eventBytes)
	case event.Boolean:
		return min(5, eventBytes)
	case event.Date:
		return min(10, eventBytes)
	}
	return eventBytes
}

// measure is the worst case of a shape: its own text, plus the event's
// bytes placed on the values written most often, each up to its bound.
func (e *Endpoint) measure(sh template.Shape, b EventBounds) Size {
	type use struct {
		name         string
		times, bound int64
	}
	eventBytes, items := int64(max(b.Bytes, 0)), int64(max(b.Items, 0))
	uses := make([]use, 0, len(sh.Uses))
	for k, times := range sh.Uses {
		u := use{times: times}
		if field, ok := strings.CutPrefix(k, event.ItemsName+"."); ok {
			dp, _ := e.typ.ItemField(field)
			u.name = "each item's " + field
			u.bound = min(items*valueBound(dp.Type, eventBytes), eventBytes)
		} else {
			dp, _ := e.typ.Field(k)
			u.name = "{" + k + "}"
			u.bound = valueBound(dp.Type, eventBytes)
		}
		uses = append(uses, u)
	}
	sort.Slice(uses, func(i, j int) bool {
		if uses[i].times != uses[j].times {
			return uses[i].times > uses[j].times
		}
		return uses[i].name < uses[j].name
	})
	s := Size{Fixed: sh.Fixed, Most: sh.Fixed}
	left := eventBytes
	for _, u := range uses {
		if left <= 0 {
			break
		}
		n := min(u.bound, left)
		left -= n
		s.Most += u.times * n
		if add := u.times * n; add > s.added {
			s.Top, s.Times, s.added = u.name, u.times, add
		}
	}
	return s
}

// CheckWorstCase refuses the templates whose worst case for an event at the
// bounds b passes the limits l, with a *FieldError for each, naming its
// field (see the model above):
//
//   - the body's worst case must be within l.Body;
//   - the URL's and each header value's own text within l.URL and
//     l.HeaderValue (the headers' names and own text together within
//     l.Headers), and their worst case within l.Body, the most any part of
//     a request may render.
func (e *Endpoint) CheckWorstCase(b EventBounds, l Limits) []*FieldError {
	l = l.withDefaults()
	w := e.WorstCase(b)
	at := "for an event at the size limits (" + shortBytes(b.Bytes) + ", " + strconv.Itoa(b.Items) + " items)"
	var out []*FieldError
	tooMuch := func(field string, s Size, limit int, what string) {
		if s.Most <= int64(limit) {
			return
		}
		msg := "renders up to " + strconv.FormatInt(s.Most, 10) + " bytes " + at + ", over the limit of " + HumanBytes(limit) + " for " + what
		if s.Top != "" && s.added >= s.Fixed {
			msg += ": " + s.Top + " is written " + strconv.FormatInt(s.Times, 10) + " times"
			if s.Times > 1 {
				msg += " (a join writes its text once per item, and a data point inside it once per item)"
			}
		} else {
			msg += ": its own text is " + strconv.FormatInt(s.Fixed, 10) + " bytes, with joins at " + strconv.Itoa(b.Items) + " items"
		}
		out = append(out, &FieldError{Field: field, Message: msg})
	}
	ownTooLong := func(field string, s Size, limit int, what string) bool {
		if s.Fixed <= int64(limit) {
			return false
		}
		out = append(out, &FieldError{Field: field, Message: "its own text renders " + strconv.FormatInt(s.Fixed, 10) +
			" bytes for an event with " + strconv.Itoa(b.Items) + " items (a join writes its text once per item), over the limit of " +
			HumanBytes(limit) + " for " + what})
		return true
	}
	if !ownTooLong("url", w.URL, l.URL, "a rendered URL") {
		tooMuch("url", w.URL, l.Body, "any rendered part of a request")
	}
	var headers int64
	for i, s := range w.Headers {
		field := "headers[" + strconv.Itoa(i) + "].value"
		headers += int64(len(e.headers[i].name)) + s.Fixed
		if !ownTooLong(field, s, l.HeaderValue, "a rendered header value") {
			tooMuch(field, s, l.Body, "any rendered part of a request")
		}
	}
	if headers > int64(l.Headers) {
		out = append(out, &FieldError{Field: "headers", Message: "their names and own text render " + strconv.FormatInt(headers, 10) +
			" bytes together for an event with " + strconv.Itoa(b.Items) + " items, over the limit of " + HumanBytes(l.Headers) + " for all rendered headers"})
	}
	tooMuch("body_template", w.Body, l.Body, "a rendered body")
	return out
}
