package gateway

// Idempotency keys that last their window, whatever restarts.
//
// A keyed event is stored together with a marker of its key, in one
// atomic batch on EVENTS (JetStream atomic batch publish):
//
//	idem.<account>.<hash of the key>  the event id; a per-message TTL of
//	                                  the dedupe window; expected to be the
//	                                  subject's first message
//	events.<type>.<partition>         the event
//
// Both are stored or neither. A key used within the window has a marker,
// so its expectation fails the batch whole, and the call answers as a
// duplicate with the event id the marker holds. The marker is a stored
// message that no consumer takes, so it lasts its window across restarts
// of any process and of the server. (The Nats-Msg-Id dedupe used before
// could not: the server rebuilds that window at a restart from the
// messages still stored, and a work queue keeps none once the renderer
// has them; a key written after the event left a crash window.)
//
// Group commit: on a server with file storage and one replica, the server
// stages each atomic batch in a store of its own and syncs it, a few
// milliseconds a batch, whatever its size. So the keyed events waiting
// together (a PublishBatch's, concurrent Publishes) share one batch of up
// to maxKeyedBatch events, and at most keyedFlushers batches are open at
// once (the server allows 50 per stream). When a batch fails on a marker,
// each of its keys' markers is read: an event whose key is taken answers
// as that key's duplicate, and the others go again in a new batch.
//
// Failure policy: no call is answered before its batch is stored, or
// known refused; a crash meanwhile stores the batch whole or not at all
// (the server drops an uncommitted batch), so the caller's retry with the
// same key either finds the marker or publishes the event then. A batch
// whose outcome is unknown (a timeout) answers Unavailable; the retry
// settles it the same way.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/postback-dev/postback/pkg/stream"
)

const (
	// maxKeyedBatch is the most events in one atomic batch: two messages
	// each, within the server's 1,000 messages a batch.
	maxKeyedBatch = 500
	// keyedFlushers is the most batches one gateway has open at once.
	keyedFlushers = 4
	// keyedTimeout bounds one batch's publish and its markers' reads.
	keyedTimeout = 10 * time.Second
	// keyedTries is how many batches an event may be put in: each failed
	// try settles at least one key whose marker it read, unless the
	// markers of the keys that failed it expired meanwhile.
	keyedTries = 3
)

// Atomic batch headers (JetStream atomic batch publish, nats-server 2.12).
const (
	batchIDHeader     = "Nats-Batch-Id"
	batchSeqHeader    = "Nats-Batch-Sequence"
	batchCommitHeader = "Nats-Batch-Commit"
)

// keyed is one event published with an idempotency key, waiting for its
// batch.
type keyed struct {
	marker  string    // its key's marker subject
	eventID string    // the id it is published with
	msg     *nats.Msg // the event message
	done    chan keyedResult
}

// keyedResult is a keyed event's answer: its id, or the first event's of
// its key (duplicate), or why it was not published.
type keyedResult struct {
	eventID   string
	duplicate bool
	err       error
}

// keyedLog group-commits keyed events to EVENTS.
type keyedLog struct {
	js     jetstream.JetStream
	ttl    string // the markers' Nats-TTL: the dedupe window
	prefix string // this process's batch ids
	seq    atomic.Uint64

	mu      sync.Mutex
	waiting []*keyed
	running int // flushers
}

func newKeyedLog(js jetstream.JetStream, window time.Duration) *keyedLog {
	var b [9]byte
	_, _ = rand.Read(b[:])
	return &keyedLog{js: js, ttl: strconv.FormatInt(int64(max(window, time.Second)/time.Second), 10) + "s",
		prefix: base64.RawURLEncoding.EncodeToString(b[:])}
}

// markerSubject is the marker subject of an account's idempotency key:
// any text the caller chose, hashed to one subject token.
func markerSubject(accountID, key string) string {
	sum := sha256.Sum256([]byte(key))
	return stream.MarkerSubject(accountID, base64.RawURLEncoding.EncodeToString(sum[:]))
}

// publish queues keyed events; each one's done receives its answer.
func (l *keyedLog) publish(events ...*keyed) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.waiting = append(l.waiting, events...)
	if l.running < keyedFlushers {
		l.running++
		go l.flush()
	}
}

// flush commits batches until none waits.
func (l *keyedLog) flush() {
	for {
		l.mu.Lock()
		n := min(len(l.waiting), maxKeyedBatch)
		if n == 0 {
			l.running--
			l.mu.Unlock()
			return
		}
		batch := l.waiting[:n:n]
		l.waiting = l.waiting[n:]
		if len(l.waiting) == 0 {
			l.waiting = nil
		}
		l.mu.Unlock()
		l.commit(batch)
	}
}

// commit publishes batch and answers each of its events.
func (l *keyedLog) commit(batch []*keyed) {
	ctx, cancel := context.WithTimeout(context.Background(), keyedTimeout)
	defer cancel()
	// A key twice in the batch: the later events are its duplicates.
	firsts := make([]*keyed, 0, len(batch))
	repeats := map[string][]*keyed{}
	for _, e := range batch {
		if _, seen := repeats[e.marker]; seen {
			repeats[e.marker] = append(repeats[e.marker], e)
			continue
		}
		repeats[e.marker] = nil
		firsts = append(firsts, e)
	}
	answer := func(e *keyed, r keyedResult) {
		e.done <- r
		if r.err == nil {
			r.duplicate = true
		}
		for _, rep := range repeats[e.marker] {
			rep.done <- r
		}
	}
	pending := firsts
	for try := 1; len(pending) > 0; try++ {
		err := l.publishAtomic(ctx, pending)
		if err == nil {
			for _, e := range pending {
				answer(e, keyedResult{eventID: e.eventID})
			}
			return
		}
		if !markerTaken(err) || try == keyedTries {
			for _, e := range pending {
				answer(e, keyedResult{err: err})
			}
			return
		}
		var rest []*keyed
		for _, e := range pending {
			first, err := l.first(ctx, e.marker)
			switch {
			case err != nil:
				answer(e, keyedResult{err: err})
			case first != "":
				answer(e, keyedResult{eventID: first, duplicate: true})
			default:
				rest = append(rest, e)
			}
		}
		pending = rest
	}
}

// publishAtomic stores events and their keys' markers in one atomic batch.
func (l *keyedLog) publishAtomic(ctx context.Context, events []*keyed) error {
	id := l.prefix + strconv.FormatUint(l.seq.Add(1), 36)
	nc := l.js.Conn()
	n := 0
	next := func(m *nats.Msg) *nats.Msg {
		n++
		m.Header.Set(batchIDHeader, id)
		m.Header.Set(batchSeqHeader, strconv.Itoa(n))
		return m
	}
	for i, e := range events {
		marker := next(&nats.Msg{Subject: e.marker, Data: []byte(e.eventID), Header: nats.Header{}})
		marker.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
		marker.Header.Set(jetstream.MsgTTLHeader, l.ttl)
		if err := nc.PublishMsg(marker); err != nil {
			return fmt.Errorf("publish the marker of event %s: %w", e.eventID, err)
		}
		// A copy: the event's own message is left as the caller made it.
		ev := next(&nats.Msg{Subject: e.msg.Subject, Data: e.msg.Data, Header: nats.Header(http.Header(e.msg.Header).Clone())})
		if i == len(events)-1 {
			ev.Header.Set(batchCommitHeader, "1")
			_, err := l.js.PublishMsg(ctx, ev)
			return err
		}
		if err := nc.PublishMsg(ev); err != nil {
			return fmt.Errorf("publish event %s: %w", e.eventID, err)
		}
	}
	return nil
}

// markerTaken reports whether a batch failed on a marker's expectation:
// one of its keys was used within the window.
func markerTaken(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// first returns the event id a key's marker holds ("" when none).
func (l *keyedLog) first(ctx context.Context, marker string) (string, error) {
	s, err := l.js.Stream(ctx, stream.EventsStream)
	if err != nil {
		return "", fmt.Errorf("read idempotency key: %w", err)
	}
	m, err := s.GetLastMsgForSubject(ctx, marker)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read idempotency key: %w", err)
	}
	return string(m.Data), nil
}
