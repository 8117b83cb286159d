package inflight

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/postback-dev/postback/pkg/stream"
	"github.com/postback-dev/postback/pkg/stream/streamtest"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// historyEntries drains the HISTORY stream (as the writer would) and
// returns the entries in order.
func historyEntries(t *testing.T, js jetstream.JetStream) []struct {
	status  postbackv1.DeliveryStatus
	version int64
	job     bool
	attempt int32
} {
	t.Helper()
	ctx := context.Background()
	c, err := stream.Consumer(ctx, js, stream.HistoryConsumer, time.Minute, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []struct {
		status  postbackv1.DeliveryStatus
		version int64
		job     bool
		attempt int32
	}
	// Not FetchNoWait: the server can answer a no-wait pull "no messages"
	// for a message stored a moment ago, before the consumer has counted it
	// (it failed TestRelogRepublishesAStoredRecordAtItsVersion about once
	// in a hundred runs). A short wait takes whatever the stream holds.
	batch, err := c.Fetch(1000, jetstream.FetchMaxWait(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		es, err := HistoryEntries(m.Data(), m.Headers())
		if err != nil {
			t.Fatalf("entry on %s: %v", m.Subject(), err)
		}
		for _, e := range es {
			n := int32(-1)
			if e.Attempt != nil {
				n = e.Attempt.Number
			}
			out = append(out, struct {
				status  postbackv1.DeliveryStatus
				version int64
				job     bool
				attempt int32
			}{e.Delivery.Status, e.Version, e.Job != nil, n})
		}
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestEveryRecordWriteIsLoggedToTheHistoryWithARisingVersion(t *testing.T) {
	js := streamtest.JetStream(t)
	ctx := context.Background()
	dls, err := OpenDeliveries(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	r := record("dlv_h1")
	now := time.Now()
	r.Delivery.CreateTime = timestamppb.New(now)
	r.Delivery.UpdateTime = timestamppb.New(now)
	if err := dls.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	// A writer whose clock is behind still moves the version forward.
	r.Delivery.Status = postbackv1.DeliveryStatus_DELIVERY_STATUS_IN_FLIGHT
	r.Delivery.UpdateTime = timestamppb.New(now.Add(-time.Hour))
	if err := dls.Update(ctx, r); err != nil {
		t.Fatal(err)
	}
	r.Delivery.Status = postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED
	r.Last = &postbackv1.Attempt{DeliveryId: "dlv_h1", Number: 0, StatusCode: 200}
	if err := dls.Put(ctx, r); err != nil {
		t.Fatal(err)
	}
	// A lost compare-and-set logs nothing.
	stale := *r
	stale.Revision = 1
	stale.Delivery = &postbackv1.Delivery{Id: "dlv_h1", AccountId: "acc", EndpointId: "ep_1", Status: postbackv1.DeliveryStatus_DELIVERY_STATUS_DEAD}
	if err := dls.Update(ctx, &stale); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale update: %v, want ErrConflict", err)
	}
	got := historyEntries(t, js)
	want := []postbackv1.DeliveryStatus{
		postbackv1.DeliveryStatus_DELIVERY_STATUS_PENDING,
		postbackv1.DeliveryStatus_DELIVERY_STATUS_IN_FLIGHT,
		postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED,
	}
	if len(got) != len(want) {
		t.Fatalf("%d entries %+v, want %d", len(got), got, len(want))
	}
	for i, e := range got {
		if e.status != want[i] || !e.job {
			t.Errorf("entry %d: %s job=%v, want %s with its job", i, e.status, e.job, want[i])
		}
		if i > 0 && e.version <= got[i-1].version {
			t.Errorf("entry %d version %d not after %d", i, e.version, got[i-1].version)
		}
	}
	if got[2].attempt != 0 {
		t.Errorf("the outcome's entry carries attempt %d, want 0", got[2].attempt)
	}
}

func TestAFinalRecordLeavesTheHotStateAfterItsGraceAndAnOpenOneStays(t *testing.T) {
	js := streamtest.JetStream(t)
	ctx := context.Background()
	dls, err := OpenDeliveries(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	dls.Grace = time.Second // the smallest TTL the server takes
	done, open := record("dlv_final"), record("dlv_open")
	done.Delivery.Status = postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED
	open.Delivery.Status = postbackv1.DeliveryStatus_DELIVERY_STATUS_RETRYING
	for _, r := range []*Record{done, open} {
		if err := dls.Put(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := dls.Get(ctx, "acc", "ep_1", "dlv_final"); err != nil {
		t.Fatalf("a final record within its grace: %v", err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := dls.Get(ctx, "acc", "ep_1", "dlv_final")
		if errors.Is(err, ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("final record still in the hot state 15 s after a 1 s grace (err %v)", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, err := dls.Get(ctx, "acc", "ep_1", "dlv_open"); err != nil {
		t.Errorf("a retrying record went with the final one: %v", err)
	}
	// Its change still waits for the writer: Pending reads it by id.
	r, err := dls.Pending(ctx, "dlv_final")
	if err != nil || r.Delivery.Status != postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED || r.Job == nil {
		t.Fatalf("Pending = %v, %v; want the SUCCEEDED change with its job", r, err)
	}
	historyEntries(t, js) // the writer takes it
	if _, err := dls.Pending(ctx, "dlv_final"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Pending after the writer took it: %v, want ErrNotFound", err)
	}
	// A resend of the expired delivery creates its hot record again.
	again := record("dlv_final")
	if err := dls.Update(ctx, again); err != nil {
		t.Errorf("re-creating an expired record: %v", err)
	}
}

func TestRelogRepublishesAStoredRecordAtItsVersion(t *testing.T) {
	js := streamtest.JetStream(t)
	ctx := context.Background()
	dls, err := OpenDeliveries(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	r := record("dlv_relog")
	r.Delivery.Status = postbackv1.DeliveryStatus_DELIVERY_STATUS_DEAD
	if err := dls.Put(ctx, r); err != nil {
		t.Fatal(err)
	}
	first := historyEntries(t, js)
	stored, err := dls.Get(ctx, "acc", "ep_1", "dlv_relog")
	if err != nil {
		t.Fatal(err)
	}
	if err := dls.Relog(ctx, stored); err != nil {
		t.Fatal(err)
	}
	again := historyEntries(t, js)
	if len(first) != 1 || len(again) != 1 || again[0].version != first[0].version || again[0].status != first[0].status {
		t.Errorf("relogged %+v, want the stored change again %+v", again, first)
	}
}
