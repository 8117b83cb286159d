package gateway

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/postback-dev/postback/pkg/render"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// Limits bound what one call may ask the gateway to store or publish. A call
// over a limit is answered ResourceExhausted (docs/api.md: size limits) with a
// message naming the field and the limit, and nothing of it is stored or
// published. In PublishBatch an event over a per-event limit fails alone, as
// any bad event does; a batch over MaxBatch fails whole. Zero fields take
// the defaults (DefaultLimits), which docs/security.md lists.
type Limits struct {
	// MaxMessageBytes is the gRPC server's largest accepted request message
	// (grpc.MaxRecvMsgSize); a larger one is ResourceExhausted from gRPC
	// itself. It also bounds a batch's total size.
	MaxMessageBytes int
	// MaxBatch is the number of events one PublishBatch may carry.
	MaxBatch int
	// MaxEventBytes is an event's size as published: its data encoded as
	// JSON, plus its envelope (ids, type, time).
	MaxEventBytes int
	// MaxItems is the length of an event's items collection.
	MaxItems int
	// MaxURLBytes is the length of an endpoint's URL template.
	MaxURLBytes int
	// MaxBodyTemplateBytes is the length of an endpoint's body template.
	MaxBodyTemplateBytes int
	// MaxHeaders is the number of headers of an endpoint.
	MaxHeaders int
	// MaxHeaderNameBytes and MaxHeaderValueBytes bound each header (the
	// value is measured in clear, before it is sealed).
	MaxHeaderNameBytes  int
	MaxHeaderValueBytes int
	// MaxResponseRuleBytes bounds success_response and error_response.
	MaxResponseRuleBytes int
}

// DefaultLimits are the limits of a gateway whose Config names none.
func DefaultLimits() Limits {
	return Limits{
		MaxMessageBytes:      8 << 20,
		MaxBatch:             MaxBatch,
		MaxEventBytes:        256 << 10,
		MaxItems:             1000,
		MaxURLBytes:          8 << 10,
		MaxBodyTemplateBytes: 64 << 10,
		MaxHeaders:           32,
		MaxHeaderNameBytes:   256,
		MaxHeaderValueBytes:  8 << 10,
		MaxResponseRuleBytes: 4 << 10,
	}
}

// withDefaults fills zero fields from DefaultLimits.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	for _, f := range []struct{ v, def *int }{
		{&l.MaxMessageBytes, &d.MaxMessageBytes}, {&l.MaxBatch, &d.MaxBatch}, {&l.MaxEventBytes, &d.MaxEventBytes},
		{&l.MaxItems, &d.MaxItems}, {&l.MaxURLBytes, &d.MaxURLBytes}, {&l.MaxBodyTemplateBytes, &d.MaxBodyTemplateBytes},
		{&l.MaxHeaders, &d.MaxHeaders}, {&l.MaxHeaderNameBytes, &d.MaxHeaderNameBytes},
		{&l.MaxHeaderValueBytes, &d.MaxHeaderValueBytes}, {&l.MaxResponseRuleBytes, &d.MaxResponseRuleBytes},
	} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	return l
}

// tooBig is the ResourceExhausted status of a limit, e.g. "endpoint.url:
// 9000 bytes, over the limit of 8 KiB (8192 bytes)".
func tooBig(field string, n, limit int, unit string) error {
	return status.Errorf(codes.ResourceExhausted, "%s: %d %s, over the limit of %s", field, n, unit, human(limit, unit))
}

// human is a limit in a person's units: "8 KiB (8192 bytes)", "32 headers".
func human(n int, unit string) string {
	bytes := strings.HasPrefix(unit, "bytes")
	switch {
	case bytes && n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB (%d bytes)", n>>20, n)
	case bytes && n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB (%d bytes)", n>>10, n)
	case bytes:
		return fmt.Sprintf("%d bytes", n)
	}
	return fmt.Sprintf("%d %s", n, unit)
}

// checkEndpoint applies the size limits to an endpoint with its secrets in
// clear (field names prefixed with prefix, e.g. "endpoint."). Messages name
// sizes only, never a value.
func (l Limits) checkEndpoint(prefix string, e *postbackv1.Endpoint) error {
	if n := len(e.Url); n > l.MaxURLBytes {
		return tooBig(prefix+"url", n, l.MaxURLBytes, "bytes")
	}
	if n := len(e.BodyTemplate); n > l.MaxBodyTemplateBytes {
		return tooBig(prefix+"body_template", n, l.MaxBodyTemplateBytes, "bytes")
	}
	if n := len(e.Headers); n > l.MaxHeaders {
		return tooBig(prefix+"headers", n, l.MaxHeaders, "headers")
	}
	for i, h := range e.Headers {
		if n := len(h.Name); n > l.MaxHeaderNameBytes {
			return tooBig(fmt.Sprintf("%sheaders[%d].name", prefix, i), n, l.MaxHeaderNameBytes, "bytes")
		}
		if n := len(h.Value); n > l.MaxHeaderValueBytes {
			return tooBig(fmt.Sprintf("%sheaders[%d].value", prefix, i), n, l.MaxHeaderValueBytes, "bytes")
		}
	}
	if n := len(e.SuccessResponse); n > l.MaxResponseRuleBytes {
		return tooBig(prefix+"success_response", n, l.MaxResponseRuleBytes, "bytes")
	}
	if n := len(e.ErrorResponse); n > l.MaxResponseRuleBytes {
		return tooBig(prefix+"error_response", n, l.MaxResponseRuleBytes, "bytes")
	}
	return nil
}

// renderLimits bound a rendered request (pkg/render, docs/api.md): the same
// for the worst case at save, preview and TestEndpoint as for the renderer.
func (s *Server) renderLimits() render.Limits {
	if s.rendered == (render.Limits{}) {
		return render.DefaultLimits()
	}
	return s.rendered
}

// checkWorstCase adds to bad, field names prefixed with prefix, every
// template of compiled whose worst case for an event at the event limits
// (MaxEventBytes, MaxItems) passes the limits of a rendered request: a
// template that multiplies its event (render.CheckWorstCase has the model).
func (s *Server) checkWorstCase(bad *badRequest, prefix string, compiled *render.Endpoint) {
	b := render.EventBounds{Bytes: s.limits.MaxEventBytes, Items: s.limits.MaxItems}
	for _, fe := range compiled.CheckWorstCase(b, s.renderLimits()) {
		bad.add(prefix+fe.Field, fe.Message)
	}
}

// renderError is the status of a request that did not render: a part over
// its limit is ResourceExhausted naming the field, a URL that is not
// http(s) InvalidArgument.
func renderError(prefix string, err error) error {
	var le *render.LimitError
	if errors.As(err, &le) {
		return status.Errorf(codes.ResourceExhausted, "%s%s: with this data, %v", prefix, le.Field, le)
	}
	return invalid(prefix+"url", "%v", err)
}
