package standalone

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/postback-dev/postback/pkg/inflight"
	"github.com/postback-dev/postback/pkg/schedule"
	"github.com/postback-dev/postback/pkg/stream"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// byDelivery groups a receiver's requests by Postback-Delivery-Id.
func byDelivery(rs []received) map[string][]received {
	out := map[string][]received{}
	for _, r := range rs {
		id := r.Header.Get("Postback-Delivery-Id")
		out[id] = append(out[id], r)
	}
	return out
}

func listAll(t *testing.T, h *harness) []*postbackv1.Delivery {
	t.Helper()
	l, err := h.deliveries.ListDeliveries(context.Background(), &postbackv1.ListDeliveriesRequest{AccountId: "brand-1", PageSize: 500})
	if err != nil {
		t.Fatal(err)
	}
	return l.Deliveries
}

func allStatus(ds []*postbackv1.Delivery, n int, st postbackv1.DeliveryStatus) bool {
	if len(ds) != n {
		return false
	}
	for _, d := range ds {
		if d.Status != st {
			return false
		}
	}
	return true
}

func TestReplayedDeadDeliveriesAreDeliveredOnceEachWhenTheReceiverRecovers(t *testing.T) {
	h := start(t, "", withSchedule(schedule.Schedule{10 * time.Millisecond, 10 * time.Millisecond}))
	rc, up := failing(t)
	ep := postTo(t, h, rc.URL)
	const n = 5
	publishUntilAll(t, h, n, postbackv1.DeliveryStatus_DELIVERY_STATUS_DEAD, 20*time.Second)
	before := len(rc.requests())
	if before != n*3 {
		t.Fatalf("receiver got %d requests before replay, want %d (1 + 2 retries each)", before, n*3)
	}
	up()
	res, err := h.deliveries.ReplayDeliveries(context.Background(), &postbackv1.ReplayDeliveriesRequest{EndpointId: ep.Id})
	if err != nil || res.Count != n {
		t.Fatalf("ReplayDeliveries = %v, %v; want %d", res, err, n)
	}
	eventually(t, 20*time.Second, "every delivery SUCCEEDED", func() bool {
		return allStatus(listAll(t, h), n, postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED)
	})
	time.Sleep(300 * time.Millisecond)
	for id, rs := range byDelivery(rc.requests()) {
		if len(rs) != 4 || rs[3].Header.Get("Postback-Attempt") != "3" {
			t.Errorf("delivery %s got %d requests (last attempt %q), want 4 with the replay as attempt 3", id, len(rs), rs[len(rs)-1].Header.Get("Postback-Attempt"))
		}
		// The history keeps every attempt: the three before the replay
		// and the replay's own.
		ats, err := h.deliveries.ListAttempts(context.Background(), &postbackv1.ListAttemptsRequest{DeliveryId: id})
		var codes []int32
		for _, at := range ats.GetAttempts() {
			codes = append(codes, at.Number*1000+at.StatusCode)
		}
		if err != nil || fmt.Sprint(codes) != "[503 1503 2503 3200]" {
			t.Errorf("ListAttempts of %s = number*1000+status %v, %v; want [503 1503 2503 3200]", id, codes, err)
		}
	}
	// Replaying again finds nothing dead.
	res, err = h.deliveries.ReplayDeliveries(context.Background(), &postbackv1.ReplayDeliveriesRequest{EndpointId: ep.Id})
	if err != nil || res.Count != 0 {
		t.Fatalf("second ReplayDeliveries = %v, %v; want 0", res, err)
	}
}

func TestManualRetryReplacesThePendingScheduledRetry(t *testing.T) {
	h := start(t, "", withSchedule(schedule.Schedule{2 * time.Second}))
	rc := newReceiver(t)
	rc.answer = func(n int, _ *http.Request) (int, string) {
		if n == 1 {
			return 500, "boom"
		}
		return 200, "OK"
	}
	postTo(t, h, rc.URL)
	publishClearing(t, h)
	var d *postbackv1.Delivery
	eventually(t, 10*time.Second, "a RETRYING delivery", func() bool {
		ds := listAll(t, h)
		if len(ds) == 1 && ds[0].Status == postbackv1.DeliveryStatus_DELIVERY_STATUS_RETRYING && ds[0].NextAttemptTime != nil {
			d = ds[0]
			return true
		}
		return false
	})
	if _, err := h.deliveries.RetryDelivery(context.Background(), &postbackv1.RetryDeliveryRequest{Id: d.Id}); err != nil {
		t.Fatal(err)
	}
	settled(t, h, 10*time.Second)
	// Past the time the scheduled retry would have fired.
	time.Sleep(time.Until(d.NextAttemptTime.AsTime()) + 700*time.Millisecond)
	if got := attemptHeaders(rc.requests()); len(got) != 2 || got[1] != 1 {
		t.Fatalf("Postback-Attempt of each request = %v, want [0 1]", got)
	}
}

func TestTwoCopiesOfTheSameRetryAreSentOnce(t *testing.T) {
	h := start(t, "", withSchedule(schedule.Schedule{time.Hour}))
	rc := newReceiver(t)
	rc.answer = func(n int, _ *http.Request) (int, string) {
		if n == 1 {
			return 503, ""
		}
		return 200, "OK"
	}
	postTo(t, h, rc.URL)
	publishClearing(t, h)
	eventually(t, 10*time.Second, "a RETRYING delivery", func() bool {
		ds := listAll(t, h)
		return len(ds) == 1 && ds[0].Status == postbackv1.DeliveryStatus_DELIVERY_STATUS_RETRYING && ds[0].NextAttemptTime != nil
	})
	// The pending retry (due in an hour) is the job to race: fire two copies
	// of it at once, as a fired schedule and a manual retry would.
	js := h.jetStream(t)
	dls, err := inflight.OpenDeliveries(context.Background(), js)
	if err != nil {
		t.Fatal(err)
	}
	var rec *inflight.Record
	if err := dls.Each(context.Background(), "brand-1", func(r *inflight.Record) bool { rec = r; return false }); err != nil || rec == nil || rec.Job == nil {
		t.Fatalf("read record: %v %v", rec, err)
	}
	body, err := rec.Job.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := js.Publish(context.Background(), stream.RetrySubject(rec.Job.EndpointID), body); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	settled(t, h, 10*time.Second)
	time.Sleep(500 * time.Millisecond)
	if got := attemptHeaders(rc.requests()); len(got) != 2 {
		t.Fatalf("Postback-Attempt of each request = %v, want exactly [0 1]", got)
	}
}
