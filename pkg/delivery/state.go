// Package delivery is the home of a delivery's life: the Job that is its
// rendered request, and every change of its state as one named transition.
// It knows no broker and no store: the services decide when a transition
// happens, pkg/inflight writes the result (every record write goes through
// one guarded write, Deliveries.write, a compare-and-set where it must be),
// and the history store keeps it.
//
// The states, and the transitions between them:
//
//	        Enqueue                          RenderFailed ──▶ FAILED
//	           │
//	           ▼        Defer (limits, share)
//	        PENDING ◀───────────────┐
//	           │  Claim             │
//	           ▼                    │
//	       IN_FLIGHT ───────────────┘
//	           ├── Succeed ──▶ SUCCEEDED
//	           ├── Fail ─────▶ FAILED
//	           └── Retry ────▶ RETRYING ── Schedule (next time) ── Claim ──▶ IN_FLIGHT …
//	                                  └── Kill (retries spent) ──▶ DEAD
//
//	Cancel: PENDING, RETRYING or IN_FLIGHT ──▶ CANCELLED (endpoint deleted or
//	disabled, or its pending deliveries cancelled)
//	Resend (RetryDelivery, ReplayDeliveries): any state but IN_FLIGHT ──▶ PENDING
//
// A first send is sent without a claim (its job is the delivery's only
// copy), so Succeed, Fail and Retry also leave PENDING; every other copy
// of a job claims the attempt first (services/sender).
//
// SUCCEEDED, FAILED, DEAD and CANCELLED are final (Final): nothing moves a
// delivery out of them but a person, through Resend.
//
// Failure policy: a transition applied to a delivery in a state it may
// not leave is refused (ErrTransition) and changes nothing; the caller
// treats the delivery as moved on by someone else, as it treats a lost
// compare-and-set.
package delivery

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// Status is a delivery's state as the API names it.
type Status = postbackv1.DeliveryStatus

// The states.
const (
	None      Status = postbackv1.DeliveryStatus_DELIVERY_STATUS_UNSPECIFIED // not created yet
	Pending   Status = postbackv1.DeliveryStatus_DELIVERY_STATUS_PENDING
	InFlight  Status = postbackv1.DeliveryStatus_DELIVERY_STATUS_IN_FLIGHT
	Succeeded Status = postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED
	Retrying  Status = postbackv1.DeliveryStatus_DELIVERY_STATUS_RETRYING
	Failed    Status = postbackv1.DeliveryStatus_DELIVERY_STATUS_FAILED
	Dead      Status = postbackv1.DeliveryStatus_DELIVERY_STATUS_DEAD
	Cancelled Status = postbackv1.DeliveryStatus_DELIVERY_STATUS_CANCELLED
)

// Final reports whether a status is the end of a delivery's life (until a
// person sends it again).
func Final(st Status) bool {
	switch st {
	case Succeeded, Failed, Dead, Cancelled:
		return true
	}
	return false
}

// ErrTransition says a transition does not leave the delivery's state.
var ErrTransition = errors.New("transition not allowed")

// Transition is one named change of a delivery's state: made by one of the
// constructors below, applied by Apply.
type Transition struct {
	name    string
	from    []Status // the states it may leave
	to      Status
	reason  string
	keep    bool                // keep the reason the delivery has
	next    time.Time           // the next attempt's time; zero: none
	attempt *postbackv1.Attempt // the attempt that decided it, if any
	sent    int                 // requests sent before that attempt
}

var (
	unfinished = []Status{Pending, InFlight, Retrying}
	sendable   = []Status{Pending, Retrying, InFlight} // InFlight: re-claimed under the same claim
	sending    = []Status{Pending, InFlight}           // a first send goes unclaimed
	resendable = []Status{Pending, Retrying, Succeeded, Failed, Dead, Cancelled}
)

// Enqueue is a new delivery queued for its first send.
func Enqueue() Transition { return Transition{name: "enqueue", from: []Status{None}, to: Pending} }

// RenderFailed is a new delivery whose request could not be rendered: it
// fails at once, with the reason.
func RenderFailed(reason string) Transition {
	return Transition{name: "render failed", from: []Status{None}, to: Failed, reason: reason}
}

// Claim moves a delivery to IN_FLIGHT before a copy of its job sends it.
func Claim() Transition { return Transition{name: "claim", from: sendable, to: InFlight, keep: true} }

// Defer sends the delivery back to PENDING until next: its endpoint's
// limits or its share of the sender's workers put its turn later.
func Defer(next time.Time) Transition {
	return Transition{name: "defer", from: sendable, to: Pending, next: next, keep: true}
}

// Succeed records the attempt that delivered it (sent requests before it).
func Succeed(at *postbackv1.Attempt, sent int) Transition {
	return Transition{name: "succeed", from: sending, to: Succeeded, attempt: at, sent: sent}
}

// Fail ends the delivery with the reason, after the attempt that decided
// it (nil when no request was sent).
func Fail(at *postbackv1.Attempt, sent int, reason string) Transition {
	return Transition{name: "fail", from: sending, to: Failed, attempt: at, sent: sent, reason: reason}
}

// Retry records a failed attempt that the retry schedule will follow up.
func Retry(at *postbackv1.Attempt, sent int) Transition {
	return Transition{name: "retry", from: sending, to: Retrying, attempt: at, sent: sent}
}

// Schedule sets the time of a retrying delivery's next attempt.
func Schedule(next time.Time) Transition {
	return Transition{name: "schedule", from: []Status{Retrying}, to: Retrying, next: next}
}

// Kill ends a retrying delivery whose retries are all spent.
func Kill(reason string) Transition {
	return Transition{name: "kill", from: []Status{Retrying}, to: Dead, reason: reason}
}

// Cancel ends an unfinished delivery: its endpoint was deleted or disabled,
// or its pending deliveries were cancelled.
func Cancel(reason string) Transition {
	return Transition{name: "cancel", from: unfinished, to: Cancelled, reason: reason}
}

// Resend queues a delivery again at a person's request (RetryDelivery,
// ReplayDeliveries): any state but IN_FLIGHT.
func Resend(now time.Time) Transition {
	return Transition{name: "resend", from: resendable, to: Pending, next: now}
}

// Name is the transition's name, for logs and errors.
func (t Transition) Name() string { return t.name }

// To is the state the transition leads to.
func (t Transition) To() Status { return t.to }

// Apply makes the transition on d at now: its status, reason, next attempt
// time, update time and, when an attempt decided it, the attempt count and
// last result. This is the one place a delivery's status is set. A
// delivery in a state the transition may not leave is left as it is, and
// the error wraps ErrTransition.
func (t Transition) Apply(d *postbackv1.Delivery, now time.Time) error {
	if !slices.Contains(t.from, d.Status) {
		return fmt.Errorf("%s delivery %s: it is %s: %w", t.name, d.Id, d.Status, ErrTransition)
	}
	d.Status = t.to
	if !t.keep {
		d.Reason = t.reason
	}
	if !t.next.IsZero() {
		d.NextAttemptTime = timestamppb.New(t.next)
	} else if !t.keep {
		d.NextAttemptTime = nil
	}
	d.UpdateTime = timestamppb.New(now)
	if t.attempt != nil {
		d.AttemptCount = int32(t.sent + 1)
		d.LastStatusCode, d.LastError = t.attempt.StatusCode, t.attempt.Error
	}
	return nil
}

// Queued is the delivery a job stands for while no record is written for
// it (or as it was when the job was written): PENDING, created when the
// job was, with the counts and last result the job carries.
func Queued(job *Job) *postbackv1.Delivery {
	d := &postbackv1.Delivery{
		Id: job.DeliveryID, AccountId: job.AccountID, EndpointId: job.EndpointID, EventId: job.EventID,
		EventType: job.EventType, AttemptCount: int32(job.Sent), LastStatusCode: int32(job.LastStatus), LastError: job.LastError,
		CreateTime: timestamppb.New(job.Created),
	}
	_ = Enqueue().Apply(d, job.Created) // a new delivery: always allowed
	return d
}
