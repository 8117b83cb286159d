package standalone

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/postback-dev/postback/pkg/stream"
	"github.com/postback-dev/postback/pkg/stream/streamtest"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// A postback that succeeds at once is the common case, so it is the cheap
// one: no hot record at all (until it is sent its queued job stands for
// it; then its final history entry, with its outcome and attempt, is its
// only record), no in-flight claim, nothing in the attempt history; the
// queue keeps nothing, and ListAttempts still shows the attempt.
func TestADeliverySucceedingAtOnceWritesNoHotRecord(t *testing.T) {
	h := start(t, "", nil)
	rc := newReceiver(t)
	postTo(t, h, rc.URL)
	const n = 20
	publishUntilAll(t, h, n, postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED, 10*time.Second)
	if records := streamtest.State(t, h.jetStream(t), "KV_"+stream.DeliveriesBucket); records.LastSeq != 0 {
		t.Errorf("delivery records: %d writes, want none", records.LastSeq)
	}
	// The history got each delivery's queued entry and its final entry in
	// at most one message each (both kinds are group-committed, so entries
	// that gather together share one).
	eventually(t, 5*time.Second, "the history writer handed every change", func() bool {
		return streamtest.Work(t, h.jetStream(t), stream.HistoryStream) == 0
	})
	if logged := streamtest.Handed(t, h.jetStream(t), stream.HistoryStream); logged < 2 || logged > 2*n {
		t.Errorf("history messages: %d, want 2 to %d (%d queued entries and %d final ones, at most one message each)", logged, 2*n, n, n)
	}
	eventually(t, 5*time.Second, "the delivery queue empty", func() bool {
		return streamtest.Work(t, h.jetStream(t), stream.DeliveriesStream) == 0 &&
			streamtest.Handed(t, h.jetStream(t), stream.DeliveriesStream) == n
	})
	if history := streamtest.State(t, h.jetStream(t), stream.AttemptsStream); history.LastSeq != 0 {
		t.Errorf("the attempt history got %d writes, want none", history.LastSeq)
	}
	d := listAll(t, h)[0]
	ats, err := h.deliveries.ListAttempts(context.Background(), &postbackv1.ListAttemptsRequest{DeliveryId: d.Id})
	if err != nil || len(ats.Attempts) != 1 || ats.Attempts[0].StatusCode != 200 || ats.Attempts[0].Number != 0 ||
		ats.Attempts[0].Outcome != postbackv1.AttemptOutcome_ATTEMPT_OUTCOME_SUCCESS {
		t.Fatalf("ListAttempts = %v, %v; want the one successful attempt 0", ats, err)
	}
}

// A first send goes out without an in-flight claim, so a second copy of it
// must not be made while it is queued: RetryDelivery says so.
func TestRetryDeliveryRefusesADeliveryQueuedForItsFirstSend(t *testing.T) {
	h := start(t, "", nil)
	rc := newReceiver(t)
	limitedEndpoint(t, h, "brand-1", rc.URL, 60, 0) // the second postback waits a minute
	publishClearing(t, h)
	publishClearing(t, h)
	var queued *postbackv1.Delivery
	eventually(t, 10*time.Second, "one delivery sent and one waiting for its slot", func() bool {
		queued = nil
		ds := listAll(t, h)
		for _, d := range ds {
			if d.Status == postbackv1.DeliveryStatus_DELIVERY_STATUS_PENDING && d.NextAttemptTime != nil {
				queued = d
			}
		}
		return len(ds) == 2 && queued != nil
	})
	_, err := h.deliveries.RetryDelivery(context.Background(), &postbackv1.RetryDeliveryRequest{Id: queued.Id})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("RetryDelivery of a delivery queued for its first send: %v, want FailedPrecondition", err)
	}
	time.Sleep(300 * time.Millisecond)
	if got := len(rc.requests()); got != 1 {
		t.Fatalf("receiver got %d requests, want 1 (the second waits for its slot)", got)
	}
}
