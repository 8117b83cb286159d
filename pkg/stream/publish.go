package stream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// publishTimeout bounds a publish whose context has no deadline, as
// jetstream's own default does.
const publishTimeout = 5 * time.Second

// Ack is what JetStream answers a publish with.
type Ack struct {
	Sequence  uint64
	Duplicate bool // the message id was seen within the dedupe window: not stored again
}

// Publish stores m in its stream and returns the acknowledgement, as
// jetstream.PublishMsg does (it retries "no responders" twice, 250 ms
// apart, to ride over a leader change) but reading the acknowledgement
// without encoding/json. The sender writes one record per delivery this
// way and the gateway each unary Publish's event, so the reflection-driven
// decode of every ack was a measurable part of their CPU. Anything but a
// plain ack (an error, a duplicate, something unexpected) is decoded in
// full, and an API error comes back as a *jetstream.APIError.
func Publish(ctx context.Context, nc *nats.Conn, m *nats.Msg) (Ack, error) {
	request := func() (*nats.Msg, error) { return nc.RequestMsgWithContext(ctx, m) }
	if ctx.Done() == nil {
		// A context that cannot end (a consumer's handler runs on one):
		// the plain timeout, without a context and its timer per publish.
		request = func() (*nats.Msg, error) { return nc.RequestMsg(m, publishTimeout) }
	} else if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, publishTimeout)
		defer cancel()
	}
	resp, err := request()
	for try := 0; errors.Is(err, nats.ErrNoResponders) && try < jetstream.DefaultPubRetryAttempts; try++ {
		select {
		case <-ctx.Done():
			return Ack{}, ctx.Err()
		case <-time.After(jetstream.DefaultPubRetryWait):
		}
		resp, err = request()
	}
	if errors.Is(err, nats.ErrNoResponders) {
		return Ack{}, jetstream.ErrNoStreamResponse
	}
	if err != nil {
		return Ack{}, err
	}
	return parsePubAck(resp.Data)
}

// parsePubAck reads a JetStream publish acknowledgement: the plain
// {"stream":"…","seq":N…} by hand, anything else with encoding/json.
func parsePubAck(b []byte) (Ack, error) {
	// The plain ack is what nats-server writes for a stored message:
	// {"stream":"<name>",["domain":"<domain>",]"seq":<n>} (and more fields
	// for features Postback does not use). An error or a duplicate
	// ("duplicate": true, with a space) is read in full.
	if bytes.HasPrefix(b, []byte(`{"stream":"`)) && !bytes.Contains(b, []byte(`"error"`)) && !bytes.Contains(b, []byte(`"duplicate"`)) {
		if i := bytes.Index(b, []byte(`"seq":`)); i > 0 {
			digits := b[i+len(`"seq":`):]
			n := 0
			for n < len(digits) && digits[n] >= '0' && digits[n] <= '9' {
				n++
			}
			if seq, err := strconv.ParseUint(string(digits[:n]), 10, 64); err == nil && seq > 0 {
				return Ack{Sequence: seq}, nil
			}
		}
	}
	var ack struct {
		Error     *jetstream.APIError `json:"error"`
		Stream    string              `json:"stream"`
		Sequence  uint64              `json:"seq"`
		Duplicate bool                `json:"duplicate"`
	}
	if err := json.Unmarshal(b, &ack); err != nil {
		return Ack{}, jetstream.ErrInvalidJSAck
	}
	if ack.Error != nil {
		return Ack{}, fmt.Errorf("nats: %w", ack.Error)
	}
	if ack.Stream == "" {
		return Ack{}, jetstream.ErrInvalidJSAck
	}
	return Ack{Sequence: ack.Sequence, Duplicate: ack.Duplicate}, nil
}

// IsExists reports whether a publish with an expected last sequence failed because
// the subject has moved on (a create of a key that exists, an update of a
// record someone changed).
func IsExists(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// Contended reports whether a compare-and-set write (a KV Create or Update
// at a revision) lost to another writer: read again and retry.
func Contended(err error) bool {
	return IsExists(err) || errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch)
}

// CASTries bounds a compare-and-set loop: enough for a key that a handful
// of replicas write at once to settle (each try waits a little longer, see
// CASBackoff), never a spin.
const CASTries = 50

// CASBackoff waits before compare-and-set try number try (from 1): a few
// milliseconds, growing and jittered so that writers that collided do not
// collide again in step; it returns early with ctx's error.
func CASBackoff(ctx context.Context, try int) error {
	d := time.Duration(min(try, 10)) * time.Millisecond
	d += time.Duration(rand.Int64N(int64(d) + 1))
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
