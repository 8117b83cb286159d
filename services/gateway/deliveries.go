package gateway

import (
	"context"
	"errors"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/postback-dev/postback/pkg/endpoint"
	"github.com/postback-dev/postback/pkg/id"
	"github.com/postback-dev/postback/pkg/stream"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

func (s *Server) loadDelivery(ctx context.Context, field, dlvID string) (*postbackv1.Delivery, error) {
	if !id.Valid(id.Delivery, dlvID) {
		return nil, invalid(field, "want a delivery id (dlv_…), got %q", dlvID)
	}
	d, err := s.deliveries.Find(ctx, dlvID)
	if errors.Is(err, stream.ErrNotFound) {
		return nil, status.Errorf(codes.NotFound, "delivery %s not found", dlvID)
	}
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "%v", err)
	}
	return d, nil
}

// GetDelivery returns one delivery.
func (s *Server) GetDelivery(ctx context.Context, req *postbackv1.GetDeliveryRequest) (*postbackv1.Delivery, error) {
	return s.loadDelivery(ctx, "id", req.Id)
}

// ListDeliveries returns a page of deliveries, newest first.
func (s *Server) ListDeliveries(ctx context.Context, req *postbackv1.ListDeliveriesRequest) (*postbackv1.ListDeliveriesResponse, error) {
	if req.AccountId != "" && !endpoint.ValidAccount(req.AccountId) {
		return nil, invalid("account_id", "want 1-64 characters of A-Z a-z 0-9 _ -, got %q", req.AccountId)
	}
	if _, ok := postbackv1.DeliveryStatus_name[int32(req.Status)]; !ok {
		return nil, invalid("status", "unknown status %d", req.Status)
	}
	size, err := pageSize(req.PageSize)
	if err != nil {
		return nil, err
	}
	match := func(d *postbackv1.Delivery) bool {
		switch {
		case req.EndpointId != "" && d.EndpointId != req.EndpointId,
			req.EventId != "" && d.EventId != req.EventId,
			req.Status != postbackv1.DeliveryStatus_DELIVERY_STATUS_UNSPECIFIED && d.Status != req.Status,
			inRange(d.CreateTime, req.StartTime, req.EndTime) != 0:
			return false
		}
		return true
	}
	var all []*postbackv1.Delivery
	if err := s.deliveries.Each(ctx, req.AccountId, func(d *postbackv1.Delivery) bool {
		if match(d) {
			all = append(all, d)
		}
		return true
	}); err != nil {
		return nil, status.Errorf(codes.Unavailable, "%v", err)
	}
	// Newest first: ids sort by creation time.
	sortDesc(all)
	out := &postbackv1.ListDeliveriesResponse{}
	for _, d := range all {
		if req.PageToken != "" && d.Id >= req.PageToken {
			continue
		}
		if len(out.Deliveries) == size {
			out.NextPageToken = out.Deliveries[size-1].Id
			break
		}
		out.Deliveries = append(out.Deliveries, d)
	}
	return out, nil
}

// inRange is 0 when t is within [start, end) (either bound may be unset).
func inRange(t, start, end *timestamppb.Timestamp) int {
	if start != nil && t.AsTime().Before(start.AsTime()) {
		return -1
	}
	if end != nil && !t.AsTime().Before(end.AsTime()) {
		return 1
	}
	return 0
}

func sortDesc(ds []*postbackv1.Delivery) {
	slices.SortFunc(ds, func(a, b *postbackv1.Delivery) int { return strings.Compare(b.Id, a.Id) })
}

// ListAttempts returns every attempt of a delivery.
func (s *Server) ListAttempts(ctx context.Context, req *postbackv1.ListAttemptsRequest) (*postbackv1.ListAttemptsResponse, error) {
	d, err := s.loadDelivery(ctx, "delivery_id", req.DeliveryId)
	if err != nil {
		return nil, err
	}
	ats, err := s.attempts.List(ctx, d.AccountId, d.Id)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "%v", err)
	}
	return &postbackv1.ListAttemptsResponse{Attempts: ats}, nil
}
