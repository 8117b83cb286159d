package gateway

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/postback-dev/postback/pkg/event"
	"github.com/postback-dev/postback/pkg/eventdata"
	"github.com/postback-dev/postback/pkg/id"
	"github.com/postback-dev/postback/pkg/stream"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// Limits on a publish call (see also Limits).
const (
	MaxBatch          = 1000
	MaxIdempotencyKey = 256
)

// errOtherAccount answers a publish or create into an account the token may
// not act on. It says nothing about whether that account exists.
var errOtherAccount = status.Error(codes.PermissionDenied, "account_id: this token acts only on its own account")

var eventIDPattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)

// prepared is a validated event ready to publish. event.Data is nil when
// the data took the fast path (fastData: body holds it, and only body);
// a request with Data set (in process, PreviewEndpoint) never does.
type prepared struct {
	event stream.Event
	body  []byte
}

// errNoData is eventData's answer for a request without data.
var errNoData = errors.New("no data")

// eventData is the request's data as a map: req.Data.AsMap() when req.Data
// is set (callers in process, clients of another codec), else the data field
// the gateway's server codec kept undecoded in the unknown fields (see
// codec.go), decoded by eventdata.FromStructWire into the same map. It is
// errNoData when the request has neither, and eventdata's error when the
// field is malformed.
func eventData(req *postbackv1.PublishRequest) (map[string]any, error) {
	if req.Data != nil {
		return req.Data.AsMap(), nil
	}
	data, err := dataWire(req)
	if err != nil {
		return nil, err
	}
	return eventdata.FromStructWire(data)
}

// dataWire is the wire bytes of the data field the server codec kept in
// req's unknown fields (errNoData when there is none).
func dataWire(req *postbackv1.PublishRequest) ([]byte, error) {
	var data []byte
	fields := 0
	for b := req.ProtoReflect().GetUnknown(); len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, errMalformedUnknown
		}
		b = b[n:]
		if num == publishDataField && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, errMalformedUnknown
			}
			// Occurrences after the first merge into it, as proto.Unmarshal
			// merges them: a Struct's bytes concatenated.
			if fields++; fields == 1 {
				data = v
			} else {
				data = append(data[:len(data):len(data)], v...)
			}
			b = b[n:]
			continue
		}
		// Anything else, a data field of the wrong wire type included, is
		// an unknown field proto.Unmarshal would have kept as such.
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			return nil, errMalformedUnknown
		}
		b = b[n:]
	}
	if fields == 0 {
		return nil, errNoData
	}
	return data, nil
}

var errMalformedUnknown = errors.New("malformed unknown fields")

// prepare validates one PublishRequest; field names are prefixed with prefix
// (e.g. "events[3]." in a batch). Its InvalidArgument lists every violation
// found: of the account, the event type, the data (each data point), the
// idempotency key and the event id. A request the server codec marked for
// invalid UTF-8 lists those strings alone.
func (s *Server) prepare(prefix string, req *postbackv1.PublishRequest) (*prepared, error) {
	if e := utf8Mark(req); e != nil {
		bad := &badRequest{}
		bad.merge(prefix, e)
		return nil, bad
	}
	var bad badRequest // on the stack: returned only when not empty
	if !id.ValidAccount(req.AccountId) {
		bad.addf(prefix+"account_id", "want 1-64 characters of A-Z a-z 0-9 _ -, got %q", req.AccountId)
	}
	typ, ok := event.Lookup(req.EventType)
	if !ok {
		bad.addf(prefix+"event_type", "unknown event type %q (see EventTypeService.ListEventTypes)", req.EventType)
	}
	var dataJSON []byte
	fast := false
	if ok && bad.empty() {
		dataJSON, fast = s.fastData(typ, req)
	}
	var data map[string]any
	tooManyItems := 0
	if !fast {
		var err error
		data, err = eventData(req)
		switch {
		case errors.Is(err, errNoData):
			bad.add(prefix+"data", "required: an object of data points")
		case err != nil:
			// The strings that are not UTF-8, named, or else the error.
			var named *badRequest
			if wire, werr := dataWire(req); werr == nil {
				named = dataViolations(wire, prefix+"data")
			}
			if named != nil && !named.empty() {
				bad.merge("", named)
			} else {
				bad.add(prefix+"data", strings.TrimPrefix(err.Error(), "eventdata: "))
			}
		case ok:
			if items, isList := data["items"].([]any); isList && len(items) > s.limits.MaxItems {
				tooManyItems = len(items) // ResourceExhausted, unless something is invalid
				break
			}
			typ.NumbersFromStrings(data) // "10.50" for a decimal: the number
			var ve *event.ValidationError
			if err := typ.Validate(data); errors.As(err, &ve) {
				for _, p := range ve.Problems {
					bad.add(prefix+p.Field, p.Message)
				}
			} else if err != nil {
				bad.add(prefix+"data", err.Error())
			}
		}
	}
	if len(req.IdempotencyKey) > MaxIdempotencyKey {
		bad.addf(prefix+"idempotency_key", "at most %d characters", MaxIdempotencyKey)
	}
	if req.EventId != "" && !eventIDPattern.MatchString(req.EventId) {
		bad.addf(prefix+"event_id", "want 1-128 characters of A-Z a-z 0-9 _ - ., got %q", req.EventId)
	}
	if !bad.empty() {
		found := bad
		return nil, &found
	}
	if tooManyItems > 0 {
		return nil, tooBig(prefix+"data.items", tooManyItems, s.limits.MaxItems, "items")
	}
	now := s.now()
	p := &prepared{event: stream.Event{AccountID: req.AccountId, Type: req.EventType, Time: now, Data: data}}
	switch {
	case req.EventId != "":
		p.event.ID = req.EventId
	case req.IdempotencyKey != "":
		// The same key gives the same id, so a duplicate answers with the
		// first event's id.
		p.event.ID = id.Derive(id.Event, now, req.AccountId, req.IdempotencyKey)
	default:
		p.event.ID = id.New(id.Event, now)
	}
	var body []byte
	var err error
	if fast {
		body, err = stream.EncodeEventData(&p.event, dataJSON)
	} else {
		body, err = stream.EncodeEvent(&p.event)
	}
	if err != nil {
		return nil, invalid(prefix+"data", "cannot encode: %v", err)
	}
	if len(body) > s.limits.MaxEventBytes {
		return nil, tooBig(prefix+"data", len(body), s.limits.MaxEventBytes, "bytes (the event as published, JSON)")
	}
	p.body = body
	return p, nil
}

// errCodeStoreFailed is JetStream's "storing a message failed" (10077): with
// discard-new it means the stream is full.
const errCodeStoreFailed = 10077

// publishError maps a JetStream publish failure to a gRPC status.
func publishError(err error) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeStoreFailed {
		return status.Errorf(codes.ResourceExhausted, "event queue is full: %v", err)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return status.FromContextError(err).Err()
	}
	return status.Errorf(codes.Unavailable, "publish event: %v", err)
}

// Publish accepts one event.
func (s *Server) Publish(ctx context.Context, req *postbackv1.PublishRequest) (*postbackv1.PublishResponse, error) {
	if !visible(ctx, req.AccountId) {
		return nil, errOtherAccount
	}
	p, err := s.prepare("", req)
	if err != nil {
		return nil, err
	}
	subject := stream.EventSubject(p.event.Type, p.event.AccountID)
	if req.IdempotencyKey != "" {
		k := s.keyedEvent(req, p.event.ID, stream.NewMsg(ctx, subject, p.body, ""))
		s.keyed.publish(k)
		select {
		case r := <-k.done:
			if r.err != nil {
				return nil, publishError(r.err)
			}
			return &postbackv1.PublishResponse{EventId: r.eventID, Duplicate: r.duplicate}, nil
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	if err := s.unary.publish(ctx, subject, p.body); err != nil { // with the calls beside it (unary.go)
		return nil, publishError(err)
	}
	return &postbackv1.PublishResponse{EventId: p.event.ID}, nil
}

// keyedEvent is an event with an idempotency key, ready for s.keyed.
func (s *Server) keyedEvent(req *postbackv1.PublishRequest, eventID string, msg *nats.Msg) *keyed {
	return &keyed{marker: markerSubject(req.AccountId, req.IdempotencyKey), eventID: eventID, msg: msg, done: make(chan keyedResult, 1)}
}

// PublishBatch accepts many events; a bad one does not sink the rest. Valid
// events are published asynchronously, through the gateway's intake window
// (intake.go), and awaited together.
func (s *Server) PublishBatch(ctx context.Context, req *postbackv1.PublishBatchRequest) (*postbackv1.PublishBatchResponse, error) {
	if len(req.Events) > s.limits.MaxBatch {
		return nil, status.Errorf(codes.ResourceExhausted, "events: at most %d events a batch, got %d", s.limits.MaxBatch, len(req.Events))
	}
	results := make([]*postbackv1.PublishResult, len(req.Events))
	published := s.intake.publishBatch(s.js, len(req.Events)) // intake.go
	keyedAt := map[int]*keyed{}
	var batch []*keyed
	budget := batchErrorBudget // for the events' errors together (errors.go)
	group := &eventGroup{}     // consecutive events of one subject share a message
	for i, ev := range req.Events {
		prefix := fmt.Sprintf("events[%d].", i)
		if e := utf8Mark(ev); e != nil { // its account is not known
			bad := &badRequest{}
			bad.merge(prefix, e)
			results[i] = &postbackv1.PublishResult{Error: batchStatus(bad, &budget)}
			continue
		}
		if !visible(ctx, ev.GetAccountId()) {
			results[i] = &postbackv1.PublishResult{Error: batchStatus(status.Errorf(codes.PermissionDenied,
				"events[%d].account_id: this token acts only on its own account", i), &budget)}
			continue
		}
		p, err := s.prepare(prefix, ev)
		if err != nil {
			results[i] = &postbackv1.PublishResult{Error: batchStatus(err, &budget)}
			continue
		}
		results[i] = &postbackv1.PublishResult{EventId: p.event.ID}
		subject := stream.EventSubject(p.event.Type, p.event.AccountID)
		if ev.IdempotencyKey != "" {
			k := s.keyedEvent(ev, p.event.ID, stream.NewMsg(ctx, subject, p.body, ""))
			keyedAt[i] = k
			batch = append(batch, k)
			continue
		}
		if !group.fits(subject, p.body) {
			if err := group.publish(ctx, published, results, &budget); err != nil {
				return nil, err
			}
		}
		group.add(i, subject, p.body)
	}
	if err := group.publish(ctx, published, results, &budget); err != nil {
		return nil, err
	}
	if len(batch) > 0 {
		s.keyed.publish(batch...)
	}
	for i, k := range keyedAt {
		select {
		case r := <-k.done:
			if r.err != nil {
				results[i] = &postbackv1.PublishResult{Error: batchStatus(publishError(r.err), &budget)}
			} else {
				results[i].EventId, results[i].Duplicate = r.eventID, r.duplicate
			}
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	if err := published.wait(ctx); err != nil {
		return nil, status.FromContextError(err).Err()
	}
	for i, err := range published.errs {
		if err != nil {
			results[i] = &postbackv1.PublishResult{Error: batchStatus(publishError(err), &budget)}
		}
	}
	return &postbackv1.PublishBatchResponse{Results: results}, nil
}

// eventGroup gathers consecutive events of a PublishBatch bound for one
// subject into one EVENTS message (pkg/stream group.go); a line of unary
// calls takes its groups with the same bounds (unary.go).
type eventGroup struct {
	subject string
	bodies  [][]byte // each event as published alone
	events  []int    // their places in the batch
	size    int
}

// fits says whether an event for subject, encoded as body, can join the
// group.
func (g *eventGroup) fits(subject string, body []byte) bool {
	return len(g.bodies) == 0 || g.subject == subject && len(g.bodies) < stream.MaxGroupEvents &&
		g.size+len(body)+binary.MaxVarintLen64 <= stream.MaxGroupBytes
}

func (g *eventGroup) add(i int, subject string, body []byte) {
	g.subject = subject
	g.bodies = append(g.bodies, body)
	g.events = append(g.events, i)
	g.size += len(body) + binary.MaxVarintLen64
}

// publish publishes the group, if any, and empties it: a lone event as its
// own message, several as a group, with the call's trace context (which
// every event of it shares). An error that ends the call is returned; a
// publish that failed is each event's result.
func (g *eventGroup) publish(ctx context.Context, published *batchPublish, results []*postbackv1.PublishResult, budget *int) error {
	if len(g.bodies) == 0 {
		return nil
	}
	err := published.publish(ctx, groupMessage(ctx, g.subject, g.bodies, g.size), g.events...)
	events := g.events
	*g = eventGroup{}
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return status.FromContextError(ctx.Err()).Err()
	}
	for _, i := range events {
		results[i] = &postbackv1.PublishResult{Error: batchStatus(publishError(err), budget)}
	}
	return nil
}

// groupMessage is the EVENTS message of events bound for subject, encoded
// as bodies (size: about their bytes in a group), with ctx's trace
// context: a lone event as its own message, several as a group.
func groupMessage(ctx context.Context, subject string, bodies [][]byte, size int) *nats.Msg {
	if len(bodies) == 1 {
		return stream.NewMsg(ctx, subject, bodies[0], "")
	}
	data := make([]byte, 0, size)
	for _, b := range bodies {
		data = stream.AppendGroupEvent(data, b)
	}
	msg := stream.NewMsg(ctx, subject, data, "")
	msg.Header.Set(stream.GroupHeader, strconv.Itoa(len(bodies)))
	return msg
}

// ListEventTypes returns the catalogues.
func (s *Server) ListEventTypes(context.Context, *postbackv1.ListEventTypesRequest) (*postbackv1.ListEventTypesResponse, error) {
	out := &postbackv1.ListEventTypesResponse{}
	for _, t := range event.Types() {
		et := &postbackv1.EventType{Name: t.Name, Description: t.Description}
		for _, dp := range t.DataPoints {
			et.DataPoints = append(et.DataPoints, &postbackv1.DataPoint{
				Name: dp.Name, Type: postbackv1.DataPointType(int32(dp.Type) + 1), Description: dp.Description, Item: dp.Item,
			})
		}
		out.EventTypes = append(out.EventTypes, et)
	}
	return out, nil
}
