package historian

// Endpoint health, auto-disable and operational events.
//
// The writer sees every attempt, so after it has stored a batch it hands
// the batch to the health keeper, which:
//
//   - applies each counted attempt (endpointhealth.Counted) to its
//     endpoint's health, in the order they started, with compare-and-set
//     on the health bucket (several writers may run);
//   - publishes endpoint.failing when a run of failures reaches
//     endpointhealth.FailingAfter, and endpoint.recovered when a success
//     ends a run that was failing or disabled: only the writer whose
//     compare-and-set made that change publishes it;
//   - disables an endpoint whose auto-disable rule (its own, or its
//     account's default) the run meets: the endpoint is written with
//     compare-and-set (enabled off, the change recorded with who and why,
//     marked as holding its deliveries), and endpoint.disabled is
//     published. The writer does not touch the deliveries: each waiting
//     one is held (CANCELLED with endpoint.ReasonHeld, which a re-enable
//     replays) by the sender or the retry service when its next attempt
//     comes due and finds the endpoint disabled, as a disabled endpoint's
//     deliveries always were cancelled; so the writer needs no right to
//     write delivery records or schedules, and a delivery being sent at
//     the moment is never raced.
//   - publishes delivery.dead for each delivery that went DEAD.
//
// Failure policy: the keeper never holds up the history. The writer hands
// it each stored batch without waiting (a queue of maxKeeperBatches; when
// full, a batch is passed over and logged), and it works through them in
// order in a goroutine of its own, each step bounded by keeperStepTimeout.
// A step that fails (NATS unavailable) is logged and the keeper goes on:
// the health misses those attempts, an event may be missing, and a disable
// is made at the run's next failure.
// The windowed counts of the health block are read from the history store
// itself, so they never miss anything.

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/postback-dev/postback/pkg/accounts"
	"github.com/postback-dev/postback/pkg/delivery"
	"github.com/postback-dev/postback/pkg/endpoint"
	"github.com/postback-dev/postback/pkg/endpointhealth"
	"github.com/postback-dev/postback/pkg/endpoints"
	"github.com/postback-dev/postback/pkg/event"
	"github.com/postback-dev/postback/pkg/history"
	"github.com/postback-dev/postback/pkg/id"
	"github.com/postback-dev/postback/pkg/opsevents"
	"github.com/postback-dev/postback/pkg/stream"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

type healthKeeper struct {
	js        jetstream.JetStream
	health    *endpointhealth.Store
	endpoints *endpoints.Store
	cache     *endpoints.Cache
	accounts  *accounts.Store
	log       *slog.Logger
	now       func() time.Time

	queue chan []history.Entry // stored batches, in order (hand, run)

	mu       sync.Mutex
	defaults map[string]accountDefault       // account → its auto-disable default, briefly
	written  map[string]endpointhealth.State // endpoint → the health this keeper last wrote (quiet)
}

// quietFor is how stale last_success_time may be: a batch of successes on
// an endpoint this keeper last wrote healthy, within quietFor of the
// success it wrote, is not written (a busy healthy endpoint would cost a
// write per batch). Another writer's failures meanwhile are ended at most
// quietFor late, by the next success written.
const quietFor = time.Second

// quiet reports whether a batch of outcomes can go unwritten (quietFor).
func (k *healthKeeper) quiet(endpointID string, outcomes []endpointhealth.Outcome) bool {
	k.mu.Lock()
	last, ok := k.written[endpointID]
	k.mu.Unlock()
	if !ok || last.ConsecutiveFailures != 0 || last.Announced || last.Disabled {
		return false
	}
	for _, o := range outcomes {
		if !o.Success || o.At.Sub(last.LastSuccess) >= quietFor {
			return false
		}
	}
	return true
}

// wrote remembers the health written for an endpoint (bounded).
func (k *healthKeeper) wrote(endpointID string, st endpointhealth.State) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.written) >= 100_000 {
		clear(k.written)
	}
	k.written[endpointID] = st
}

type accountDefault struct {
	rule *postbackv1.AutoDisable
	read time.Time
}

// accountDefaultTTL is how long an account's auto-disable default is
// reused before it is read again.
const accountDefaultTTL = 10 * time.Second

func newHealthKeeper(ctx context.Context, js jetstream.JetStream, log *slog.Logger) (*healthKeeper, error) {
	hs, err := endpointhealth.OpenStore(ctx, js)
	if err != nil {
		return nil, err
	}
	eps, err := endpoints.OpenStore(ctx, js)
	if err != nil {
		return nil, err
	}
	cache, err := endpoints.NewCache(ctx, eps, 0)
	if err != nil {
		return nil, err
	}
	acc, err := accounts.OpenStore(ctx, js)
	if err != nil {
		return nil, err
	}
	return &healthKeeper{js: js, health: hs, endpoints: eps, cache: cache, accounts: acc, log: log, now: time.Now,
		defaults: map[string]accountDefault{}, written: map[string]endpointhealth.State{}, queue: make(chan []history.Entry, maxKeeperBatches)}, nil
}

// Bounds of the keeper's work.
const (
	maxKeeperBatches  = 256
	keeperStepTimeout = 5 * time.Second
)

// hand queues a stored batch for the keeper; it never waits.
func (k *healthKeeper) hand(entries []history.Entry) {
	select {
	case k.queue <- entries:
	default:
		k.log.Warn("endpoint health behind; a stored batch is passed over (its attempts are not counted)", "changes", len(entries))
	}
}

// run works through the queued batches until ctx ends.
func (k *healthKeeper) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case entries := <-k.queue:
			k.observe(ctx, entries)
		}
	}
}

// endpointOutcomes are one endpoint's counted attempts in a batch.
type endpointOutcomes struct {
	accountID, endpointID, eventType string
	outcomes                         []endpointhealth.Outcome
}

// observe applies a stored batch to health and publishes what follows.
func (k *healthKeeper) observe(ctx context.Context, entries []history.Entry) {
	byEndpoint := map[string]*endpointOutcomes{}
	var order []string
	for _, e := range entries {
		d := e.Delivery
		if d.GetStatus() == delivery.Dead {
			k.publishWithin(ctx, &postbackv1.OperationalEvent{
				Id:   opsevents.ID(opsevents.DeliveryDead, fmt.Sprintf("%s:%d", d.Id, d.AttemptCount)),
				Type: opsevents.DeliveryDead, AccountId: d.AccountId, EndpointId: d.EndpointId, DeliveryId: d.Id,
				Time: d.UpdateTime, Reason: d.Reason,
			}, d.EventType)
		}
		o, ok := endpointhealth.Counted(d, e.Attempt)
		if !ok {
			continue
		}
		eo := byEndpoint[d.EndpointId]
		if eo == nil {
			eo = &endpointOutcomes{accountID: d.AccountId, endpointID: d.EndpointId, eventType: d.EventType}
			byEndpoint[d.EndpointId] = eo
			order = append(order, d.EndpointId)
		}
		eo.outcomes = append(eo.outcomes, o)
	}
	for _, id := range order {
		eo := byEndpoint[id]
		slices.SortStableFunc(eo.outcomes, func(a, b endpointhealth.Outcome) int { return a.At.Compare(b.At) })
		sctx, cancel := context.WithTimeout(ctx, keeperStepTimeout)
		err := k.apply(sctx, eo)
		cancel()
		if err != nil && ctx.Err() == nil {
			k.log.Warn("endpoint health not updated; it misses these attempts", "endpoint_id", id, "attempts", len(eo.outcomes), "error", err)
		}
	}
}

// apply updates one endpoint's health, publishes its events and disables
// it when its rule says so.
func (k *healthKeeper) apply(ctx context.Context, eo *endpointOutcomes) error {
	if k.quiet(eo.endpointID, eo.outcomes) {
		return nil
	}
	ep, err := k.cache.ForJob(ctx, &delivery.Job{AccountID: eo.accountID, EventType: eo.eventType, EndpointID: eo.endpointID})
	if err != nil {
		ep = nil // deleted meanwhile: its health is still kept, and read by nobody
	}
	failingAfter := endpointhealth.FailingAfter
	var rule endpoint.AutoDisablePolicy
	if ep != nil {
		if rule = endpoint.AutoDisableOf(ep, k.accountDefault(ctx, eo.accountID)); rule.On {
			failingAfter = min(failingAfter, rule.Failures)
		}
	}
	st, change, err := k.health.Update(ctx, eo.endpointID, func(s *endpointhealth.State) endpointhealth.Change {
		return s.Apply(eo.outcomes, failingAfter)
	})
	if err != nil {
		return err
	}
	k.wrote(eo.endpointID, st)
	if change.Failing {
		k.log.Warn("endpoint failing", "endpoint_id", eo.endpointID, "account_id", eo.accountID,
			"consecutive_failures", st.ConsecutiveFailures, "last_failure_reason", st.LastFailureReason)
		k.publish(ctx, k.endpointEvent(opsevents.EndpointFailing, eo, st, st.FailingSince,
			fmt.Sprintf("%d failed attempts in a row since %s; last: %s", st.ConsecutiveFailures, st.FailingSince.UTC().Format(time.RFC3339), st.LastFailureReason)), eo.eventType)
	}
	if change.Recovered {
		k.log.Info("endpoint recovered", "endpoint_id", eo.endpointID, "account_id", eo.accountID)
		k.publish(ctx, k.endpointEvent(opsevents.EndpointRecovered, eo, st, st.LastSuccess, "an attempt succeeded"), eo.eventType)
	}
	if ep != nil && endpoint.Enabled(ep) && rule.Due(st.DisableRunFailures, st.DisableRunSince, st.LastFailure) {
		return k.disable(ctx, eo, ep, st, rule)
	}
	return nil
}

// disable turns the endpoint off, holds its waiting deliveries and
// publishes endpoint.disabled.
func (k *healthKeeper) disable(ctx context.Context, eo *endpointOutcomes, ep *postbackv1.Endpoint, st endpointhealth.State, rule endpoint.AutoDisablePolicy) error {
	now := k.now()
	reason := fmt.Sprintf("%d failed attempts in a row over %s (auto-disable: at least %d over %s); last: %s",
		st.DisableRunFailures, st.LastFailure.Sub(st.DisableRunSince).Round(time.Millisecond), rule.Failures, rule.After, st.LastFailureReason)
	changed := false
	_, err := k.endpoints.Modify(ctx, endpoints.Key(ep), func(e *postbackv1.Endpoint) bool {
		if !endpoint.Enabled(e) {
			changed = false
			return false // disabled meanwhile, by a person or another writer
		}
		endpoint.RecordEnabledChange(e, false, endpoint.ActorAutoDisable, reason, true, now)
		e.UpdateTime = timestamppb.New(now)
		changed = true
		return true
	})
	if err != nil || !changed {
		return err
	}
	k.log.Warn("endpoint disabled automatically; its deliveries are held", "endpoint_id", ep.Id, "account_id", ep.AccountId, "reason", reason)
	if _, _, err := k.health.Update(ctx, ep.Id, func(s *endpointhealth.State) endpointhealth.Change {
		s.Disabled = true
		return endpointhealth.Change{}
	}); err != nil {
		k.log.Warn("marking the endpoint's run as disabled failed", "endpoint_id", ep.Id, "error", err)
	}
	st.Disabled = true
	k.publish(ctx, k.endpointEvent(opsevents.EndpointDisabled, eo, st, now, reason), eo.eventType)
	return nil
}

func (k *healthKeeper) endpointEvent(typ string, eo *endpointOutcomes, st endpointhealth.State, at time.Time, reason string) *postbackv1.OperationalEvent {
	return &postbackv1.OperationalEvent{
		Id:   opsevents.EndpointEventID(typ, eo.endpointID, at),
		Type: typ, AccountId: eo.accountID, EndpointId: eo.endpointID,
		Time: timestamppb.New(at), Reason: reason, Health: st.Proto(),
	}
}

// publish stores an operational event in OPERATIONS and, unless it is
// about an endpoint that itself receives operational events (which could
// feed on its own failures), sends it to the account's endpoints of type
// operational_event as an event (forward).
func (k *healthKeeper) publish(ctx context.Context, ev *postbackv1.OperationalEvent, aboutType string) {
	for try := range 3 {
		err := opsevents.Publish(ctx, k.js, ev)
		if err == nil && aboutType != event.OperationalEvent {
			err = k.forward(ctx, ev)
		}
		if err == nil {
			return
		}
		if try == 2 || ctx.Err() != nil {
			k.log.Warn("operational event not published", "event_id", ev.Id, "type", ev.Type, "endpoint_id", ev.EndpointId, "error", err)
			return
		}
		sleep(ctx, 100*time.Millisecond)
	}
}

// publishWithin is publish bounded by keeperStepTimeout.
func (k *healthKeeper) publishWithin(ctx context.Context, ev *postbackv1.OperationalEvent, aboutType string) {
	ctx, cancel := context.WithTimeout(ctx, keeperStepTimeout)
	defer cancel()
	k.publish(ctx, ev, aboutType)
}

// forward publishes an operational event to EVENTS as an event of type
// operational_event of its account, so the account's endpoints of that
// type receive it as a postback: rendered, limited, signed and retried as
// any other. Its event id is derived from the operational event's, which
// is also its Nats-Msg-Id: a second publish within the events' dedupe
// window (1 h) is dropped.
func (k *healthKeeper) forward(ctx context.Context, ev *postbackv1.OperationalEvent) error {
	at := ev.Time.AsTime()
	data := map[string]any{"OperationalEventId": ev.Id, "Type": ev.Type, "EndpointId": ev.EndpointId,
		"OccurredAt": at.UTC().Format(time.RFC3339Nano), "Reason": ev.Reason}
	if ev.DeliveryId != "" {
		data["DeliveryId"] = ev.DeliveryId
	}
	if h := ev.Health; h != nil {
		data["ConsecutiveFailures"] = int64(h.ConsecutiveFailures)
		if h.FailingSince != nil {
			data["FailingSince"] = h.FailingSince.AsTime().UTC().Format(time.RFC3339Nano)
		}
		if h.LastFailureReason != "" {
			data["LastFailureReason"] = h.LastFailureReason
		}
	}
	e := &stream.Event{ID: id.Derive(id.Event, at, ev.Id), AccountID: ev.AccountId, Type: event.OperationalEvent, Time: at, Data: data}
	body, err := stream.EncodeEvent(e)
	if err != nil {
		return fmt.Errorf("encode operational event %s: %w", ev.Id, err)
	}
	if _, err := stream.Publish(ctx, k.js.Conn(), stream.NewMsg(ctx, stream.EventSubject(e.Type, e.AccountID), body, ev.Id)); err != nil {
		return fmt.Errorf("send operational event %s to the account's endpoints: %w", ev.Id, err)
	}
	return nil
}

// accountDefault is the account's auto-disable default (nil: none), read
// at most every accountDefaultTTL.
func (k *healthKeeper) accountDefault(ctx context.Context, accountID string) *postbackv1.AutoDisable {
	now := k.now()
	k.mu.Lock()
	d, ok := k.defaults[accountID]
	k.mu.Unlock()
	if ok && now.Sub(d.read) < accountDefaultTTL {
		return d.rule
	}
	st, err := k.accounts.Get(ctx, accountID)
	if err != nil {
		k.log.Warn("account settings unreadable; using the last known", "account_id", accountID, "error", err)
		return d.rule
	}
	k.mu.Lock()
	if len(k.defaults) > 100_000 {
		clear(k.defaults)
	}
	k.defaults[accountID] = accountDefault{rule: st.AutoDisable, read: now}
	k.mu.Unlock()
	return st.AutoDisable
}
