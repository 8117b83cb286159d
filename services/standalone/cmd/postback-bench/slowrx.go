package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// The slow-receiver scenario: two brands whose servers hold the sender's
// requests, beside a third that answers at once. S answers each request
// after 9 s (within the default 10 s timeout, so every request succeeds,
// slowly); E answers 200 and then sends a body that never ends, on an
// endpoint with a 2 s timeout (so every request times out and waits for
// its retry). What is measured is the third brand's steady 200/s: whether
// the other two tie up the sender it shares with them. Then S is answered
// at once, and every one of its deliveries must arrive exactly once, and
// every one of E's must be waiting for a retry (or, had the sender taken
// the status alone, have succeeded).
const (
	slowAccount    = "bench-slowrx-slow"
	endlessAccount = "bench-slowrx-endless"
	slowEvents     = 2000
	endlessEvents  = 200
	endlessTimeout = 2 * time.Second
	// slowArrivalLimit bounds the wait for S's deliveries once S answers
	// at once: those that timed out meanwhile come back with their retry,
	// the first 15 s after the failure.
	slowArrivalLimit = 120 * time.Second
	// maxListPages bounds the paging through E's deliveries (500 a page).
	maxListPages = 100
)

func (b *bench) slowReceiver(ctx context.Context, name string) (Result, error) {
	slowTag, endlessTag := b.tag("slowrx-slow"), b.tag("slowrx-endless")
	// Whatever happens, the two receivers answer at once when the
	// scenario ends: E's retries (every 15 s at first) and any of S's
	// left must not weigh on the scenarios after this one.
	defer b.rc.answerAtOnce(slowTag)
	defer b.rc.answerAtOnce(endlessTag)
	endless := b.endpointTo(endlessAccount, answerEndless, "slowrx-endless", 0)
	endless.Timeout = durationpb.New(endlessTimeout)
	for _, ep := range []*postbackv1.Endpoint{b.endpointTo(slowAccount, answerSlow, "slowrx-slow", 0), endless} {
		if _, err := b.eps.CreateEndpoint(authed(ctx), &postbackv1.CreateEndpointRequest{Endpoint: ep}); err != nil {
			return Result{}, fmt.Errorf("create the endpoint of %s: %w", ep.AccountId, err)
		}
	}
	progress("%s: publishing %d events to S (answers after %s) and %d to E (endless body, %s timeout)",
		name, slowEvents, slowAnswer, endlessEvents, endlessTimeout)
	if err := b.publishAll(ctx, slowAccount, slowEvents); err != nil {
		return Result{}, err
	}
	if err := b.publishAll(ctx, endlessAccount, endlessEvents); err != nil {
		return Result{}, err
	}
	// The backlogs are backlogs once taken in: every event rendered and
	// every first send taken by the sender (sent, or deferred for want of
	// a place). Taking a burst in is noisy-intake's subject; this one's is
	// what two slow servers do to the sender afterwards.
	began := time.Now()
	held := func() int {
		s, _ := b.rc.tally(slowTag).held(time.Now())
		e, _ := b.rc.tally(endlessTag).held(time.Now())
		return s + e
	}
	if err := b.drained(ctx, 60*time.Second, held); err != nil {
		progress("%s: %v; the steady traffic starts anyway", name, err)
	} else {
		progress("%s: the backlogs were taken in after %s", name, time.Since(began).Round(10*time.Millisecond))
	}
	if b.profile != nil {
		done := b.profile(name)
		defer done()
	}
	progress("%s: steady 200/s for %s to a third endpoint beside S and E", name, b.steady)
	r, err := b.steadyRun(ctx, name, "slowrx-steady", 200, nil)
	if err != nil {
		return r, err
	}
	r.Note = joinNotes(r.Note, b.slowArrivals(ctx, name, slowTag), b.endlessStates(ctx, name, endlessTag))
	return r, nil
}

// slowArrivals switches S to answer at once, waits for all its deliveries
// and describes them: lost, duplicates, and the requests the sender gave
// up on before S answered.
func (b *bench) slowArrivals(ctx context.Context, name, tag string) string {
	t := b.rc.tally(tag)
	before, _, _ := t.counts()
	holding, _ := t.held(time.Now())
	b.rc.answerAtOnce(tag)
	released := time.Now()
	progress("%s: S answers at once now (%d of %d answered before, %d waiting for their answer); waiting up to %s for the rest",
		name, before, slowEvents, holding, slowArrivalLimit)
	wait(ctx, t, slowEvents, slowArrivalLimit)
	distinct, _, dupes := t.counts()
	hangUps, held := t.hangUpCounts()
	t.mu.Lock()
	after := max(0, t.last.Sub(released)).Round(10 * time.Millisecond) // of the last arrival
	t.mu.Unlock()
	progress("%s: %d of S's %d deliveries arrived, the last %s after the switch", name, distinct, slowEvents, after)
	return fmt.Sprintf("S (answers after %s): %d of %d arrived, %d answered before the switch to answering at once (%d then waiting for "+
		"their answer), the last %s after it; lost %d, duplicates %d; %d requests hung up on before the answer (the longest after %s)",
		slowAnswer, distinct, slowEvents, before, holding, after, slowEvents-distinct, dupes,
		hangUps, held.Round(10*time.Millisecond))
}

// endlessStates describes E's deliveries: every one should be waiting for
// its retry (RETRYING, or PENDING if not yet sent) or, had the sender taken
// the status alone, SUCCEEDED; and the receiver's side of them, how long
// the sender read the body that never ends. A delivery IN_FLIGHT is being
// retried as it is listed (E's retries come every 15 s at first, and take
// its share of the sender's workers most of that time): it is looked up
// again once its attempt must have timed out, and passes if it is waiting
// again or on a later attempt.
func (b *bench) endlessStates(ctx context.Context, name, tag string) string {
	progress("%s: listing E's deliveries", name)
	deliveries, err := b.listDeliveries(ctx, endlessAccount)
	if err != nil {
		return fmt.Sprintf("E: listing its deliveries failed: %v", err)
	}
	counts := map[postbackv1.DeliveryStatus]int{}
	var inFlight []*postbackv1.Delivery
	for _, d := range deliveries {
		counts[d.Status]++
		if d.Status == postbackv1.DeliveryStatus_DELIVERY_STATUS_IN_FLIGHT {
			inFlight = append(inFlight, d)
		}
	}
	waiting := counts[postbackv1.DeliveryStatus_DELIVERY_STATUS_RETRYING] + counts[postbackv1.DeliveryStatus_DELIVERY_STATUS_PENDING]
	succeeded := counts[postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED]
	var other []string
	for status, n := range counts {
		if !waitsOrSucceeded(status) {
			other = append(other, fmt.Sprintf("%d %s", n, strings.TrimPrefix(status.String(), "DELIVERY_STATUS_")))
		}
	}
	sort.Strings(other)
	e := fmt.Sprintf("E (endless body, %s timeout): %d deliveries of %d, %d RETRYING or PENDING, %d SUCCEEDED, %d in other states",
		endlessTimeout, len(deliveries), endlessEvents, waiting, succeeded, len(deliveries)-waiting-succeeded)
	if len(other) > 0 {
		e += " (" + strings.Join(other, ", ") + ")"
	}
	stuck := len(deliveries) - waiting - succeeded - len(inFlight) // neither waiting, done nor in flight
	if len(inFlight) > 0 {
		moved, err := b.movedOn(ctx, inFlight)
		if err != nil {
			e += fmt.Sprintf("; looking up the %d IN_FLIGHT again failed: %v", len(inFlight), err)
		} else {
			e += fmt.Sprintf("; of the %d IN_FLIGHT, %d waiting again or on a later attempt %s later", len(inFlight), moved, recheckAfter)
		}
		stuck += len(inFlight) - moved
	}
	verdict := "as expected"
	if stuck > 0 || len(deliveries) != endlessEvents {
		verdict = "NOT as expected"
	}
	t := b.rc.tally(tag)
	_, requests, _ := t.counts()
	hangUps, longest := t.hangUpCounts()
	open, oldest := t.held(time.Now())
	progress("%s: %s: %s", name, e, verdict)
	return fmt.Sprintf("%s: %s; its receiver got %d requests, the sender hung up on %d (the longest after %s), %d still open (the oldest for %s)",
		e, verdict, requests, hangUps, longest.Round(10*time.Millisecond), open, oldest.Round(10*time.Millisecond))
}

// recheckAfter is how long after listing an IN_FLIGHT delivery of E it is
// looked up again: its attempt has timed out by then.
const recheckAfter = 2*endlessTimeout + time.Second

func waitsOrSucceeded(s postbackv1.DeliveryStatus) bool {
	switch s {
	case postbackv1.DeliveryStatus_DELIVERY_STATUS_RETRYING, postbackv1.DeliveryStatus_DELIVERY_STATUS_PENDING,
		postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED:
		return true
	}
	return false
}

// movedOn counts the deliveries (listed IN_FLIGHT) that, recheckAfter
// later, wait for a retry again, have succeeded or are on a later attempt.
func (b *bench) movedOn(ctx context.Context, inFlight []*postbackv1.Delivery) (int, error) {
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(recheckAfter):
	}
	moved := 0
	for _, d := range inFlight {
		now, err := b.deliveries.GetDelivery(authed(ctx), &postbackv1.GetDeliveryRequest{Id: d.Id})
		if err != nil {
			return moved, err
		}
		if waitsOrSucceeded(now.Status) || now.AttemptCount > d.AttemptCount {
			moved++
		}
	}
	return moved, nil
}

// listDeliveries lists account's deliveries, page by page.
func (b *bench) listDeliveries(ctx context.Context, account string) ([]*postbackv1.Delivery, error) {
	var all []*postbackv1.Delivery
	token := ""
	for range maxListPages {
		l, err := b.deliveries.ListDeliveries(authed(ctx), &postbackv1.ListDeliveriesRequest{AccountId: account, PageSize: 500, PageToken: token})
		if err != nil {
			return all, err
		}
		all = append(all, l.Deliveries...)
		if l.NextPageToken == "" {
			return all, nil
		}
		token = l.NextPageToken
	}
	return all, fmt.Errorf("more than %d pages of deliveries", maxListPages)
}

// publishAll publishes n burst events for account, 500 to a PublishBatch.
func (b *bench) publishAll(ctx context.Context, account string, n int) error {
	for from := 0; from < n; from += 500 {
		res, err := b.publishBatch(authed(ctx), account, min(500, n-from), time.Now())
		if err != nil {
			return fmt.Errorf("publish for %s: %w", account, err)
		}
		for _, r := range res.GetResults() {
			if r.Error != nil {
				return fmt.Errorf("publish for %s: %s", account, r.Error.Message)
			}
		}
	}
	return nil
}

// drained waits until every event is rendered and every first send taken
// by the sender, its only unacked jobs the requests the slow servers hold
// open (held) (read from the deployment's streams; without its NATS URL, a
// fixed 5 s).
func (b *bench) drained(ctx context.Context, limit time.Duration, held func() int) error {
	if b.natsURL == "" {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Second):
			return nil
		}
	}
	js, closeNATS, err := b.jetStream("postback-bench-drained")
	if err != nil {
		return err
	}
	defer closeNATS()
	// Messages not yet handed to a consumer, and those handed out and not
	// yet acked. A consumer is handed a batch at a time, so a backlog can
	// be all handed out and still be waiting in the service's buffers: a
	// first version counted only the former, and the steady traffic
	// started while the backlog was still being taken in (a 130-180 ms
	// stall at its start, noisy-intake's subject, not this scenario's).
	waiting := func(stream, prefix string) (pending, acking uint64, err error) {
		st, err := js.Stream(ctx, stream)
		if err != nil {
			return 0, 0, err
		}
		names := st.ConsumerNames(ctx)
		for name := range names.Name() {
			if !strings.HasPrefix(name, prefix) {
				continue
			}
			c, err := st.Consumer(ctx, name)
			if err != nil {
				return 0, 0, err
			}
			info, err := c.Info(ctx)
			if err != nil {
				return 0, 0, err
			}
			pending += info.NumPending
			acking += uint64(info.NumAckPending)
		}
		return pending, acking, names.Err()
	}
	for deadline := time.Now().Add(limit); ; {
		events, rendering, err := waiting("EVENTS", "renderer")
		if err != nil {
			return err
		}
		jobs, sending, err := waiting("DELIVERIES", "sender-p")
		if err != nil {
			return err
		}
		// Every event rendered; every job taken, and those not yet acked
		// are the requests the slow servers hold open (read after the
		// consumers, so a request that arrived meanwhile is counted).
		open := held()
		if events+rendering == 0 && jobs == 0 && sending <= uint64(open) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d events waiting and %d being rendered, %d first sends waiting and %d being sent (%d of them held open by the servers) after %s",
				events, rendering, jobs, sending, open, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
