package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestExporterChoiceFollowsTheStandardVariablesAndDefaultsToNone(t *testing.T) {
	cases := []struct {
		name   string
		getenv func(string) string
		want   string
	}{
		{"nothing set: no exporter", env(), "none"},
		{"console", env("OTEL_TRACES_EXPORTER", "console"), "console"},
		{"the first of a list", env("OTEL_TRACES_EXPORTER", " otlp , console"), "otlp"},
		{"an OTLP endpoint alone means otlp", env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"), "otlp"},
		{"a signal endpoint alone means otlp", env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:4318/v1/traces"), "otlp"},
		{"none wins over an endpoint", env("OTEL_TRACES_EXPORTER", "none", "OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"), "none"},
	}
	for _, c := range cases {
		if got := exporterChoice(c.getenv, "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", false); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
	if got := exporterChoice(env("OTEL_TRACES_EXPORTER", "console"), "OTEL_TRACES_EXPORTER", "", true); got != "none" {
		t.Errorf("OTEL_SDK_DISABLED: %q, want none", got)
	}
}

func TestSetupWithNothingSetExportsNothingButGivesTraceIDsAndMetrics(t *testing.T) {
	tel, err := Setup(context.Background(), Options{ServiceName: "postback-test", Getenv: env()})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	if tel.Traces != "none" || tel.Metrics != "none" {
		t.Fatalf("traces %q, metrics %q; want none, none", tel.Traces, tel.Metrics)
	}
	_, span := Tracer(tel.TracerProvider).Start(context.Background(), "x")
	if !span.SpanContext().IsValid() || span.SpanContext().IsSampled() || span.IsRecording() {
		t.Errorf("span context %+v recording=%v: want a valid, unsampled, non-recording span", span.SpanContext(), span.IsRecording())
	}
	span.End()
	NewMetrics(tel.MeterProvider).EventPublished(context.Background(), "action_clearing")
	rec := httptest.NewRecorder()
	tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	if !strings.Contains(body, `postback_events_published_total{event_type="action_clearing"} 1`) || !strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics:\n%s", body)
	}
}

func TestSetupRefusesAnUnknownExporter(t *testing.T) {
	t.Setenv("OTEL_TRACES_EXPORTER", "carrier-pigeon")
	if _, err := Setup(context.Background(), Options{}); err == nil || !strings.Contains(err.Error(), "OTEL_TRACES_EXPORTER") {
		t.Fatalf("err = %v", err)
	}
}

func TestSetupWithTheConsoleExporterRecordsSpans(t *testing.T) {
	t.Setenv("OTEL_TRACES_EXPORTER", "console")
	tel, err := Setup(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if tel.Traces != "console" {
		t.Fatalf("traces = %q", tel.Traces)
	}
	// Not ended, so not printed: the console exporter writes to the
	// process's stdout (`make run` shows it).
	_, span := Tracer(tel.TracerProvider).Start(context.Background(), "x")
	if !span.IsRecording() || !span.SpanContext().IsSampled() {
		t.Fatal("console exporter: span not recorded")
	}
	if err := tel.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestLogLinesInsideASpanCarryTraceAndSpanIDs(t *testing.T) {
	var buf bytes.Buffer
	log := Logger(slog.New(slog.NewJSONHandler(&buf, nil))).With("service", "sender")
	if Logger(log) != log || LogHandler(log.Handler()) != log.Handler() {
		t.Error("wrapping twice wraps again")
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(tracetest.NewInMemoryExporter()))
	ctx, span := tp.Tracer("t").Start(context.Background(), "x")
	defer span.End()
	log.InfoContext(ctx, "inside", "delivery_id", "dlv_1")
	log.Info("outside")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	var in, out map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &in); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &out); err != nil {
		t.Fatal(err)
	}
	sc := span.SpanContext()
	if in[LogTraceID] != sc.TraceID().String() || in[LogSpanID] != sc.SpanID().String() || in["service"] != "sender" {
		t.Errorf("line inside the span: %v", in)
	}
	if _, ok := out[LogTraceID]; ok {
		t.Errorf("line outside any span has a trace id: %v", out)
	}
}

func TestStatusClasses(t *testing.T) {
	for code, want := range map[int]string{0: "error", 200: "2xx", 204: "2xx", 302: "3xx", 404: "4xx", 500: "5xx", 599: "5xx", 600: "error", 101: "error"} {
		if got := StatusClass(code); got != want {
			t.Errorf("StatusClass(%d) = %q, want %q", code, got, want)
		}
	}
}

func TestRecordingMetricsDoesNotAllocate(t *testing.T) {
	tel, err := Setup(context.Background(), Options{Getenv: env()})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	m := NewMetrics(tel.MeterProvider)
	ctx := context.Background()
	m.EventPublished(ctx, "action_clearing") // builds the label set once
	m.RetryScheduled(ctx, 3)
	allocs := testing.AllocsPerRun(100, func() {
		m.EventPublished(ctx, "action_clearing")
		m.DeliveryFinished(ctx, OutcomeSucceeded)
		m.Attempt(ctx, 503, 1e6)
		m.RetryScheduled(ctx, 3)
		m.FirstAttempt(ctx, 1e6)
		m.LimiterWait(ctx, 1e6)
	})
	if allocs > 0 {
		t.Errorf("recording allocates %.1f times", allocs)
	}
	var nilMetrics *Metrics
	nilMetrics.Attempt(ctx, 200, 1) // a nil *Metrics records nothing
}

// With attributes are added when a line is written, not when the logger is
// made; the line must read as the wrapped handler alone would write it.
func TestLogLinesReadAsTheWrappedHandlerWritesThem(t *testing.T) {
	cases := []struct {
		name string
		log  func(l *slog.Logger)
	}{
		{"no attributes", func(l *slog.Logger) { l.Info("delivered") }},
		{"with attributes first", func(l *slog.Logger) {
			l.With("delivery_id", "dlv_1", "attempt", 2).Warn("retried", "status_code", 503)
		}},
		{"with twice keeps both", func(l *slog.Logger) {
			base := l.With("service", "sender")
			base.With("delivery_id", "dlv_1").Info("a")
			base.With("delivery_id", "dlv_2").Info("b") // the first With's attrs are not shared
		}},
		{"attributes before a group stay outside it", func(l *slog.Logger) {
			l.With("delivery_id", "dlv_1").WithGroup("http").With("status", 200).Info("sent", "ms", 3)
		}},
		{"a disabled level writes nothing", func(l *slog.Logger) { l.With("delivery_id", "dlv_1").Debug("quiet") }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			noTime := &slog.HandlerOptions{ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
				if a.Key == slog.TimeKey && len(groups) == 0 {
					return slog.Attr{}
				}
				return a
			}}
			var want, got bytes.Buffer
			c.log(slog.New(slog.NewJSONHandler(&want, noTime)))
			c.log(Logger(slog.New(slog.NewJSONHandler(&got, noTime))))
			if got.String() != want.String() {
				t.Errorf("wrapped handler wrote\n%s\nthe JSON handler alone\n%s", got.String(), want.String())
			}
		})
	}
}
