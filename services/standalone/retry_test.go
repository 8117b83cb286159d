package standalone

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/postback-dev/postback/pkg/guard/guardtest"
	"github.com/postback-dev/postback/pkg/schedule"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// compressed is the seed's schedule divided by 10,000 (15 s → 1.5 ms,
// 6 h → 2.16 s): the same shape, run in about 11 s.
var compressed = schedule.Default().Scale(1.0 / 10000)

func withSchedule(s schedule.Schedule) func(*Config) {
	return func(c *Config) { c.RetrySchedule = s.String() }
}

// postTo creates a POST endpoint for action_clearing at url.
func postTo(t *testing.T, h *harness, url string) *postbackv1.Endpoint {
	t.Helper()
	ep, err := h.endpoints.CreateEndpoint(context.Background(), &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{
		AccountId: "brand-1", EventType: "action_clearing", Url: url, Method: postbackv1.HttpMethod_HTTP_METHOD_POST}})
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

func publishClearing(t *testing.T, h *harness) *postbackv1.PublishResponse {
	t.Helper()
	res, err := h.events.Publish(context.Background(), &postbackv1.PublishRequest{AccountId: "brand-1", EventType: "action_clearing", Data: sampleData(t, "action_clearing")})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// publishUntilAll publishes n action_clearing events and waits (up to
// within) until the account has n deliveries, all in status st.
func publishUntilAll(t *testing.T, h *harness, n int, st postbackv1.DeliveryStatus, within time.Duration) {
	t.Helper()
	for range n {
		publishClearing(t, h)
	}
	eventually(t, within, "every delivery "+strings.TrimPrefix(st.String(), "DELIVERY_STATUS_"), func() bool {
		return allStatus(listAll(t, h), n, st)
	})
}

// settled waits until the only delivery of the account reaches a final status.
func settled(t *testing.T, h *harness, within time.Duration) *postbackv1.Delivery {
	t.Helper()
	var d *postbackv1.Delivery
	eventually(t, within, "a finished delivery", func() bool {
		l, err := h.deliveries.ListDeliveries(context.Background(), &postbackv1.ListDeliveriesRequest{AccountId: "brand-1"})
		if err != nil || len(l.Deliveries) != 1 {
			return false
		}
		d = l.Deliveries[0]
		switch d.Status {
		case postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED, postbackv1.DeliveryStatus_DELIVERY_STATUS_FAILED,
			postbackv1.DeliveryStatus_DELIVERY_STATUS_DEAD, postbackv1.DeliveryStatus_DELIVERY_STATUS_CANCELLED:
			return true
		}
		return false
	})
	return d
}

func attemptHeaders(rs []received) []int {
	out := make([]int, len(rs))
	for i, r := range rs {
		out[i], _ = strconv.Atoi(r.Header.Get("Postback-Attempt"))
	}
	return out
}

func TestRetrySchedule(t *testing.T) {
	cases := []struct {
		name         string
		answer       func(n int) int // status for the n-th request (1-based)
		wantAttempts []int
		wantStatus   postbackv1.DeliveryStatus
	}{
		{"a receiver always answering 503 gets 16 requests, then the delivery is dead",
			func(int) int { return 503 },
			[]int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, postbackv1.DeliveryStatus_DELIVERY_STATUS_DEAD},
		{"a 404 skips retries 1 to 3: attempts 0 and 4 to 15",
			func(int) int { return 404 },
			[]int{0, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, postbackv1.DeliveryStatus_DELIVERY_STATUS_DEAD},
		{"a receiver recovering on retry 5 succeeds after 6 requests",
			func(n int) int {
				if n == 6 {
					return 200
				}
				return 503
			},
			[]int{0, 1, 2, 3, 4, 5}, postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := start(t, "", withSchedule(compressed))
			rc := newReceiver(t)
			rc.answer = func(n int, _ *http.Request) (int, string) { return c.answer(n), "" }
			postTo(t, h, rc.URL)
			publishClearing(t, h)
			d := settled(t, h, 60*time.Second)
			time.Sleep(300 * time.Millisecond) // nothing more may arrive
			got := rc.requests()
			if fmt.Sprint(attemptHeaders(got)) != fmt.Sprint(c.wantAttempts) {
				t.Fatalf("Postback-Attempt of each request = %v, want %v", attemptHeaders(got), c.wantAttempts)
			}
			if d.Status != c.wantStatus || int(d.AttemptCount) != len(c.wantAttempts) {
				t.Fatalf("delivery = %s after %d attempts, want %s after %d", d.Status, d.AttemptCount, c.wantStatus, len(c.wantAttempts))
			}
			// Each gap follows the schedule: at least the delay of the retry
			// it leads to (counted from the end of the previous attempt), and
			// not much more.
			for i := 1; i < len(got); i++ {
				retry := c.wantAttempts[i]
				want := compressed[retry-1]
				gap := got[i].At.Sub(got[i-1].At)
				if gap < want || gap > want+time.Second {
					t.Errorf("gap before retry %d = %s, want %s (+ at most 1s)", retry, gap, want)
				}
			}
			ats, err := h.deliveries.ListAttempts(context.Background(), &postbackv1.ListAttemptsRequest{DeliveryId: d.Id})
			if err != nil || len(ats.Attempts) != len(c.wantAttempts) {
				t.Fatalf("ListAttempts = %d attempts (%v), want %d", len(ats.GetAttempts()), err, len(c.wantAttempts))
			}
			for i, at := range ats.Attempts {
				if int(at.Number) != c.wantAttempts[i] {
					t.Errorf("attempt %d has number %d, want %d", i, at.Number, c.wantAttempts[i])
				}
			}
			if c.wantStatus == postbackv1.DeliveryStatus_DELIVERY_STATUS_DEAD && !strings.Contains(d.Reason, "retries failed") {
				t.Errorf("dead delivery's reason = %q", d.Reason)
			}
		})
	}
}

func TestFinalFailuresAreNotRetried(t *testing.T) {
	t.Run("a host that does not resolve (NXDOMAIN) fails after the first attempt", func(t *testing.T) {
		dns := guardtest.NXDOMAINServer(t)
		h := start(t, "", func(c *Config) {
			withSchedule(compressed)(c)
			c.Resolver = guardtest.Resolver(dns)
		})
		postTo(t, h, "http://postback-test.invalid./hook")
		publishClearing(t, h)
		d := settled(t, h, 10*time.Second)
		time.Sleep(200 * time.Millisecond)
		if d.Status != postbackv1.DeliveryStatus_DELIVERY_STATUS_FAILED || d.AttemptCount != 1 || !strings.Contains(d.Reason, "does not resolve") {
			t.Fatalf("delivery = %s, %d attempts, reason %q", d.Status, d.AttemptCount, d.Reason)
		}
		ats, _ := h.deliveries.ListAttempts(context.Background(), &postbackv1.ListAttemptsRequest{DeliveryId: d.Id})
		if len(ats.GetAttempts()) != 1 || ats.Attempts[0].Retryable {
			t.Fatalf("attempts = %v", ats.GetAttempts())
		}
	})
	t.Run("a destination the network guard blocks fails with the guard's reason and no connection", func(t *testing.T) {
		h := start(t, "", withSchedule(compressed)) // allows 127.0.0.1/32 only
		postTo(t, h, "http://127.0.0.2:9/hook")
		publishClearing(t, h)
		d := settled(t, h, 10*time.Second)
		if d.Status != postbackv1.DeliveryStatus_DELIVERY_STATUS_FAILED || !strings.Contains(d.Reason, "blocked by the network guard") {
			t.Fatalf("delivery = %s, reason %q", d.Status, d.Reason)
		}
	})
	t.Run("a rendered URL that is malformed fails without any request", func(t *testing.T) {
		h := start(t, "", withSchedule(compressed))
		rc := newReceiver(t)
		ctx := context.Background()
		// The sample event renders a valid host; this event's deviceOs does not.
		url := strings.Replace(rc.URL, "127.0.0.1", "{deviceOs}.localhost", 1)
		if _, err := h.endpoints.CreateEndpoint(ctx, &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{
			AccountId: "brand-1", EventType: "action_lifecycle", Url: url, Method: postbackv1.HttpMethod_HTTP_METHOD_POST}}); err != nil {
			t.Fatal(err)
		}
		if _, err := h.events.Publish(ctx, &postbackv1.PublishRequest{AccountId: "brand-1", EventType: "action_lifecycle",
			Data: &structpb.Struct{Fields: map[string]*structpb.Value{"deviceOs": structpb.NewStringValue("not a host")}}}); err != nil {
			t.Fatal(err)
		}
		d := settled(t, h, 10*time.Second)
		time.Sleep(200 * time.Millisecond)
		if d.Status != postbackv1.DeliveryStatus_DELIVERY_STATUS_FAILED || d.AttemptCount != 0 || !strings.Contains(d.Reason, "URL") {
			t.Fatalf("delivery = %s, %d attempts, reason %q", d.Status, d.AttemptCount, d.Reason)
		}
		if n := len(rc.requests()); n != 0 {
			t.Fatalf("receiver got %d requests", n)
		}
	})
}

// A large postback that fails is retried like any other. The failed
// attempt handed to the retry service carried the job as JSON, its body in
// base64, a third larger: a body over ~760 KiB made it too large for a
// 1 MiB message, and the delivery stayed RETRYING with no retry scheduled.
func TestALargePostbackThatFailsIsRetried(t *testing.T) {
	h := start(t, "", withSchedule(compressed))
	rc := newReceiver(t)
	rc.answer = func(n int, _ *http.Request) (int, string) {
		if n == 1 {
			return 503, "not yet"
		}
		return 200, "OK"
	}
	ctx := context.Background()
	// 60 KiB of the template's own text and a 240 KiB data point three
	// times: a 780 KiB body (its worst case, 828 KiB, is within the limit).
	if _, err := h.endpoints.CreateEndpoint(ctx, &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{
		AccountId: "brand-1", EventType: "action_clearing", Url: rc.URL, Method: postbackv1.HttpMethod_HTTP_METHOD_POST,
		BodyFormat: postbackv1.BodyFormat_BODY_FORMAT_TEXT, BodyTemplate: strings.Repeat("x", 60<<10) + "{ActionIds}{ActionIds}{ActionIds}",
	}}); err != nil {
		t.Fatal(err)
	}
	data, err := structpb.NewStruct(map[string]any{"ActionIds": strings.Repeat("A", 240<<10)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.events.Publish(ctx, &postbackv1.PublishRequest{AccountId: "brand-1", EventType: "action_clearing", Data: data}); err != nil {
		t.Fatal(err)
	}
	d := settled(t, h, 30*time.Second)
	got := rc.requests()
	if d.Status != postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED || len(got) != 2 {
		t.Fatalf("delivery %s after %d requests, want SUCCEEDED after 2 (a 503, then the retry)", d.Status, len(got))
	}
	if n := len(got[1].Body); n != 60<<10+3*240<<10 {
		t.Errorf("the retry's body is %d bytes, want %d", n, 60<<10+3*240<<10)
	}
}
