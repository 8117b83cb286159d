package stream

// An event group: several events of one subject (one event type, one
// account partition) in one EVENTS message.
//
// Why: nats-server's cost follows the stored messages, not their bytes (a
// write, a delivery, an ack and a removal each), and a PublishBatch of one
// account's events stored one message per event. The gateway puts the
// consecutive events of a PublishBatch that share a subject into groups of
// up to MaxGroupEvents events or MaxGroupBytes bytes, and so does it for
// unary Publishes of one subject that come while an earlier one is being
// stored (services/gateway unary.go); a lone event and a keyed one (its
// idempotency marker is stored with it in an atomic batch) stay one
// message each.
//
// Format: the header GroupHeader holds the event count; the body is, per
// event, uvarint length then the event as EncodeEvent writes it. The
// message's trace context is its first event's. A PublishBatch's events
// share it (one call); a group of unary calls' events also carries each
// event's own in EventTracesHeader, so that each goes on in its caller's
// trace.
//
// The renderer renders a group's events in order and acks the message once
// all have their deliveries durable, like a single event; a redelivered
// group is rendered again whole, and what an earlier pass queued or ended is
// seen and skipped per delivery. A delivery's id comes from its event's
// place in the stream (GroupPlace), so a redelivery derives the same ids.
// Failure policy: a group whose framing does not decode is poison whole
// (dead-lettered with why); an event of it that does not decode or check is
// dead-lettered alone and the others are rendered. The gateway writes only
// events it has validated, so neither was written by it.

import (
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/propagation"
)

// GroupHeader carries the event count of an event group.
const GroupHeader = "Postback-Events"

// The bounds of a group.
const (
	MaxGroupEvents = 32
	MaxGroupBytes  = 256 << 10
)

// AppendGroupEvent appends an encoded event to a group's body.
func AppendGroupEvent(body, event []byte) []byte {
	body = binary.AppendUvarint(body, uint64(len(event)))
	return append(body, event...)
}

// GroupEvents splits a group's body into its events, count being its
// GroupHeader.
func GroupEvents(body []byte, count string) ([][]byte, error) {
	n, err := strconv.Atoi(count)
	if err != nil || n < 1 || n > MaxGroupEvents {
		return nil, fmt.Errorf("event group with a bad count %q", count)
	}
	out := make([][]byte, 0, n)
	for i := range n {
		size, k := binary.Uvarint(body)
		if k <= 0 || size > uint64(len(body)-k) {
			return nil, fmt.Errorf("event group: event %d of %d cut short", i, n)
		}
		out = append(out, body[k:k+int(size)])
		body = body[k+int(size):]
	}
	if len(body) != 0 {
		return nil, fmt.Errorf("event group: %d bytes after its %d events", len(body), n)
	}
	return out, nil
}

// GroupPlace names the place of event i of the group stored at seq, for
// the ids derived from it: distinct from every single event's place (its
// sequence alone) and from every other group event's.
func GroupPlace(seq uint64, i int) string {
	return strconv.FormatUint(seq, 10) + "." + strconv.Itoa(i)
}

// EventTracesHeader carries the trace context of each event of a group
// whose events come from different calls: their W3C traceparents,
// space-separated, in the group's order, "-" for an event without one.
const EventTracesHeader = "Postback-Event-Traces"

// traceContext writes and reads one traceparent (a group's per-event
// contexts carry no baggage).
var traceContext = propagation.TraceContext{}

// SetEventTraces sets msg's EventTracesHeader from each event's context,
// in the group's order; nothing when none of them carries a trace.
func SetEventTraces(msg *nats.Msg, ctxs []context.Context) {
	parts := make([]string, len(ctxs))
	traced := false
	for i, ctx := range ctxs {
		c := propagation.MapCarrier{}
		traceContext.Inject(ctx, c)
		parts[i] = "-"
		if tp := c["traceparent"]; tp != "" {
			parts[i], traced = tp, true
		}
	}
	if traced {
		msg.Header.Set(EventTracesHeader, strings.Join(parts, " "))
	}
}

// EventTraces returns the traceparents of a group of count events from its
// EventTracesHeader ("-" for an event without one), or nil when the header
// is absent or does not name count events (the message's own trace context
// then stands for every event).
func EventTraces(h nats.Header, count int) []string {
	v := h.Get(EventTracesHeader)
	if v == "" {
		return nil
	}
	parts := strings.Split(v, " ")
	if len(parts) != count {
		return nil
	}
	return parts
}
