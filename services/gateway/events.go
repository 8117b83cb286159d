package gateway

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	spb "google.golang.org/genproto/googleapis/rpc/status"
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

// invalid is an InvalidArgument naming the field.
func invalid(field, format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, "%s: %s", field, fmt.Sprintf(format, args...))
}

// prepared is a validated event ready to publish. event.Data is nil when
// the data took the fast path (fastData: body holds it, and only body);
// a request with Data set (in process, PreviewEndpoint) never does.
type prepared struct {
	event stream.Event
	msgID string
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
// (e.g. "events[3]." in a batch).
func (s *Server) prepare(prefix string, req *postbackv1.PublishRequest) (*prepared, error) {
	if !id.ValidAccount(req.AccountId) {
		return nil, invalid(prefix+"account_id", "want 1-64 characters of A-Z a-z 0-9 _ -, got %q", req.AccountId)
	}
	typ, ok := event.Lookup(req.EventType)
	if !ok {
		return nil, invalid(prefix+"event_type", "unknown event type %q (see EventTypeService.ListEventTypes)", req.EventType)
	}
	dataJSON, fast := s.fastData(typ, req)
	var data map[string]any
	if !fast {
		var err error
		data, err = eventData(req)
		if errors.Is(err, errNoData) {
			return nil, invalid(prefix+"data", "required: an object of data points")
		}
		if err != nil {
			return nil, invalid(prefix+"data", "%s", strings.TrimPrefix(err.Error(), "eventdata: "))
		}
	}
	if len(req.IdempotencyKey) > MaxIdempotencyKey {
		return nil, invalid(prefix+"idempotency_key", "at most %d characters", MaxIdempotencyKey)
	}
	if req.EventId != "" && !eventIDPattern.MatchString(req.EventId) {
		return nil, invalid(prefix+"event_id", "want 1-128 characters of A-Z a-z 0-9 _ - ., got %q", req.EventId)
	}
	if !fast {
		if items, ok := data["items"].([]any); ok && len(items) > s.limits.MaxItems {
			return nil, tooBig(prefix+"data.items", len(items), s.limits.MaxItems, "items")
		}
		typ.NumbersFromStrings(data) // "10.50" for a decimal: the number
		if err := typ.Validate(data); err != nil {
			var ve *event.ValidationError
			if errors.As(err, &ve) && prefix != "" {
				return nil, status.Error(codes.InvalidArgument, prefix+err.Error())
			}
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
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
	if req.IdempotencyKey != "" {
		p.msgID = stream.IdempotentEventID(req.AccountId, req.IdempotencyKey)
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
	if req.IdempotencyKey != "" {
		first, err := s.keys.first(ctx, req.AccountId, req.IdempotencyKey)
		if err != nil {
			return nil, status.Errorf(codes.Unavailable, "read idempotency key: %v", err)
		}
		if first != "" {
			return &postbackv1.PublishResponse{EventId: first, Duplicate: true}, nil
		}
	}
	ack, err := stream.Publish(ctx, s.js.Conn(), stream.NewMsg(ctx, stream.EventSubject(p.event.Type, p.event.AccountID), p.body, p.msgID))
	if err != nil {
		return nil, publishError(err)
	}
	eventID, dup := s.keyed(ctx, req, p.event.ID, ack.Duplicate)
	return &postbackv1.PublishResponse{EventId: eventID, Duplicate: dup}, nil
}

// keyed settles an idempotency key after its event's publish (see
// idempotency.go): a new event's id is recorded as the key's first; a
// duplicate answers with the first event's id. It returns the event id
// to answer with and whether the call was a duplicate.
func (s *Server) keyed(ctx context.Context, req *postbackv1.PublishRequest, eventID string, duplicate bool) (string, bool) {
	if req.IdempotencyKey == "" {
		return eventID, duplicate
	}
	if duplicate {
		first, err := s.keys.waitFirst(ctx, req.AccountId, req.IdempotencyKey)
		if err == nil && first != "" {
			return first, true
		}
		return eventID, true // the first call's record never came (it crashed): the duplicate flag still holds
	}
	if err := s.keys.record(ctx, req.AccountId, req.IdempotencyKey, eventID); err != nil {
		s.log.WarnContext(ctx, "idempotency key not recorded: a repeat after a restart may make a second event",
			"account_id", req.AccountId, "event_id", eventID, "error", err)
	}
	return eventID, false
}

// PublishBatch accepts many events; a bad one does not sink the rest. Valid
// events are published asynchronously and awaited together.
func (s *Server) PublishBatch(ctx context.Context, req *postbackv1.PublishBatchRequest) (*postbackv1.PublishBatchResponse, error) {
	if len(req.Events) > s.limits.MaxBatch {
		return nil, status.Errorf(codes.ResourceExhausted, "events: at most %d events a batch, got %d", s.limits.MaxBatch, len(req.Events))
	}
	results := make([]*postbackv1.PublishResult, len(req.Events))
	futures := make([]jetstream.PubAckFuture, len(req.Events))
	for i, ev := range req.Events {
		if !visible(ctx, ev.GetAccountId()) {
			results[i] = &postbackv1.PublishResult{Error: toStatus(status.Errorf(codes.PermissionDenied,
				"events[%d].account_id: this token acts only on its own account", i))}
			continue
		}
		p, err := s.prepare(fmt.Sprintf("events[%d].", i), ev)
		if err != nil {
			results[i] = &postbackv1.PublishResult{Error: toStatus(err)}
			continue
		}
		if ev.IdempotencyKey != "" {
			first, err := s.keys.first(ctx, ev.AccountId, ev.IdempotencyKey)
			if err != nil {
				results[i] = &postbackv1.PublishResult{Error: toStatus(status.Errorf(codes.Unavailable, "events[%d]: read idempotency key: %v", i, err))}
				continue
			}
			if first != "" {
				results[i] = &postbackv1.PublishResult{EventId: first, Duplicate: true}
				continue
			}
		}
		results[i] = &postbackv1.PublishResult{EventId: p.event.ID}
		f, err := s.js.PublishMsgAsync(stream.NewMsg(ctx, stream.EventSubject(p.event.Type, p.event.AccountID), p.body, p.msgID))
		if err != nil {
			results[i] = &postbackv1.PublishResult{Error: toStatus(publishError(err))}
			continue
		}
		futures[i] = f
	}
	for i, f := range futures {
		if f == nil {
			continue
		}
		select {
		case ack := <-f.Ok():
			results[i].EventId, results[i].Duplicate = s.keyed(ctx, req.Events[i], results[i].EventId, ack.Duplicate)
		case err := <-f.Err():
			results[i] = &postbackv1.PublishResult{Error: toStatus(publishError(err))}
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	return &postbackv1.PublishBatchResponse{Results: results}, nil
}

func toStatus(err error) *spb.Status {
	return status.Convert(err).Proto()
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
