package delivery

// The wire format of a Job.
//
// A job is encoded once per delivery (by the renderer, for the delivery
// message and the delivery record alike) and decoded at least once (by the
// sender), plus in every record read. As JSON, with the rendered body in
// base64, that coding was a large share of the sender's CPU. A job is
// therefore encoded in the protobuf wire format: field-tagged, written and
// read by hand with google.golang.org/protobuf/encoding/protowire. There is
// no .proto file and no generated code: Job is an internal message between
// Postback's own services, and a hand-written codec of a flat struct costs
// neither reflection nor a conversion to and from a generated type.
//
// Fields, as proto3 would write them (a field at its zero value is left
// out, and a missing field decodes to its zero value):
//
//	 1 delivery_id       string
//	 2 account_id        string
//	 3 endpoint_id       string
//	 4 event_id          string
//	 5 event_type        string
//	 6 attempt           varint (int64)
//	 7 created           sfixed64, Unix nanoseconds
//	 8 published         sfixed64, Unix nanoseconds
//	 9 method            string
//	10 url               string
//	11 headers           repeated message Header { 1 name string; 2 value string }
//	12 body              bytes
//	13 content_type      string
//	14 endpoint_version  sfixed64 (Unix nanoseconds, as Job has it)
//	15 sent              varint (int64)
//	16 slot              sfixed64, Unix nanoseconds
//	17 scheduled         sfixed64, Unix nanoseconds
//	18 last_status       varint (int64)
//	19 last_error        string
//	20 mac_key           string (the kid of the job key that made mac)
//	21 mac               bytes (auth.go: what the sender checks)
//
// Field numbers are stable: a field is added with a new number, and the
// number of a removed field is never used again. A decoder skips the fields
// it does not know, so a field can be added before every reader knows it.
// A known field number with another wire type is an error. Field 15 must
// never be written as a group: a job whose first byte is '{' (field 15,
// wire type 3) is the JSON of old.
//
// Times are Unix nanoseconds (fixed 64 bits: a current time takes 9 bytes
// as a varint); the zero time.Time is left out and reads back as the zero
// time, which the services test with IsZero. A time that is not zero but
// outside what int64 nanoseconds hold (before 1678 or after 2262) cannot be
// encoded: AppendBinary returns an error rather than write another instant.
// A time reads back as the same instant (Equal) in UTC, without its
// location or monotonic reading: nothing reads a job's time other than as
// an instant (the JSON of old did not keep the monotonic reading either,
// nor a location other than an offset).
//
// Body (and Headers) do not tell nil from empty: an empty body is left out
// and reads back as nil, as the JSON (omitempty) did. Strings are bytes, as
// Go's are: unlike JSON, invalid UTF-8 survives the round trip.
//
// Revision is not part of the encoding: it travels in the RevisionHeader,
// so the same bytes serve the delivery message and the record.
//
// Jobs written as JSON before this format (messages still in the streams,
// schedules still pending, records) still decode: UnmarshalJob reads a job
// whose first byte is '{' as JSON. Job keeps its JSON tags for them and for
// Failure, which stays JSON (see Failure). During a rolling upgrade,
// services that read jobs (sender, retry, gateway) must be upgraded before
// the renderer and the others write the new format.

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/postback-dev/postback/pkg/id"
	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers of a Job (see the table above). Never renumber.
const (
	jobDeliveryID      protowire.Number = 1
	jobAccountID       protowire.Number = 2
	jobEndpointID      protowire.Number = 3
	jobEventID         protowire.Number = 4
	jobEventType       protowire.Number = 5
	jobAttempt         protowire.Number = 6
	jobCreated         protowire.Number = 7
	jobPublished       protowire.Number = 8
	jobMethod          protowire.Number = 9
	jobURL             protowire.Number = 10
	jobHeaders         protowire.Number = 11
	jobBody            protowire.Number = 12
	jobContentType     protowire.Number = 13
	jobEndpointVersion protowire.Number = 14
	jobSent            protowire.Number = 15
	jobSlot            protowire.Number = 16
	jobScheduled       protowire.Number = 17
	jobLastStatus      protowire.Number = 18
	jobLastError       protowire.Number = 19
	jobMACKey          protowire.Number = 20
	jobMAC             protowire.Number = 21

	headerName  protowire.Number = 1
	headerValue protowire.Number = 2
)

// The times int64 nanoseconds since the Unix epoch can hold.
var (
	minJobTime = time.Unix(0, math.MinInt64)
	maxJobTime = time.Unix(0, math.MaxInt64)
)

// MarshalBinary encodes the job (without its Revision) in the format above.
func (j *Job) MarshalBinary() ([]byte, error) {
	return j.AppendBinary(make([]byte, 0, j.Size()))
}

// AppendBinary appends the job's encoding (without its Revision) to b
// (encoding.BinaryAppender). It fails only for a time outside the range of
// Unix nanoseconds.
func (j *Job) AppendBinary(b []byte) ([]byte, error) {
	for _, t := range [...]*time.Time{&j.Created, &j.Published, &j.Slot, &j.Scheduled} {
		if !t.IsZero() && (t.Before(minJobTime) || t.After(maxJobTime)) {
			return b, fmt.Errorf("encode job %s: time %v is outside the range of Unix nanoseconds", j.DeliveryID, *t)
		}
	}
	b = appendString(b, jobDeliveryID, j.DeliveryID)
	b = appendString(b, jobAccountID, j.AccountID)
	b = appendString(b, jobEndpointID, j.EndpointID)
	b = appendString(b, jobEventID, j.EventID)
	b = appendString(b, jobEventType, j.EventType)
	b = appendInt(b, jobAttempt, j.Attempt)
	b = appendTime(b, jobCreated, j.Created)
	b = appendTime(b, jobPublished, j.Published)
	b = appendString(b, jobMethod, j.Method)
	b = appendString(b, jobURL, j.URL)
	for _, h := range j.Headers {
		b = protowire.AppendTag(b, jobHeaders, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(h.size()))
		b = appendString(b, headerName, h.Name)
		b = appendString(b, headerValue, h.Value)
	}
	if len(j.Body) > 0 {
		b = protowire.AppendTag(b, jobBody, protowire.BytesType)
		b = protowire.AppendBytes(b, j.Body)
	}
	b = appendString(b, jobContentType, j.ContentType)
	if j.EndpointVersion != 0 {
		b = protowire.AppendTag(b, jobEndpointVersion, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, uint64(j.EndpointVersion))
	}
	b = appendInt(b, jobSent, j.Sent)
	b = appendTime(b, jobSlot, j.Slot)
	b = appendTime(b, jobScheduled, j.Scheduled)
	b = appendInt(b, jobLastStatus, j.LastStatus)
	b = appendString(b, jobLastError, j.LastError)
	b = appendString(b, jobMACKey, j.MACKey)
	b = appendString(b, jobMAC, j.MAC)
	return b, nil
}

// Size is the length of the job's encoding.
func (j *Job) Size() int {
	n := sizeString(jobDeliveryID, j.DeliveryID) + sizeString(jobAccountID, j.AccountID) +
		sizeString(jobEndpointID, j.EndpointID) + sizeString(jobEventID, j.EventID) +
		sizeString(jobEventType, j.EventType) + sizeInt(jobAttempt, j.Attempt) +
		sizeTime(jobCreated, j.Created) + sizeTime(jobPublished, j.Published) +
		sizeString(jobMethod, j.Method) + sizeString(jobURL, j.URL) +
		sizeString(jobContentType, j.ContentType) + sizeInt(jobSent, j.Sent) +
		sizeTime(jobSlot, j.Slot) + sizeTime(jobScheduled, j.Scheduled) +
		sizeInt(jobLastStatus, j.LastStatus) + sizeString(jobLastError, j.LastError) +
		sizeString(jobMACKey, j.MACKey) + sizeString(jobMAC, j.MAC)
	for _, h := range j.Headers {
		n += protowire.SizeTag(jobHeaders) + protowire.SizeBytes(h.size())
	}
	if len(j.Body) > 0 {
		n += protowire.SizeTag(jobBody) + protowire.SizeBytes(len(j.Body))
	}
	if j.EndpointVersion != 0 {
		n += protowire.SizeTag(jobEndpointVersion) + protowire.SizeFixed64()
	}
	return n
}

func (h *Header) size() int { return sizeString(headerName, h.Name) + sizeString(headerValue, h.Value) }

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func sizeString(num protowire.Number, s string) int {
	if s == "" {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeBytes(len(s))
}

func appendInt(b []byte, num protowire.Number, v int) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(int64(v)))
}

func sizeInt(num protowire.Number, v int) int {
	if v == 0 {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeVarint(uint64(int64(v)))
}

// appendTime writes a time that is not zero, even one at the Unix epoch
// (0 ns): presence, not the value, tells the zero time apart.
func appendTime(b []byte, num protowire.Number, t time.Time) []byte {
	if t.IsZero() {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, uint64(t.UnixNano()))
}

func sizeTime(num protowire.Number, t time.Time) int {
	if t.IsZero() {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeFixed64()
}

// UnmarshalBinary decodes a job in the format above (not JSON: see
// UnmarshalJob), replacing every field of j; Revision is left zero. The job
// does not alias b. A first pass checks the encoding and measures it, so a
// job costs three allocations whatever its number of fields: its strings
// (one block, which holds nothing but them), its body and its headers.
func (j *Job) UnmarshalBinary(b []byte) error {
	var size jobSize
	if err := walkJob(b, nil, nil, &size); err != nil {
		return err
	}
	*j = Job{}
	var strs strings.Builder
	strs.Grow(size.strings)
	if size.headers > 0 {
		j.Headers = make([]Header, 0, size.headers)
	}
	return walkJob(b, j, &strs, nil)
}

// jobSize is what decoding a job allocates: the bytes of its strings and
// its number of headers.
type jobSize struct{ strings, headers int }

// cut copies v into strs (grown beforehand) and returns it as a string.
// Bytes written to a strings.Builder never change, so the strings cut
// before stay valid.
func cut(strs *strings.Builder, v []byte) string {
	if len(v) == 0 {
		return ""
	}
	start := strs.Len()
	strs.Write(v)
	return strs.String()[start:]
}

// walkJob reads an encoded job: into j, its strings cut from strs, or (j
// nil) only checking it and measuring what decoding it allocates into size.
func walkJob(b []byte, j *Job, strs *strings.Builder, size *jobSize) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("decode job: %w", protowire.ParseError(n))
		}
		b = b[n:]
		want, known := jobFieldType(num)
		if !known {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return fmt.Errorf("decode job: field %d: %w", num, protowire.ParseError(n))
			}
			b = b[n:]
			continue
		}
		if typ != want {
			return fmt.Errorf("decode job: field %d has wire type %d, want %d", num, typ, want)
		}
		switch typ {
		case protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return fmt.Errorf("decode job: field %d: %w", num, protowire.ParseError(n))
			}
			b = b[n:]
			switch {
			case j != nil:
				j.setBytes(num, v, strs)
			case num == jobHeaders:
				if err := walkHeader(v, nil, nil, size); err != nil {
					return err
				}
				size.headers++
			case num != jobBody:
				size.strings += len(v)
			}
		case protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return fmt.Errorf("decode job: field %d: %w", num, protowire.ParseError(n))
			}
			b = b[n:]
			if j != nil {
				j.setInt(num, int(int64(v)))
			}
		case protowire.Fixed64Type:
			v, n := protowire.ConsumeFixed64(b)
			if n < 0 {
				return fmt.Errorf("decode job: field %d: %w", num, protowire.ParseError(n))
			}
			b = b[n:]
			if j != nil {
				j.setFixed(num, int64(v))
			}
		}
	}
	return nil
}

// jobFieldType is the wire type of a known field; false for a field this
// version does not know.
func jobFieldType(num protowire.Number) (protowire.Type, bool) {
	switch num {
	case jobDeliveryID, jobAccountID, jobEndpointID, jobEventID, jobEventType, jobMethod, jobURL,
		jobHeaders, jobBody, jobContentType, jobLastError, jobMACKey, jobMAC:
		return protowire.BytesType, true
	case jobAttempt, jobSent, jobLastStatus:
		return protowire.VarintType, true
	case jobCreated, jobPublished, jobEndpointVersion, jobSlot, jobScheduled:
		return protowire.Fixed64Type, true
	}
	return 0, false
}

// setBytes sets a length-delimited field (walkJob has checked it).
func (j *Job) setBytes(num protowire.Number, v []byte, strs *strings.Builder) {
	switch num {
	case jobDeliveryID:
		j.DeliveryID = cut(strs, v)
	case jobAccountID:
		j.AccountID = cut(strs, v)
	case jobEndpointID:
		j.EndpointID = cut(strs, v)
	case jobEventID:
		j.EventID = cut(strs, v)
	case jobEventType:
		j.EventType = cut(strs, v)
	case jobMethod:
		j.Method = cut(strs, v)
	case jobURL:
		j.URL = cut(strs, v)
	case jobContentType:
		j.ContentType = cut(strs, v)
	case jobLastError:
		j.LastError = cut(strs, v)
	case jobMACKey:
		j.MACKey = cut(strs, v)
	case jobMAC:
		j.MAC = cut(strs, v)
	case jobBody:
		j.Body = append([]byte(nil), v...)
	case jobHeaders:
		var h Header
		_ = walkHeader(v, &h, strs, nil)
		j.Headers = append(j.Headers, h)
	}
}

func (j *Job) setInt(num protowire.Number, v int) {
	switch num {
	case jobAttempt:
		j.Attempt = v
	case jobSent:
		j.Sent = v
	case jobLastStatus:
		j.LastStatus = v
	}
}

func (j *Job) setFixed(num protowire.Number, v int64) {
	switch num {
	case jobCreated:
		j.Created = time.Unix(0, v).UTC()
	case jobPublished:
		j.Published = time.Unix(0, v).UTC()
	case jobSlot:
		j.Slot = time.Unix(0, v).UTC()
	case jobScheduled:
		j.Scheduled = time.Unix(0, v).UTC()
	case jobEndpointVersion:
		j.EndpointVersion = v
	}
}

// walkHeader reads an encoded Header: into h, its strings cut from strs,
// or (h nil) only checking it and adding the bytes of its strings to size.
func walkHeader(b []byte, h *Header, strs *strings.Builder, size *jobSize) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("decode job header: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if num != headerName && num != headerValue {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return fmt.Errorf("decode job header: field %d: %w", num, protowire.ParseError(n))
			}
			b = b[n:]
			continue
		}
		if typ != protowire.BytesType {
			return fmt.Errorf("decode job header: field %d has wire type %d, want %d", num, typ, protowire.BytesType)
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return fmt.Errorf("decode job header: field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
		switch {
		case h == nil:
			size.strings += len(v)
		case num == headerName:
			h.Name = cut(strs, v)
		default:
			h.Value = cut(strs, v)
		}
	}
	return nil
}

// errEmptyJob: a job message or record section is never empty.
var errEmptyJob = errors.New("decode job: empty")

// UnmarshalJob decodes a job in either encoding: the binary format above,
// or the JSON written before it (its first byte is '{'), for messages and
// records written by an older version. Revision is left zero.
func UnmarshalJob(b []byte, j *Job) error {
	switch {
	case len(b) == 0:
		return errEmptyJob
	case b[0] == '{':
		var old Job // not j itself: j would escape on the binary path too
		if err := json.Unmarshal(b, &old); err != nil {
			return fmt.Errorf("decode job (JSON): %w", err)
		}
		*j = old
		return nil
	}
	return j.UnmarshalBinary(b)
}

// Header is one rendered request header carried by a Job.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Job is the message on deliveries.> and retries.>: one request to send.
// Retries resend the rendered request (URL and body as rendered once);
// headers, limits, rules and the enabled flag are read from the endpoint's
// current configuration at send time. Headers carries only the values of
// header templates, rendered with the event's data. Messages and records
// carry a job in the binary format above (MarshalBinary); the JSON tags
// are for Failure and for reading jobs written before that format.
type Job struct {
	DeliveryID  string    `json:"delivery_id"`
	AccountID   string    `json:"account_id"`
	EndpointID  string    `json:"endpoint_id"`
	EventID     string    `json:"event_id"`
	EventType   string    `json:"event_type"`
	Attempt     int       `json:"attempt"`
	Created     time.Time `json:"created"`
	Published   time.Time `json:"published"`
	Method      string    `json:"method"`
	URL         string    `json:"url"`
	Headers     []Header  `json:"headers,omitempty"`
	Body        []byte    `json:"body,omitempty"`
	ContentType string    `json:"content_type,omitempty"`
	// Slot is set when the sender has already reserved the endpoint's limits
	// for this attempt and deferred it to that time: it is sent then without
	// reserving again.
	Slot time.Time `json:"slot,omitzero"`
	// Scheduled is when a retry was planned for (zero for a first send).
	Scheduled time.Time `json:"scheduled,omitzero"`
	// Sent counts the requests already sent for this delivery (the 4xx rule
	// skips retry numbers, so it is not Attempt).
	Sent int `json:"sent,omitempty"`
	// Revision is the delivery record's KV revision when this job was
	// written: the sender claims the attempt with a compare-and-set on it,
	// without reading the record first. A stale revision only costs a read.
	// It travels in the RevisionHeader, so the job's encoding (also stored
	// in the record) is encoded once.
	Revision uint64 `json:"-"`
	// LastStatus and LastError are the previous attempt's, kept on the record.
	LastStatus int    `json:"last_status,omitempty"`
	LastError  string `json:"last_error,omitempty"`
	// Queued marks the renderer's job for a delivery that has no record
	// yet: the renderer writes none for a delivery that rendered, so until
	// the sender records an outcome (or a deferral, or a cancellation writes
	// one) this job, queued on its own subject, is the delivery's PENDING
	// record (see inflight.Deliveries). It travels in stream.QueuedHeader; a copy made
	// by a schedule never carries it.
	Queued bool `json:"-"`
	// EndpointVersion is the endpoint's update time (Unix ns) the renderer
	// rendered this first send against; only the renderer's own job carries
	// it (copies made by a resend, a retry or a deferral do not). While the
	// endpoint is unchanged nobody else can have touched the delivery, so
	// the sender sends such a job without an in-flight claim.
	EndpointVersion int64 `json:"endpoint_version,omitempty"`
	// MACKey and MAC authenticate what the job would send (auth.go): the
	// renderer writes them with the job key, the sender checks them before
	// it sends an endpoint's secrets with the job. Copies keep them. MAC
	// holds raw bytes (a string, so decoding costs no allocation more).
	// Neither is in the JSON form of old: no JSON job was ever tagged.
	MACKey string `json:"-"`
	MAC    string `json:"-"`
}

// Check says why a job can never be sent, or nil: a job whose ids cannot
// name a delivery record.
func (j *Job) Check() error {
	switch {
	case !id.Valid(id.Delivery, j.DeliveryID):
		return fmt.Errorf("the job has no well-formed delivery_id (got %q)", clip(j.DeliveryID))
	case !id.ValidAccount(j.AccountID):
		return fmt.Errorf("the job has no well-formed account_id (got %q)", clip(j.AccountID))
	case !id.Valid(id.Endpoint, j.EndpointID):
		return fmt.Errorf("the job has no well-formed endpoint_id (got %q)", clip(j.EndpointID))
	}
	return nil
}

// clip bounds a value quoted in a reason.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
