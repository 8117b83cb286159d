package inflight

// QueuedLog logs deliveries queued for their first send to the HISTORY
// stream in batches, so the history lists a delivery PENDING while it waits
// without a stored message per delivery (the renderer logs only those still
// queued a while later: services/renderer queued.go). The
// sender's final entries of deliveries ended by their first send
// (Deliveries.Conclude) go through the same kind of log once the sender
// asks for it (Deliveries.BatchConcludes).
//
// Design: a group commit (entryLog). Adding an entry puts it in a buffer
// and returns a channel that receives the outcome of the publish that
// carries it; a few flushers each take whatever has gathered (up to
// batchEntries entries or batchBytes bytes) and publish it as one message,
// waiting for its acknowledgement. Under light load an entry goes out alone
// at once; under a burst, entries gather while the previous publish is in
// flight, and one stored message carries many. No timer: nothing waits for
// a batch to fill.
//
// A batch travels on history.queued.<n> (PENDING entries) or
// history.done.<n> (final entries): three tokens, so the four-token filter
// Deliveries.Pending reads by id never matches it. Its entry count is in
// historyBatchHeader; its body is, per entry, uvarint version, uvarint
// length, record bytes (the record encoding of history.go).
//
// How a reader finds a delivery in them: a queued delivery is read from its
// queued job, never from here, so even a lone queued entry goes out as a
// batch (of one): a PENDING entry on the delivery's own subject could hide
// the final entry that ends it, which may be in a batch. A concluded
// delivery has nothing else until the writer stores it, so a lone final
// entry goes out plain on its own subject (Pending), and a history.done
// batch names its deliveries in historyIDsHeader (Concluded reads the
// batches for an id).
//
// Failure policy: the renderer acks an event only once every publish of its
// deliveries, this one included, is acknowledged, and the sender acks a job
// only once its final entry is; a failed batch fails every entry in it, and
// the event is rendered again or the job redelivered (its entries are then
// no-ops or later versions in the store). When ctx ends, entries still
// waiting fail with its error.

import (
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"

	"github.com/postback-dev/postback/pkg/delivery"
	"github.com/postback-dev/postback/pkg/history"
	"github.com/postback-dev/postback/pkg/stream"
)

// historyBatchHeader carries the entry count of a batch of history entries;
// historyIDsHeader, in a history.done batch, its delivery ids, comma
// separated.
const (
	historyBatchHeader = "Postback-History-Batch"
	historyIDsHeader   = "Postback-History-Ids"
)

// The subjects of batches: prefix, then a sequence number in base 36.
const (
	queuedBatchPrefix = "history.queued."
	doneBatchPrefix   = "history.done."
	doneBatches       = doneBatchPrefix + "*"
)

const (
	batchEntries = 256
	batchBytes   = 256 << 10
	flushers     = 2
)

// QueuedLog batches the renderer's queued entries (see the file comment).
type QueuedLog struct{ log *entryLog }

// entryLog is the group commit of history entries (see the file comment).
type entryLog struct {
	nc     *nats.Conn
	prefix string // of a batch's subject
	final  bool   // final entries: a lone one goes out plain, a batch names its deliveries
	kick   chan struct{}
	seq    atomic.Uint64

	mu      sync.Mutex
	waiting []queuedEntry
	closed  error
}

type queuedEntry struct {
	rec     *Record
	b       []byte
	version int64
	done    chan error
}

// size is the most bytes e takes in a batch's body.
func (e *queuedEntry) size() int { return len(e.b) + 2*binary.MaxVarintLen64 }

// NewQueuedLog starts a queued log whose flushers run until ctx ends.
func NewQueuedLog(ctx context.Context, nc *nats.Conn) *QueuedLog {
	return &QueuedLog{newEntryLog(ctx, nc, queuedBatchPrefix, false, flushers)}
}

// newEntryLog starts a log of queued or final entries with n flushers (0:
// a test flushes it itself) that run until ctx ends.
func newEntryLog(ctx context.Context, nc *nats.Conn, prefix string, final bool, n int) *entryLog {
	l := &entryLog{nc: nc, prefix: prefix, final: final, kick: make(chan struct{}, 1)}
	for range n {
		go l.flush(ctx)
	}
	return l
}

// Log adds the PENDING entry of a delivery queued for its first send (job,
// encoded as body); its version is the job's create time, whenever it is
// logged. The channel receives nil once the entry is
// stored in the stream, or the error that kept it out.
func (q *QueuedLog) Log(job *delivery.Job, body []byte) (<-chan error, error) {
	r := queuedRecord(job, body)
	v := r.version()
	b, err := r.encode()
	if err != nil {
		return nil, err
	}
	return q.log.add(r, b, v)
}

// add adds the entry of r, written as b at version v.
func (l *entryLog) add(r *Record, b []byte, v int64) (<-chan error, error) {
	done := make(chan error, 1)
	l.mu.Lock()
	if l.closed != nil {
		l.mu.Unlock()
		return nil, fmt.Errorf("log delivery %s to the history: %w", r.Delivery.Id, l.closed)
	}
	l.waiting = append(l.waiting, queuedEntry{rec: r, b: b, version: v, done: done})
	l.mu.Unlock()
	select {
	case l.kick <- struct{}{}:
	default:
	}
	return done, nil
}

// take removes the next batch from the buffer.
func (l *entryLog) take() []queuedEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, size := 0, 0
	for n < len(l.waiting) && n < batchEntries {
		size += l.waiting[n].size()
		if n > 0 && size > batchBytes {
			break
		}
		n++
	}
	batch := l.waiting[:n:n]
	l.waiting = l.waiting[n:]
	if len(l.waiting) == 0 {
		l.waiting = nil // the next append starts a fresh array
	} else {
		select { // more to take: wake another flusher
		case l.kick <- struct{}{}:
		default:
		}
	}
	return batch
}

func (l *entryLog) flush(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			l.mu.Lock()
			l.closed = ctx.Err()
			left := l.waiting
			l.waiting = nil
			l.mu.Unlock()
			for _, e := range left {
				e.done <- ctx.Err()
			}
			return
		case <-l.kick:
		}
		l.publishWaiting(ctx)
	}
}

// publishWaiting publishes every entry waiting, batch by batch.
func (l *entryLog) publishWaiting(ctx context.Context) {
	for batch := l.take(); len(batch) > 0; batch = l.take() {
		_, err := stream.Publish(ctx, l.nc, l.message(batch))
		if err != nil {
			err = fmt.Errorf("log %d deliveries to the history: %w", len(batch), err)
		}
		for _, e := range batch {
			e.done <- err
		}
	}
}

// message is the HISTORY message that carries batch. A lone final entry
// goes out plain, on its delivery's own subject (Pending finds it there).
// A lone queued entry is still a batch: no PENDING entry is ever on a
// delivery's own subject, where it could hide the final entry that a batch
// of the sender's carries (Pending reads the subject's latest message; a
// queued delivery is read from its job).
func (l *entryLog) message(batch []queuedEntry) *nats.Msg {
	if len(batch) == 1 && l.final {
		return historyMsg(batch[0].rec, batch[0].b, batch[0].version)
	}
	size := 0
	for _, e := range batch {
		size += e.size()
	}
	body := make([]byte, 0, size)
	for _, e := range batch {
		body = binary.AppendUvarint(body, uint64(e.version))
		body = binary.AppendUvarint(body, uint64(len(e.b)))
		body = append(body, e.b...)
	}
	m := &nats.Msg{Subject: l.prefix + strconv.FormatUint(l.seq.Add(1), 36), Data: body, Header: nats.Header{}}
	m.Header.Set(historyBatchHeader, strconv.Itoa(len(batch)))
	if l.final {
		ids := make([]byte, 0, len(batch)*(len(batch[0].rec.Delivery.Id)+1))
		for i, e := range batch {
			if i > 0 {
				ids = append(ids, ',')
			}
			ids = append(ids, e.rec.Delivery.Id...)
		}
		m.Header.Set(historyIDsHeader, string(ids))
	}
	return m
}

// HistoryEntries decodes a message of the HISTORY stream: one entry, or
// the entries of a batch.
func HistoryEntries(data []byte, h nats.Header) ([]history.Entry, error) {
	count := h.Get(historyBatchHeader)
	if count == "" {
		e, err := HistoryEntry(data, h)
		if err != nil {
			return nil, err
		}
		return []history.Entry{e}, nil
	}
	n, err := strconv.Atoi(count)
	if err != nil || n < 1 || n > batchEntries*4 {
		return nil, fmt.Errorf("history batch with a bad count %q", count)
	}
	out := make([]history.Entry, 0, n)
	for i := 0; i < n; i++ {
		v, k := binary.Uvarint(data)
		if k <= 0 {
			return nil, fmt.Errorf("history batch entry %d: bad version", i)
		}
		data = data[k:]
		size, k := binary.Uvarint(data)
		if k <= 0 || size > uint64(len(data)-k) {
			return nil, fmt.Errorf("history batch entry %d: bad length", i)
		}
		data = data[k:]
		e, err := decodeHistoryEntry(data[:size], int64(v))
		if err != nil {
			return nil, fmt.Errorf("history batch entry %d: %w", i, err)
		}
		data = data[size:]
		out = append(out, e)
	}
	if len(data) != 0 {
		return nil, fmt.Errorf("history batch: %d bytes after its %d entries", len(data), n)
	}
	return out, nil
}
