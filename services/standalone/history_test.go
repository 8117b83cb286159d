package standalone

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/postback-dev/postback/pkg/schedule"
	"github.com/postback-dev/postback/pkg/stream"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

const (
	statusPending   = postbackv1.DeliveryStatus_DELIVERY_STATUS_PENDING
	statusSucceeded = postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED
	statusRetrying  = postbackv1.DeliveryStatus_DELIVERY_STATUS_RETRYING
)

// listed returns the status the delivery log lists a delivery with ("" when
// it is not listed).
func listed(t *testing.T, h *harness, eventID, dlvID string) postbackv1.DeliveryStatus {
	t.Helper()
	l, err := h.deliveries.ListDeliveries(context.Background(), &postbackv1.ListDeliveriesRequest{AccountId: "brand-1", EventId: eventID})
	if err != nil {
		t.Fatalf("ListDeliveries: %v", err)
	}
	for _, d := range l.Deliveries {
		if d.Id == dlvID {
			return d.Status
		}
	}
	return postbackv1.DeliveryStatus_DELIVERY_STATUS_UNSPECIFIED
}

// hot reports whether the delivery still has a record in the hot state.
func hot(t *testing.T, js jetstream.JetStream, d *postbackv1.Delivery) bool {
	t.Helper()
	kv, err := js.KeyValue(context.Background(), stream.DeliveriesBucket)
	if err != nil {
		t.Fatal(err)
	}
	_, err = kv.Get(context.Background(), d.AccountId+"."+d.EndpointId+"."+d.Id)
	return err == nil
}

func TestADeliveryIsFoundAtEveryMomentOfItsLife(t *testing.T) {
	dir := t.TempDir()
	h := start(t, dir, func(c *Config) { c.Grace = time.Second })
	ctx := context.Background()
	release := make(chan struct{})
	var once sync.Once
	let := func() { once.Do(func() { close(release) }) }
	rc := newReceiver(t)
	t.Cleanup(let) // before the receiver's Close, which waits for its handlers
	arrived := make(chan string, 1)
	rc.answer = func(n int, r *http.Request) (int, string) {
		arrived <- r.Header.Get("Postback-Delivery-Id")
		<-release
		return 200, "OK"
	}
	postTo(t, h, rc.URL)
	pub := publishClearing(t, h)
	var dlvID string
	select {
	case dlvID = <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("no request arrived within 10s")
	}

	// In flight: its first send is out. Found by id, and listed PENDING.
	d, err := h.deliveries.GetDelivery(ctx, &postbackv1.GetDeliveryRequest{Id: dlvID})
	if err != nil || d.Status != statusPending {
		t.Fatalf("in flight: GetDelivery = %v, %v; want PENDING", d, err)
	}
	eventually(t, 5*time.Second, "the delivery listed PENDING while its first send is out", func() bool {
		return listed(t, h, pub.EventId, dlvID) == statusPending
	})

	// Just finished by its first send: it never had a hot record (its
	// history entry is its only record); the entry answers until the
	// writer stores it, and the store after.
	let()
	eventually(t, 5*time.Second, "delivery SUCCEEDED", func() bool {
		d, err = h.deliveries.GetDelivery(ctx, &postbackv1.GetDeliveryRequest{Id: dlvID})
		return err == nil && d.Status == statusSucceeded
	})
	js := h.jetStream(t)
	if hot(t, js, d) {
		t.Fatal("a delivery finished by its first send has a hot record; want none")
	}
	eventually(t, 5*time.Second, "the delivery listed SUCCEEDED", func() bool { return listed(t, h, pub.EventId, dlvID) == statusSucceeded })

	// Stored: the history answers the same.
	again, err := h.deliveries.GetDelivery(ctx, &postbackv1.GetDeliveryRequest{Id: dlvID})
	if err != nil || again.Status != statusSucceeded || again.AttemptCount != 1 || again.LastStatusCode != 200 || again.EventId != pub.EventId {
		t.Fatalf("from the history: GetDelivery = %v, %v; want it SUCCEEDED after 1 attempt", again, err)
	}
	ats, err := h.deliveries.ListAttempts(ctx, &postbackv1.ListAttemptsRequest{DeliveryId: dlvID})
	if err != nil || len(ats.Attempts) != 1 || ats.Attempts[0].StatusCode != 200 || ats.Attempts[0].Number != 0 {
		t.Fatalf("from the history: ListAttempts = %v, %v; want the one 200 attempt", ats, err)
	}

	// Long after, across a restart: still there.
	h.stop()
	h = start(t, dir, nil)
	if d, err := h.deliveries.GetDelivery(ctx, &postbackv1.GetDeliveryRequest{Id: dlvID}); err != nil || d.Status != statusSucceeded {
		t.Fatalf("after a restart: GetDelivery = %v, %v", d, err)
	}
	if s := listed(t, h, pub.EventId, dlvID); s != statusSucceeded {
		t.Fatalf("after a restart the delivery is listed %s, want SUCCEEDED", s)
	}
}

func TestWhileTheHistoryWriterIsBehindAFinishedDeliveryIsFoundButListedLater(t *testing.T) {
	dir := t.TempDir()
	// No history writer: changes wait in the HISTORY stream.
	h := start(t, dir, func(c *Config) { c.Grace = time.Second; c.Targets = "gateway,renderer,sender,retry" })
	ctx := context.Background()
	rc := newReceiver(t)
	postTo(t, h, rc.URL)
	pub := publishClearing(t, h)
	dlvID := rc.next(t, 10*time.Second).Header.Get("Postback-Delivery-Id")
	var d *postbackv1.Delivery
	eventually(t, 5*time.Second, "delivery SUCCEEDED", func() bool {
		var err error
		d, err = h.deliveries.GetDelivery(ctx, &postbackv1.GetDeliveryRequest{Id: dlvID})
		return err == nil && d.Status == statusSucceeded
	})
	js := h.jetStream(t)
	eventually(t, 20*time.Second, "the final record to leave the hot state", func() bool { return !hot(t, js, d) })
	// Neither hot nor stored: read from the change waiting for the writer.
	if d, err := h.deliveries.GetDelivery(ctx, &postbackv1.GetDeliveryRequest{Id: dlvID}); err != nil || d.Status != statusSucceeded {
		t.Fatalf("GetDelivery while the writer is behind = %v, %v; want SUCCEEDED", d, err)
	}
	if ats, err := h.deliveries.ListAttempts(ctx, &postbackv1.ListAttemptsRequest{DeliveryId: dlvID}); err != nil || len(ats.Attempts) != 1 {
		t.Fatalf("ListAttempts while the writer is behind = %v, %v; want 1 attempt", ats, err)
	}
	if s := listed(t, h, pub.EventId, dlvID); s != postbackv1.DeliveryStatus_DELIVERY_STATUS_UNSPECIFIED {
		t.Fatalf("listed %s before the writer stored it, want not yet listed", s)
	}
	// The writer comes back and catches up: listed.
	h.stop()
	h = start(t, dir, nil)
	eventually(t, 10*time.Second, "the delivery listed SUCCEEDED once the writer caught up", func() bool {
		return listed(t, h, pub.EventId, dlvID) == statusSucceeded
	})
}

// Deliveries that end at their first send together are concluded in shared
// batches (one stored message for many, history.done.<n>): while the
// history writer is behind, each is still found by id, from its batch.
func TestWhileTheWriterIsBehindDeliveriesConcludedTogetherAreEachFoundByID(t *testing.T) {
	// No history writer: changes wait in the HISTORY stream.
	h := start(t, "", func(c *Config) { c.Targets = "gateway,renderer,sender,retry" })
	ctx := context.Background()
	const n = 32
	rc := newReceiver(t)
	var arrived atomic.Int32
	release := make(chan struct{})
	var once sync.Once
	rc.answer = func(int, *http.Request) (int, string) {
		// Answered only once all n are in: they end together.
		if arrived.Add(1) == n {
			once.Do(func() { close(release) })
		}
		select {
		case <-release:
		case <-time.After(20 * time.Second):
		}
		return 200, "OK"
	}
	if _, err := h.endpoints.CreateEndpoint(ctx, &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{
		AccountId: "brand-1", EventType: "action_clearing", Url: rc.URL, Method: postbackv1.HttpMethod_HTTP_METHOD_POST, MaxInFlight: n}}); err != nil {
		t.Fatal(err)
	}
	js := h.jetStream(t)
	hist, err := js.Stream(ctx, stream.HistoryStream)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	// Concluding n at once batches them but for the scheduler's whims: a
	// round whose conclusions all went out alone is run again.
	for round := 1; ; round++ {
		arrived.Store(0)
		release = make(chan struct{})
		once = sync.Once{}
		batch := &postbackv1.PublishBatchRequest{}
		for range n {
			batch.Events = append(batch.Events, &postbackv1.PublishRequest{AccountId: "brand-1", EventType: "action_clearing", Data: sampleData(t, "action_clearing")})
		}
		if _, err := h.events.PublishBatch(ctx, batch); err != nil {
			t.Fatal(err)
		}
		for range n {
			ids = append(ids, rc.next(t, 20*time.Second).Header.Get("Postback-Delivery-Id"))
		}
		for _, id := range ids[len(ids)-n:] {
			eventually(t, 10*time.Second, "delivery "+id+" SUCCEEDED", func() bool {
				d, err := h.deliveries.GetDelivery(ctx, &postbackv1.GetDeliveryRequest{Id: id})
				return err == nil && d.Status == statusSucceeded
			})
		}
		if _, err := hist.GetLastMsgForSubject(ctx, "history.done.*"); err == nil {
			break
		}
		if round == 3 {
			t.Fatalf("%d deliveries concluded at once, three times, and no batch was written", n)
		}
	}
	for _, id := range ids {
		d, err := h.deliveries.GetDelivery(ctx, &postbackv1.GetDeliveryRequest{Id: id})
		if err != nil || d.Status != statusSucceeded || d.AttemptCount != 1 || d.LastStatusCode != 200 {
			t.Fatalf("GetDelivery(%s) while the writer is behind = %v, %v; want it SUCCEEDED after 1 attempt", id, d, err)
		}
		ats, err := h.deliveries.ListAttempts(ctx, &postbackv1.ListAttemptsRequest{DeliveryId: id})
		if err != nil || len(ats.Attempts) != 1 || ats.Attempts[0].StatusCode != 200 {
			t.Fatalf("ListAttempts(%s) while the writer is behind = %v, %v; want the one 200 attempt", id, ats, err)
		}
	}
	if _, err := h.deliveries.GetDelivery(ctx, &postbackv1.GetDeliveryRequest{Id: "dlv_00000000000000000000000000"}); status.Code(err) != codes.NotFound {
		t.Fatalf("GetDelivery of an unknown id while batches wait = %v, want NotFound", err)
	}
}

// A retrying delivery's earlier attempts stay listed after NATS has let
// them go: the history store has them. NATS keeps replaced attempts only
// for AttemptsAge (1 s here), so its storage follows the deliveries being
// worked on, not the retention.
func TestARetryingDeliverysEarlierAttemptsAreListedAfterNATSLetsThemGo(t *testing.T) {
	h := start(t, "", func(c *Config) {
		c.AttemptsAge = time.Second
		c.RetrySchedule = schedule.Schedule{100 * time.Millisecond, 100 * time.Millisecond, time.Hour}.String()
	})
	ctx := context.Background()
	rc := newReceiver(t)
	rc.answer = func(int, *http.Request) (int, string) { return 503, "busy" }
	postTo(t, h, rc.URL)
	publishClearing(t, h)
	var d *postbackv1.Delivery
	eventually(t, 20*time.Second, "three attempts, the next an hour away", func() bool {
		l, err := h.deliveries.ListDeliveries(ctx, &postbackv1.ListDeliveriesRequest{AccountId: "brand-1"})
		if err != nil || len(l.Deliveries) != 1 {
			return false
		}
		d = l.Deliveries[0]
		return d.AttemptCount == 3 && d.Status == statusRetrying && d.NextAttemptTime != nil
	})
	js := h.jetStream(t)
	attempts, err := js.Stream(ctx, stream.AttemptsStream)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "ATTEMPTS lets the replaced attempts go", func() bool {
		info, err := attempts.Info(ctx)
		return err == nil && info.State.LastSeq >= 2 && info.State.Msgs == 0 // both replaced attempts were there, and are gone
	})
	ats, err := h.deliveries.ListAttempts(ctx, &postbackv1.ListAttemptsRequest{DeliveryId: d.Id})
	if err != nil {
		t.Fatal(err)
	}
	var numbers []int32
	for _, at := range ats.Attempts {
		numbers = append(numbers, at.Number)
	}
	if fmt.Sprint(numbers) != "[0 1 2]" {
		t.Fatalf("ListAttempts of a delivery still retrying lists attempts %v, want [0 1 2]", numbers)
	}
}
