package sender

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/postback-dev/postback/pkg/delivery"
	"github.com/postback-dev/postback/pkg/endpoint"
	"github.com/postback-dev/postback/pkg/inflight"
	"github.com/postback-dev/postback/pkg/limiter"
	"github.com/postback-dev/postback/pkg/secret"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

func TestACopyOfAJobIsStaleOnceItsDeliveryMovedOn(t *testing.T) {
	rec := func(st postbackv1.DeliveryStatus, count int32, claim string) *inflight.Record {
		return &inflight.Record{Claim: claim, Delivery: &postbackv1.Delivery{Status: st, AttemptCount: count}}
	}
	job := &delivery.Job{Sent: 2}
	cases := []struct {
		name  string
		rec   *inflight.Record
		stale bool
	}{
		{"a retrying delivery at this job's attempt count is sent", rec(postbackv1.DeliveryStatus_DELIVERY_STATUS_RETRYING, 2, ""), false},
		{"a pending delivery (after a manual retry) is sent", rec(postbackv1.DeliveryStatus_DELIVERY_STATUS_PENDING, 2, ""), false},
		{"a later attempt already sent makes the copy stale", rec(postbackv1.DeliveryStatus_DELIVERY_STATUS_RETRYING, 3, ""), true},
		{"a succeeded delivery is not sent again by a stale copy", rec(postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED, 2, ""), true},
		{"a cancelled delivery is not sent", rec(postbackv1.DeliveryStatus_DELIVERY_STATUS_CANCELLED, 2, ""), true},
		{"another message's claim keeps this copy out", rec(postbackv1.DeliveryStatus_DELIVERY_STATUS_IN_FLIGHT, 2, "DELIVERIES:7"), true},
		{"this message's own claim (a redelivery after a crash) is sent", rec(postbackv1.DeliveryStatus_DELIVERY_STATUS_IN_FLIGHT, 2, "DELIVERIES:9"), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := stale(c.rec, job, "DELIVERIES:9") != ""; got != c.stale {
				t.Fatalf("stale = %v, want %v", got, c.stale)
			}
		})
	}
}

func TestOnlyTheRenderersJobAtAnUnchangedEndpointIsSentWithoutAClaim(t *testing.T) {
	rendered := time.Date(2026, 4, 8, 9, 0, 0, 0, time.UTC)
	ep := &postbackv1.Endpoint{Id: "ep_1", UpdateTime: timestamppb.New(rendered)}
	changed := &postbackv1.Endpoint{Id: "ep_1", UpdateTime: timestamppb.New(rendered.Add(time.Second))}
	renderers := func() *delivery.Job {
		return &delivery.Job{DeliveryID: "dlv_1", Revision: 7, EndpointVersion: rendered.UnixNano()}
	}
	cases := []struct {
		name  string
		job   func(j *delivery.Job)
		ep    *postbackv1.Endpoint
		first bool
	}{
		{"the renderer's job at the endpoint it was rendered for", func(*delivery.Job) {}, ep, true},
		{"the endpoint changed since (it may have cancelled the delivery)", func(*delivery.Job) {}, changed, false},
		{"a copy from RetryDelivery or a replay (no endpoint version)", func(j *delivery.Job) { j.EndpointVersion = 0 }, ep, false},
		{"a retry", func(j *delivery.Job) { j.Sent = 1 }, ep, false},
		{"a job deferred to its limiter slot", func(j *delivery.Job) { j.Slot = rendered.Add(time.Minute) }, ep, false},
		{"a job without its record's revision", func(j *delivery.Job) { j.Revision = 0 }, ep, false},
		{"the renderer's queued job (no record yet) at its endpoint", func(j *delivery.Job) { j.Revision, j.Queued = 0, true }, ep, true},
		{"a queued job whose endpoint changed since", func(j *delivery.Job) { j.Revision, j.Queued = 0, true }, changed, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			job := renderers()
			c.job(job)
			rec := assumed(job)
			if rec == nil {
				rec = &inflight.Record{Delivery: &postbackv1.Delivery{}, Revision: 9}
			}
			if got := firstSend(job, rec, c.ep); got != c.first {
				t.Fatalf("firstSend = %v, want %v", got, c.first)
			}
		})
	}
}

func TestLimiterSlotsMapOntoTheLocalClockByTheFastestRoundTrip(t *testing.T) {
	var c clockSync
	local := time.Date(2026, 4, 8, 9, 0, 0, 0, time.UTC)
	const skew = 3 * time.Second // the limiter's clock runs 3 s ahead
	// A quick reservation: 2 ms round trip.
	slot := c.local(limiter.Reservation{Now: local.Add(skew + time.Millisecond), At: local.Add(skew + time.Second)}, local, local.Add(2*time.Millisecond))
	if got := slot.Sub(local); got != time.Second {
		t.Fatalf("slot at +%s, want +1s", got)
	}
	// A slow reply (the worker was descheduled for 200 ms after Redis
	// answered) must not shift the slot: the fastest sample still rules.
	later := local.Add(10 * time.Second)
	slot = c.local(limiter.Reservation{Now: later.Add(skew + time.Millisecond), At: later.Add(skew + 500*time.Millisecond)}, later, later.Add(200*time.Millisecond))
	if got := slot.Sub(later); got != 500*time.Millisecond {
		t.Fatalf("slot at +%s, want +500ms", got)
	}
}

func TestAnEndpointIsOpenedOncePerVersion(t *testing.T) {
	k, err := secret.ParseKeyring(mustKey(t))
	if err != nil {
		t.Fatal(err)
	}
	at := func(sec int64) *postbackv1.Endpoint {
		ep := &postbackv1.Endpoint{Id: "ep_1", UpdateTime: timestamppb.New(time.Unix(sec, 0)),
			Headers: []*postbackv1.Header{{Name: "X-Key", Value: "v1", Secret: true}}}
		if err := endpoint.Seal(ep, nil, k); err != nil {
			t.Fatal(err)
		}
		return ep
	}
	var c openedCache
	first, err := c.open(at(1), k)
	if err != nil || first.Headers[0].Value != "v1" {
		t.Fatalf("open = %v, %v; want the header opened", first, err)
	}
	if again, _ := c.open(at(1), k); again != first {
		t.Fatal("the same version was opened again")
	}
	changed := at(2)
	changed.Headers[0].Value, _ = k.Seal("v2")
	if next, err := c.open(changed, k); err != nil || next == first || next.Headers[0].Value != "v2" {
		t.Fatalf("a new version: %v, %v; want it opened anew", next, err)
	}
	unversioned := at(0)
	unversioned.UpdateTime = nil
	a, _ := c.open(unversioned, k)
	if b, _ := c.open(unversioned, k); a == b {
		t.Fatal("an endpoint without a version was served from the cache")
	}
}

func mustKey(t *testing.T) string {
	t.Helper()
	key, err := secret.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return key
}
