package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// The counter series alerts and dashboards use are on /metrics at 0 before
// anything happened: a series that first appears at 1 hides that first
// increment from increase().
func TestCountersAreExportedAtZeroFromStartUp(t *testing.T) {
	tel, err := Setup(context.Background(), Options{Getenv: env()})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	NewMetrics(tel.MeterProvider).ZeroEventTypes("action_clearing")
	rec := httptest.NewRecorder()
	tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		`postback_deliveries_dead_total 0`,
		`postback_deliveries_total{outcome="dead"} 0`,
		`postback_deliveries_total{outcome="failed"} 0`,
		`postback_deliveries_total{outcome="succeeded"} 0`,
		`postback_deliveries_total{outcome="cancelled"} 0`,
		`postback_attempts_total{status_class="2xx"} 0`,
		`postback_attempts_total{status_class="5xx"} 0`,
		`postback_attempts_total{status_class="error"} 0`,
		`postback_events_published_total{event_type="action_clearing"} 0`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics has no %q", want)
		}
	}
}

// Each ForService provider names its service and shares the exporter, the
// process's service.instance.id and the meter provider.
func TestForServiceGivesEachServiceItsNameAndOneInstanceID(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tel, err := Setup(context.Background(), Options{ServiceName: "postback-standalone", SpanExporter: exp, Getenv: env()})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	for _, name := range []string{"postback-gateway", "postback-sender"} {
		s, err := tel.ForService(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		if again, _ := tel.ForService(context.Background(), name); again != s {
			t.Errorf("ForService(%q) twice made two providers", name)
		}
		if s.MeterProvider != tel.MeterProvider {
			t.Errorf("ForService(%q) has its own meter provider", name)
		}
		_, span := Tracer(s.TracerProvider).Start(context.Background(), "work of "+name)
		span.End()
	}
	_, span := Tracer(tel.TracerProvider).Start(context.Background(), "work of the process")
	span.End()
	got := map[string]string{}
	for _, s := range exp.GetSpans() {
		var name, instance string
		for _, kv := range s.Resource.Attributes() {
			switch kv.Key {
			case semconv.ServiceNameKey:
				name = kv.Value.AsString()
			case semconv.ServiceInstanceIDKey:
				instance = kv.Value.AsString()
			}
		}
		got[s.Name] = name
		if instance != InstanceID {
			t.Errorf("span %q: service.instance.id %q, want the process's %q", s.Name, instance, InstanceID)
		}
	}
	want := map[string]string{"work of postback-gateway": "postback-gateway", "work of postback-sender": "postback-sender",
		"work of the process": "postback-standalone"}
	for span, name := range want {
		if got[span] != name {
			t.Errorf("span %q: service.name %q, want %q (all: %v)", span, got[span], name, got)
		}
	}
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(InstanceID) {
		t.Errorf("InstanceID %q is not a version 4 UUID", InstanceID)
	}

	// Given providers are the caller's: ForService leaves them alone.
	custom, err := Setup(context.Background(), Options{TracerProvider: tel.TracerProvider, Getenv: env()})
	if err != nil {
		t.Fatal(err)
	}
	defer custom.Shutdown(context.Background())
	if s, _ := custom.ForService(context.Background(), "postback-sender"); s != custom {
		t.Error("ForService on a given tracer provider made another")
	}
}

// What the SDK reports (here as the periodic reader reports an exporter's
// failure) is one JSON line through slog, not plain text on stderr.
func TestOpenTelemetryErrorsAreLoggedAsJSON(t *testing.T) {
	var buf bytes.Buffer
	LogErrors(slog.New(slog.NewJSONHandler(&buf, nil)))
	defer LogErrors(slog.New(slog.DiscardHandler))
	otel.Handle(errors.New("failed to upload metrics: rpc error: code = Unimplemented desc = unknown service"))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("logged %d lines, want 1:\n%s", len(lines), buf.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatalf("not a JSON line: %q", lines[0])
	}
	if rec["level"] != "ERROR" || rec["msg"] != "telemetry error" || rec["component"] != "opentelemetry" ||
		!strings.Contains(rec["error"].(string), "Unimplemented") {
		t.Errorf("logged %v", rec)
	}
}
