package gateway

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/postback-dev/postback/pkg/delivery"
	"github.com/postback-dev/postback/pkg/history"
	"github.com/postback-dev/postback/pkg/id"
	"github.com/postback-dev/postback/pkg/inflight"
	"github.com/postback-dev/postback/pkg/stream"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// loadRecord reads a delivery the caller may see, or answers NotFound.
func (s *Server) loadRecord(ctx context.Context, field, dlvID string) (*inflight.Record, error) {
	if err := validDelivery(field, dlvID); err != nil {
		return nil, err
	}
	r, err := s.find(ctx, dlvID)
	if errors.Is(err, inflight.ErrNotFound) || err == nil && !visible(ctx, r.Delivery.AccountId) {
		return nil, status.Errorf(codes.NotFound, "delivery %s not found", dlvID)
	}
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "%v", err)
	}
	return r, nil
}

// find reads a delivery wherever it is in its life: its hot record (or the
// job queued for its first send); else its latest change still waiting for
// the history writer on its own subject, else its row in the history store;
// and when that is not final (or there is none), its final entry in a batch
// still waiting for the writer (a delivery ended at its first send while
// others ended with it), else the store again. The writer stores a change
// before it acks it, so a change gone from the stream is in the store: read
// in this order, no moment of a delivery's life is missed. The batches come
// last because reading them costs what the writer has not stored yet: only
// a delivery that ended a moment ago, or an unknown id, pays it.
func (s *Server) find(ctx context.Context, dlvID string) (*inflight.Record, error) {
	r, err := s.deliveries.Find(ctx, dlvID)
	if !errors.Is(err, inflight.ErrNotFound) {
		return r, err
	}
	r, err = s.deliveries.Pending(ctx, dlvID)
	if errors.Is(err, inflight.ErrNotFound) {
		r, err = s.stored(ctx, dlvID)
	}
	switch {
	case err == nil && delivery.Final(r.Delivery.Status):
		return r, nil
	case err != nil && !errors.Is(err, inflight.ErrNotFound):
		return nil, err
	}
	ended, err := s.deliveries.Concluded(ctx, dlvID)
	if !errors.Is(err, inflight.ErrNotFound) {
		return ended, err
	}
	// The store again: stored meanwhile, or as it was. The newer of it and
	// what was read before.
	again, err := s.stored(ctx, dlvID)
	switch {
	case err == nil && (r == nil || !again.Delivery.GetUpdateTime().AsTime().Before(r.Delivery.GetUpdateTime().AsTime())):
		return again, nil
	case err != nil && !errors.Is(err, inflight.ErrNotFound):
		return nil, err
	case r == nil:
		return nil, inflight.ErrNotFound
	}
	return r, nil
}

// stored reads a delivery's row in the history store.
func (s *Server) stored(ctx context.Context, dlvID string) (*inflight.Record, error) {
	row, err := s.history.Get(ctx, dlvID)
	if errors.Is(err, history.ErrNotFound) {
		return nil, inflight.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return inflight.FromHistory(row)
}

// GetDelivery returns one delivery.
func (s *Server) GetDelivery(ctx context.Context, req *postbackv1.GetDeliveryRequest) (*postbackv1.Delivery, error) {
	r, err := s.loadRecord(ctx, "id", req.Id)
	if err != nil {
		return nil, err
	}
	return r.Delivery, nil
}

// ListDeliveries returns a page of deliveries, newest first, from the
// history store (a change reaches it within the history writer's lag).
func (s *Server) ListDeliveries(ctx context.Context, req *postbackv1.ListDeliveriesRequest) (*postbackv1.ListDeliveriesResponse, error) {
	bad := &badRequest{}
	if req.AccountId != "" && !id.ValidAccount(req.AccountId) {
		bad.addf("account_id", "want 1-64 characters of A-Z a-z 0-9 _ -, got %q", req.AccountId)
	}
	if req.EndpointId != "" && !id.Valid(id.Endpoint, req.EndpointId) {
		bad.addf("endpoint_id", "want an endpoint id (ep_…), got %q", req.EndpointId)
	}
	if _, ok := postbackv1.DeliveryStatus_name[int32(req.Status)]; !ok {
		bad.addf("status", "unknown status %d", req.Status)
	}
	size, err := pageSize(req.PageSize)
	bad.addErr(err)
	if err := bad.err(); err != nil {
		return nil, err
	}
	account, err := listScope(ctx, req.AccountId)
	if err != nil {
		return nil, err
	}
	q := history.Query{AccountID: account, EndpointID: req.EndpointId, EventID: req.EventId, Limit: size, Cursor: req.PageToken}
	if req.Status != postbackv1.DeliveryStatus_DELIVERY_STATUS_UNSPECIFIED {
		q.Statuses = []postbackv1.DeliveryStatus{req.Status}
	}
	if req.StartTime != nil {
		q.Start = req.StartTime.AsTime()
	}
	if req.EndTime != nil {
		q.End = req.EndTime.AsTime()
	}
	page, err := s.history.List(ctx, q)
	if errors.Is(err, history.ErrBadCursor) {
		return nil, invalid("page_token", "not a page token this list handed out: %q", req.PageToken)
	}
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "%v", err)
	}
	return &postbackv1.ListDeliveriesResponse{Deliveries: page.Deliveries, NextPageToken: page.Next}, nil
}

// validDelivery says why dlvID, given as field, is not a delivery id.
func validDelivery(field, dlvID string) error {
	if !id.Valid(id.Delivery, dlvID) {
		return invalid(field, "want a delivery id (dlv_…), got %q", dlvID)
	}
	return nil
}

// storedAttempts is a history store read of a delivery's attempts.
type storedAttempts struct {
	attempts []*postbackv1.Attempt
	err      error
}

// ListAttempts returns every attempt of a delivery.
func (s *Server) ListAttempts(ctx context.Context, req *postbackv1.ListAttemptsRequest) (*postbackv1.ListAttemptsResponse, error) {
	if err := validDelivery("delivery_id", req.DeliveryId); err != nil {
		return nil, err
	}
	// The history store's attempts are read while the delivery is looked
	// up (and the read is dropped when it is not needed): the answer costs
	// the slower of the two, not both. Nothing read is returned before the
	// caller is known to see the delivery.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stored := make(chan storedAttempts, 1)
	go func() {
		ats, err := s.history.Attempts(sctx, req.DeliveryId)
		stored <- storedAttempts{ats, err}
	}()
	r, err := s.loadRecord(ctx, "delivery_id", req.DeliveryId)
	if err != nil {
		return nil, err
	}
	if r.Delivery.AttemptCount <= 1 && r.Last != nil { // sent once: the record holds it
		return &postbackv1.ListAttemptsResponse{Attempts: []*postbackv1.Attempt{r.Last}}, nil
	}
	// The history store holds every attempt the writer has stored; those
	// replaced since (the writer may be behind) are in ATTEMPTS, which
	// keeps them for attemptsAge (older ones NATS has let go of are
	// stored). A delivery not changed for that long has none left there.
	res := <-stored
	if res.err != nil {
		return nil, status.Errorf(codes.Unavailable, "%v", res.err)
	}
	earlier := res.attempts
	hot := r.Revision != 0 || r.Queued
	if hot || time.Since(r.Delivery.GetUpdateTime().AsTime()) < s.attemptsAge {
		moved, err := s.attempts.List(ctx, r.Delivery.AccountId, r.Delivery.Id)
		if err != nil {
			return nil, status.Errorf(codes.Unavailable, "%v", err)
		}
		earlier = delivery.Merge(earlier, moved)
	}
	return &postbackv1.ListAttemptsResponse{Attempts: delivery.Attempts(earlier, r.Last)}, nil
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
func (s *Server) resend(ctx context.Context, r *inflight.Record) error {
	d := r.Delivery
	switch {
	case d.Status == delivery.InFlight:
		return status.Errorf(codes.FailedPrecondition, "delivery %s is in flight; try again when it has an outcome", d.Id)
	case r.Job == nil:
		return status.Errorf(codes.FailedPrecondition, "delivery %s never rendered (%s); fix the endpoint and publish the event again", d.Id, d.Reason)
	case d.Status == delivery.Pending && d.AttemptCount == 0:
		// Its first send may be under way (the sender sends a first send
		// without a claim): a second copy now could send it twice.
		return status.Errorf(codes.FailedPrecondition, "delivery %s is queued for its first send; try again when it has an outcome", d.Id)
	}
	job := *r.Job
	job.Slot, job.Scheduled = time.Time{}, time.Time{}
	job.EndpointVersion = 0 // a copy: the sender claims it
	job.Sent = int(d.AttemptCount)
	if delivery.Final(d.Status) {
		// A finished delivery gets one more attempt, numbered after the last.
		job.Attempt = r.Job.Attempt + 1
	}
	now := s.now()
	if err := delivery.Resend(now).Apply(d, now); err != nil {
		return status.Errorf(codes.FailedPrecondition, "%v", err)
	}
	r.Job, r.Claim = &job, ""
	if err := s.attempts.Retire(ctx, r); err != nil { // the new attempt will replace the record's latest
		return status.Errorf(codes.Unavailable, "%v", err)
	}
	if err := s.deliveries.Update(ctx, r); err != nil {
		if errors.Is(err, inflight.ErrConflict) {
			return status.Errorf(codes.Aborted, "delivery %s changed meanwhile; try again", d.Id)
		}
		return status.Errorf(codes.Unavailable, "%v", err)
	}
	job.Revision = r.Revision // the sender claims against what was just written
	msgID := stream.ResendID(d.Id, job.Sent, now.UnixNano())
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
	bad := &badRequest{}
	for i, st := range statuses {
		switch st {
		case postbackv1.DeliveryStatus_DELIVERY_STATUS_DEAD, postbackv1.DeliveryStatus_DELIVERY_STATUS_FAILED,
			postbackv1.DeliveryStatus_DELIVERY_STATUS_CANCELLED, postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED:
		default:
			bad.addf(fmt.Sprintf("statuses[%d]", i), "only finished deliveries can be replayed (DEAD, FAILED, CANCELLED, SUCCEEDED), got %s", st)
		}
	}
	if err := bad.err(); err != nil {
		return nil, err
	}
	q := history.Query{AccountID: ep.AccountId, EndpointID: ep.Id, Statuses: statuses, Limit: 500}
	if req.StartTime != nil {
		q.Start = req.StartTime.AsTime()
	}
	if req.EndTime != nil {
		q.End = req.EndTime.AsTime()
	}
	var picked []*inflight.Record
	for {
		page, err := s.history.List(ctx, q)
		if err != nil {
			return nil, status.Errorf(codes.Unavailable, "%v", err)
		}
		for _, d := range page.Deliveries {
			// Read again wherever it is now: its hot record, if it has one,
			// is what a resend compares and sets.
			r, err := s.find(ctx, d.Id)
			if errors.Is(err, inflight.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, status.Errorf(codes.Unavailable, "%v", err)
			}
			if slices.Contains(statuses, r.Delivery.Status) && r.Job != nil {
				picked = append(picked, r)
			}
		}
		if q.Cursor = page.Next; q.Cursor == "" {
			break
		}
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

// cancelPending cancels an endpoint's pending and retrying deliveries with
// reason (inflight.Deliveries.CancelWaiting).
func (s *Server) cancelPending(ctx context.Context, ep *postbackv1.Endpoint, reason string) (int, error) {
	return s.deliveries.CancelWaiting(ctx, s.js, ep.AccountId, ep.Id, reason, s.now())
}
