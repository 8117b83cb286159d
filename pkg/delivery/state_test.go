package delivery

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

var everyState = []Status{None, Pending, InFlight, Succeeded, Retrying, Failed, Dead, Cancelled}

// Each transition leaves only the states the diagram in state.go lets it
// leave; from any other it is refused and changes nothing.
func TestEachTransitionLeavesOnlyTheStatesTheDiagramAllows(t *testing.T) {
	now := time.Date(2026, 4, 8, 9, 0, 0, 0, time.UTC)
	at := &postbackv1.Attempt{Number: 1, StatusCode: 503, Error: "busy", Duration: durationpb.New(time.Second)}
	for _, c := range []struct {
		t    Transition
		from []Status
		to   Status
	}{
		{Enqueue(), []Status{None}, Pending},
		{RenderFailed("template: unknown data point {Foo}"), []Status{None}, Failed},
		{Claim(), []Status{Pending, Retrying, InFlight}, InFlight},
		{Defer(now.Add(time.Minute)), []Status{Pending, Retrying, InFlight}, Pending},
		{Succeed(at, 0), []Status{Pending, InFlight}, Succeeded},
		{Fail(at, 0, "404: the brand's error response"), []Status{Pending, InFlight}, Failed},
		{Retry(at, 0), []Status{Pending, InFlight}, Retrying},
		{Schedule(now.Add(time.Minute)), []Status{Retrying}, Retrying},
		{Kill("all 15 retries failed"), []Status{Retrying}, Dead},
		{Cancel("the endpoint was deleted"), []Status{Pending, InFlight, Retrying}, Cancelled},
		{Resend(now), []Status{Pending, Retrying, Succeeded, Failed, Dead, Cancelled}, Pending},
	} {
		for _, st := range everyState {
			allowed := false
			for _, f := range c.from {
				allowed = allowed || f == st
			}
			d := &postbackv1.Delivery{Id: "dlv_1", Status: st, Reason: "before"}
			before := proto.Clone(d)
			err := c.t.Apply(d, now)
			switch {
			case allowed && err != nil:
				t.Errorf("%s from %s: %v, want it allowed", c.t.Name(), st, err)
			case allowed && d.Status != c.to:
				t.Errorf("%s from %s: now %s, want %s", c.t.Name(), st, d.Status, c.to)
			case !allowed && !errors.Is(err, ErrTransition):
				t.Errorf("%s from %s: error %v, want ErrTransition", c.t.Name(), st, err)
			case !allowed && !proto.Equal(d, before):
				t.Errorf("%s from %s was refused but changed the delivery to %v", c.t.Name(), st, d)
			}
		}
	}
}

// What a transition writes besides the status: the attempt that decided
// it, its reason, the next attempt's time and the update time.
func TestATransitionRecordsTheAttemptReasonAndNextTime(t *testing.T) {
	now := time.Date(2026, 4, 8, 9, 0, 0, 0, time.UTC)
	next := now.Add(30 * time.Second)
	at := &postbackv1.Attempt{Number: 2, StatusCode: 503, Error: "HTTP 503"}
	for _, c := range []struct {
		name string
		from *postbackv1.Delivery
		t    Transition
		want *postbackv1.Delivery
	}{
		{"a failed attempt to retry counts the requests sent and clears the next time",
			&postbackv1.Delivery{Status: InFlight, AttemptCount: 2, NextAttemptTime: timestamppb.New(now)},
			Retry(at, 2),
			&postbackv1.Delivery{Status: Retrying, AttemptCount: 3, LastStatusCode: 503, LastError: "HTTP 503"}},
		{"the retry service sets the next attempt's time",
			&postbackv1.Delivery{Status: Retrying, AttemptCount: 3},
			Schedule(next),
			&postbackv1.Delivery{Status: Retrying, AttemptCount: 3, NextAttemptTime: timestamppb.New(next)}},
		{"a claim keeps the reason and the next time",
			&postbackv1.Delivery{Status: Pending, Reason: "kept", NextAttemptTime: timestamppb.New(next)},
			Claim(),
			&postbackv1.Delivery{Status: InFlight, Reason: "kept", NextAttemptTime: timestamppb.New(next)}},
		{"a deferral sets the next time and keeps the count",
			&postbackv1.Delivery{Status: InFlight, AttemptCount: 1},
			Defer(next),
			&postbackv1.Delivery{Status: Pending, AttemptCount: 1, NextAttemptTime: timestamppb.New(next)}},
		{"a kill says why and has no next time",
			&postbackv1.Delivery{Status: Retrying, NextAttemptTime: timestamppb.New(next)},
			Kill("all 15 retries failed; last: HTTP 503"),
			&postbackv1.Delivery{Status: Dead, Reason: "all 15 retries failed; last: HTTP 503"}},
		{"a resend clears the reason and is due now",
			&postbackv1.Delivery{Status: Dead, Reason: "all 15 retries failed", AttemptCount: 16},
			Resend(now),
			&postbackv1.Delivery{Status: Pending, AttemptCount: 16, NextAttemptTime: timestamppb.New(now)}},
		{"a fail with no request sent keeps the count",
			&postbackv1.Delivery{Status: InFlight, AttemptCount: 1, LastStatusCode: 500},
			Fail(nil, 1, "the endpoint's secrets cannot be opened"),
			&postbackv1.Delivery{Status: Failed, AttemptCount: 1, LastStatusCode: 500, Reason: "the endpoint's secrets cannot be opened"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := c.t.Apply(c.from, now); err != nil {
				t.Fatal(err)
			}
			c.want.UpdateTime = timestamppb.New(now)
			if !proto.Equal(c.from, c.want) {
				t.Fatalf("got  %v\nwant %v", c.from, c.want)
			}
		})
	}
}

// A job read before it has a record stands for a PENDING delivery created
// when the job was.
func TestAQueuedJobStandsForAPendingDelivery(t *testing.T) {
	created := time.Date(2026, 4, 8, 9, 0, 0, 0, time.UTC)
	d := Queued(&Job{DeliveryID: "dlv_1", AccountID: "brand-1", EndpointID: "ep_1", EventID: "evt_1",
		EventType: "action_clearing", Created: created, Sent: 1, LastStatus: 503, LastError: "HTTP 503"})
	want := &postbackv1.Delivery{Id: "dlv_1", AccountId: "brand-1", EndpointId: "ep_1", EventId: "evt_1", EventType: "action_clearing",
		Status: Pending, AttemptCount: 1, LastStatusCode: 503, LastError: "HTTP 503",
		CreateTime: timestamppb.New(created), UpdateTime: timestamppb.New(created)}
	if !proto.Equal(d, want) {
		t.Fatalf("got  %v\nwant %v", d, want)
	}
}
