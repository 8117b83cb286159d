package stream

// Message ids: the Nats-Msg-Id every publish that may be repeated carries.
//
// JetStream drops a message whose id it has seen within the stream's
// duplicate window (Options.DuplicateWindow), so a publisher that crashes
// or times out and publishes again does not make a second copy. An id says
// what the message is, never when it was published: the repeated publish
// of the same thing must make the same id. Each kind has its own prefix and
// its own parts, so two different things never share an id:
//
//	job:<delivery>:0                       the renderer's first send
//	fail:<delivery>:<sent>                 a failed attempt for the retry service
//	retry:<delivery>:<sent>                a retry's schedule
//	slotrev:<delivery>:<sent>:<slot ns>:<revision>
//	                                       a deferral to a limiter slot, from
//	                                       the record revision it wrote
//	slot:<delivery>:<sent>:<slot ns>       (retired) the same without the
//	                                       revision: a copy that came back
//	                                       early and was deferred again to the
//	                                       same slot made the same id, and its
//	                                       schedule was dropped as a repeat
//	busy:<delivery>:<sent>:<at ns>         a deferral to a place in flight
//	manual:<delivery>:<sent>:<at ns>       a resend a person asked for
//	att:<delivery>:<number>:<start ns36>   an attempt moved to ATTEMPTS
//	dead:<stream>:<sequence>               a dead letter
//	aside:<delivery>:<version>             a history change set aside
//
// (<sent> is how many requests the delivery had sent: one failure, retry
// or deferral per request.) These strings are the wire: a running older
// version dedupes against them, so a kind's form never changes.

import "strconv"

// msgID is the one place an id is made: the kind, then its parts, joined
// with ':'.
func msgID(kind string, parts ...string) string {
	n := len(kind)
	for _, p := range parts {
		n += 1 + len(p)
	}
	b := make([]byte, 0, n)
	b = append(b, kind...)
	for _, p := range parts {
		b = append(b, ':')
		b = append(b, p...)
	}
	return string(b)
}

func itoa(n int) string { return strconv.Itoa(n) }

func nanos(ns int64) string { return strconv.FormatInt(ns, 10) }

// FirstSendID is the id of the renderer's job for a delivery's first send.
func FirstSendID(deliveryID string) string { return msgID("job", deliveryID, "0") }

// FailureID is the id of the failed attempt after sent requests.
func FailureID(deliveryID string, sent int) string { return msgID("fail", deliveryID, itoa(sent)) }

// RetryID is the id of the schedule of the retry after sent requests.
func RetryID(deliveryID string, sent int) string { return msgID("retry", deliveryID, itoa(sent)) }

// SlotID is the id of a deferral to the limiter slot at slotNanos that
// wrote the delivery's record at revision: each deferral writes a new
// revision, so a job deferred again to the same slot (its schedule fired
// early by the broker's clock) makes a new id, while a deferral published
// again after a crash, which finds its own revision, makes the same one.
func SlotID(deliveryID string, sent int, slotNanos int64, revision uint64) string {
	return msgID("slotrev", deliveryID, itoa(sent), nanos(slotNanos), strconv.FormatUint(revision, 10))
}

// BusyID is the id of a deferral to a place among the endpoint's requests
// in flight, expected at atNanos.
func BusyID(deliveryID string, sent int, atNanos int64) string {
	return msgID("busy", deliveryID, itoa(sent), nanos(atNanos))
}

// ResendID is the id of a resend asked for at atNanos.
func ResendID(deliveryID string, sent int, atNanos int64) string {
	return msgID("manual", deliveryID, itoa(sent), nanos(atNanos))
}

// AttemptID is the id of an attempt moved to the ATTEMPTS stream.
func AttemptID(deliveryID string, number int32, startNanos int64) string {
	return msgID("att", deliveryID, itoa(int(number)), strconv.FormatInt(startNanos, 36))
}

// SetAsideID is the id of the dead letter of one history change (of a
// delivery, at a version) that the history store refuses.
func SetAsideID(deliveryID string, version int64) string {
	return msgID("aside", deliveryID, nanos(version))
}

// DeadLetterID is the id of the dead letter of a stream's message.
func DeadLetterID(streamName string, seq uint64) string {
	return msgID("dead", streamName, strconv.FormatUint(seq, 10))
}
