package gateway

// Endpoint health in the API, and disabling and enabling with who and why.
//
// GetEndpoint and ListEndpoints fill the read-only health block: the run of
// failures and the last success and failure from the health bucket (kept
// by the history writer, pkg/endpointhealth), and the 1 h and 24 h counts
// from the history store. A health that cannot be read leaves the block
// out rather than failing the call: the configuration is still worth
// answering.
//
// A change of the enabled flag through UpdateEndpoint is recorded on the
// endpoint (enabled_changes) with the caller and UpdateEndpointRequest's
// reason. Enabling an endpoint that auto-disable turned off (Holding)
// sends its held deliveries again (replayHeld), and begins auto-disable's
// run again, so the endpoint has a whole allowance before it can be
// disabled again.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/postback-dev/postback/pkg/delivery"
	"github.com/postback-dev/postback/pkg/endpoint"
	"github.com/postback-dev/postback/pkg/endpointhealth"
	"github.com/postback-dev/postback/pkg/endpoints"
	"github.com/postback-dev/postback/pkg/history"
	"github.com/postback-dev/postback/pkg/inflight"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// healthReadTimeout bounds the health block's reads: a slow health bucket
// or history store leaves the block out rather than holding the call.
const healthReadTimeout = 2 * time.Second

// maxReasonBytes bounds UpdateEndpointRequest.reason.
const maxReasonBytes = 1024

// maxAutoDisableAfter bounds auto_disable.after_duration.
const maxAutoDisableAfter = 30 * 24 * time.Hour

// withHealth sets the health block of an endpoint about to be returned.
func (s *Server) withHealth(ctx context.Context, e *postbackv1.Endpoint) *postbackv1.Endpoint {
	if s.health == nil {
		return e
	}
	ctx, cancel := context.WithTimeout(ctx, healthReadTimeout)
	defer cancel()
	st, err := s.health.Get(ctx, e.Id)
	if err != nil {
		s.log.Warn("endpoint health unreadable; answered without it", "endpoint_id", e.Id, "error", err)
		return e
	}
	h := st.Proto()
	if h.LastHour, h.LastDay, err = endpointhealth.Windows(ctx, s.history, e.Id, s.now()); err != nil {
		s.log.Warn("endpoint health counts unreadable; answered without them", "endpoint_id", e.Id, "error", err)
	}
	e.Health = h
	return e
}

// healthReaders bounds the health reads a listing makes at once.
const healthReaders = 8

// withHealthAll sets the health block of each endpoint of a page, reading
// several at once: each costs a KV read and the history store's window
// counts, which one after the other made a page of endpoints wait for the
// sum of their round trips.
func (s *Server) withHealthAll(ctx context.Context, eps []*postbackv1.Endpoint) {
	var wg sync.WaitGroup
	slots := make(chan struct{}, healthReaders)
	for _, e := range eps {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			s.withHealth(ctx, e)
		})
	}
	wg.Wait()
}

// checkAutoDisable adds a violation for each bad auto_disable field.
func checkAutoDisable(bad *badRequest, prefix string, a *postbackv1.AutoDisable) {
	if a == nil {
		return
	}
	if a.AfterFailures < 0 || a.AfterFailures > 1_000_000 {
		bad.addf(prefix+"after_failures", "must be between 0 and 1000000, got %d", a.AfterFailures)
	}
	if d := a.AfterDuration; d != nil {
		if err := d.CheckValid(); err != nil || d.AsDuration() < 0 || d.AsDuration() > maxAutoDisableAfter {
			bad.addf(prefix+"after_duration", "must be between 0 and %s", maxAutoDisableAfter)
		}
	}
}

// clearOutputOnly drops what a caller may not write on an endpoint.
func clearOutputOnly(e *postbackv1.Endpoint) {
	e.Health = nil
	e.EnabledChanges = nil
}

// recordEnabled records a change of the enabled flag made by UpdateEndpoint
// (old to e) with the caller and why.
func (s *Server) recordEnabled(ctx context.Context, old, e *postbackv1.Endpoint, reason string) {
	was, now := endpoint.Enabled(old), endpoint.Enabled(e)
	if was == now {
		return
	}
	endpoint.RecordEnabledChange(e, now, caller(ctx).String(), reason, false, s.now())
}

// reenabled finishes enabling an endpoint that was disabled: its held
// deliveries are sent again (when auto-disable held them) and the count is
// recorded on the endpoint's latest change; auto-disable's run begins
// again.
func (s *Server) reenabled(ctx context.Context, old, e *postbackv1.Endpoint) (int, error) {
	if s.health != nil {
		hctx, cancel := context.WithTimeout(ctx, healthReadTimeout)
		_, _, err := s.health.Update(hctx, e.Id, func(st *endpointhealth.State) endpointhealth.Change {
			st.Rearm()
			return endpointhealth.Change{}
		})
		cancel()
		if err != nil {
			s.log.Warn("auto-disable's run not begun again", "endpoint_id", e.Id, "error", err)
		}
	}
	if !endpoint.Holding(old) {
		return 0, nil
	}
	n, err := s.replayHeld(ctx, e)
	if err != nil {
		return n, err
	}
	// Deliveries held just before the enable may reach the history a moment
	// later (the writer's lag), and a sender may hold one more before it
	// sees the endpoint enabled: a second pass a little later sends those.
	go func() {
		ctx := context.WithoutCancel(ctx)
		time.Sleep(heldSecondPass)
		if m, err := s.replayHeld(ctx, e); err != nil {
			s.log.Warn("second pass over held deliveries failed; ReplayDeliveries with status CANCELLED sends them", "endpoint_id", e.Id, "error", err)
		} else if m > 0 {
			s.log.Info("held deliveries sent again (second pass)", "endpoint_id", e.Id, "count", m)
		}
	}()
	return n, nil
}

// heldSecondPass is when replayHeld runs again after an enable.
const heldSecondPass = 5 * time.Second

// replayHeld sends again every delivery of the endpoint that auto-disable
// held: CANCELLED with endpoint.ReasonHeld, found in the hot state and in
// the history store.
func (s *Server) replayHeld(ctx context.Context, ep *postbackv1.Endpoint) (int, error) {
	held := map[string]*inflight.Record{}
	isHeld := func(r *inflight.Record) bool {
		return r.Delivery.Status == delivery.Cancelled && r.Delivery.Reason == endpoint.ReasonHeld && r.Job != nil
	}
	if err := s.deliveries.EachOfEndpoint(ctx, ep.AccountId, ep.Id, func(r *inflight.Record) bool {
		if isHeld(r) {
			held[r.Delivery.Id] = r
		}
		return true
	}); err != nil {
		return 0, err
	}
	q := history.Query{AccountID: ep.AccountId, EndpointID: ep.Id, Statuses: []postbackv1.DeliveryStatus{delivery.Cancelled}, Limit: 500}
	for {
		page, err := s.history.List(ctx, q)
		if err != nil {
			return 0, err
		}
		for _, d := range page.Deliveries {
			if d.Reason != endpoint.ReasonHeld || held[d.Id] != nil {
				continue
			}
			r, err := s.find(ctx, d.Id)
			if errors.Is(err, inflight.ErrNotFound) {
				continue
			}
			if err != nil {
				return 0, err
			}
			if isHeld(r) {
				held[d.Id] = r
			}
		}
		if q.Cursor = page.Next; q.Cursor == "" {
			break
		}
	}
	ids := make([]string, 0, len(held))
	for id := range held {
		ids = append(ids, id)
	}
	slices.Sort(ids) // oldest first: ids begin with their time
	n := 0
	for _, id := range ids {
		if err := s.resend(ctx, held[id]); err != nil {
			if c := status.Code(err); c == codes.Aborted || c == codes.FailedPrecondition {
				continue // moved on meanwhile
			}
			return n, fmt.Errorf("send held delivery %s again: %w", id, err)
		}
		n++
	}
	return n, nil
}

// checkReason checks UpdateEndpointRequest.reason.
func checkReason(bad *badRequest, reason string) {
	if len(reason) > maxReasonBytes {
		bad.addf("reason", "at most %d bytes, got %d", maxReasonBytes, len(reason))
	} else if !utf8.ValidString(reason) {
		bad.add("reason", "not valid UTF-8")
	}
}

// finishEnable runs after an update enabled a disabled endpoint: held
// deliveries are sent again and how many is recorded on the change.
func (s *Server) finishEnable(ctx context.Context, old, e *postbackv1.Endpoint) error {
	n, err := s.reenabled(ctx, old, e)
	if n > 0 {
		if l := len(e.EnabledChanges); l > 0 {
			e.EnabledChanges[l-1].Replayed = int32(n)
		}
		if _, perr := s.endpoints.Modify(ctx, endpoints.Key(e), func(cur *postbackv1.Endpoint) bool {
			if l := len(cur.EnabledChanges); l > 0 && cur.EnabledChanges[l-1].Enabled {
				cur.EnabledChanges[l-1].Replayed = int32(n)
				return true
			}
			return false
		}); perr != nil {
			s.log.Warn("recording how many held deliveries were sent again failed", "endpoint_id", e.Id, "error", perr)
		}
		s.log.Info("held deliveries sent again", "endpoint_id", e.Id, "count", n)
	}
	if err != nil {
		return status.Errorf(codes.Unavailable, "endpoint enabled, but sending its held deliveries again failed after %d (enable it again, or ReplayDeliveries with status CANCELLED): %v", n, err)
	}
	return nil
}
