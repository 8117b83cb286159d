package gateway

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/postback-dev/postback/pkg/endpoint"
	"github.com/postback-dev/postback/pkg/id"
	"github.com/postback-dev/postback/pkg/stream"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// loadRecord reads a delivery the caller may see, or answers NotFound.
func (s *Server) loadRecord(ctx context.Context, field, dlvID string) (*stream.Record, error) {
	if !id.Valid(id.Delivery, dlvID) {
		return nil, invalid(field, "want a delivery id (dlv_…), got %q", dlvID)
	}
	r, err := s.deliveries.Find(ctx, dlvID)
	if errors.Is(err, stream.ErrNotFound) || err == nil && !visible(ctx, r.Delivery.AccountId) {
		return nil, status.Errorf(codes.NotFound, "delivery %s not found", dlvID)
	}
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "%v", err)
	}
	return r, nil
}

// GetDelivery returns one delivery.
func (s *Server) GetDelivery(ctx context.Context, req *postbackv1.GetDeliveryRequest) (*postbackv1.Delivery, error) {
	r, err := s.loadRecord(ctx, "id", req.Id)
	if err != nil {
		return nil, err
	}
	return r.Delivery, nil
}

// ListDeliveries returns a page of deliveries, newest first.
func (s *Server) ListDeliveries(ctx context.Context, req *postbackv1.ListDeliveriesRequest) (*postbackv1.ListDeliveriesResponse, error) {
	if req.AccountId != "" && !endpoint.ValidAccount(req.AccountId) {
		return nil, invalid("account_id", "want 1-64 characters of A-Z a-z 0-9 _ -, got %q", req.AccountId)
	}
	if _, ok := postbackv1.DeliveryStatus_name[int32(req.Status)]; !ok {
		return nil, invalid("status", "unknown status %d", req.Status)
	}
	if req.EndpointId != "" && !id.Valid(id.Endpoint, req.EndpointId) {
		return nil, invalid("endpoint_id", "want an endpoint id (ep_…), got %q", req.EndpointId)
	}
	size, err := pageSize(req.PageSize)
	if err != nil {
		return nil, err
	}
	account, err := listScope(ctx, req.AccountId)
	if err != nil {
		return nil, err
	}
	match := func(d *postbackv1.Delivery) bool {
		switch {
		case req.EndpointId != "" && d.EndpointId != req.EndpointId,
			req.EventId != "" && d.EventId != req.EventId,
			req.Status != postbackv1.DeliveryStatus_DELIVERY_STATUS_UNSPECIFIED && d.Status != req.Status,
			!inRange(d.CreateTime, req.StartTime, req.EndTime):
			return false
		}
		return true
	}
	var all []*postbackv1.Delivery
	collect := func(r *stream.Record) bool {
		if match(r.Delivery) && visible(ctx, r.Delivery.AccountId) {
			all = append(all, r.Delivery)
		}
		return true
	}
	each := func() error { return s.deliveries.Each(ctx, account, collect) }
	if req.EndpointId != "" && account != "" {
		// Only that endpoint's keys are listed.
		each = func() error { return s.deliveries.EachOfEndpoint(ctx, account, req.EndpointId, collect) }
	}
	if err := each(); err != nil {
		return nil, status.Errorf(codes.Unavailable, "%v", err)
	}
	// Newest first: ids sort by creation time.
	slices.SortFunc(all, func(a, b *postbackv1.Delivery) int { return strings.Compare(b.Id, a.Id) })
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

// inRange reports whether t is within [start, end) (either bound may be unset).
func inRange(t, start, end *timestamppb.Timestamp) bool {
	if start != nil && t.AsTime().Before(start.AsTime()) {
		return false
	}
	return end == nil || t.AsTime().Before(end.AsTime())
}

// ListAttempts returns every attempt of a delivery.
func (s *Server) ListAttempts(ctx context.Context, req *postbackv1.ListAttemptsRequest) (*postbackv1.ListAttemptsResponse, error) {
	r, err := s.loadRecord(ctx, "delivery_id", req.DeliveryId)
	if err != nil {
		return nil, err
	}
	if r.Delivery.AttemptCount <= 1 && r.Last != nil { // sent once: the record holds it
		return &postbackv1.ListAttemptsResponse{Attempts: []*postbackv1.Attempt{r.Last}}, nil
	}
	moved, err := s.attempts.List(ctx, r.Delivery.AccountId, r.Delivery.Id)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "%v", err)
	}
	return &postbackv1.ListAttemptsResponse{Attempts: stream.History(moved, r.Last)}, nil
}

// RetryDelivery sends a delivery again now (any state but in flight or
// still queued for its first send).
func (s *Server) RetryDelivery(ctx context.Context, req *postbackv1.RetryDeliveryRequest) (*postbackv1.Delivery, error) {
	r, err := s.loadRecord(ctx, "id", req.Id)
	if err != nil {
		return nil, err
	}
	if err := s.resend(ctx, r); err != nil {
		return nil, err
	}
	return r.Delivery, nil
}

// resend re-queues a delivery to be sent now. The job goes through the
// delivery's schedule subject, whose one pending schedule it replaces: a
// scheduled retry and this resend cannot both fire. If the scheduled retry
// has already fired, both copies carry the same attempt count and the
// sender's claim lets only one of them send.
func (s *Server) resend(ctx context.Context, r *stream.Record) error {
	d := r.Delivery
	switch {
	case d.Status == postbackv1.DeliveryStatus_DELIVERY_STATUS_IN_FLIGHT:
		return status.Errorf(codes.FailedPrecondition, "delivery %s is in flight; try again when it has an outcome", d.Id)
	case r.Job == nil:
		return status.Errorf(codes.FailedPrecondition, "delivery %s never rendered (%s); fix the endpoint and publish the event again", d.Id, d.Reason)
	case d.Status == postbackv1.DeliveryStatus_DELIVERY_STATUS_PENDING && d.AttemptCount == 0:
		// Its first send may be under way (the sender sends a first send
		// without a claim): a second copy now could send it twice.
		return status.Errorf(codes.FailedPrecondition, "delivery %s is queued for its first send; try again when it has an outcome", d.Id)
	}
	job := *r.Job
	job.Slot, job.Scheduled = time.Time{}, time.Time{}
	job.EndpointVersion = 0 // a copy: the sender claims it
	job.Sent = int(d.AttemptCount)
	if !(d.Status == postbackv1.DeliveryStatus_DELIVERY_STATUS_PENDING || d.Status == postbackv1.DeliveryStatus_DELIVERY_STATUS_RETRYING) {
		// A finished delivery gets one more attempt, numbered after the last.
		job.Attempt = r.Job.Attempt + 1
	}
	now := s.now()
	d.Status = postbackv1.DeliveryStatus_DELIVERY_STATUS_PENDING
	d.Reason = ""
	d.NextAttemptTime = timestamppb.New(now)
	d.UpdateTime = timestamppb.New(now)
	r.Job, r.Claim = &job, ""
	if err := s.attempts.Retire(ctx, r); err != nil { // the new attempt will replace the record's latest
		return status.Errorf(codes.Unavailable, "%v", err)
	}
	if err := s.deliveries.Update(ctx, r); err != nil {
		if errors.Is(err, stream.ErrConflict) {
			return status.Errorf(codes.Aborted, "delivery %s changed meanwhile; try again", d.Id)
		}
		return status.Errorf(codes.Unavailable, "%v", err)
	}
	job.Revision = r.Revision // the sender claims against what was just written
	msgID := fmt.Sprintf("manual:%s:%d:%d", d.Id, job.Sent, now.UnixNano())
	if err := stream.Schedule(ctx, s.js, &job, now, msgID); err != nil {
		return status.Errorf(codes.Unavailable, "%v", err)
	}
	s.log.Info("delivery re-queued", "delivery_id", d.Id, "account_id", d.AccountId, "attempt", job.Attempt)
	return nil
}

// ReplayDeliveries re-queues an endpoint's DEAD (or the named statuses')
// deliveries created in a time range.
func (s *Server) ReplayDeliveries(ctx context.Context, req *postbackv1.ReplayDeliveriesRequest) (*postbackv1.ReplayDeliveriesResponse, error) {
	ep, err := s.load(ctx, "endpoint_id", req.EndpointId)
	if err != nil {
		return nil, err
	}
	statuses := req.Statuses
	if len(statuses) == 0 {
		statuses = []postbackv1.DeliveryStatus{postbackv1.DeliveryStatus_DELIVERY_STATUS_DEAD}
	}
	for i, st := range statuses {
		switch st {
		case postbackv1.DeliveryStatus_DELIVERY_STATUS_DEAD, postbackv1.DeliveryStatus_DELIVERY_STATUS_FAILED,
			postbackv1.DeliveryStatus_DELIVERY_STATUS_CANCELLED, postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED:
		default:
			return nil, invalid(fmt.Sprintf("statuses[%d]", i), "only finished deliveries can be replayed (DEAD, FAILED, CANCELLED, SUCCEEDED), got %s", st)
		}
	}
	var picked []*stream.Record
	if err := s.deliveries.EachOfEndpoint(ctx, ep.AccountId, ep.Id, func(r *stream.Record) bool {
		d := r.Delivery
		if slices.Contains(statuses, d.Status) && inRange(d.CreateTime, req.StartTime, req.EndTime) && r.Job != nil {
			picked = append(picked, r)
		}
		return true
	}); err != nil {
		return nil, status.Errorf(codes.Unavailable, "%v", err)
	}
	count := 0
	for _, r := range picked {
		if err := s.resend(ctx, r); err != nil {
			if status.Code(err) == codes.Aborted || status.Code(err) == codes.FailedPrecondition {
				continue
			}
			return &postbackv1.ReplayDeliveriesResponse{Count: int32(count)}, err
		}
		count++
	}
	return &postbackv1.ReplayDeliveriesResponse{Count: int32(count)}, nil
}

// cancelPending cancels an endpoint's pending and retrying deliveries: their
// schedules are purged and their records say why. A job already queued for
// the sender is dropped there, since its record is CANCELLED.
func (s *Server) cancelPending(ctx context.Context, ep *postbackv1.Endpoint, reason string) (int, error) {
	var pending []*stream.Record
	if err := s.deliveries.EachOfEndpoint(ctx, ep.AccountId, ep.Id, func(r *stream.Record) bool {
		d := r.Delivery
		if d.Status == postbackv1.DeliveryStatus_DELIVERY_STATUS_PENDING || d.Status == postbackv1.DeliveryStatus_DELIVERY_STATUS_RETRYING {
			pending = append(pending, r)
		}
		return true
	}); err != nil {
		return 0, err
	}
	n := 0
	for _, r := range pending {
		if err := stream.CancelSchedule(ctx, s.js, r.Delivery.Id); err != nil {
			return n, err
		}
		r.Delivery.Status = postbackv1.DeliveryStatus_DELIVERY_STATUS_CANCELLED
		r.Delivery.Reason = reason
		r.Delivery.NextAttemptTime = nil
		r.Delivery.UpdateTime = timestamppb.New(s.now())
		if err := s.deliveries.Update(ctx, r); err != nil {
			if errors.Is(err, stream.ErrConflict) {
				continue // in flight or moved on; the sender and retry service check the endpoint too
			}
			return n, err
		}
		n++
	}
	return n, nil
}
