package standalone

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/postback-dev/postback/pkg/limiter"
	"github.com/postback-dev/postback/pkg/limiter/limitertest"
	"github.com/postback-dev/postback/pkg/redistest"
	"github.com/postback-dev/postback/pkg/schedule"
	"github.com/postback-dev/postback/pkg/signature"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// Tolerances for the limits as measured. The sender books every request's
// start at least a gap after the last one (across replicas) and starts it
// no more than startLate (2 ms) after its booking, or books again; the
// attempt's start time is taken when the request begins, so at the sender
// the limits hold to within senderTolerance. At the receiver the loopback
// hop adds its own jitter: on a quiet machine under a millisecond at the
// median and a few at the 99th percentile (the note of each change quotes
// them), but on a shared 2-core CI machine, with other packages' tests
// running beside this one, tens of milliseconds now and then, so the
// receiver's checks allow receiverTolerance. Both still catch what a wrong
// limiter does: one request too many compresses a gap by a whole 1/rate
// (5 ms at 200/s, 50 ms at the 0.05 s delay), and a token bucket lets
// 2N-1 requests into the first second.
const (
	senderTolerance   = 3 * time.Millisecond
	receiverTolerance = 20 * time.Millisecond
)

// limitsOver is what a brand measures over request starts: the most that
// started in any 1 s window (less the tolerance) and the smallest gap
// between two starts.
func limitsOver(at []time.Time, tolerance time.Duration) (mostIn1s int, minGap time.Duration) {
	most, _ := limitertest.MaxInWindow(at, time.Second-tolerance)
	minGap = time.Duration(math.MaxInt64)
	for i := 1; i < len(at); i++ {
		minGap = min(minGap, at[i].Sub(at[i-1]))
	}
	return most, minGap
}

// attemptStarts is when the sender began each of the account's attempts.
func attemptStarts(t *testing.T, h *harness, account string) []time.Time {
	t.Helper()
	ctx := context.Background()
	l, err := h.deliveries.ListDeliveries(ctx, &postbackv1.ListDeliveriesRequest{AccountId: account, PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var at []time.Time
	for _, d := range l.Deliveries {
		as, err := h.deliveries.ListAttempts(ctx, &postbackv1.ListAttemptsRequest{DeliveryId: d.Id})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range as.Attempts {
			at = append(at, a.StartTime.AsTime())
		}
	}
	sort.Slice(at, func(i, j int) bool { return at[i].Before(at[j]) })
	return at
}

func arrivals(rs []received) []time.Time {
	at := make([]time.Time, len(rs))
	for i, r := range rs {
		at[i] = r.At
	}
	sort.Slice(at, func(i, j int) bool { return at[i].Before(at[j]) })
	return at
}

func limitedEndpoint(t *testing.T, h *harness, account, url string, minDelay, rate float64) *postbackv1.Endpoint {
	t.Helper()
	ep, err := h.endpoints.CreateEndpoint(context.Background(), &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{
		AccountId: account, EventType: "action_clearing", Url: url, Method: postbackv1.HttpMethod_HTTP_METHOD_POST,
		MinDelaySeconds: minDelay, MaxRequestsPerSecond: rate}})
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

func publishN(t *testing.T, h *harness, account string, n int) {
	t.Helper()
	for done := 0; done < n; {
		batch := &postbackv1.PublishBatchRequest{}
		for ; done < n && len(batch.Events) < 500; done++ {
			batch.Events = append(batch.Events, &postbackv1.PublishRequest{AccountId: account, EventType: "action_clearing",
				Data: &structpb.Struct{Fields: map[string]*structpb.Value{"CampaignId": structpb.NewNumberValue(9876), "ActionIds": structpb.NewStringValue("ACT-1")}}})
		}
		res, err := h.events.PublishBatch(context.Background(), batch)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res.Results {
			if r.Error != nil {
				t.Fatalf("event refused: %v", r.Error)
			}
		}
	}
}

// TestLimitsAreExactAtTheReceiver: Maximum Requests N is at most N request
// starts in any 1 s window, the first second included (a smooth schedule,
// no burst), and Minimum Delay D is no two starts closer than D, measured
// at the brand's server, with three sender replicas sharing Redis and with
// the in-process limiter. Each case is its own brand, all at once.
func TestLimitsAreExactAtTheReceiver(t *testing.T) {
	cases := []struct {
		n        int
		rate     float64
		minDelay time.Duration
	}{
		{n: 5, rate: 1},
		{n: 16, rate: 5},
		{n: 50, rate: 20},
		{n: 120, rate: 50},
		{n: 400, rate: 200},
		{n: 40, minDelay: 50 * time.Millisecond},
		{n: 12, minDelay: 200 * time.Millisecond},
		{n: 4, minDelay: time.Second},
	}
	shapes := []struct {
		name     string
		redis    bool
		replicas int
	}{
		{"three sender replicas sharing Redis", true, 3},
		{"the in-process limiter", false, 1},
	}
	for _, shape := range shapes {
		t.Run(shape.name, func(t *testing.T) {
			// The extra senders share the first one's keys, as replicas do.
			secretKey, jobKey := newKeyring(t), newKeyring(t)
			edit := func(cfg *Config) { cfg.SecretKey, cfg.JobKey = secretKey, jobKey }
			if shape.redis {
				url := redistest.Start(t).URL
				edit = func(cfg *Config) { cfg.SecretKey, cfg.JobKey, cfg.RedisURL = secretKey, jobKey, url }
			}
			h := start(t, "", edit)
			for range shape.replicas - 1 {
				start(t, "", func(cfg *Config) { // more senders on the same JetStream and Redis
					edit(cfg)
					cfg.NATSURL = h.addrs.NATS
					cfg.Targets = "sender"
				})
			}
			for i, c := range cases {
				name := fmt.Sprintf("Maximum Requests %v per second", c.rate)
				if c.minDelay > 0 {
					name = fmt.Sprintf("Minimum Delay %v", c.minDelay)
				}
				t.Run(name, func(t *testing.T) {
					rc := newReceiver(t)
					account := fmt.Sprintf("brand-limits-%d", i)
					limitedEndpoint(t, h, account, rc.URL, c.minDelay.Seconds(), c.rate)
					publishN(t, h, account, c.n)
					eventually(t, 60*time.Second, "every postback", func() bool { return rc.count() >= c.n })
					at := arrivals(rc.requests())
					if len(at) != c.n {
						t.Fatalf("receiver got %d requests, want %d", len(at), c.n)
					}
					var sent []time.Time
					eventually(t, 10*time.Second, "every attempt recorded", func() bool {
						sent = attemptStarts(t, h, account)
						return len(sent) == c.n
					})
					check := func(where string, at []time.Time, tolerance time.Duration) {
						t.Helper()
						most, minGap := limitsOver(at, tolerance)
						took := at[len(at)-1].Sub(at[0])
						strict, _ := limitsOver(at, 0)
						t.Logf("at the %s: %d requests in %s, at most %d in any 1 s window (%d less %s), smallest gap %s",
							where, c.n, took.Round(time.Millisecond), strict, most, tolerance, minGap.Round(10*time.Microsecond))
						if c.rate > 0 && most > int(math.Ceil(c.rate)) {
							t.Errorf("at the %s: %d requests started within one second less %s; Maximum Requests is %v", where, most, tolerance, c.rate)
						}
						if c.minDelay > 0 && minGap < c.minDelay-tolerance {
							t.Errorf("at the %s: two requests started %s apart; Minimum Delay is %s", where, minGap, c.minDelay)
						}
						// The limits bind, and no tighter than they say: the
						// run takes about (n-1) gaps.
						gap := time.Duration(limiter.Limits{Rate: c.rate, MinDelay: c.minDelay}.Gap(time.Nanosecond))
						if want := time.Duration(c.n-1) * gap; took < want-tolerance || took > 2*want+time.Second {
							t.Errorf("at the %s: %d requests took %s, the limits make it %s", where, c.n, took, want)
						}
					}
					check("sender", sent, senderTolerance)
					check("receiver", at, receiverTolerance)
				})
			}
		})
	}
}

// TestMinimumDelayHoldsAcrossARestart: the in-process limiter's state dies
// with the process, and the one before may have sent just before it
// stopped: after a restart the first request still waits the gap.
func TestMinimumDelayHoldsAcrossARestart(t *testing.T) {
	dir := t.TempDir()
	rc := newReceiver(t)
	h := start(t, dir, nil)
	limitedEndpoint(t, h, "brand-1", rc.URL, 1, 0)
	publishN(t, h, "brand-1", 1)
	rc.next(t, 30*time.Second)
	h.stop()
	h = start(t, dir, nil)
	publishN(t, h, "brand-1", 1)
	rc.next(t, 30*time.Second)
	at := arrivals(rc.requests())
	if gap := at[1].Sub(at[0]); gap < time.Second-receiverTolerance {
		t.Fatalf("the first request after a restart came %s after the last one before it; Minimum Delay is 1s", gap)
	}
}

func TestNoisyNeighbourDoesNotHoldUpOtherEndpoints(t *testing.T) {
	h := start(t, "", nil)
	slow, fast := newReceiver(t), newReceiver(t)
	limitedEndpoint(t, h, "noisy", slow.URL, 0, 1)
	limitedEndpoint(t, h, "quiet", fast.URL, 0, 0)
	publishN(t, h, "noisy", 500)
	begin := time.Now()
	publishN(t, h, "quiet", 200)
	eventually(t, 20*time.Second, "the quiet endpoint's 200 postbacks", func() bool { return len(fast.requests()) >= 200 })
	took := time.Since(begin)
	if took > 5*time.Second {
		t.Fatalf("the quiet endpoint's 200 postbacks took %s behind a 500-deep backlog at 1/s", took)
	}
	if n, allowed := len(slow.requests()), 1+int(time.Since(begin).Seconds()+1); n > allowed+1 {
		t.Fatalf("the 1/s endpoint got %d requests in %s", n, time.Since(begin))
	}
	t.Logf("200 postbacks to the unlimited endpoint in %s while the 1/s endpoint had drained %d of 500", took, len(slow.requests()))
}

func TestRedisOutageHoldsDeliveriesAndReportsNotReady(t *testing.T) {
	redis := redistest.Start(t)
	h := start(t, "", func(c *Config) { c.RedisURL = redis.URL })
	rc := newReceiver(t)
	limitedEndpoint(t, h, "brand-1", rc.URL, 0, 10)
	readyz := func() int {
		resp, err := http.Get("http://" + h.addrs.HTTP.String() + "/readyz")
		if err != nil {
			return 0
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	if code := readyz(); code != 200 {
		t.Fatalf("/readyz = %d before the outage", code)
	}
	redis.Stop()
	publishN(t, h, "brand-1", 3)
	time.Sleep(1500 * time.Millisecond)
	if n := len(rc.requests()); n != 0 {
		t.Fatalf("%d postbacks went out unthrottled while Redis was down", n)
	}
	if code := readyz(); code != 503 {
		t.Fatalf("/readyz = %d while Redis is down, want 503", code)
	}
	limiterErrors := 0.0
	for series, v := range scrape(t, h) {
		if strings.HasPrefix(series, "postback_limiter_errors_total") {
			limiterErrors += v
		}
	}
	if limiterErrors == 0 {
		t.Error("postback_limiter_errors_total is 0 while Redis is down (the alert PostbackLimiterUnavailable watches it)")
	}
	grpcHealth := func() healthpb.HealthCheckResponse_ServingStatus {
		res, err := healthpb.NewHealthClient(h.conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
		if err != nil {
			return healthpb.HealthCheckResponse_UNKNOWN
		}
		return res.Status
	}
	eventually(t, 15*time.Second, "grpc.health.v1 NOT_SERVING", func() bool { return grpcHealth() == healthpb.HealthCheckResponse_NOT_SERVING })
	redis.Restart()
	eventually(t, 15*time.Second, "the held postbacks", func() bool { return len(rc.requests()) == 3 })
	eventually(t, 5*time.Second, "/readyz 200 again", func() bool { return readyz() == 200 })
	eventually(t, 15*time.Second, "grpc.health.v1 SERVING again", func() bool { return grpcHealth() == healthpb.HealthCheckResponse_SERVING })
}

func TestBrandsSuccessAndErrorResponsesDecide(t *testing.T) {
	cases := []struct {
		name             string
		success, failure string
		code             int
		body             string
		want             postbackv1.DeliveryStatus
	}{
		{"200 with body ERROR is a failure when Error Response is ERROR", "", "ERROR", 200, "ERROR", postbackv1.DeliveryStatus_DELIVERY_STATUS_DEAD},
		{"500 with body OK is a success when Success Response is OK", "OK", "", 500, "OK", postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED},
		{"a 2xx is a success when neither is set", "", "", 204, "", postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED},
		{"a redirect is not followed and is not a success", "", "", 302, "", postbackv1.DeliveryStatus_DELIVERY_STATUS_DEAD},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := start(t, "", withSchedule(schedule.Schedule{time.Millisecond}))
			rc := newReceiver(t)
			rc.answer = func(int, *http.Request) (int, string) { return c.code, c.body }
			if c.code == 302 {
				rc.answer = func(int, *http.Request) (int, string) { return 302, "" }
			}
			if _, err := h.endpoints.CreateEndpoint(context.Background(), &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{
				AccountId: "brand-1", EventType: "action_clearing", Url: rc.URL, Method: postbackv1.HttpMethod_HTTP_METHOD_POST,
				SuccessResponse: c.success, ErrorResponse: c.failure}}); err != nil {
				t.Fatal(err)
			}
			publishClearing(t, h)
			if d := settled(t, h, 10*time.Second); d.Status != c.want {
				t.Fatalf("delivery = %s (%s), want %s", d.Status, d.LastError, c.want)
			}
		})
	}
}

func TestSignedEndpointGetsStandardWebhooksHeaders(t *testing.T) {
	h := start(t, "", nil)
	rc := newReceiver(t)
	secret, err := signature.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.endpoints.CreateEndpoint(context.Background(), &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{
		AccountId: "brand-1", EventType: "action_clearing", Url: rc.URL, Method: postbackv1.HttpMethod_HTTP_METHOD_POST,
		SigningSecret: secret}}); err != nil {
		t.Fatal(err)
	}
	publishClearing(t, h)
	got := rc.next(t, 10*time.Second)
	if err := signature.Verify(secret, got.Header, got.Body, time.Now(), time.Minute); err != nil {
		t.Fatalf("signature does not verify: %v (headers %v)", err, got.Header)
	}
	if got.Header.Get("webhook-id") != got.Header.Get("Postback-Delivery-Id") {
		t.Fatalf("webhook-id %q is not the delivery id %q", got.Header.Get("webhook-id"), got.Header.Get("Postback-Delivery-Id"))
	}
}

func TestTestEndpointSendsTheSampleOnceAndReturnsTheAttempt(t *testing.T) {
	h := start(t, "", nil)
	rc := newReceiver(t)
	var mu sync.Mutex
	rc.answer = func(int, *http.Request) (int, string) { mu.Lock(); defer mu.Unlock(); return 200, "OK" }
	ep := postTo(t, h, rc.URL+"/t?oid={ActionIds}")
	at, err := h.endpoints.TestEndpoint(context.Background(), &postbackv1.TestEndpointRequest{Id: ep.Id})
	if err != nil {
		t.Fatal(err)
	}
	if at.Outcome != postbackv1.AttemptOutcome_ATTEMPT_OUTCOME_SUCCESS || at.StatusCode != 200 || at.ResponseBody != "OK" {
		t.Fatalf("attempt = %v", at)
	}
	got := rc.requests()
	if len(got) != 1 || !strings.Contains(got[0].Query, "oid=ACT-101%2CACT-102") {
		t.Fatalf("receiver got %v", got)
	}
}
