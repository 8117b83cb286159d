package inflight

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/postback-dev/postback/pkg/delivery"
	"github.com/postback-dev/postback/pkg/stream"
	"github.com/postback-dev/postback/pkg/stream/streamtest"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

func record(id string) *Record {
	return &Record{Delivery: &postbackv1.Delivery{Id: id, AccountId: "acc", EndpointId: "ep_1", Status: postbackv1.DeliveryStatus_DELIVERY_STATUS_PENDING,
		CreateTime: timestamppb.Now()},
		Job: &delivery.Job{DeliveryID: id, URL: "http://127.0.0.1/", Body: []byte(`{"a":1}`)}}
}

func TestDeliveryRecordsCreateOnceAndUpdateByRevision(t *testing.T) {
	js := streamtest.JetStream(t)
	ctx := context.Background()
	dls, err := OpenDeliveries(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	f, err := dls.CreateAsync(record("dlv_1"))
	if err != nil {
		t.Fatal(err)
	}
	var rev uint64
	select {
	case ack := <-f.Ok():
		rev = ack.Sequence
	case err := <-f.Err():
		t.Fatal(err)
	}
	again, _ := dls.CreateAsync(record("dlv_1"))
	select {
	case <-again.Ok():
		t.Fatal("a second create of the same delivery succeeded")
	case err := <-again.Err():
		if !stream.IsExists(err) {
			t.Fatalf("second create: %v, want exists", err)
		}
	}
	got, err := dls.Get(ctx, "acc", "ep_1", "dlv_1")
	if err != nil || got.Revision != rev || string(got.Job.Body) != `{"a":1}` || got.Delivery.Id != "dlv_1" || got.Delivery.Status != postbackv1.DeliveryStatus_DELIVERY_STATUS_PENDING {
		t.Fatalf("Get = %+v, %v; want revision %d and the stored job", got, err, rev)
	}
	got.Delivery.Status = postbackv1.DeliveryStatus_DELIVERY_STATUS_IN_FLIGHT
	got.Claim = "claim-1"
	if err := dls.Update(ctx, got); err != nil {
		t.Fatal(err)
	}
	stale := record("dlv_1")
	stale.Revision = rev
	if err := dls.Update(ctx, stale); !errors.Is(err, ErrConflict) {
		t.Fatalf("update at a stale revision: %v, want ErrConflict", err)
	}
	found, err := dls.Find(ctx, "dlv_1")
	if err != nil || found.Claim != "claim-1" || found.Delivery.Status != postbackv1.DeliveryStatus_DELIVERY_STATUS_IN_FLIGHT {
		t.Fatalf("Find = %+v, %v", found, err)
	}
	if found.Last != nil {
		t.Fatalf("a record never sent holds an attempt: %v", found.Last)
	}
	found.Last = okAttempt
	found.Delivery.Status = postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED
	if err := dls.Put(ctx, found); err != nil {
		t.Fatal(err)
	}
	sent, err := dls.Get(ctx, "acc", "ep_1", "dlv_1")
	if err != nil || !proto.Equal(sent.Last, okAttempt) || string(sent.Job.Body) != `{"a":1}` || sent.Claim != "claim-1" {
		t.Fatalf("after the attempt is written with the state: %+v, %v", sent, err)
	}
}

func queue(t *testing.T, js jetstream.JetStream, account, endpointID, id string) *delivery.Job {
	t.Helper()
	job := &delivery.Job{DeliveryID: id, AccountID: account, EndpointID: endpointID, EventID: "evt_1", EventType: "action_lifecycle",
		Created: time.Unix(100, 0).UTC(), URL: "http://127.0.0.1/", Body: []byte(`{"a":1}`), EndpointVersion: 7, Queued: true}
	body, err := job.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.PublishMsg(context.Background(), stream.NewJobMsg(context.Background(), stream.DeliverySubject(account, endpointID, id), job, body, "job:"+id+":0")); err != nil {
		t.Fatal(err)
	}
	return job
}

func ids(t *testing.T, each func(fn func(*Record) bool) error) string {
	t.Helper()
	var got []string
	if err := each(func(r *Record) bool {
		got = append(got, fmt.Sprintf("%s:%s:queued=%v", r.Delivery.Id, strings.TrimPrefix(r.Delivery.Status.String(), "DELIVERY_STATUS_"), r.Queued))
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return strings.Join(got, " ")
}

func TestAFirstSendStillQueuedReadsAsAPendingDeliveryUntilItHasARecord(t *testing.T) {
	js := streamtest.JetStream(t)
	ctx := context.Background()
	dls, err := OpenDeliveries(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	job := queue(t, js, "acc", "ep_1", "dlv_2")
	queue(t, js, "acc", "ep_2", "dlv_3")
	queue(t, js, "other", "ep_9", "dlv_4")
	if err := dls.Create(ctx, record("dlv_1")); err != nil { // recorded, nothing queued
		t.Fatal(err)
	}

	got, err := dls.Find(ctx, "dlv_2")
	if err != nil || !got.Queued || got.Revision != 0 || got.Delivery.Status != postbackv1.DeliveryStatus_DELIVERY_STATUS_PENDING ||
		got.Delivery.AccountId != "acc" || got.Delivery.EndpointId != "ep_1" || got.Delivery.EventId != "evt_1" ||
		!got.Delivery.CreateTime.AsTime().Equal(job.Created) || string(got.Job.Body) != `{"a":1}` || !got.Job.Queued {
		t.Fatalf("Find of a queued first send = %+v, %v", got, err)
	}
	if _, err := dls.Get(ctx, "acc", "ep_1", "dlv_2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get (records only) of a queued first send: %v, want ErrNotFound", err)
	}
	if got, err := dls.Lookup(ctx, "acc", "ep_1", "dlv_2"); err != nil || !got.Queued {
		t.Fatalf("Lookup of a queued first send = %+v, %v", got, err)
	}
	if got := ids(t, func(fn func(*Record) bool) error { return dls.Each(ctx, "acc", fn) }); got != "dlv_1:PENDING:queued=false dlv_2:PENDING:queued=true dlv_3:PENDING:queued=true" {
		t.Fatalf("Each(acc) = %s", got)
	}
	if got := ids(t, func(fn func(*Record) bool) error { return dls.EachOfEndpoint(ctx, "acc", "ep_1", fn) }); got != "dlv_1:PENDING:queued=false dlv_2:PENDING:queued=true" {
		t.Fatalf("EachOfEndpoint(acc, ep_1) = %s", got)
	}

	// A cancellation writes the record at revision 0: only while there is none.
	cancelled := got
	cancelled.Delivery.Status = postbackv1.DeliveryStatus_DELIVERY_STATUS_CANCELLED
	if err := dls.Update(ctx, cancelled); err != nil {
		t.Fatal(err)
	}
	late, _ := dls.Lookup(ctx, "other", "ep_9", "dlv_4")
	late.Delivery.AccountId, late.Delivery.EndpointId, late.Delivery.Id = "acc", "ep_1", "dlv_2"
	if err := dls.Update(ctx, late); !errors.Is(err, ErrConflict) {
		t.Fatalf("a second write at revision 0: %v, want ErrConflict", err)
	}
	// Recorded and still queued (the sender has not acked): the record wins, once.
	if got := ids(t, func(fn func(*Record) bool) error { return dls.EachOfEndpoint(ctx, "acc", "ep_1", fn) }); got != "dlv_1:PENDING:queued=false dlv_2:CANCELLED:queued=false" {
		t.Fatalf("EachOfEndpoint after the record was written = %s", got)
	}
	if got, err := dls.Find(ctx, "dlv_2"); err != nil || got.Queued || got.Delivery.Status != postbackv1.DeliveryStatus_DELIVERY_STATUS_CANCELLED {
		t.Fatalf("Find after the record was written = %+v, %v", got, err)
	}
	// The queue lets the job go: the record stays.
	work, _ := js.Stream(ctx, stream.DeliveriesStream)
	if err := work.Purge(ctx, jetstream.WithPurgeSubject(stream.DeliverySubject("acc", "ep_1", "dlv_2"))); err != nil {
		t.Fatal(err)
	}
	if got, err := dls.Find(ctx, "dlv_2"); err != nil || got.Queued || got.Delivery.Status != postbackv1.DeliveryStatus_DELIVERY_STATUS_CANCELLED {
		t.Fatalf("Find after the queue let the job go = %+v, %v", got, err)
	}
	if _, err := dls.Find(ctx, "dlv_9"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Find of an unknown delivery: %v, want ErrNotFound", err)
	}
}

func TestListingFindsEveryRecordWhileRecordsAreRewritten(t *testing.T) {
	js := streamtest.JetStream(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dls, err := OpenDeliveries(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	recs := make([]*Record, n)
	for i := range recs {
		recs[i] = record(fmt.Sprintf("dlv_%02d", i))
		if err := dls.Put(ctx, recs[i]); err != nil {
			t.Fatal(err)
		}
	}
	writing := make(chan struct{})
	go func() {
		defer close(writing)
		for round := 0; ctx.Err() == nil && round < 200; round++ {
			for _, r := range recs {
				if err := dls.Put(ctx, r); err != nil && ctx.Err() == nil {
					t.Error(err)
					return
				}
			}
		}
	}()
	for listing := 0; listing < 30; listing++ {
		seen := 0
		if err := dls.Each(ctx, "acc", func(*Record) bool { seen++; return true }); err != nil {
			t.Fatal(err)
		}
		if seen != n {
			t.Fatalf("listing %d saw %d of %d records while they were rewritten", listing, seen, n)
		}
	}
	cancel()
	<-writing
}

func TestARecordOfTheFirstFormatStillReads(t *testing.T) {
	js := streamtest.JetStream(t)
	ctx := context.Background()
	dls, err := OpenDeliveries(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	old := record("dlv_old")
	old.Delivery.Status = postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED
	d, _ := proto.Marshal(old.Delivery)
	job, _ := json.Marshal(old.Job)
	b := binary.AppendUvarint(nil, uint64(len(d)))
	b = append(b, d...)
	b = binary.AppendUvarint(b, uint64(len("DELIVERIES:3")))
	b = append(b, "DELIVERIES:3"...)
	b = append(b, job...)
	kv, err := js.KeyValue(ctx, stream.DeliveriesBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, deliveryKey("acc", "ep_1", "dlv_old"), b); err != nil {
		t.Fatal(err)
	}
	got, err := dls.Get(ctx, "acc", "ep_1", "dlv_old")
	if err != nil || !proto.Equal(got.Delivery, old.Delivery) || got.Claim != "DELIVERIES:3" || got.Last != nil ||
		got.Job == nil || got.Job.URL != old.Job.URL || string(got.Job.Body) != `{"a":1}` {
		t.Fatalf("old record = %+v, %v", got, err)
	}
	// Written again, it takes the current format and keeps its contents.
	got.Last = okAttempt
	if err := dls.Put(ctx, got); err != nil {
		t.Fatal(err)
	}
	again, err := dls.Get(ctx, "acc", "ep_1", "dlv_old")
	if err != nil || !proto.Equal(again.Last, got.Last) || again.Job.URL != old.Job.URL {
		t.Fatalf("rewritten record = %+v, %v", again, err)
	}
}

func TestRecordsHoldTheJobInBinaryAndReadJobsOfOld(t *testing.T) {
	dlv := &postbackv1.Delivery{Id: "dlv_1", AccountId: "acc", EndpointId: "ep_1", Status: postbackv1.DeliveryStatus_DELIVERY_STATUS_RETRYING}
	last := &postbackv1.Attempt{StatusCode: 503}
	job := &delivery.Job{DeliveryID: "dlv_1", AccountID: "acc", EndpointID: "ep_1", EventType: "action_lifecycle", Attempt: 2, Sent: 2,
		Created: time.Date(2026, 4, 8, 9, 0, 0, 123456789, time.UTC), Method: "POST", URL: "https://example.com/hook?t=1",
		Headers: []delivery.Header{{Name: "X-Brand", Value: "1"}}, Body: []byte(`{"txid":"TX-1001"}`), ContentType: "application/json",
		LastStatus: 503, LastError: "busy"}
	encoded, err := job.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	oldJSON, err := json.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	// jobSection is where a record's job starts: after the format byte,
	// the delivery, the claim and the last attempt.
	jobSection := func(b []byte) []byte {
		if b[0] != recordV2 {
			t.Fatalf("record starts with %#x, want the format byte", b[0])
		}
		b = b[1:]
		for range 3 {
			n, k := binary.Uvarint(b)
			b = b[k+int(n):]
		}
		return b
	}
	for _, c := range []struct {
		name    string
		rec     *Record
		section []byte // the job section the record must be written with
	}{
		{"a job encoded by the record", &Record{Delivery: dlv, Job: job, Claim: "DELIVERIES:7", Last: last}, encoded},
		{"a job encoded beforehand (JobBytes)", &Record{Delivery: dlv, Job: job, JobBytes: encoded}, encoded},
		{"a job stored as it came, as JSON written before the binary format", &Record{Delivery: dlv, Job: job, JobBytes: oldJSON}, oldJSON},
		{"no job", &Record{Delivery: dlv, Last: last}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, err := c.rec.encode()
			if err != nil {
				t.Fatal(err)
			}
			if got := jobSection(b); !bytes.Equal(got, c.section) {
				t.Fatalf("job section = %q, want %q", got, c.section)
			}
			got, err := decodeRecord(b, 9)
			if err != nil {
				t.Fatal(err)
			}
			if got.Revision != 9 || got.Claim != c.rec.Claim || !proto.Equal(got.Delivery, dlv) ||
				(c.rec.Last == nil) != (got.Last == nil) || (got.Last != nil && !proto.Equal(got.Last, last)) {
				t.Fatalf("record = %+v, want %+v", got, c.rec)
			}
			if c.rec.Job == nil {
				if got.Job != nil {
					t.Fatalf("a record without a job reads back with %+v", got.Job)
				}
				return
			}
			if got.Job == nil {
				t.Fatal("the job is missing")
			}
			if !reflect.DeepEqual(got.Job, c.rec.Job) {
				t.Fatalf("job = %+v, want %+v", got.Job, c.rec.Job)
			}
		})
	}
	t.Run("a broken job section is an error", func(t *testing.T) {
		b, err := (&Record{Delivery: dlv, Job: job}).encode()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decodeRecord(b[:len(b)-1], 1); err == nil {
			t.Fatal("a record whose job is cut short decoded")
		}
	})
}

// FuzzJobUnmarshal: no input makes the decoder panic, and whatever decodes
// (binary or JSON) encodes again to bytes that decode to the same job, and

// okAttempt is a first attempt that succeeded.
var okAttempt = &postbackv1.Attempt{DeliveryId: "dlv_1", StartTime: timestamppb.New(time.Unix(1, 0)), StatusCode: 200, ResponseBody: "OK"}
