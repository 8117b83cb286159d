package endpoint

// Disabling and enabling, by a person or by auto-disable.
//
// An endpoint disabled by a person cancels its waiting deliveries
// (ReasonDisabled), as it always has. An endpoint disabled by auto-disable
// (after a long run of failed attempts) holds them instead: they are
// CANCELLED with ReasonHeld, keep their rendered request in the history,
// and enabling the endpoint again sends them (the gateway replays every
// held delivery of the endpoint). While it is held, new events are still
// rendered for it and held the same way, so nothing meant for it is lost.
// Each change is recorded on the endpoint (enabled_changes) with who and
// why.

import (
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// ReasonHeld is why a delivery of an auto-disabled endpoint is CANCELLED:
// held, to be sent again when the endpoint is enabled.
const ReasonHeld = "held: the endpoint was disabled automatically after failing; enabling it again sends this delivery"

// ActorAutoDisable is who an automatic disable is recorded as.
const ActorAutoDisable = "postback (auto-disable)"

// MaxEnabledChanges is how many enabled_changes an endpoint keeps.
const MaxEnabledChanges = 10

// Auto-disable defaults. A failure is a failed attempt (a retry counts as
// one). The seed's retry schedule spans about 31 hours from a first send to
// its 15th retry (15 s ×3, 3 m ×2, 15 m ×3, 2 h ×3, 6 h ×4), so:
//   - 24 hours of failures, shorter than that schedule: the first delivery
//     of an outage is still RETRYING when its endpoint is disabled, so an
//     outage auto-disable catches sends nothing to DEAD; every delivery is
//     held instead. A day also rides out a night's maintenance window or a
//     weekend-morning deploy gone wrong without a person's action.
//   - 20 failures, more than one delivery's whole schedule (16 attempts):
//     a single poison delivery that the receiver always refuses can never
//     disable an endpoint by itself; it takes two or more deliveries failing
//     with nothing succeeding in between.
const (
	DefaultAutoDisableFailures = 20
	DefaultAutoDisableAfter    = 24 * time.Hour
)

// AutoDisablePolicy is an endpoint's effective auto-disable rule.
type AutoDisablePolicy struct {
	On       bool
	Failures int           // failed attempts in a row, at least
	After    time.Duration // the run's length, at least
}

// AutoDisableOf is the endpoint's rule: its own auto_disable when set, else
// the account's default (nil: none, off).
func AutoDisableOf(e *postbackv1.Endpoint, accountDefault *postbackv1.AutoDisable) AutoDisablePolicy {
	a := e.GetAutoDisable()
	if a == nil {
		a = accountDefault
	}
	if a == nil || !a.Enabled {
		return AutoDisablePolicy{}
	}
	p := AutoDisablePolicy{On: true, Failures: int(a.AfterFailures), After: a.GetAfterDuration().AsDuration()}
	if p.Failures <= 0 {
		p.Failures = DefaultAutoDisableFailures
	}
	if a.AfterDuration == nil {
		p.After = DefaultAutoDisableAfter
	}
	return p
}

// Due reports whether a run of failures (count, from first to last) is
// long enough to disable the endpoint.
func (p AutoDisablePolicy) Due(failures int, first, last time.Time) bool {
	return p.On && failures >= p.Failures && !first.IsZero() && last.Sub(first) >= p.After
}

// Holding reports whether the endpoint is disabled with its deliveries
// held (by auto-disable), rather than cancelled.
func Holding(e *postbackv1.Endpoint) bool {
	if Enabled(e) {
		return false
	}
	n := len(e.GetEnabledChanges())
	return n > 0 && e.EnabledChanges[n-1].Held && !e.EnabledChanges[n-1].Enabled
}

// DisabledReason is why a waiting delivery of a disabled endpoint ends:
// ReasonHeld when the endpoint holds them, ReasonDisabled otherwise.
func DisabledReason(e *postbackv1.Endpoint) string {
	if Holding(e) {
		return ReasonHeld
	}
	return ReasonDisabled
}

// RecordEnabledChange sets the endpoint's enabled flag and records the
// change with who and why, keeping the latest MaxEnabledChanges.
func RecordEnabledChange(e *postbackv1.Endpoint, enabled bool, actor, reason string, held bool, at time.Time) *postbackv1.EnabledChange {
	e.Enabled = proto.Bool(enabled)
	c := &postbackv1.EnabledChange{Enabled: enabled, Time: timestamppb.New(at), Actor: actor, Reason: reason, Held: held}
	e.EnabledChanges = append(e.EnabledChanges, c)
	if over := len(e.EnabledChanges) - MaxEnabledChanges; over > 0 {
		e.EnabledChanges = append([]*postbackv1.EnabledChange(nil), e.EnabledChanges[over:]...)
	}
	return c
}
