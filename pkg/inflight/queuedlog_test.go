package inflight

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/postback-dev/postback/pkg/delivery"
	"github.com/postback-dev/postback/pkg/stream"
	"github.com/postback-dev/postback/pkg/stream/streamtest"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

func queuedJob(i int) *delivery.Job {
	return &delivery.Job{DeliveryID: fmt.Sprintf("dlv_q%d", i), AccountID: "acc", EndpointID: "ep_1", EventID: "evt_1",
		EventType: "action_clearing", Created: time.Now(), URL: "http://127.0.0.1/postback?txid=TX-1001", Queued: true}
}

func TestQueuedDeliveriesLoggedTogetherShareMessagesAndEachArrivesPending(t *testing.T) {
	js := streamtest.JetStream(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	q := NewQueuedLog(ctx, js.Conn())
	const n = 600
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			job := queuedJob(i)
			body, err := job.MarshalBinary()
			if err != nil {
				errs <- err
				return
			}
			done, err := q.Log(job, body)
			if err != nil {
				errs <- err
				return
			}
			errs <- <-done
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	st := streamtest.State(t, js, stream.HistoryStream)
	if st.Msgs >= n {
		t.Errorf("%d messages for %d queued deliveries logged at once, want fewer (batched)", st.Msgs, n)
	}
	got := historyEntries(t, js)
	if len(got) != n {
		t.Fatalf("%d entries, want %d", len(got), n)
	}
	for i, e := range got {
		if e.status != postbackv1.DeliveryStatus_DELIVERY_STATUS_PENDING || !e.job || e.version == 0 {
			t.Fatalf("entry %d: %+v, want PENDING with its job and a version", i, e)
		}
	}
}

// A PENDING entry is never on its delivery's own subject, where it could
// hide the final entry that a batch of the sender's carries: a lone one
// goes out as a batch of one.
func TestAQueuedEntryLoggedAloneStaysOffItsDeliverysSubject(t *testing.T) {
	js := streamtest.JetStream(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	q := NewQueuedLog(ctx, js.Conn())
	job := queuedJob(1)
	body, _ := job.MarshalBinary()
	done, err := q.Log(job, body)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, stream.HistoryStream)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetLastMsgForSubject(ctx, stream.HistorySubject("acc", "ep_1", job.DeliveryID)); !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Fatalf("the lone queued entry on its delivery's subject: %v, want none there", err)
	}
	m, err := s.GetLastMsgForSubject(ctx, queuedBatchPrefix+"*")
	if err != nil {
		t.Fatalf("the lone queued entry is not a batch: %v", err)
	}
	es, err := HistoryEntries(m.Data, m.Header)
	if err != nil || len(es) != 1 || es[0].Delivery.Id != job.DeliveryID || es[0].Delivery.Status != postbackv1.DeliveryStatus_DELIVERY_STATUS_PENDING {
		t.Fatalf("the batch of one: %v, %v; want the delivery PENDING", es, err)
	}
}

func TestQueuedEntriesWaitingWhenTheLogStopsFailWithItsReason(t *testing.T) {
	js := streamtest.JetStream(t)
	ctx, cancel := context.WithCancel(context.Background())
	q := NewQueuedLog(ctx, js.Conn())
	cancel()
	time.Sleep(50 * time.Millisecond) // the flushers see the end
	job := queuedJob(1)
	body, _ := job.MarshalBinary()
	if _, err := q.Log(job, body); !errors.Is(err, context.Canceled) {
		t.Fatalf("Log after the end: %v, want context.Canceled", err)
	}
}

func TestAMalformedHistoryBatchIsRefusedNotHalfRead(t *testing.T) {
	job := queuedJob(1)
	body, _ := job.MarshalBinary()
	r := queuedRecord(job, body)
	v := r.version()
	b, err := r.encode()
	if err != nil {
		t.Fatal(err)
	}
	good := (&entryLog{prefix: queuedBatchPrefix}).message([]queuedEntry{{rec: r, b: b, version: v}, {rec: r, b: b, version: v + 1}})
	if es, err := HistoryEntries(good.Data, good.Header); err != nil || len(es) != 2 {
		t.Fatalf("a good batch: %d entries, %v; want 2", len(es), err)
	}
	for _, tc := range []struct {
		name  string
		data  []byte
		count string
	}{
		{"a count above what it holds", good.Data, "3"},
		{"a count below what it holds", good.Data, "1"},
		{"a count that is not a number", good.Data, "many"},
		{"a body cut short", good.Data[:len(good.Data)-5], "2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := nats.Header{}
			h.Set(historyBatchHeader, tc.count)
			if es, err := HistoryEntries(tc.data, h); err == nil {
				t.Fatalf("decoded %d entries, want an error", len(es))
			}
		})
	}
}

func TestADeliveryEndedByItsFirstSendIsLoggedWithNoRecord(t *testing.T) {
	js := streamtest.JetStream(t)
	ctx := context.Background()
	dls, err := OpenDeliveries(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	job := queuedJob(7)
	body, _ := job.MarshalBinary()
	r := queuedRecord(job, body)
	r.Delivery.Status = postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED
	r.Last = &postbackv1.Attempt{DeliveryId: job.DeliveryID, Number: 0, StatusCode: 200}
	if err := dls.Conclude(ctx, r); err != nil {
		t.Fatal(err)
	}
	if _, err := dls.Get(ctx, "acc", "ep_1", job.DeliveryID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("hot record after Conclude: %v, want ErrNotFound", err)
	}
	p, err := dls.Pending(ctx, job.DeliveryID)
	if err != nil || p.Delivery.Status != postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED || p.Last.GetStatusCode() != 200 {
		t.Fatalf("Pending = %v, %v; want SUCCEEDED with its attempt", p, err)
	}
	open := queuedRecord(queuedJob(8), nil)
	if err := dls.Conclude(ctx, open); err == nil {
		t.Error("Conclude of a PENDING delivery succeeded; want an error (only final states have no record)")
	}
}

// concludedRecord is the final record of a delivery ended by its first
// send, answered with code.
func concludedRecord(i int, code int32) *Record {
	job := queuedJob(i)
	body, _ := job.MarshalBinary()
	r := queuedRecord(job, body)
	r.Delivery.Status = postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED
	r.Last = &postbackv1.Attempt{DeliveryId: job.DeliveryID, Number: 0, StatusCode: code}
	return r
}

// concludeAll concludes n deliveries at once through a log with no
// flushers, then flushes what gathered: the batches are known.
func concludeAll(t *testing.T, ctx context.Context, dls *Deliveries, n int) {
	t.Helper()
	log := newEntryLog(ctx, dls.js.Conn(), doneBatchPrefix, true, 0)
	dls.concluded = log
	errs := make(chan error, n)
	for i := range n {
		go func() { errs <- dls.Conclude(ctx, concludedRecord(i, 200+int32(i%3))) }()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		log.mu.Lock()
		w := len(log.waiting)
		log.mu.Unlock()
		if w == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d conclusions waiting after 10s", w, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	log.publishWaiting(ctx)
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestDeliveriesConcludedTogetherShareBatchesAndEachIsFoundByID(t *testing.T) {
	js := streamtest.JetStream(t)
	ctx := context.Background()
	dls, err := OpenDeliveries(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	const n = batchEntries + 44 // two batches: the newest, and one before it
	concludeAll(t, ctx, dls, n)
	if st := streamtest.State(t, js, stream.HistoryStream); st.Msgs != 2 {
		t.Fatalf("%d messages for %d deliveries concluded at once, want 2 batches", st.Msgs, n)
	}
	for i := range n {
		id := queuedJob(i).DeliveryID
		if _, err := dls.Pending(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Pending(%s) = %v, want ErrNotFound (it is in a batch, not on its own subject)", id, err)
		}
		r, err := dls.Concluded(ctx, id)
		if err != nil {
			t.Fatalf("Concluded(%s): %v", id, err)
		}
		if r.Delivery.Id != id || r.Delivery.Status != postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED || r.Last.GetStatusCode() != 200+int32(i%3) {
			t.Fatalf("Concluded(%s) = %s %s with %d, want it SUCCEEDED with its own attempt (%d)", id, r.Delivery.Id, r.Delivery.Status, r.Last.GetStatusCode(), 200+i%3)
		}
	}
	if _, err := dls.Concluded(ctx, "dlv_q"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Concluded of an id no batch holds (a prefix of those they hold) = %v, want ErrNotFound", err)
	}
}

func TestABatchStoredByTheWriterIsNoLongerFoundInTheStream(t *testing.T) {
	js := streamtest.JetStream(t)
	ctx := context.Background()
	dls, err := OpenDeliveries(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	concludeAll(t, ctx, dls, batchEntries+2) // a batch of two after the full one
	first, err := dls.hist.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(doneBatches))
	if err != nil {
		t.Fatal(err)
	}
	last, err := dls.hist.GetLastMsgForSubject(ctx, doneBatches)
	if err != nil || last.Sequence == first.Sequence {
		t.Fatalf("the newest batch: %v (sequence %d, the first %d); want a second batch", err, last.Sequence, first.Sequence)
	}
	stored := strings.Split(first.Header.Get(historyIDsHeader), ",")[0]
	waiting := strings.Split(last.Header.Get(historyIDsHeader), ",")[0]
	if err := dls.hist.DeleteMsg(ctx, first.Sequence); err != nil { // as the writer's ack does
		t.Fatal(err)
	}
	if _, err := dls.Concluded(ctx, stored); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Concluded of a delivery whose batch was stored = %v, want ErrNotFound (the store has it)", err)
	}
	if _, err := dls.Concluded(ctx, waiting); err != nil {
		t.Fatalf("Concluded of a delivery in the batch still waiting: %v", err)
	}
}

func TestADeliveryConcludedAloneIsAPlainEntryOnItsOwnSubject(t *testing.T) {
	js := streamtest.JetStream(t)
	ctx := context.Background()
	dls, err := OpenDeliveries(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	concludeAll(t, ctx, dls, 1)
	p, err := dls.Pending(ctx, queuedJob(0).DeliveryID)
	if err != nil || p.Delivery.Status != postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED {
		t.Fatalf("Pending = %v, %v; want the lone entry SUCCEEDED on its own subject", p, err)
	}
	if _, err := dls.Concluded(ctx, queuedJob(0).DeliveryID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Concluded = %v, want ErrNotFound: no batch was written", err)
	}
}

func TestABatchNamesExactlyItsDeliveries(t *testing.T) {
	for _, tc := range []struct {
		ids, id string
		want    bool
	}{
		{"dlv_1,dlv_12", "dlv_1", true},
		{"dlv_1,dlv_12", "dlv_12", true},
		{"dlv_1,dlv_12", "dlv_2", false},
		{"dlv_1,dlv_12", "dlv_", false},
		{"dlv_1,dlv_12", "dlv_1,dlv_12", false},
		{"", "dlv_1", false},
	} {
		if got := names(tc.ids, tc.id); got != tc.want {
			t.Errorf("names(%q, %q) = %v, want %v", tc.ids, tc.id, got, tc.want)
		}
	}
}
