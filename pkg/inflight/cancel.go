package inflight

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/postback-dev/postback/pkg/delivery"
	"github.com/postback-dev/postback/pkg/stream"
)

// CancelWaiting cancels an endpoint's pending and retrying deliveries with
// reason (the endpoint was deleted or disabled, or its deliveries are held):
// their schedules are purged and their records say why. A job already
// queued for the sender is dropped there, since its record is CANCELLED
// (or, queued with no record, the sender cancels it itself on finding the
// endpoint disabled). It returns how many it cancelled; one that moved on
// meanwhile (in flight) is left to the sender and the retry service, which
// check the endpoint too.
func (s *Deliveries) CancelWaiting(ctx context.Context, js jetstream.JetStream, accountID, endpointID, reason string, now time.Time) (int, error) {
	var waiting []*Record
	if err := s.EachOfEndpoint(ctx, accountID, endpointID, func(r *Record) bool {
		if st := r.Delivery.Status; st == delivery.Pending || st == delivery.Retrying {
			waiting = append(waiting, r)
		}
		return true
	}); err != nil {
		return 0, err
	}
	n := 0
	for _, r := range waiting {
		if err := stream.CancelSchedule(ctx, js, r.Delivery.Id); err != nil {
			return n, err
		}
		if err := delivery.Cancel(reason).Apply(r.Delivery, now); err != nil {
			continue // moved on since it was listed
		}
		if err := s.Update(ctx, r); err != nil {
			if errors.Is(err, ErrConflict) {
				continue
			}
			return n, err
		}
		n++
	}
	return n, nil
}
