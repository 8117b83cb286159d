package stream

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/postback-dev/postback/pkg/broker/brokertest"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

func startJetStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	js := brokertest.JetStream(t)
	ctx := context.Background()
	for range 2 { // idempotent: every service calls it at start-up
		if err := Ensure(ctx, js, DefaultOptions()); err != nil {
			t.Fatal(err)
		}
	}
	return js
}

func TestWorkStreamsRefuseNewMessagesWhenFullInsteadOfDroppingOld(t *testing.T) {
	js := startJetStream(t)
	ctx := context.Background()
	for _, name := range []string{EventsStream, DeliveriesStream} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if cfg := s.CachedInfo().Config; cfg.Discard != jetstream.DiscardNew || cfg.Retention != jetstream.WorkQueuePolicy {
			t.Errorf("%s: discard %v retention %v, want discard new on a work queue", name, cfg.Discard, cfg.Retention)
		}
	}
	s, _ := js.Stream(ctx, SchedulesStream)
	if cfg := s.CachedInfo().Config; !cfg.AllowMsgSchedules || cfg.MaxMsgs != -1 || cfg.MaxBytes != -1 {
		t.Errorf("schedules stream: %+v, want message schedules and no count or byte limit", cfg)
	}
}

func TestAnEndpointAlwaysLandsInTheSamePartition(t *testing.T) {
	a, b := DeliverySubject("acc", "ep_01", "dlv_1"), DeliverySubject("acc", "ep_01", "dlv_2")
	partition := func(subject string) string { return strings.Split(subject, ".")[1] }
	for _, other := range []string{b, RetrySubject("ep_01"), FailedSubject("ep_01")} {
		if partition(other) != partition(a) {
			t.Fatalf("partitions differ: %s %s", a, other)
		}
	}
}

func record(id string) *Record {
	return &Record{Delivery: &postbackv1.Delivery{Id: id, AccountId: "acc", EndpointId: "ep_1", Status: postbackv1.DeliveryStatus_DELIVERY_STATUS_PENDING,
		CreateTime: timestamppb.Now()},
		Job: &Job{DeliveryID: id, URL: "http://127.0.0.1/", Body: []byte(`{"a":1}`)}}
}

func TestDeliveryRecordsCreateOnceAndUpdateByRevision(t *testing.T) {
	js := startJetStream(t)
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
		if !IsExists(err) {
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
	found.Last = attempt(0, 1, "OK")
	found.Delivery.Status = postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED
	if err := dls.Put(ctx, found); err != nil {
		t.Fatal(err)
	}
	sent, err := dls.Get(ctx, "acc", "ep_1", "dlv_1")
	if err != nil || !proto.Equal(sent.Last, attempt(0, 1, "OK")) || string(sent.Job.Body) != `{"a":1}` || sent.Claim != "claim-1" {
		t.Fatalf("after the attempt is written with the state: %+v, %v", sent, err)
	}
}

// queue publishes a renderer's first send, which has no record.
func queue(t *testing.T, js jetstream.JetStream, account, endpointID, id string) *Job {
	t.Helper()
	job := &Job{DeliveryID: id, AccountID: account, EndpointID: endpointID, EventID: "evt_1", EventType: "action_lifecycle",
		Created: time.Unix(100, 0).UTC(), URL: "http://127.0.0.1/", Body: []byte(`{"a":1}`), EndpointVersion: 7, Queued: true}
	body, err := job.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.PublishMsg(context.Background(), NewJobMsg(context.Background(), DeliverySubject(account, endpointID, id), job, body, "job:"+id+":0")); err != nil {
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
	js := startJetStream(t)
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
	work, _ := js.Stream(ctx, DeliveriesStream)
	if err := work.Purge(ctx, jetstream.WithPurgeSubject(DeliverySubject("acc", "ep_1", "dlv_2"))); err != nil {
		t.Fatal(err)
	}
	if got, err := dls.Find(ctx, "dlv_2"); err != nil || got.Queued || got.Delivery.Status != postbackv1.DeliveryStatus_DELIVERY_STATUS_CANCELLED {
		t.Fatalf("Find after the queue let the job go = %+v, %v", got, err)
	}
	if _, err := dls.Find(ctx, "dlv_9"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Find of an unknown delivery: %v, want ErrNotFound", err)
	}
}

func attempt(number int32, startSec int64, body string) *postbackv1.Attempt {
	return &postbackv1.Attempt{DeliveryId: "dlv_1", Number: number, StartTime: timestamppb.New(time.Unix(startSec, 0)), StatusCode: 200, ResponseBody: body}
}

func TestHistoryIsTheMovedAttemptsThenTheRecordsLatestOnce(t *testing.T) {
	a0, a1, a2 := attempt(0, 1, "ERR"), attempt(1, 2, "ERR"), attempt(2, 3, "OK")
	replay := attempt(2, 9, "OK") // a replay repeats a number at a later start
	cases := []struct {
		name  string
		moved []*postbackv1.Attempt
		last  *postbackv1.Attempt
		want  []*postbackv1.Attempt
	}{
		{"never sent", nil, nil, nil},
		{"sent once: only the record holds it", nil, a0, []*postbackv1.Attempt{a0}},
		{"retried: earlier attempts were moved", []*postbackv1.Attempt{a0, a1}, a2, []*postbackv1.Attempt{a0, a1, a2}},
		{"a crash after moving the latest lists it once", []*postbackv1.Attempt{a0, a1}, a1, []*postbackv1.Attempt{a0, a1}},
		{"a replayed attempt with the same number is another attempt", []*postbackv1.Attempt{a0, a1, a2}, replay, []*postbackv1.Attempt{a0, a1, a2, replay}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := History(c.moved, c.last)
			if len(got) != len(c.want) {
				t.Fatalf("got %d attempts, want %d", len(got), len(c.want))
			}
			for i := range got {
				if !proto.Equal(got[i], c.want[i]) {
					t.Errorf("attempt %d = %v, want %v", i, got[i], c.want[i])
				}
			}
		})
	}
}

func TestEndpointCacheFollowsPutsAndDeletes(t *testing.T) {
	js := startJetStream(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	eps, err := OpenEndpoints(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	cache, err := NewEndpointCache(ctx, eps, 10)
	if err != nil {
		t.Fatal(err)
	}
	put := func(id, url string) {
		t.Helper()
		if err := eps.Put(ctx, &postbackv1.Endpoint{Id: id, AccountId: "acc", EventType: "action_clearing", Url: url}); err != nil {
			t.Fatal(err)
		}
	}
	urls := func() []string {
		l, err := cache.List(ctx, "acc", "action_clearing")
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range l {
			out = append(out, e.Id+"="+e.Url)
		}
		return out
	}
	eventuallyEqual := func(want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			got := urls()
			if strings.Join(got, ",") == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("cache holds %v, want %q", got, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	put("ep_a", "http://a")
	eventuallyEqual("ep_a=http://a") // loaded on first use
	put("ep_b", "http://b")
	put("ep_a", "http://a2")
	eventuallyEqual("ep_a=http://a2,ep_b=http://b") // followed by the watch
	if err := eps.Delete(ctx, EndpointKey("acc", "action_clearing", "ep_a")); err != nil {
		t.Fatal(err)
	}
	eventuallyEqual("ep_b=http://b")
	if _, err := cache.Get(ctx, "acc", "action_clearing", "ep_a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of a deleted endpoint: %v", err)
	}
}

// ListDeliveries must not lose a delivery whose record is being written at
// that moment (its outcome lands while a client lists): the listing reads
// the bucket's per-subject state, where a key being replaced never goes
// missing.
func TestListingFindsEveryRecordWhileRecordsAreRewritten(t *testing.T) {
	js := startJetStream(t)
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

func TestAnEndpointMovedToAnotherTypeIsFoundUnderItsNewKey(t *testing.T) {
	js := startJetStream(t)
	ctx := context.Background()
	eps, err := OpenEndpoints(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	old := &postbackv1.Endpoint{Id: "ep_a", AccountId: "acc", EventType: "action_clearing", Url: "http://old"}
	moved := &postbackv1.Endpoint{Id: "ep_a", AccountId: "acc", EventType: "action_update", Url: "http://new"}
	// The gateway writes the new key, then deletes the old one (a tombstone
	// that stays in the bucket's subject state). The old key sorts first.
	if err := eps.Put(ctx, old); err != nil {
		t.Fatal(err)
	}
	if err := eps.Put(ctx, moved); err != nil {
		t.Fatal(err)
	}
	if err := eps.Delete(ctx, Key(old)); err != nil {
		t.Fatal(err)
	}
	got, err := eps.Get(ctx, "ep_a")
	if err != nil || got.Url != "http://new" {
		t.Fatalf("Get = %v, %v; want the endpoint under its new key", got, err)
	}
	all, err := eps.List(ctx, "acc", "")
	if err != nil || len(all) != 1 || all[0].Url != "http://new" {
		t.Fatalf("List = %v, %v; want only the moved endpoint", all, err)
	}
}

// A record written before the attempt section and the format byte existed
// (delivery, claim, then the job as JSON) still reads: an upgrade keeps the
// delivery history readable.
func TestARecordOfTheFirstFormatStillReads(t *testing.T) {
	js := startJetStream(t)
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
	kv, err := js.KeyValue(ctx, DeliveriesBucket)
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
	got.Last = attempt(0, 1, "OK")
	if err := dls.Put(ctx, got); err != nil {
		t.Fatal(err)
	}
	again, err := dls.Get(ctx, "acc", "ep_1", "dlv_old")
	if err != nil || !proto.Equal(again.Last, got.Last) || again.Job.URL != old.Job.URL {
		t.Fatalf("rewritten record = %+v, %v", again, err)
	}
}

// A scheduled copy of a queued job never carries the Queued mark: whoever
// schedules a job (a deferral) writes its record.
func TestAScheduledCopyOfAQueuedJobIsNotQueued(t *testing.T) {
	js := startJetStream(t)
	ctx := context.Background()
	job := &Job{DeliveryID: "dlv_1", AccountID: "acc", EndpointID: "ep_1", URL: "http://127.0.0.1/", Queued: true}
	if err := Schedule(ctx, js, job, time.Now().Add(time.Hour), "slot:dlv_1"); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, SchedulesStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(ctx, ScheduleSubject("dlv_1"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get(QueuedHeader) != "" || m.Header.Get("Nats-Schedule") == "" {
		t.Fatalf("schedule headers %v: want a schedule without %s", m.Header, QueuedHeader)
	}
}
