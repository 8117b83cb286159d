package standalone

import (
	"context"
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

	"github.com/postback-dev/postback/pkg/redistest"
	"github.com/postback-dev/postback/pkg/schedule"
	"github.com/postback-dev/postback/pkg/signature"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// slack is how much later than its reserved slot a request may reach the
// receiver: the sender starts it within its 10 ms late tolerance (a job
// woken later takes a fresh slot), and building the request, the loopback
// hop and the receiver's handler add scheduling jitter on top, which on a
// shared 2-core CI machine running three sender replicas has exceeded 5 ms
// (a run saw 36 requests in a window 1.5 ms too short for the old 15 ms).
// The checks stay able to catch a limiter that grants one token too many:
// that compresses a window by 1/rate (125 ms at 8/s, 200 ms at 5/s).
const slack = 35 * time.Millisecond

// checkRate fails when any window [t_i, t_j] holds more requests than the
// token bucket allows: burst + rate × (window + slack), that is when the
// window is more than slack shorter than the bucket needs for them.
func checkRate(t *testing.T, at []time.Time, rate float64) {
	t.Helper()
	burst := max(1, rate)
	tightest := time.Duration(math.MaxInt64) // window length beyond what the bucket needs
	for i := range at {
		for j := i; j < len(at); j++ {
			n := float64(j - i + 1)
			spare := at[j].Sub(at[i]) - time.Duration((n-burst)/rate*float64(time.Second))
			if spare < -slack {
				t.Fatalf("%v requests within %s: more than burst %v + %v/s", n, at[j].Sub(at[i]), burst, rate)
			}
			tightest = min(tightest, spare)
		}
	}
	t.Logf("tightest window: %s longer than the bucket needs (negative: jitter, within the %s slack)", tightest.Round(100*time.Microsecond), slack)
}

func checkSpacing(t *testing.T, at []time.Time, minDelay time.Duration) {
	t.Helper()
	for i := 1; i < len(at); i++ {
		if gap := at[i].Sub(at[i-1]); gap < minDelay-slack {
			gaps := make([]string, 0, len(at))
			for k := 1; k < len(at); k++ {
				gaps = append(gaps, at[k].Sub(at[k-1]).Round(time.Millisecond).String())
			}
			t.Fatalf("requests %d and %d started %s apart, Minimum Delay is %s; gaps %v", i-1, i, gap, minDelay, gaps)
		}
	}
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

func TestLimitsHoldAcrossSenderReplicasSharingRedis(t *testing.T) {
	redis := redistest.Start(t)
	cases := []struct {
		name     string
		n        int
		minDelay float64
		rate     float64
		replicas int
	}{
		{"Maximum Requests 5/s over 50 deliveries never exceeds the bucket in any window", 50, 0, 5, 1},
		{"Minimum Delay 0.2 s never gives two request starts closer than 0.2 s", 20, 0.2, 0, 1},
		{"three sender replicas sharing one Redis still respect one endpoint's limits", 40, 0.1, 8, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			withRedis := func(cfg *Config) { cfg.RedisURL = redis.URL }
			h := start(t, "", withRedis)
			for range c.replicas - 1 {
				// More senders on the same JetStream and Redis.
				start(t, "", func(cfg *Config) {
					withRedis(cfg)
					cfg.NATSURL = h.addrs.NATS
					cfg.Targets = "sender"
				})
			}
			rc := newReceiver(t)
			limitedEndpoint(t, h, "brand-1", rc.URL, c.minDelay, c.rate)
			publishN(t, h, "brand-1", c.n)
			eventually(t, 60*time.Second, "every postback", func() bool { return len(rc.requests()) >= c.n })
			at := arrivals(rc.requests())
			if len(at) != c.n {
				t.Fatalf("receiver got %d requests, want %d", len(at), c.n)
			}
			if c.rate > 0 {
				checkRate(t, at, c.rate)
			}
			if c.minDelay > 0 {
				checkSpacing(t, at, time.Duration(c.minDelay*float64(time.Second)))
			}
			// The limits bind: the run takes about as long as they say.
			if c.rate > 0 {
				want := time.Duration(float64(c.n-int(max(1, c.rate))) / c.rate * float64(time.Second))
				if took := at[len(at)-1].Sub(at[0]); took < want-slack {
					t.Fatalf("%d requests took %s, the limit needs at least %s", c.n, took, want)
				}
			}
		})
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
