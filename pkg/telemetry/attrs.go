package telemetry

import "go.opentelemetry.io/otel/attribute"

// Postback span attributes. Every span that concerns one postback carries
// the ids that find it again; none ever carries a header value, a body or a
// signing secret (docs/architecture.md, decision 12).
const (
	AccountID  = attribute.Key("postback.account_id")
	EndpointID = attribute.Key("postback.endpoint_id")
	EventID    = attribute.Key("postback.event_id")
	EventType  = attribute.Key("postback.event_type")
	DeliveryID = attribute.Key("postback.delivery_id")
	// Attempt is the attempt number (0 = first send, n = retry n), as in the
	// Postback-Attempt header.
	Attempt = attribute.Key("postback.attempt")
	// Retry is set on the spans of a retry: which retry of the schedule it
	// is (1-15), and RetryScheduledAt when it was planned for (RFC 3339).
	Retry            = attribute.Key("postback.retry")
	RetryScheduledAt = attribute.Key("postback.retry.scheduled_at")
	// Requests counts the requests already sent for the delivery before
	// this one (the 4xx rule skips retry numbers, so it is not Attempt).
	Requests = attribute.Key("postback.requests_sent")
	// Outcome is what a span's step decided, one of the Outcome* values.
	Outcome = attribute.Key("postback.outcome")
	// Reason explains a failed or dropped step to a person (never a
	// secret: reasons name rules and errors, not header values).
	Reason = attribute.Key("postback.reason")
	// Duplicate marks a publish the dedupe window dropped (same
	// idempotency key).
	Duplicate = attribute.Key("postback.duplicate")
	// Deliveries is the number of deliveries an event fanned out to.
	Deliveries = attribute.Key("postback.deliveries")
	// Events is the number of events an event group carried (one EVENTS
	// message for several events of one account: pkg/stream group.go).
	Events = attribute.Key("postback.events")
)

// Outcomes, on spans (postback.outcome) and on the deliveries metric
// (outcome, terminal ones only).
const (
	OutcomeSucceeded = "succeeded" // the endpoint's rules accepted the response
	OutcomeFailed    = "failed"    // failed for good: bad URL, NXDOMAIN, guard, keyring
	OutcomeRetrying  = "retrying"  // failed, handed to the retry service
	OutcomeScheduled = "scheduled" // the retry service scheduled the next retry
	OutcomeDead      = "dead"      // the last retry failed
	OutcomeCancelled = "cancelled" // the endpoint was disabled or deleted
	OutcomeDeferred  = "deferred"  // waiting for the endpoint's limits (a schedule)
	OutcomeDropped   = "dropped"   // a duplicate or stale copy; nothing sent
	OutcomeRendered  = "rendered"  // the renderer published the event's deliveries
)
