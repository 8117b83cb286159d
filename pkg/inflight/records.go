// Package inflight keeps the hot state of deliveries: what the services
// read and compare-and-set while a delivery is being worked on, and hand on
// to the history store once it is not.
//
//   - Deliveries: the delivery records in the NATS KV bucket (claims,
//     revisions), a first send still queued read as a PENDING record, and
//     the history entries the writer has not stored yet (history.go);
//   - QueuedLog: the renderer's PENDING history entries, group-committed
//     (and, with Deliveries.BatchConcludes, the sender's final ones);
//   - Attempts: the attempts a later attempt replaced, on their stream.
//
// The state changes themselves are pkg/delivery's transitions; every
// record write goes through one guarded write here (Deliveries.write).
package inflight

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/postback-dev/postback/pkg/delivery"
	"github.com/postback-dev/postback/pkg/stream"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// ErrNotFound is returned when a key does not exist.
var ErrNotFound = errors.New("not found")

// ErrExists is returned by Create when the key is already there.
var ErrExists = errors.New("already exists")

// Deliveries is the delivery state bucket: <account>.<endpoint>.<delivery_id> → a
// Record: the postbackv1.Delivery the API serves, the latest rendered Job
// (so RetryDelivery and ReplayDeliveries can resend the same request after
// the work queues have let it go), and the in-flight claim.
//
// Claims make "send once" hold between racing copies of a job (a scheduled
// retry and a manual RetryDelivery): before sending, the sender moves the
// record to IN_FLIGHT with a compare-and-set on its revision, naming the
// message it is sending for; a copy that finds the record already past its
// attempt, or claimed by another message, is dropped.
//
// A delivery that rendered has no record until the sender records its first
// outcome (or defers it, or a cancellation writes one): until then its job,
// queued on deliveries.<partition>.<account>.<endpoint>.<delivery_id>,
// stands for it. Find, Lookup, Each and EachOfEndpoint read such a job as a
// PENDING Record with Queued set and Revision 0, so an Update of it creates
// the record only if none has been written meanwhile. A job is looked for
// after the record, and the record again when the job has gone meanwhile:
// a delivery moving from its queue to its record is not missed.
type Deliveries struct {
	kv   jetstream.KeyValue
	js   jetstream.JetStream
	st   jetstream.Stream // the bucket's stream, for listing keys
	work jetstream.Stream // DELIVERIES, for first sends still queued
	hist jetstream.Stream // HISTORY, for changes the writer has not stored yet
	// Grace is how long a final record stays in the hot state (its
	// per-message TTL, see history.go); 0 = DefaultGrace.
	Grace time.Duration
	// concluded, when set, group-commits Conclude's entries (BatchConcludes).
	concluded *entryLog
}

// Record is one stored delivery.
type Record struct {
	Delivery *postbackv1.Delivery
	Job      *delivery.Job // nil when the delivery never rendered
	Claim    string        // the message that holds the IN_FLIGHT claim
	Revision uint64        // KV revision read (0 for a new record)
	// Last is the delivery's latest attempt. It is written with the
	// delivery's state in the same record update, so a delivery sent once
	// costs no write to the ATTEMPTS stream; the sender moves it there
	// when a later attempt replaces it (see History).
	Last *postbackv1.Attempt
	// Queued is set on a record read from the delivery's job still queued
	// for its first send: no record is stored yet.
	Queued bool
	// JobBytes, when set, is Job already encoded (MarshalBinary, or the
	// JSON of a message written before that format): the renderer encodes a
	// job once for the record and the message, and the sender stores a job
	// it did not change as it came.
	JobBytes []byte
	// readVersion is the history version the record was read at (its
	// update time in microseconds): the next write's is greater.
	readVersion int64
}

// OpenDeliveries binds the deliveries bucket (Ensure must have run).
func OpenDeliveries(ctx context.Context, js jetstream.JetStream) (*Deliveries, error) {
	kv, err := js.KeyValue(ctx, stream.DeliveriesBucket)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", stream.DeliveriesBucket, err)
	}
	st, err := js.Stream(ctx, "KV_"+stream.DeliveriesBucket)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", stream.DeliveriesBucket, err)
	}
	work, err := js.Stream(ctx, stream.DeliveriesStream)
	if err != nil {
		return nil, fmt.Errorf("open stream %s: %w", stream.DeliveriesStream, err)
	}
	hist, err := js.Stream(ctx, stream.HistoryStream)
	if err != nil {
		return nil, fmt.Errorf("open stream %s: %w", stream.HistoryStream, err)
	}
	return &Deliveries{kv: kv, js: js, st: st, work: work, hist: hist, Grace: DefaultGrace}, nil
}

// deliveryKey is <account>.<endpoint>.<delivery>: a delivery is found by id
// alone, and an endpoint's deliveries by prefix (replay, cancellation),
// with server-side subject filters.
func deliveryKey(accountID, endpointID, id string) string {
	return accountID + "." + endpointID + "." + id
}

func recordKey(d *postbackv1.Delivery) string { return deliveryKey(d.AccountId, d.EndpointId, d.Id) }

// recordSubject is the subject a record is written to in the bucket's stream.
func recordSubject(d *postbackv1.Delivery) string {
	return "$KV." + stream.DeliveriesBucket + "." + recordKey(d)
}

// encode: the byte recordV2, uvarint len + Delivery protobuf, uvarint len
// + claim, uvarint len + last Attempt protobuf (0: none), then the rest is
// the Job in its binary format (pkg/delivery job.go), or none.
//
// Records of the first format have no leading byte and no attempt section,
// and hold the Job as JSON. They start with the length of a Delivery, never
// 0, so the leading 0 tells the formats apart and decodeRecord reads both:
// data written before an upgrade stays readable.
const recordV2 = 0x00

// (A Job whose every field is zero encodes to nothing and reads back as no
// Job; the renderer never writes one.)
func (r *Record) encode() ([]byte, error) {
	d, err := proto.Marshal(r.Delivery)
	if err != nil {
		return nil, fmt.Errorf("encode delivery %s: %w", r.Delivery.Id, err)
	}
	var last []byte
	if r.Last != nil {
		if last, err = proto.Marshal(r.Last); err != nil {
			return nil, fmt.Errorf("encode delivery %s attempt: %w", r.Delivery.Id, err)
		}
	}
	jobSize := len(r.JobBytes)
	if r.JobBytes == nil && r.Job != nil {
		jobSize = r.Job.Size()
	}
	out := make([]byte, 0, 1+len(d)+len(r.Claim)+len(last)+jobSize+3*binary.MaxVarintLen64)
	out = append(out, recordV2)
	out = binary.AppendUvarint(out, uint64(len(d)))
	out = append(out, d...)
	out = binary.AppendUvarint(out, uint64(len(r.Claim)))
	out = append(out, r.Claim...)
	out = binary.AppendUvarint(out, uint64(len(last)))
	out = append(out, last...)
	if r.JobBytes != nil {
		out = append(out, r.JobBytes...)
	} else if r.Job != nil {
		if out, err = r.Job.AppendBinary(out); err != nil {
			return nil, fmt.Errorf("encode delivery %s: %w", r.Delivery.Id, err)
		}
	}
	return out, nil
}

func decodeRecord(b []byte, rev uint64) (*Record, error) {
	r, _, err := decodeRecordRaw(b, rev, true)
	return r, err
}

// decodeRecordRaw decodes a record and returns its job's encoding too; the
// job itself is decoded only when decodeJob is set (the history writer
// stores it as it is).
func decodeRecordRaw(b []byte, rev uint64, decodeJob bool) (*Record, []byte, error) {
	r := &Record{Delivery: &postbackv1.Delivery{}, Revision: rev}
	v2 := len(b) > 0 && b[0] == recordV2
	if v2 {
		b = b[1:]
	}
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n {
		return nil, nil, errors.New("decode delivery record: truncated")
	}
	if err := proto.Unmarshal(b[k:k+int(n)], r.Delivery); err != nil {
		return nil, nil, fmt.Errorf("decode delivery record: %w", err)
	}
	b = b[k+int(n):]
	n, k = binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n {
		return nil, nil, errors.New("decode delivery record: truncated claim")
	}
	r.Claim = string(b[k : k+int(n)])
	b = b[k+int(n):]
	if v2 {
		n, k = binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return nil, nil, errors.New("decode delivery record: truncated attempt")
		}
		if n > 0 {
			r.Last = &postbackv1.Attempt{}
			if err := proto.Unmarshal(b[k:k+int(n)], r.Last); err != nil {
				return nil, nil, fmt.Errorf("decode delivery record attempt: %w", err)
			}
		}
		b = b[k+int(n):]
	}
	r.readVersion = r.Delivery.GetUpdateTime().AsTime().UnixMicro()
	if len(b) == 0 {
		return r, nil, nil
	}
	if !decodeJob {
		return r, b, nil
	}
	r.Job = &delivery.Job{}
	if err := delivery.UnmarshalJob(b, r.Job); err != nil {
		return nil, nil, fmt.Errorf("decode delivery record job: %w", err)
	}
	return r, b, nil
}

// Every record write goes through write: the record is stamped with its
// version, stored (compare-and-set on expect when set: 0 = create only),
// given the hot state's grace TTL when it is final, and then logged to the
// history (history.go). Create, CreateAsync, Put and Update are its forms.

// recordMsg is the message that stores r as b.
func (s *Deliveries) recordMsg(r *Record, b []byte, expect *uint64) *nats.Msg {
	m := &nats.Msg{Subject: recordSubject(r.Delivery), Data: b}
	if expect != nil || delivery.Final(r.Delivery.Status) {
		m.Header = nats.Header{}
	}
	if expect != nil {
		m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(*expect, 10))
	}
	if delivery.Final(r.Delivery.Status) {
		grace := s.Grace
		if grace <= 0 {
			grace = DefaultGrace
		}
		m.Header.Set(jetstream.MsgTTLHeader, grace.String())
	}
	return m
}

func (s *Deliveries) write(ctx context.Context, r *Record, expect *uint64) error {
	v := r.version()
	b, err := r.encode()
	if err != nil {
		return err
	}
	ack, err := stream.Publish(ctx, s.js.Conn(), s.recordMsg(r, b, expect))
	if err != nil && expect != nil && *expect == 0 && stream.IsExists(err) {
		// Creating a record whose key last held one that expired: the
		// marker its expiry left (for a second) is not a record.
		if marker, merr := s.st.GetLastMsgForSubject(ctx, recordSubject(r.Delivery)); merr == nil && marker.Header.Get(jetstream.MarkerReasonHeader) != "" {
			seq := marker.Sequence
			ack, err = stream.Publish(ctx, s.js.Conn(), s.recordMsg(r, b, &seq))
		}
	}
	if err != nil {
		return err
	}
	r.Revision, r.readVersion, r.Queued = ack.Sequence, v, false
	return s.logChange(ctx, r, b, v)
}

// Create stores a new record; ErrExists when it is already there (a
// redelivered event renders the same delivery ids).
func (s *Deliveries) Create(ctx context.Context, r *Record) error {
	var none uint64
	if err := s.write(ctx, r, &none); err != nil {
		if stream.IsExists(err) {
			return ErrExists
		}
		return fmt.Errorf("create delivery %s: %w", r.Delivery.Id, err)
	}
	return nil
}

// CreateAsync starts creating a new record and returns the publish future;
// its acknowledgement's sequence is the record's revision. A record that
// already exists fails the future with a "wrong last sequence" error
// (IsExists). It lets the renderer pipeline many creates. Its history
// entry is published asynchronously right behind it; the renderer waits for
// every publish before it acks the event, so a crash logs it again.
func (s *Deliveries) CreateAsync(r *Record) (jetstream.PubAckFuture, error) {
	v := r.version()
	b, err := r.encode()
	if err != nil {
		return nil, err
	}
	var none uint64
	f, err := s.js.PublishMsgAsync(s.recordMsg(r, b, &none))
	if err != nil {
		return nil, fmt.Errorf("create delivery %s: %w", r.Delivery.Id, err)
	}
	if _, err := s.js.PublishMsgAsync(historyMsg(r, b, v)); err != nil {
		return nil, fmt.Errorf("log delivery %s to the history: %w", r.Delivery.Id, err)
	}
	return f, nil
}

// Put stores the record unconditionally.
func (s *Deliveries) Put(ctx context.Context, r *Record) error {
	if err := s.write(ctx, r, nil); err != nil {
		return fmt.Errorf("store delivery %s: %w", r.Delivery.Id, err)
	}
	return nil
}

// ErrConflict is returned by Update when the record changed since it was read.
var ErrConflict = errors.New("delivery changed concurrently")

// Update stores the record only if it is still at r.Revision.
func (s *Deliveries) Update(ctx context.Context, r *Record) error {
	rev := r.Revision
	if err := s.write(ctx, r, &rev); err != nil {
		if stream.IsExists(err) { // the wrong-last-sequence answer: someone wrote it since
			return ErrConflict
		}
		return fmt.Errorf("update delivery %s: %w", r.Delivery.Id, err)
	}
	return nil
}

// Get reads a stored record by account, endpoint and id (not a queued
// job: see Lookup).
func (s *Deliveries) Get(ctx context.Context, accountID, endpointID, id string) (*Record, error) {
	return s.get(ctx, deliveryKey(accountID, endpointID, id))
}

func (s *Deliveries) get(ctx context.Context, key string) (*Record, error) {
	entry, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read delivery %s: %w", key, err)
	}
	return decodeRecord(entry.Value(), entry.Revision())
}

// Lookup reads a delivery by account, endpoint and id: its record, or the
// job queued for its first send read as one.
func (s *Deliveries) Lookup(ctx context.Context, accountID, endpointID, id string) (*Record, error) {
	return s.read(ctx, deliveryKey(accountID, endpointID, id), stream.DeliverySubject(accountID, endpointID, id))
}

// read reads the delivery at key from its record if it has one, else from
// its job queued on subject ("": none listed), else (sent and recorded
// meanwhile) from its record again.
func (s *Deliveries) read(ctx context.Context, key, subject string) (*Record, error) {
	r, err := s.get(ctx, key)
	if subject == "" || !errors.Is(err, ErrNotFound) {
		return r, err
	}
	if r, err = s.queued(ctx, subject); !errors.Is(err, ErrNotFound) {
		return r, err
	}
	return s.get(ctx, key)
}

// queued reads the job queued on subject as a PENDING record.
func (s *Deliveries) queued(ctx context.Context, subject string) (*Record, error) {
	m, err := s.work.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read queued delivery %s: %w", subject, err)
	}
	job := &delivery.Job{}
	if err := delivery.UnmarshalJob(m.Data, job); err != nil {
		return nil, fmt.Errorf("decode queued delivery %s: %w", subject, err)
	}
	stream.ReadJobHeaders(job, m.Header)
	return queuedRecord(job, m.Data), nil
}

// queuedRecord is the PENDING record a job queued for its first send stands
// for (raw, when set, is its encoding). It reads as of the job's creation,
// so its history version and every later one are past that, whatever the
// clock of the host that writes them.
func queuedRecord(job *delivery.Job, raw []byte) *Record {
	return &Record{Queued: true, Job: job, JobBytes: raw, Delivery: delivery.Queued(job), readVersion: job.Created.UnixMicro()}
}

// Find reads a delivery by id alone (server-side filters on the id token):
// its record, or its queued job.
func (s *Deliveries) Find(ctx context.Context, id string) (*Record, error) {
	var found *Record
	err := s.each(ctx, "*", "*", id, func(r *Record) bool { found = r; return false })
	if err != nil {
		return nil, fmt.Errorf("find delivery %s: %w", id, err)
	}
	if found == nil {
		return nil, ErrNotFound
	}
	return found, nil
}

// Each calls fn for every delivery of an account ("" = every account),
// recorded or queued, until fn returns false.
func (s *Deliveries) Each(ctx context.Context, accountID string, fn func(*Record) bool) error {
	acc := accountID
	if acc == "" {
		acc = "*"
	}
	return s.each(ctx, acc, "*", "*", fn)
}

// EachOfEndpoint calls fn for every delivery of one endpoint, recorded or
// queued, until fn returns false; only that endpoint's subjects are listed.
func (s *Deliveries) EachOfEndpoint(ctx context.Context, accountID, endpointID string, fn func(*Record) bool) error {
	return s.each(ctx, accountID, endpointID, "*", fn)
}

// each visits the deliveries matching the three key tokens (or "*"): the
// queued jobs' subjects are listed before the record keys, and each delivery
// is read as read does; one visit per delivery, in key order.
func (s *Deliveries) each(ctx context.Context, account, endpoint, id string, fn func(*Record) bool) error {
	queued, err := s.work.Info(ctx, jetstream.WithSubjectFilter("deliveries.*."+account+"."+endpoint+"."+id))
	if err != nil {
		return fmt.Errorf("list queued deliveries: %w", err)
	}
	keys, err := stream.ListKeys(ctx, s.st, stream.DeliveriesBucket, account+"."+endpoint+"."+id)
	if err != nil {
		return fmt.Errorf("list deliveries: %w", err)
	}
	jobs := make(map[string]string, len(queued.State.Subjects)) // key → queued subject
	for subject := range queued.State.Subjects {
		if t := strings.Split(subject, "."); len(t) == 5 {
			k := deliveryKey(t[2], t[3], t[4])
			keys = append(keys, k)
			jobs[k] = subject
		}
	}
	slices.Sort(keys)
	keys = slices.Compact(keys) // a delivery both queued and recorded (the sender has not acked yet)
	for _, k := range keys {
		r, err := s.read(ctx, k, jobs[k])
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if !fn(r) {
			return nil
		}
	}
	return nil
}
