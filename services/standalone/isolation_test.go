package standalone

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/postback-dev/postback/pkg/stream/streamtest"
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

func TestJunkOnEveryWorkSubjectIsDeadLetteredAndListedForAnOperator(t *testing.T) {
	h := start(t, "", nil)
	rc := newReceiver(t)
	limitedEndpoint(t, h, "brand-1", rc.URL, 0, 0)
	js := h.jetStream(t)
	ctx := context.Background()
	junk := map[string]string{ // subject: consumer that gives up on it
		"events.action_clearing":                    "renderer",
		"deliveries.3.junk-acct.junk-ep.junk-dlv-1": "sender",
		"failed.3.junk-ep":                          "retry",
		"retries.3.junk-ep":                         "sender-retries",
	}
	for subject := range junk {
		for i := range 3 {
			if _, err := js.Publish(ctx, subject, []byte{0xff, 0x00, byte(i), '{'}, jetstream.WithMsgID(fmt.Sprintf("%s-%d", subject, i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	// An event of the right shape but without an account: it must not be
	// taken for "every account".
	if _, err := js.Publish(ctx, "events.action_clearing",
		[]byte(`{"id":"evt_x","account_id":"","event_type":"action_clearing","time":"2026-04-15T12:00:00Z","data":{"CampaignId":9876}}`)); err != nil {
		t.Fatal(err)
	}
	publishN(t, h, "brand-1", 5) // real postbacks go on beside the junk
	eventually(t, 20*time.Second, "the 5 real postbacks", func() bool { return rc.count() == 5 })
	var letters []*postbackv1.DeadLetter
	eventually(t, 20*time.Second, "13 dead letters", func() bool {
		res, err := h.deliveries.ListDeadLetters(ctx, &postbackv1.ListDeadLettersRequest{PageSize: 5})
		if err != nil {
			t.Fatal(err)
		}
		letters = res.DeadLetters
		for token := res.NextPageToken; token != ""; {
			res, err = h.deliveries.ListDeadLetters(ctx, &postbackv1.ListDeadLettersRequest{PageSize: 5, PageToken: token})
			if err != nil {
				t.Fatal(err)
			}
			letters, token = append(letters, res.DeadLetters...), res.NextPageToken
		}
		return len(letters) >= 13
	})
	per := map[string]int{}
	for _, d := range letters {
		if want := junk[d.Subject]; want != "" && d.Consumer != want {
			t.Errorf("junk on %s dead-lettered by %s, want %s", d.Subject, d.Consumer, want)
		}
		if d.Reason == "" || d.Tries != 1 {
			t.Errorf("dead letter %d from %s: reason %q after %d tries; want a reason after one", d.Sequence, d.Subject, d.Reason, d.Tries)
		}
		per[d.Consumer]++
	}
	if per["renderer"] != 4 || per["sender"] != 3 || per["retry"] != 3 || per["sender-retries"] != 3 || len(letters) != 13 {
		t.Fatalf("dead letters per consumer %v (%d in all), want renderer 4, the others 3 each", per, len(letters))
	}
	// The work streams hold nothing of it any more.
	for _, name := range []string{"EVENTS", "DELIVERIES", "SCHEDULES"} {
		if n := streamtest.Work(t, js, name); n != 0 {
			t.Errorf("%s still holds %d messages", name, n)
		}
	}
	filtered, err := h.deliveries.ListDeadLetters(ctx, &postbackv1.ListDeadLettersRequest{Consumer: "retry"})
	if err != nil || len(filtered.DeadLetters) != 3 {
		t.Fatalf("the retry service's dead letters: %v, %v", filtered, err)
	}
	if _, err := h.deliveries.ListDeadLetters(ctx, &postbackv1.ListDeadLettersRequest{Consumer: "nobody"}); status.Code(err) != codes.InvalidArgument ||
		!strings.Contains(status.Convert(err).Message(), "consumer") {
		t.Fatalf("an unknown consumer: %v, want InvalidArgument naming consumer", err)
	}
}
