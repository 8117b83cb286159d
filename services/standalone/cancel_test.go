package standalone

import (
	"context"
	"net/http"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/postback-dev/postback/pkg/schedule"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

func setEnabled(t *testing.T, h *harness, id string, on bool) {
	t.Helper()
	if _, err := h.endpoints.UpdateEndpoint(context.Background(), &postbackv1.UpdateEndpointRequest{
		Endpoint:   &postbackv1.Endpoint{Id: id, Enabled: proto.Bool(on)},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"enabled"}},
	}); err != nil {
		t.Fatal(err)
	}
}

func allCancelled(t *testing.T, h *harness, n int, reason string) {
	t.Helper()
	// The delivery log trails the hot state by the history writer's lag.
	var ds []*postbackv1.Delivery
	deadline := time.Now().Add(5 * time.Second)
	for ds = listAll(t, h); !allStatus(ds, n, postbackv1.DeliveryStatus_DELIVERY_STATUS_CANCELLED); ds = listAll(t, h) {
		if time.Now().After(deadline) {
			t.Fatalf("deliveries %v, want %d CANCELLED", statuses(ds), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, d := range ds {
		if d.Reason != reason {
			t.Errorf("delivery %s cancelled with reason %q, want %q", d.Id, d.Reason, reason)
		}
	}
}

func statuses(ds []*postbackv1.Delivery) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Status.String())
	}
	return out
}

// First sends go out without an in-flight claim only while their endpoint is
// the one they were rendered for. Queued postbacks of an endpoint that was
// disabled (which cancels them) and enabled again before the sender reached
// them are judged against their records, found cancelled, and never sent.
func TestQueuedPostbacksOfAnEndpointDisabledAndReenabledStayCancelled(t *testing.T) {
	dir := t.TempDir()
	rc := newReceiver(t)
	h := start(t, dir, func(c *Config) { c.Targets = "gateway,renderer,retry,historian" }) // no sender: the jobs wait
	ep := postTo(t, h, rc.URL)
	const n = 5
	publishUntilAll(t, h, n, postbackv1.DeliveryStatus_DELIVERY_STATUS_PENDING, 5*time.Second)
	setEnabled(t, h, ep.Id, false)
	setEnabled(t, h, ep.Id, true)
	allCancelled(t, h, n, "the endpoint was disabled")
	h.stop()

	h = start(t, dir, nil) // now with the sender, which finds the jobs queued
	time.Sleep(1500 * time.Millisecond)
	if got := len(rc.requests()); got != 0 {
		t.Fatalf("receiver got %d requests for cancelled deliveries, want 0", got)
	}
	allCancelled(t, h, n, "the endpoint was disabled")
	// The endpoint itself works: a new event is delivered.
	publishClearing(t, h)
	rc.next(t, 10*time.Second)
}

func TestDisablingOrDeletingAnEndpointCancelsItsRetries(t *testing.T) {
	cases := []struct {
		name   string
		act    func(t *testing.T, h *harness, id string)
		reason string
	}{
		{"disabled", func(t *testing.T, h *harness, id string) { setEnabled(t, h, id, false) }, "the endpoint was disabled"},
		{"deleted", func(t *testing.T, h *harness, id string) {
			if _, err := h.endpoints.DeleteEndpoint(context.Background(), &postbackv1.DeleteEndpointRequest{Id: id}); err != nil {
				t.Fatal(err)
			}
		}, "the endpoint was deleted"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := start(t, "", withSchedule(schedule.Schedule{700 * time.Millisecond}))
			rc := newReceiver(t)
			rc.answer = func(int, *http.Request) (int, string) { return 503, "down" }
			ep := postTo(t, h, rc.URL)
			const n = 3
			publishUntilAll(t, h, n, postbackv1.DeliveryStatus_DELIVERY_STATUS_RETRYING, 5*time.Second)
			c.act(t, h, ep.Id)
			allCancelled(t, h, n, c.reason)
			time.Sleep(1500 * time.Millisecond) // past the retry's time
			if got := len(rc.requests()); got != n {
				t.Fatalf("receiver got %d requests, want %d (the first attempts, no retry)", got, n)
			}
			allCancelled(t, h, n, c.reason)
		})
	}
}
