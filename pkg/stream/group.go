package stream

// An event group: several events of one subject (one event type, one
// account partition) in one EVENTS message.
//
// Why: nats-server's cost follows the stored messages, not their bytes (a
// write, a delivery, an ack and a removal each), and a PublishBatch of one
// account's events stored one message per event. The gateway puts the
// consecutive events of a PublishBatch that share a subject into groups of
// up to MaxGroupEvents events or MaxGroupBytes bytes; a lone event, a keyed
// one (its idempotency marker is stored with it in an atomic batch) and
// every unary Publish stay one message each, as before.
//
// Format: the header GroupHeader holds the event count; the body is, per
// event, uvarint length then the event as EncodeEvent writes it. The
// message's trace context is its PublishBatch call's, which every event of
// it shares anyway.
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
	"encoding/binary"
	"fmt"
	"strconv"
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
