package standalone

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/postback-dev/postback/pkg/signature"
	"github.com/postback-dev/postback/pkg/telemetry"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// The telemetry tests pass their own providers through Config (no globals),
// so they run in parallel with the rest.

func attr(s tracetest.SpanStub, key attribute.Key) (attribute.Value, bool) {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

func attrString(s tracetest.SpanStub, key attribute.Key) string {
	v, _ := attr(s, key)
	return v.Emit()
}

// firstSendChain is the chain of a postback's first request, from the
// Publish that took its event in.
var firstSendChain = []string{
	"POST",
	"process deliveries.{partition}.{account_id}.{endpoint_id}.{delivery_id}",
	"publish deliveries.{partition}.{account_id}.{endpoint_id}.{delivery_id}",
	"process events.{event_type}.{partition}",
	"publish events.{event_type}.{partition}",
	"postback.v1.EventService/Publish",
}

// chain is the names of a span and its ancestors, leaf first.
func chain(byID map[trace.SpanID]tracetest.SpanStub, s tracetest.SpanStub) []string {
	var out []string
	for {
		out = append(out, s.Name)
		p, ok := byID[s.Parent.SpanID()]
		if !s.Parent.IsValid() || !ok {
			return out
		}
		s = p
	}
}

func TestOnePostbackIsOneTraceFromPublishToItsLastAttempt(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	logs := &logBuffer{}
	h := start(t, "", edits(withLogs(logs), func(c *Config) {
		c.RetrySchedule = "50ms"
		c.SpanExporter = exp
	}))
	rc := newReceiver(t)
	rc.answer = func(n int, _ *http.Request) (int, string) {
		if n == 1 {
			return 503, "busy"
		}
		return 200, "OK"
	}
	const headerSecret = "Bearer tr4ce-s3cret-header-value"
	signing, err := signature.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{headerSecret, "tr4ce-s3cret", signing, strings.TrimPrefix(signing, signature.SecretPrefix)}
	ctx := context.Background()
	if _, err := h.endpoints.CreateEndpoint(ctx, &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{
		AccountId: "brand-1", EventType: "action_clearing", Url: rc.URL + "/hook?c={CampaignId}", Method: postbackv1.HttpMethod_HTTP_METHOD_POST,
		Headers:       []*postbackv1.Header{{Name: "Authorization", Value: headerSecret, Secret: true}},
		SigningSecret: signing,
	}}); err != nil {
		t.Fatal(err)
	}
	pub, err := h.events.Publish(ctx, &postbackv1.PublishRequest{AccountId: "brand-1", EventType: "action_clearing", Data: sampleData(t, "action_clearing")})
	if err != nil {
		t.Fatal(err)
	}
	d := settled(t, h, 20*time.Second)
	if d.Status != postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED || d.AttemptCount != 2 {
		t.Fatalf("delivery = %s after %d attempts, want SUCCEEDED after 2", d.Status, d.AttemptCount)
	}
	if got := rc.requests(); len(got) != 2 || got[1].Header.Get("Authorization") != headerSecret {
		t.Fatalf("receiver got %d requests", len(got))
	}
	if tp := rc.requests()[0].Header.Get("traceparent"); tp != "" {
		t.Errorf("the request to the brand carries traceparent %q; Postback's trace context stays inside", tp)
	}

	// The last span of the trace (the sender's process span of retry 1)
	// ends right after the record is written: wait for it.
	var spans tracetest.SpanStubs
	eventually(t, 10*time.Second, "the retry's process span", func() bool {
		spans = exp.GetSpans()
		for _, s := range spans {
			if strings.HasPrefix(s.Name, "process retries.") && attrString(s, telemetry.Outcome) == telemetry.OutcomeSucceeded {
				return true
			}
		}
		return false
	})

	var publish tracetest.SpanStub
	for _, s := range spans {
		if s.Name == "postback.v1.EventService/Publish" && s.SpanKind == trace.SpanKindServer {
			publish = s
		}
	}
	if !publish.SpanContext.IsValid() {
		t.Fatalf("no gRPC server span for Publish among %d spans", len(spans))
	}
	traceID := publish.SpanContext.TraceID()
	byID := map[trace.SpanID]tracetest.SpanStub{}
	var inTrace []tracetest.SpanStub
	for _, s := range spans {
		if s.SpanContext.TraceID() == traceID {
			byID[s.SpanContext.SpanID()] = s
			inTrace = append(inTrace, s)
		}
		// Every span about this delivery or event is in the publish's trace.
		if attrString(s, telemetry.DeliveryID) == d.Id || attrString(s, telemetry.EventID) == pub.EventId {
			if s.SpanContext.TraceID() != traceID {
				t.Errorf("span %q of the delivery has trace id %s, want %s", s.Name, s.SpanContext.TraceID(), traceID)
			}
		}
	}

	// Two HTTP client spans, attempt 0 (503) and attempt 1 (200).
	var http0, http1 tracetest.SpanStub
	for _, s := range inTrace {
		if s.SpanKind != trace.SpanKindClient || s.Name != "POST" {
			continue
		}
		switch attrString(s, telemetry.Attempt) {
		case "0":
			http0 = s
		case "1":
			http1 = s
		}
	}
	if !http0.SpanContext.IsValid() || !http1.SpanContext.IsValid() {
		t.Fatalf("want HTTP client spans of attempts 0 and 1 in the trace; spans:\n%s", names(inTrace))
	}
	for _, c := range []struct {
		s    tracetest.SpanStub
		code int64
	}{{http0, 503}, {http1, 200}} {
		if v, _ := attr(c.s, "http.response.status_code"); v.AsInt64() != c.code {
			t.Errorf("attempt %s: http.response.status_code = %v, want %d", attrString(c.s, telemetry.Attempt), v.Emit(), c.code)
		}
		if got := attrString(c.s, "http.request.method"); got != "POST" {
			t.Errorf("http.request.method = %q", got)
		}
		if got := attrString(c.s, "url.full"); !strings.HasPrefix(got, rc.URL+"/hook?c=") {
			t.Errorf("url.full = %q, want the rendered URL", got)
		}
		if got := attrString(c.s, "server.address"); got != "127.0.0.1" {
			t.Errorf("server.address = %q", got)
		}
		if got := attrString(c.s, telemetry.DeliveryID); got != d.Id {
			t.Errorf("postback.delivery_id = %q, want %q", got, d.Id)
		}
	}
	if got := attrString(http0, "error.type"); got != "503" {
		t.Errorf("attempt 0 error.type = %q, want 503", got)
	}

	// The parent chains, leaf first.
	first := firstSendChain
	if got := chain(byID, http0); fmt.Sprint(got) != fmt.Sprint(first) {
		t.Errorf("attempt 0's chain:\n got %q\nwant %q", got, first)
	}
	second := append([]string{
		"POST",
		"process retries.{partition}.{endpoint_id}",
		"publish schedules.{delivery_id}",
		"process failed.{partition}.{endpoint_id}",
		"publish failed.{partition}.{endpoint_id}",
	}, first[1:]...)
	if got := chain(byID, http1); fmt.Sprint(got) != fmt.Sprint(second) {
		t.Errorf("attempt 1's chain:\n got %q\nwant %q", got, second)
	}
	// ... and attempt 1 descends from attempt 0's process span.
	p0 := byID[http0.Parent.SpanID()]
	for s := http1; ; s = byID[s.Parent.SpanID()] {
		if s.SpanContext.SpanID() == p0.SpanContext.SpanID() {
			break
		}
		if !s.Parent.IsValid() {
			t.Errorf("attempt 1 does not descend from attempt 0's process span")
			break
		}
	}

	// Messaging conventions and postback attributes.
	for _, s := range inTrace {
		kind := s.SpanKind
		if kind != trace.SpanKindProducer && kind != trace.SpanKindConsumer {
			continue
		}
		if attrString(s, "messaging.system") != "nats" || attrString(s, "messaging.destination.name") == "" {
			t.Errorf("span %q: messaging.system = %q, destination %q", s.Name, attrString(s, "messaging.system"), attrString(s, "messaging.destination.name"))
		}
		want := map[trace.SpanKind]string{trace.SpanKindProducer: "send", trace.SpanKindConsumer: "process"}[kind]
		if got := attrString(s, "messaging.operation.type"); got != want {
			t.Errorf("span %q: messaging.operation.type = %q, want %q", s.Name, got, want)
		}
	}
	// Each target's spans carry its own service.name, as the separate
	// binaries' do, and all the process's service.instance.id.
	wantService := map[string]string{
		"postback.v1.EventService/Publish":                                        "postback-gateway",
		"publish events.{event_type}.{partition}":                                 "postback-gateway",
		"process events.{event_type}.{partition}":                                 "postback-renderer",
		"publish deliveries.{partition}.{account_id}.{endpoint_id}.{delivery_id}": "postback-renderer",
		"process deliveries.{partition}.{account_id}.{endpoint_id}.{delivery_id}": "postback-sender",
		"POST": "postback-sender",
		"publish failed.{partition}.{endpoint_id}":  "postback-sender",
		"process failed.{partition}.{endpoint_id}":  "postback-retry",
		"publish schedules.{delivery_id}":           "postback-retry",
		"process retries.{partition}.{endpoint_id}": "postback-sender",
	}
	services := map[string]bool{}
	for _, s := range inTrace {
		name, instance := resourceString(s, "service.name"), resourceString(s, "service.instance.id")
		services[name] = true
		if want, ok := wantService[s.Name]; ok && name != want {
			t.Errorf("span %q: service.name %q, want %q", s.Name, name, want)
		}
		if instance != telemetry.InstanceID {
			t.Errorf("span %q: service.instance.id %q, want the process's %q", s.Name, instance, telemetry.InstanceID)
		}
	}
	if len(services) != 4 {
		t.Errorf("the trace's spans come from services %v, want the gateway, renderer, sender and retry", services)
	}

	retrySpan := byID[http1.Parent.SpanID()]
	if got := attrString(retrySpan, telemetry.Retry); got != "1" {
		t.Errorf("the retry's span says postback.retry = %q, want 1", got)
	}
	if at, err := time.Parse(time.RFC3339Nano, attrString(retrySpan, telemetry.RetryScheduledAt)); err != nil || at.Before(rc.requests()[0].At) {
		t.Errorf("the retry's span says it was scheduled for %q (%v)", attrString(retrySpan, telemetry.RetryScheduledAt), err)
	}
	for _, c := range []struct {
		s    tracetest.SpanStub
		want map[attribute.Key]string
	}{
		{byID[http0.Parent.SpanID()], map[attribute.Key]string{telemetry.Outcome: "retrying", telemetry.Attempt: "0", telemetry.EndpointID: d.EndpointId,
			telemetry.AccountID: "brand-1", telemetry.EventType: "action_clearing", telemetry.DeliveryID: d.Id}},
		{retrySpan, map[attribute.Key]string{telemetry.Outcome: "succeeded", telemetry.Attempt: "1"}},
		{byID[byID[retrySpan.Parent.SpanID()].Parent.SpanID()], map[attribute.Key]string{telemetry.Outcome: "scheduled", telemetry.Retry: "1"}},
	} {
		for k, v := range c.want {
			if got := attrString(c.s, k); got != v {
				t.Errorf("span %q: %s = %q, want %q", c.s.Name, k, got, v)
			}
		}
	}

	// No span holds a secret: not in names, attributes, events or statuses.
	for _, s := range spans {
		var b strings.Builder
		b.WriteString(s.Name + " " + s.Status.Description)
		for _, kv := range s.Attributes {
			b.WriteString(" " + string(kv.Key) + "=" + kv.Value.Emit())
		}
		for _, ev := range s.Events {
			b.WriteString(" " + ev.Name)
			for _, kv := range ev.Attributes {
				b.WriteString(" " + kv.Value.Emit())
			}
		}
		for _, sec := range secrets {
			if strings.Contains(b.String(), sec) {
				t.Errorf("span %q holds a secret: %s", s.Name, b.String())
			}
		}
	}

	// Logs: every line about the delivery carries the trace id; none holds
	// a secret.
	lines := 0
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	for sc.Scan() {
		line := sc.Text()
		for _, sec := range secrets {
			if strings.Contains(line, sec) {
				t.Errorf("a log line holds a secret: %s", line)
			}
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("a log line is not JSON: %q", line)
		}
		if rec["delivery_id"] != d.Id {
			continue
		}
		lines++
		if rec[telemetry.LogTraceID] != traceID.String() || rec[telemetry.LogSpanID] == nil {
			t.Errorf("log line about the delivery without its trace id %s: %s", traceID, line)
		}
	}
	if lines < 3 { // failed, retry scheduled, delivered
		t.Errorf("%d log lines name the delivery, want at least 3:\n%s", lines, logs.String())
	}
}

// resourceString is a resource attribute of the span's provider.
func resourceString(s tracetest.SpanStub, key attribute.Key) string {
	if s.Resource == nil {
		return ""
	}
	v, _ := s.Resource.Set().Value(key)
	return v.Emit()
}

func names(spans []tracetest.SpanStub) string {
	var b strings.Builder
	for _, s := range spans {
		fmt.Fprintf(&b, "  %s %s parent=%s\n", s.SpanContext.SpanID(), s.Name, s.Parent.SpanID())
	}
	return b.String()
}

// scrape reads /metrics into samples keyed by name{label="v",…} with the
// labels sorted as the exposition prints them.
func scrape(t *testing.T, h *harness) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + h.addrs.HTTP.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	b, _ := io.ReadAll(resp.Body)
	out := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("/metrics line %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

// sample finds the value of name whose labels include every label given
// (k=v pairs); ok is false when none matches.
func sample(m map[string]float64, name string, labels ...string) (float64, bool) {
	sum, found := 0.0, false
next:
	for k, v := range m {
		n, rest, _ := strings.Cut(k, "{")
		if n != name {
			continue
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if !strings.Contains(rest, labels[i]+`="`+labels[i+1]+`"`) {
				continue next
			}
		}
		sum += v
		found = true
	}
	return sum, found
}

func TestMetricsCountPublishedEventsDeliveriesAttemptsAndRetries(t *testing.T) {
	t.Parallel()
	h := start(t, "", func(c *Config) { c.RetrySchedule = "20ms,20ms" })
	ok := newReceiver(t)
	down := newReceiver(t)
	down.answer = func(int, *http.Request) (int, string) { return 503, "down" }
	postTo(t, h, ok.URL)
	postTo(t, h, down.URL)
	publishClearing(t, h)
	publishClearing(t, h)
	eventually(t, 20*time.Second, "four finished deliveries", func() bool {
		l, err := h.deliveries.ListDeliveries(context.Background(), &postbackv1.ListDeliveriesRequest{AccountId: "brand-1"})
		if err != nil || len(l.Deliveries) != 4 {
			return false
		}
		for _, d := range l.Deliveries {
			if d.Status != postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED && d.Status != postbackv1.DeliveryStatus_DELIVERY_STATUS_DEAD {
				return false
			}
		}
		return true
	})
	want := []struct {
		name   string
		labels []string
		value  float64
	}{
		{"postback_events_published_total", []string{"event_type", "action_clearing"}, 2},
		{"postback_deliveries_total", []string{"outcome", "succeeded"}, 2},
		{"postback_deliveries_total", []string{"outcome", "dead"}, 2},
		{"postback_deliveries_dead_total", nil, 2},
		{"postback_attempts_total", []string{"status_class", "2xx"}, 2},
		{"postback_attempts_total", []string{"status_class", "5xx"}, 6}, // 2 deliveries x (first + 2 retries)
		{"postback_retries_scheduled_total", []string{"retry", "1"}, 2},
		{"postback_retries_scheduled_total", []string{"retry", "2"}, 2},
		{"postback_attempt_duration_seconds_count", []string{"status_class", "5xx"}, 6},
		{"postback_attempt_duration_seconds_count", nil, 8},
		{"postback_first_attempt_latency_seconds_count", nil, 4},
	}
	var m map[string]float64
	check := func() []string {
		var bad []string
		for _, w := range want {
			got, _ := sample(m, w.name, w.labels...)
			if got != w.value {
				bad = append(bad, fmt.Sprintf("%s%v = %v, want %v", w.name, w.labels, got, w.value))
			}
		}
		return bad
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		m = scrape(t, h)
		bad := check()
		if len(bad) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics:\n%s", strings.Join(bad, "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if v, _ := sample(m, "postback_deliveries_total", "outcome", "failed"); v != 0 {
		t.Errorf("a failed outcome was counted") // the series is there, at 0
	}
	// Queue lag of every consumer, and the gRPC server's own metrics.
	consumers := []string{"renderer", "sender-retries", "retry"}
	for p := range 16 {
		consumers = append(consumers, fmt.Sprintf("sender-p%d", p))
	}
	for _, c := range consumers {
		if _, ok := sample(m, "postback_consumer_pending", "consumer", c); !ok {
			t.Errorf("no postback_consumer_pending for consumer %s", c)
		}
		if _, ok := sample(m, "postback_consumer_ack_pending", "consumer", c); !ok {
			t.Errorf("no postback_consumer_ack_pending for consumer %s", c)
		}
	}
	if _, ok := sample(m, "postback_limiter_wait_seconds_count"); ok {
		t.Errorf("limiter waits recorded for endpoints without limits")
	}
	var rpc bool
	for k := range m {
		rpc = rpc || strings.HasPrefix(k, "rpc_server_")
	}
	if !rpc {
		t.Errorf("no rpc.server metrics")
	}
	// Health beside it.
	for _, p := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + h.addrs.HTTP.String() + p)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %v %v", p, resp.Status, err)
		}
		resp.Body.Close()
	}
}

// A fresh standalone exports, at 0 and before any delivery, every counter
// series the alert rules use (deploy/prometheus/postback-alerts.yaml): a
// series that first appears at 1 hides its first increment from
// increase(), so the first dead delivery after a restart would not alert.
func TestAFreshStandaloneExportsTheAlertedCountersAtZero(t *testing.T) {
	t.Parallel()
	h := start(t, "", nil)
	m := scrape(t, h)
	want := []struct {
		name   string
		labels []string
	}{
		{"postback_deliveries_dead_total", nil},
		{"postback_limiter_errors_total", nil},
		{"postback_deliveries_total", []string{"outcome", "dead"}},
		{"postback_deliveries_total", []string{"outcome", "failed"}},
		{"postback_deliveries_total", []string{"outcome", "succeeded"}},
		{"postback_deliveries_total", []string{"outcome", "cancelled"}},
		{"postback_history_failures_total", nil},
		{"postback_history_stored_total", nil},
	}
	for _, c := range []string{"2xx", "3xx", "4xx", "5xx", "error"} {
		want = append(want, struct {
			name   string
			labels []string
		}{"postback_attempts_total", []string{"status_class", c}})
	}
	for _, et := range []string{"action_lifecycle", "action_inquiry", "action_clearing", "tracking_value_request", "job_completed", "publisher_application"} {
		want = append(want, struct {
			name   string
			labels []string
		}{"postback_events_published_total", []string{"event_type", et}})
	}
	for _, c := range []string{"renderer", "sender", "sender-retries", "retry", "history"} {
		want = append(want, struct {
			name   string
			labels []string
		}{"postback_dead_letters_total", []string{"consumer", c}})
	}
	// Each service makes its instruments as it starts, which may be just
	// after the process says it is ready: look again for a few seconds.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var bad []string
		for _, w := range want {
			if v, ok := sample(m, w.name, w.labels...); !ok || v != 0 {
				bad = append(bad, fmt.Sprintf("%s%v: present %v, value %v; want present at 0", w.name, w.labels, ok, v))
			}
		}
		if len(bad) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("a fresh standalone's /metrics:\n%s", strings.Join(bad, "\n"))
		}
		time.Sleep(100 * time.Millisecond)
		m = scrape(t, h)
	}
}

// Concurrent unary Publishes of one account share event groups (the
// gateway's unary.go); each still has its own trace, through the renderer
// to its postback's request.
func TestConcurrentPublishesSharingAGroupEachKeepTheirOwnTrace(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	h := start(t, "", edits(func(c *Config) { c.SpanExporter = exp }))
	rc := newReceiver(t)
	ctx := context.Background()
	if _, err := h.endpoints.CreateEndpoint(ctx, &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{
		AccountId: "brand-1", EventType: "action_clearing", Url: rc.URL + "/hook?c={CampaignId}", Method: postbackv1.HttpMethod_HTTP_METHOD_POST,
	}}); err != nil {
		t.Fatal(err)
	}
	// Rounds of 40 calls at once, until one of them shares a group (the
	// first call of a subject goes alone; those during its publish wait).
	const perRound = 40
	var published []string
	grouped := func() bool {
		for _, s := range exp.GetSpans() {
			if v, ok := attr(s, telemetry.Events); ok && v.AsInt64() > 1 {
				return true
			}
		}
		return false
	}
	for round := 0; round < 5 && !grouped(); round++ {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for range perRound {
			wg.Go(func() {
				res, err := h.events.Publish(ctx, &postbackv1.PublishRequest{AccountId: "brand-1", EventType: "action_clearing", Data: sampleData(t, "action_clearing")})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				published = append(published, res.EventId)
				mu.Unlock()
			})
		}
		wg.Wait()
		eventually(t, 20*time.Second, "every postback of the round", func() bool { return len(rc.requests()) == len(published) })
	}
	if !grouped() {
		t.Fatalf("%d concurrent Publishes in rounds of %d: no event group formed", len(published), perRound)
	}
	// Every call's trace: its server span, and a POST under the chain of
	// a lone event's.
	want := firstSendChain
	// A POST span ends before the spans above it (the sender's process
	// span ends once the outcome is recorded and the job acked): wait
	// until every POST's chain is exported, then judge that snapshot.
	var spans tracetest.SpanStubs
	var byID map[trace.SpanID]tracetest.SpanStub
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		spans = exp.GetSpans()
		byID = map[trace.SpanID]tracetest.SpanStub{}
		for _, s := range spans {
			byID[s.SpanContext.SpanID()] = s
		}
		whole := 0
		for _, s := range spans {
			if s.Name == "POST" && len(chain(byID, s)) == len(want) {
				whole++
			}
		}
		if whole == len(published) || time.Now().After(deadline) {
			break
		}
	}
	servers := map[trace.TraceID]bool{}
	for _, s := range spans {
		if s.Name == "postback.v1.EventService/Publish" && s.SpanKind == trace.SpanKindServer {
			servers[s.SpanContext.TraceID()] = true
		}
	}
	reached := map[trace.TraceID]bool{}
	for _, s := range spans {
		if s.Name != "POST" {
			continue
		}
		if got := chain(byID, s); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("a postback's chain:\n got %q\nwant %q", got, want)
			continue
		}
		if reached[s.SpanContext.TraceID()] {
			t.Errorf("two postbacks in trace %s; want one per call", s.SpanContext.TraceID())
		}
		reached[s.SpanContext.TraceID()] = true
	}
	if len(servers) != len(published) || len(reached) != len(published) {
		t.Errorf("%d calls: %d traces with a Publish server span, %d reaching a postback; want every call's", len(published), len(servers), len(reached))
	}
	for id := range servers {
		if !reached[id] {
			t.Errorf("the trace of call %s ends before its postback", id)
		}
	}
}
