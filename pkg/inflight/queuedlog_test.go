package inflight

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

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

func TestAQueuedEntryLoggedAloneIsAPlainEntryFoundOnItsOwnSubject(t *testing.T) {
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
	m, err := s.GetLastMsgForSubject(ctx, stream.HistorySubject("acc", "ep_1", job.DeliveryID))
	if err != nil {
		t.Fatalf("the lone entry is not on its delivery's subject: %v", err)
	}
	if m.Header.Get(historyBatchHeader) != "" {
		t.Error("a lone entry went out as a batch")
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
	good := (&QueuedLog{}).message([]queuedEntry{{rec: r, b: b, version: v}, {rec: r, b: b, version: v + 1}})
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
