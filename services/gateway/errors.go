// Bad input: InvalidArgument with a google.rpc.BadRequest, bounded.
//
// Every InvalidArgument the gateway answers is a *badRequest: the violations
// found, each a field path as the API names it ("account_id",
// "events[3].data.items[0].qty", "endpoint.headers[1].value") and what is
// wrong with it. A handler collects every violation it can find before it
// answers, not just the first. Its status carries them as a
// google.rpc.BadRequest detail, one FieldViolation each, so that a console
// or a client can put each error at its field; its message is the readable
// summary "field: what; field: what", which for one violation is the
// message the gateway always gave.
//
// Both are bounded whatever the input: at most maxViolations violations are
// kept (the rest are only counted), each field path and description is
// clipped, and the message is at most maxMessageBytes, ending "; … and N
// more" when violations are left out of it. 100,000 unknown data points make
// an error of a few KiB. PublishBatch also bounds its per-event errors
// together (batchStatus): past batchErrorBudget bytes of them, an event's
// error lists its first violation only.
//
// requestChecks, the gateway server's innermost unary interceptor (it runs
// after authentication and the caller's own interceptors), refuses a request
// the server codec marked as holding invalid UTF-8 (utf8.go), and passes
// every handler error through boundError: any status message is clipped to
// maxMessageBytes, and an InvalidArgument made elsewhere without a
// BadRequest detail gets one.
package gateway

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Bounds of an error (see the file comment).
const (
	maxViolations    = 100     // violations kept and listed in a BadRequest
	maxMessageBytes  = 4 << 10 // a status message
	maxFieldBytes    = 512     // a violation's field path
	maxDescBytes     = 1 << 10 // a violation's description
	batchErrorBudget = 1 << 20 // PublishBatch's per-event errors, together
	tightMessage     = 256     // an event's error message past the budget
)

// violation is one thing wrong with a request: a field path as the API
// names it, and what is wrong with it.
type violation struct {
	field, desc string
}

// badRequest is an InvalidArgument listing violations: the first
// maxViolations found, and a count of the others.
type badRequest struct {
	list []violation
	more int
}

// invalid is an InvalidArgument naming one field.
func invalid(field, format string, args ...any) error {
	e := &badRequest{}
	e.add(field, fmt.Sprintf(format, args...))
	return e
}

// add records a violation.
func (e *badRequest) add(field, desc string) {
	if n := len(e.list); n > 0 && e.list[n-1].field == field && e.list[n-1].desc == desc {
		return // the same field sent twice, say
	}
	if len(e.list) >= maxViolations {
		e.more++
		return
	}
	e.list = append(e.list, violation{clip(field, maxFieldBytes), clip(desc, maxDescBytes)})
}

// addf records a violation, its description formatted.
func (e *badRequest) addf(field, format string, args ...any) {
	e.add(field, fmt.Sprintf(format, args...))
}

// merge records o's violations, their fields prefixed with prefix.
func (e *badRequest) merge(prefix string, o *badRequest) {
	for _, v := range o.list {
		e.add(prefix+v.field, v.desc)
	}
	e.more += o.more
}

// addErr records err's violations when it is a *badRequest, and reports
// whether it was (a nil err is one with no violations).
func (e *badRequest) addErr(err error) bool {
	if err == nil {
		return true
	}
	o, ok := err.(*badRequest)
	if ok {
		e.merge("", o)
	}
	return ok
}

func (e *badRequest) empty() bool { return len(e.list) == 0 && e.more == 0 }

// err is e, or nil when it has no violations.
func (e *badRequest) err() error {
	if e.empty() {
		return nil
	}
	return e
}

func (e *badRequest) Error() string { return e.GRPCStatus().Err().Error() }

// GRPCStatus is the InvalidArgument status (gRPC's status.FromError uses it).
func (e *badRequest) GRPCStatus() *status.Status {
	return status.FromProto(e.proto(maxViolations, maxMessageBytes))
}

// proto is the status listing at most listed violations, with a message of
// at most msgBytes (and no description longer than that).
func (e *badRequest) proto(listed, msgBytes int) *spb.Status {
	br := &errdetails.BadRequest{}
	for _, v := range e.list[:min(listed, len(e.list))] {
		br.FieldViolations = append(br.FieldViolations,
			&errdetails.BadRequest_FieldViolation{Field: v.field, Description: clip(v.desc, msgBytes)})
	}
	st := &spb.Status{Code: int32(codes.InvalidArgument), Message: e.summary(msgBytes)}
	if d, err := anypb.New(br); err == nil {
		st.Details = []*anypb.Any{d}
	}
	return st
}

// tailReserve is room for "; … and N more".
const tailReserve = 32

// summary is the violations as "field: what; field: what", at most limit
// bytes, ending "; … and N more" when some do not fit.
func (e *badRequest) summary(limit int) string {
	var b strings.Builder
	total, written := len(e.list)+e.more, 0
	for i, v := range e.list {
		entry := v.field + ": " + v.desc
		if i > 0 {
			entry = "; " + entry
		}
		room := limit
		if i+1 < total {
			room -= tailReserve
		}
		if b.Len()+len(entry) > room {
			if i == 0 {
				b.WriteString(clip(entry, room))
				written = 1
			}
			break
		}
		b.WriteString(entry)
		written++
	}
	if n := total - written; n > 0 {
		fmt.Fprintf(&b, "; … and %d more", n)
	}
	return b.String()
}

// clip is s as valid UTF-8 of at most n bytes, ending "…" when cut.
func clip(s string, n int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) <= n {
		return s
	}
	const ellipsis = "…"
	cut := max(n-len(ellipsis), 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}

// requestChecks is the gateway server's innermost unary interceptor (see
// the file comment).
func requestChecks(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if m, ok := req.(proto.Message); ok {
		if e := utf8Mark(m); e != nil {
			return nil, e
		}
	}
	resp, err := handler(ctx, req)
	if err != nil {
		err = boundError(err)
	}
	return resp, err
}

// boundError is err with its status message clipped to maxMessageBytes, and
// with a BadRequest detail when it is an InvalidArgument without one.
func boundError(err error) error {
	if _, ok := err.(*badRequest); ok {
		return err
	}
	s, ok := status.FromError(err)
	if !ok {
		s = status.FromContextError(err) // what gRPC would answer
	}
	p := s.Proto()
	changed := false
	if len(p.Message) > maxMessageBytes || !utf8.ValidString(p.Message) {
		p.Message, changed = clip(p.Message, maxMessageBytes), true
	}
	if s.Code() == codes.InvalidArgument && !hasBadRequest(p) {
		field, desc := "", p.Message
		if f, d, found := strings.Cut(p.Message, ": "); found && !strings.ContainsAny(f, " ;") {
			field, desc = f, d
		}
		br := &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
			{Field: clip(field, maxFieldBytes), Description: clip(desc, maxDescBytes)}}}
		if d, err := anypb.New(br); err == nil {
			p.Details, changed = append(p.Details, d), true
		}
	}
	if !changed {
		return err
	}
	return status.ErrorProto(p)
}

func hasBadRequest(p *spb.Status) bool {
	for _, d := range p.Details {
		if d.MessageIs((*errdetails.BadRequest)(nil)) {
			return true
		}
	}
	return false
}

// batchStatus is err as a PublishResult's error. budget is what is left of
// the batch's budget for errors (batchErrorBudget): an error larger than
// what is left lists only its first violation, with a short message.
func batchStatus(err error, budget *int) *spb.Status {
	var st *spb.Status
	if e, ok := err.(*badRequest); ok {
		st = e.proto(maxViolations, maxMessageBytes)
	} else {
		st = status.Convert(boundError(err)).Proto()
	}
	n := proto.Size(st)
	if n > *budget {
		if e, ok := err.(*badRequest); ok {
			st = e.proto(1, tightMessage)
		} else {
			st.Message = clip(st.Message, tightMessage)
		}
		n = proto.Size(st)
	}
	*budget = max(*budget-n, 0)
	return st
}
