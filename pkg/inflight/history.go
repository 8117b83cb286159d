package inflight

// The HISTORY stream carries every change of a delivery's record to the
// history writer, which applies them to the history store in batches.
//
// Why a stream and not a write to the store: sending must never wait for
// a database. Every record write (Deliveries.Put, Update, Create,
// CreateAsync: the one place a delivery's state is written) is followed by
// a publish of the same record bytes to history.<account>.<endpoint>.<id>,
// with the change's version in a header. A delivery whose first send ends
// it has no record at all: its final entry is published alone (Conclude),
// so the common case (sent once, succeeded) costs no hot-state write. The writer takes them whenever the
// store can take them; meanwhile they wait here (work queue, discard new,
// bounded by Options.MaxHistory): a store that is slow or down delays the
// history, never a postback.
//
// Versions: an entry's version is its record's update time in unix
// microseconds, made strictly greater than the update time the record was
// read with (so a state written on a host whose clock is behind still
// follows the one before it). The store keeps the highest version, so a
// redelivered or late entry is a no-op, never a step back.
//
// Failure policy: the record is written first (it is the guarded write;
// its compare-and-set may lose), then its history entry. A crash between
// the two leaves a record without an entry: the job that wrote it is
// redelivered, finds its outcome already recorded, and the sender logs the
// record again (Relog) before dropping the copy. A final record (SUCCEEDED,
// FAILED, DEAD, CANCELLED) is written with a per-message TTL of
// Deliveries.Grace, after which the hot state forgets it and readers find
// it in the history store; until the writer has stored it, it is read from
// this stream (Pending).

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/postback-dev/postback/pkg/delivery"
	"github.com/postback-dev/postback/pkg/history"
	"github.com/postback-dev/postback/pkg/id"
	"github.com/postback-dev/postback/pkg/stream"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// historyVersionHeader carries an entry's version.
const historyVersionHeader = "Postback-History-Version"

// DefaultGrace is how long a final record stays in the hot state.
const DefaultGrace = 10 * time.Minute

// version stamps r for its next write: its update time made strictly later
// than the one it was read with, in whole microseconds, which is also its
// history version.
func (r *Record) version() int64 {
	d := r.Delivery
	v := d.GetUpdateTime().AsTime().UnixMicro()
	if d.UpdateTime == nil {
		v = time.Now().UnixMicro()
	}
	if v <= r.readVersion {
		v = r.readVersion + 1
	}
	d.UpdateTime = timestampMicro(v)
	return v
}

// historyMsg is the history entry of a record written as b.
func historyMsg(r *Record, b []byte, version int64) *nats.Msg {
	d := r.Delivery
	m := &nats.Msg{Subject: stream.HistorySubject(d.AccountId, d.EndpointId, d.Id), Data: b, Header: nats.Header{}}
	m.Header.Set(historyVersionHeader, strconv.FormatInt(version, 10))
	return m
}

// logChange publishes the history entry of a record just written as b.
func (s *Deliveries) logChange(ctx context.Context, r *Record, b []byte, version int64) error {
	if _, err := stream.Publish(ctx, s.js.Conn(), historyMsg(r, b, version)); err != nil {
		return fmt.Errorf("log delivery %s to the history: %w", r.Delivery.Id, err)
	}
	return nil
}

// Conclude records the final state of a delivery that has no record: its
// first send ended it (succeeded, failed for good, cancelled) while it was
// still queued with no record behind it (r.Queued, Revision 0). Its history
// entry is then its only record: nothing is left in the hot state to
// expire, and readers find it by id in this stream (Pending, or Concluded
// when BatchConcludes put it in a batch) until the writer has stored it.
// A crash before the job's ack resends the first send (as it would with a
// record: first sends take no claim), and the repeated entry is a no-op or
// a later version in the store.
func (s *Deliveries) Conclude(ctx context.Context, r *Record) error {
	if !r.Queued || r.Revision != 0 || !delivery.Final(r.Delivery.Status) {
		return fmt.Errorf("conclude delivery %s: only a final state of a delivery with no record", r.Delivery.Id)
	}
	v := r.version()
	b, err := r.encode()
	if err != nil {
		return err
	}
	if s.concluded == nil {
		if err := s.logChange(ctx, r, b, v); err != nil {
			return err
		}
		r.readVersion = v
		return nil
	}
	done, err := s.concluded.add(r, b, v)
	if err != nil {
		return err
	}
	select {
	case err = <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		return err
	}
	r.readVersion = v
	return nil
}

// BatchConcludes makes Conclude group-commit its entries until ctx ends:
// under load one stored message carries many deliveries' final entries
// (history.done.<n>, naming them in a header: Concluded finds them there);
// alone, an entry goes out on its delivery's own subject as before
// (Pending). For a writer that concludes many
// deliveries at once: the sender.
func (s *Deliveries) BatchConcludes(ctx context.Context) {
	s.concluded = newEntryLog(ctx, s.js.Conn(), doneBatchPrefix, true, flushers)
}

// Relog publishes the history entry of a record as it is stored: for a
// writer that finds a change already recorded (its job redelivered after a
// crash between the record and its entry). The store ignores it if it has
// the change.
func (s *Deliveries) Relog(ctx context.Context, r *Record) error {
	if r.Queued || r.Revision == 0 {
		return nil
	}
	b, err := r.encode()
	if err != nil {
		return err
	}
	return s.logChange(ctx, r, b, r.readVersion)
}

// HistoryEntry decodes a message of the HISTORY stream.
func HistoryEntry(data []byte, h nats.Header) (history.Entry, error) {
	v, err := strconv.ParseInt(h.Get(historyVersionHeader), 10, 64)
	if err != nil {
		return history.Entry{}, fmt.Errorf("history entry without a version: %w", err)
	}
	return decodeHistoryEntry(data, v)
}

// decodeHistoryEntry decodes one entry's record bytes at version v.
func decodeHistoryEntry(data []byte, v int64) (history.Entry, error) {
	r, job, err := decodeRecordRaw(data, 0, false)
	if err != nil {
		return history.Entry{}, err
	}
	d := r.Delivery
	switch {
	case !id.ValidToken(d.Id):
		return history.Entry{}, fmt.Errorf("history entry without a well-formed delivery id (got %.64q)", d.Id)
	case !id.ValidToken(d.AccountId) || !id.ValidToken(d.EndpointId) || d.EventId != "" && !id.ValidToken(d.EventId):
		return history.Entry{}, fmt.Errorf("history entry of %s without a well-formed account, endpoint or event id", d.Id)
	case !d.CreateTime.IsValid():
		return history.Entry{}, fmt.Errorf("history entry of %s without a create time", d.Id)
	}
	return history.Entry{Delivery: r.Delivery, Attempt: r.Last, Job: job, Version: v}, nil
}

// FromHistory is the record of a delivery read from the history store:
// with no revision (an Update of it creates the hot record only if none
// has been written since) and no claim.
func FromHistory(row *history.Row) (*Record, error) {
	r := &Record{Delivery: row.Delivery, readVersion: row.Version}
	if len(row.Job) > 0 {
		r.Job = &delivery.Job{}
		if err := delivery.UnmarshalJob(row.Job, r.Job); err != nil {
			return nil, fmt.Errorf("decode delivery %s job from the history: %w", row.Delivery.Id, err)
		}
		r.JobBytes = row.Job
	}
	return r, nil
}

// Pending reads a delivery's latest history entry still waiting for the
// writer on its own subject, by id alone, as a record (ErrNotFound: none
// waits there). A final entry group-committed with others is in a batch
// instead: see Concluded.
func (s *Deliveries) Pending(ctx context.Context, id string) (*Record, error) {
	m, err := s.hist.GetLastMsgForSubject(ctx, stream.HistorySubject("*", "*", id))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read history entry of %s: %w", id, err)
	}
	e, err := HistoryEntry(m.Data, m.Header)
	if err != nil {
		return nil, err
	}
	return fromEntry(e)
}

// fromEntry is the record a history entry holds.
func fromEntry(e history.Entry) (*Record, error) {
	r, err := FromHistory(&history.Row{Delivery: e.Delivery, Job: e.Job, Version: e.Version})
	if err != nil {
		return nil, err
	}
	r.Last = e.Attempt
	return r, nil
}

// Concluded reads a delivery's final entry from a batch of them still
// waiting for the writer (history.done.<n>, BatchConcludes), as a record
// (ErrNotFound: no batch holds it). It reads the batches one by one, so it
// costs what the writer has not stored yet: a reader looks here last,
// after the history store, and then reads the store again (an entry stored
// meanwhile is gone from here). It looks up to the newest batch there is
// when it starts: a delivery the caller missed elsewhere has had its queued
// job acked, which the sender does only once the batch is stored, so the
// batch came before.
func (s *Deliveries) Concluded(ctx context.Context, id string) (*Record, error) {
	newest, err := s.hist.GetLastMsgForSubject(ctx, doneBatches)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("look for %s in the history batches: %w", id, err)
	}
	if names(newest.Header.Get(historyIDsHeader), id) { // the common case
		return batchRecord(newest, id)
	}
	for seq := uint64(1); ; {
		m, err := s.hist.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(doneBatches))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, ErrNotFound
		}
		if err != nil {
			return nil, fmt.Errorf("look for %s in the history batches: %w", id, err)
		}
		if m.Sequence >= newest.Sequence { // read first
			return nil, ErrNotFound
		}
		if names(m.Header.Get(historyIDsHeader), id) {
			return batchRecord(m, id)
		}
		seq = m.Sequence + 1
	}
}

// batchRecord is the record of id's entry in batch m.
func batchRecord(m *jetstream.RawStreamMsg, id string) (*Record, error) {
	e, err := entryIn(m.Data, m.Header, id)
	if err != nil {
		return nil, err
	}
	return fromEntry(e)
}

// names says whether a historyIDsHeader value names id.
func names(ids, id string) bool {
	for tok := range strings.SplitSeq(ids, ",") {
		if tok == id {
			return true
		}
	}
	return false
}

// entryIn is id's entry in a batch (its latest, should it hold several).
func entryIn(data []byte, h nats.Header, id string) (history.Entry, error) {
	es, err := HistoryEntries(data, h)
	if err != nil {
		return history.Entry{}, err
	}
	var e history.Entry
	for _, x := range es {
		if x.Delivery.Id == id && x.Version >= e.Version {
			e = x
		}
	}
	if e.Delivery == nil {
		return history.Entry{}, fmt.Errorf("history batch names %s but holds no entry of it", id)
	}
	return e, nil
}

// timestampMicro is a timestamp of unix microseconds.
func timestampMicro(us int64) *timestamppb.Timestamp {
	return timestamppb.New(time.UnixMicro(us).UTC())
}
