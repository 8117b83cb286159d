package standalone

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/postback-dev/postback/pkg/auth"
	"github.com/postback-dev/postback/pkg/history"
	"github.com/postback-dev/postback/pkg/id"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// BenchmarkConsolePages serves each console page to a signed-in account
// with CONSOLE_BENCH_DELIVERIES (default 1,000,000) deliveries of its
// endpoint in the history (SQLite, written straight into the store before
// the standalone starts on it), and reports each page's p99 in ms:
//
//	go test -run '^$' -bench BenchmarkConsolePages -benchtime 200x ./services/standalone/
func BenchmarkConsolePages(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("CONSOLE_BENCH_DELIVERIES"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			b.Fatalf("CONSOLE_BENCH_DELIVERIES: %v", err)
		}
	}
	const account = "acct-bench"
	tokens := func(c *Config) { c.Tokens = consoleTokenA + "=" + account }
	dir := b.TempDir()
	h := start(b, dir, tokens)
	ctx := auth.WithBearer(context.Background(), consoleTokenA)
	ep, err := h.endpoints.CreateEndpoint(ctx, &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{
		AccountId: account, EventType: "action_lifecycle", Url: "http://127.0.0.1:9/pb?action={ActionId}&status={Status}"}})
	if err != nil {
		b.Fatal(err)
	}
	h.stop()

	cfg := Config{}
	cfg.Config.DataDir = dir
	store, err := cfg.History(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	began := time.Now()
	someDelivery, err := fillConsoleHistory(store, account, ep.Id, n)
	if err != nil {
		b.Fatal(err)
	}
	if err := store.Close(); err != nil {
		b.Fatal(err)
	}
	b.Logf("filled %d deliveries in %s", n, time.Since(began).Round(time.Second))

	h = start(b, dir, tokens)
	base := "http://" + h.addrs.HTTP.String()
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.PostForm(base+"/console/sign-in", url.Values{"token": {consoleTokenA}})
	if err != nil || resp.StatusCode != http.StatusSeeOther {
		b.Fatalf("sign-in: %v %v", resp, err)
	}
	resp.Body.Close()

	for _, page := range []struct{ name, path string }{
		{"notifications", "/console/notifications"},
		{"edit", "/console/notifications/action_lifecycle"},
		{"log", "/console/deliveries"},
		{"log-filtered", "/console/deliveries?type=action_lifecycle&status=DEAD"},
		{"log-window", "/console/deliveries?from=" + time.Now().Add(-72*time.Hour).UTC().Format("2006-01-02T15:04") + "&to=" + time.Now().Add(-48*time.Hour).UTC().Format("2006-01-02T15:04")},
		{"delivery", "/console/deliveries/" + someDelivery},
	} {
		b.Run(page.name, func(b *testing.B) {
			took := make([]time.Duration, 0, b.N)
			for b.Loop() {
				t0 := time.Now()
				resp, err := client.Get(base + page.path)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("GET %s: %d", page.path, resp.StatusCode)
				}
				took = append(took, time.Since(t0))
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}

// fillConsoleHistory appends n deliveries of endpoint to store, created
// evenly over the last 29 days (90% succeeded, 10% dead after three
// attempts), and returns one delivery's id.
func fillConsoleHistory(store history.Store, account, endpoint string, n int) (string, error) {
	const span = 29 * 24 * time.Hour
	now := time.Now().Truncate(time.Microsecond)
	step := span / time.Duration(max(n, 1))
	batch := make([]history.Entry, 0, 2100)
	some := ""
	for i := range n {
		created := now.Add(-span + time.Duration(i)*step).Truncate(time.Microsecond)
		dlv, evt := id.New(id.Delivery, created), id.New(id.Event, created)
		url := "http://127.0.0.1:9/pb?action=ACT-" + strconv.Itoa(i) + "&status=APPROVED"
		st, attempts, code := postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED, 1, int32(200)
		if i%10 == 0 {
			st, attempts, code = postbackv1.DeliveryStatus_DELIVERY_STATUS_DEAD, 3, 503
		}
		updated := created.Add(time.Duration(attempts) * time.Second)
		d := &postbackv1.Delivery{Id: dlv, AccountId: account, EndpointId: endpoint, EventId: evt, EventType: "action_lifecycle",
			Status: st, AttemptCount: int32(attempts), LastStatusCode: code, CreateTime: timestamppb.New(created), UpdateTime: timestamppb.New(updated)}
		for k := range attempts {
			outcome := postbackv1.AttemptOutcome_ATTEMPT_OUTCOME_SUCCESS
			if code != 200 {
				outcome = postbackv1.AttemptOutcome_ATTEMPT_OUTCOME_FAILURE
			}
			a := &postbackv1.Attempt{DeliveryId: dlv, Number: int32(k), StartTime: timestamppb.New(created.Add(time.Duration(k) * time.Second)),
				Duration: durationpb.New(40 * time.Millisecond), Url: url, StatusCode: code, ResponseBody: "OK", Outcome: outcome, Retryable: code != 200}
			batch = append(batch, history.Entry{Delivery: d, Attempt: a, Version: updated.UnixMicro() - int64(attempts-1-k)})
		}
		if i == n/2 {
			some = dlv
		}
		if len(batch) >= 2000 || i == n-1 {
			if err := store.Append(context.Background(), batch); err != nil {
				return "", fmt.Errorf("append deliveries up to %d: %w", i, err)
			}
			batch = batch[:0]
		}
	}
	return some, nil
}
