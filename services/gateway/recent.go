package gateway

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/postback-dev/postback/pkg/event"
	"github.com/postback-dev/postback/pkg/id"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// ListRecentEvents returns the sample of an account's recent events of a
// type that the renderers keep (pkg/recent), newest first. Tenancy as the
// list calls: an account token sees its own account (account_id empty or
// its own; another account is PermissionDenied), an operator names one.
func (s *Server) ListRecentEvents(ctx context.Context, req *postbackv1.ListRecentEventsRequest) (*postbackv1.ListRecentEventsResponse, error) {
	bad := &badRequest{}
	if req.AccountId != "" && !id.ValidAccount(req.AccountId) {
		bad.addf("account_id", "want 1-64 characters of A-Z a-z 0-9 _ -, got %q", req.AccountId)
	}
	if req.EventType == "" {
		bad.add("event_type", "required: one of the event types of EventTypeService.ListEventTypes")
	} else if _, ok := event.Lookup(req.EventType); !ok {
		bad.addf("event_type", "unknown event type %q (see EventTypeService.ListEventTypes)", req.EventType)
	}
	if err := bad.err(); err != nil {
		return nil, err
	}
	account, err := listScope(ctx, req.AccountId)
	if err != nil {
		return nil, err
	}
	if account == "" { // an operator must name the account
		return nil, invalid("account_id", "required: the account whose events to list")
	}
	if s.recent == nil {
		return nil, status.Error(codes.Unavailable, "recent events are not available")
	}
	events, err := s.recent.List(ctx, account, req.EventType)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "%v", err)
	}
	out := &postbackv1.ListRecentEventsResponse{}
	for _, e := range events {
		data := &structpb.Struct{}
		if err := protojson.Unmarshal(e.Data, data); err != nil {
			continue // a value the sample could not keep whole: skip it
		}
		out.Events = append(out.Events, &postbackv1.RecentEvent{EventId: e.ID, EventType: req.EventType,
			CreateTime: timestamppb.New(e.Time), Data: data})
	}
	return out, nil
}
