package standalone

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// slowServer is a brand's server on loopback that answers every postback
// after delay, counting the requests it holds at once.
type slowServer struct {
	*httptest.Server
	mu          sync.Mutex
	inFlight    int
	maxInFlight int
	ids         map[string]int // Postback-Delivery-Id: requests
	firstAnswer time.Time
}

func newSlowServer(t *testing.T, delay time.Duration) *slowServer {
	s := &slowServer{ids: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.inFlight++
		s.maxInFlight = max(s.maxInFlight, s.inFlight)
		s.ids[r.Header.Get("Postback-Delivery-Id")]++
		s.mu.Unlock()
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
		}
		s.mu.Lock()
		s.inFlight--
		if s.firstAnswer.IsZero() {
			s.firstAnswer = time.Now()
		}
		s.mu.Unlock()
		_, _ = w.Write([]byte("OK"))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *slowServer) counts() (inFlight, maxInFlight, distinct, requests int, firstAnswer time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.ids {
		requests += n
	}
	return s.inFlight, s.maxInFlight, len(s.ids), requests, s.firstAnswer
}

func TestASlowServerTiesUpOnlyItsOwnShareOfTheSender(t *testing.T) {
	// 16 sender workers, a slow brand allowed 4 of them; its server holds
	// every postback 2 s, with 24 queued: without a share it would hold all
	// 16 workers and the fast brand would wait for its answers.
	h := start(t, "", func(c *Config) { c.SenderWorkers = 16 })
	slow := newSlowServer(t, 2*time.Second)
	fast := newReceiver(t)
	ctx := context.Background()
	if _, err := h.endpoints.CreateEndpoint(ctx, &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{
		AccountId: "slow-brand", EventType: "action_clearing", Url: slow.URL, Method: postbackv1.HttpMethod_HTTP_METHOD_POST,
		MaxInFlight: 4}}); err != nil {
		t.Fatal(err)
	}
	limitedEndpoint(t, h, "fast-brand", fast.URL, 0, 0)
	publishN(t, h, "slow-brand", 24)
	eventually(t, 20*time.Second, "the slow server holding 4 postbacks", func() bool {
		n, _, _, _, _ := slow.counts()
		return n >= 4
	})
	publishN(t, h, "fast-brand", 20)
	eventually(t, 20*time.Second, "the fast brand's 20 postbacks", func() bool { return fast.count() >= 20 })
	lastFast := arrivals(fast.requests())[19]
	if _, _, _, _, first := slow.counts(); !first.IsZero() && first.Before(lastFast) {
		t.Fatalf("the fast brand's last postback arrived %s after the slow server's first answer: it waited for the slow server",
			lastFast.Sub(first))
	}
	eventually(t, 90*time.Second, "all 24 of the slow brand's postbacks", func() bool {
		_, _, distinct, _, _ := slow.counts()
		return distinct == 24
	})
	time.Sleep(500 * time.Millisecond) // a duplicate would show by now
	_, most, distinct, requests, _ := slow.counts()
	if most > 4 {
		t.Errorf("the slow server held %d postbacks at once; the endpoint allows 4", most)
	}
	if requests != distinct {
		t.Errorf("the slow server got %d requests for %d deliveries", requests, distinct)
	}
	t.Logf("slow server: at most %d at once, %d deliveries in %d requests", most, distinct, requests)
}
