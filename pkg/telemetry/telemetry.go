// Package telemetry sets up OpenTelemetry for a Postback process from the
// standard OTEL_* environment variables, and holds what every service shares
// about it: the postback span attributes (attrs.go), the metric instruments
// (metrics.go), the slog handler that stamps trace ids on log lines (log.go)
// and the gRPC server instrumentation (grpc.go).
//
// Export is chosen by the environment (see Setup); with nothing set there is
// no exporter at all, so tests and `make run` print nothing extra. Spans are
// then still started, unsampled: they cost an id and a small allocation, and
// give every log line of a postback a trace_id that joins the services' logs.
// Metrics are always kept, and served as Prometheus text by MetricsHandler
// (/metrics on POSTBACK_HTTP_ADDR), whatever OTEL_METRICS_EXPORTER says.
package telemetry

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel"
	promexporter "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// Scope is the instrumentation scope of every tracer and meter Postback
// creates.
const Scope = "github.com/postback-dev/postback"

// Options configure Setup.
type Options struct {
	// ServiceName is the default service.name (OTEL_SERVICE_NAME and
	// OTEL_RESOURCE_ATTRIBUTES win), e.g. "postback-sender".
	ServiceName string
	// Version is service.version.
	Version string
	// TracerProvider, when set, is used as is and OTEL_TRACES_* are not read
	// (tests pass one with an in-memory exporter). Shutdown does not shut it
	// down: it belongs to the caller.
	TracerProvider trace.TracerProvider
	// MeterProvider, when set, is used as is: OTEL_METRICS_* are not read and
	// MetricsHandler serves nothing but the process's Go runtime metrics.
	MeterProvider metric.MeterProvider
	// SpanExporter, when set (and TracerProvider is not), receives every
	// span as it ends, synchronously, and OTEL_TRACES_EXPORTER is not read:
	// tests pass an in-memory exporter and still get the providers Setup
	// builds (resources, ForService).
	SpanExporter sdktrace.SpanExporter
	// Getenv reads the environment (nil: os.Getenv). The OTLP exporters
	// themselves always read the process environment.
	Getenv func(string) string
}

// Telemetry is a process's tracer and meter providers, the Prometheus
// registry behind /metrics, and what must be flushed at exit.
type Telemetry struct {
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	// Traces and Metrics name the exporters in use ("none", "otlp",
	// "console", "custom"), for the start-up log line.
	Traces, Metrics string

	registry *prometheus.Registry
	shutdown []func(context.Context) error

	// What ForService needs to build a tracer provider of another
	// service.name that exports through the same span processor (nil
	// processor: the providers were given, ForService returns t).
	options   Options
	processor sdktrace.SpanProcessor
	never     bool // no exporter: spans are never sampled
	mu        sync.Mutex
	services  map[string]*Telemetry
}

// Propagator is the W3C trace-context + baggage propagator: what crosses
// gRPC calls and NATS messages.
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// Disabled returns telemetry that records nothing (no-op providers) and an
// empty /metrics: what a library falls back to when given none.
func Disabled() *Telemetry {
	return &Telemetry{
		TracerProvider: tracenoop.NewTracerProvider(),
		MeterProvider:  metricnoop.NewMeterProvider(),
		Traces:         "none", Metrics: "none",
		registry: prometheus.NewRegistry(),
	}
}

// Setup builds the process's telemetry from the environment:
//
//   - Traces: OTEL_TRACES_EXPORTER = otlp | console | none. Unset, it is otlp
//     when OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is
//     set, else none. OTLP speaks gRPC or HTTP by OTEL_EXPORTER_OTLP_PROTOCOL
//     (grpc | http/protobuf, the default) and reads the other
//     OTEL_EXPORTER_OTLP_* variables. Sampling follows OTEL_TRACES_SAMPLER and
//     OTEL_TRACES_SAMPLER_ARG (default parentbased_always_on); spans go
//     through a batch processor (OTEL_BSP_*), never exported inline. With no
//     exporter, spans are never sampled (ids only, for logs).
//   - Metrics: OTEL_METRICS_EXPORTER = otlp | console | none | prometheus.
//     Unset, it is otlp when an OTLP endpoint is set, else none. Whatever the
//     choice, /metrics serves every instrument ("prometheus" adds nothing:
//     /metrics is that exporter).
//   - OTEL_SDK_DISABLED=true: no export at all; /metrics is still served.
//   - Resource: service.name, service.version, service.instance.id
//     (InstanceID), OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES.
//
// It also installs the W3C propagator as the global one. It does not install
// the providers as globals: a main calls Install for that.
func Setup(ctx context.Context, o Options) (*Telemetry, error) {
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	otel.SetTextMapPropagator(Propagator())
	res, err := newResource(ctx, o)
	if err != nil {
		return nil, err
	}
	t := &Telemetry{registry: prometheus.NewRegistry()}
	t.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	ok := false
	defer func() {
		if !ok {
			_ = t.Shutdown(context.WithoutCancel(ctx))
		}
	}()

	disabled, _ := strconv.ParseBool(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")))
	t.options = o
	if o.TracerProvider != nil {
		t.TracerProvider, t.Traces = o.TracerProvider, "custom"
	} else if o.SpanExporter != nil {
		t.Traces = "custom"
		t.processor = sdktrace.NewSimpleSpanProcessor(o.SpanExporter)
		tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithSpanProcessor(t.processor))
		t.TracerProvider = tp
		t.shutdown = append(t.shutdown, tp.Shutdown)
	} else {
		t.Traces = exporterChoice(getenv, "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", disabled)
		opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
		if t.Traces == "none" {
			t.never = true
			opts = append(opts, sdktrace.WithSampler(sdktrace.NeverSample()))
		} else {
			exp, err := autoexport.NewSpanExporter(ctx, autoexport.WithFallbackSpanExporter(
				func(ctx context.Context) (sdktrace.SpanExporter, error) {
					return autoexport.NewSpanExporter(ctx) // unset: otlp
				}))
			if err != nil {
				return nil, fmt.Errorf("OTEL_TRACES_EXPORTER: %w", err)
			}
			if autoexport.IsNoneSpanExporter(exp) {
				t.Traces = "none"
				t.never = true
				opts = append(opts, sdktrace.WithSampler(sdktrace.NeverSample()))
			} else {
				t.processor = sdktrace.NewBatchSpanProcessor(exp)
				opts = append(opts, sdktrace.WithSpanProcessor(t.processor))
			}
		}
		tp := sdktrace.NewTracerProvider(opts...)
		t.TracerProvider = tp
		t.shutdown = append(t.shutdown, tp.Shutdown)
	}

	if o.MeterProvider != nil {
		t.MeterProvider, t.Metrics = o.MeterProvider, "custom"
	} else {
		prom, err := promexporter.New(promexporter.WithRegisterer(t.registry), promexporter.WithoutScopeInfo())
		if err != nil {
			return nil, fmt.Errorf("prometheus exporter: %w", err)
		}
		opts := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithReader(prom)}
		t.Metrics = exporterChoice(getenv, "OTEL_METRICS_EXPORTER", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", disabled)
		switch t.Metrics {
		case "none", "prometheus":
		default:
			r, err := autoexport.NewMetricReader(ctx, autoexport.WithFallbackMetricReader(
				func(ctx context.Context) (sdkmetric.Reader, error) {
					return autoexport.NewMetricReader(ctx) // unset: otlp
				}))
			if err != nil {
				return nil, fmt.Errorf("OTEL_METRICS_EXPORTER: %w", err)
			}
			if autoexport.IsNoneMetricReader(r) {
				t.Metrics = "none"
			} else {
				opts = append(opts, sdkmetric.WithReader(r))
			}
		}
		mp := sdkmetric.NewMeterProvider(opts...)
		t.MeterProvider = mp
		t.shutdown = append(t.shutdown, mp.Shutdown)
	}
	ok = true
	return t, nil
}

// exporterChoice is the exporter name for one signal: the variable when set,
// else otlp when an OTLP endpoint is configured, else none.
func exporterChoice(getenv func(string) string, exporterVar, signalEndpointVar string, disabled bool) string {
	if disabled {
		return "none"
	}
	for _, name := range strings.Split(getenv(exporterVar), ",") {
		if name = strings.TrimSpace(name); name != "" {
			return name // the SDK takes the first of a list
		}
	}
	if strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_ENDPOINT")) != "" || strings.TrimSpace(getenv(signalEndpointVar)) != "" {
		return "otlp"
	}
	return "none"
}

func newResource(ctx context.Context, o Options) (*resource.Resource, error) {
	name := o.ServiceName
	if name == "" {
		name = "postback"
	}
	attrs := []resource.Option{resource.WithAttributes(semconv.ServiceName(name), semconv.ServiceInstanceID(InstanceID))}
	if o.Version != "" {
		attrs = append(attrs, resource.WithAttributes(semconv.ServiceVersion(o.Version)))
	}
	// WithFromEnv last: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win.
	attrs = append(attrs, resource.WithTelemetrySDK(), resource.WithHost(), resource.WithFromEnv())
	r, err := resource.New(ctx, attrs...)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	return r, nil
}

// InstanceID is this process's service.instance.id (a random UUID made at
// start-up), on the resource of every tracer and meter provider Setup
// builds: every target of a standalone shares it, and two replicas of a
// service never do. OTEL_RESOURCE_ATTRIBUTES may set another.
var InstanceID = newInstanceID()

func newInstanceID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand does not fail on the platforms Go supports.
		panic(err)
	}
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// ForService is t with a tracer provider whose resource names service (its
// service.name, e.g. "postback-sender"), exporting through the same span
// processor, sampler and exporter as t's: standalone gives each of its
// targets its own, so a trace backend shows the gateway's, renderer's,
// sender's and retry service's spans under their names, as in the
// multi-process shape. OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES still
// win. Everything else (meter provider, /metrics) is t's. When t's tracer
// provider was given in Options, or Setup built none, it returns t.
// Shutting t down flushes every service's spans; the one returned is not
// shut down on its own.
func (t *Telemetry) ForService(ctx context.Context, service string) (*Telemetry, error) {
	if t.processor == nil && !t.never {
		return t, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if s, ok := t.services[service]; ok {
		return s, nil
	}
	o := t.options
	o.ServiceName = service
	res, err := newResource(ctx, o)
	if err != nil {
		return nil, err
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if t.never {
		opts = append(opts, sdktrace.WithSampler(sdktrace.NeverSample()))
	} else {
		opts = append(opts, sdktrace.WithSpanProcessor(sharedProcessor{t.processor}))
	}
	s := &Telemetry{TracerProvider: sdktrace.NewTracerProvider(opts...), MeterProvider: t.MeterProvider,
		Traces: t.Traces, Metrics: t.Metrics, registry: t.registry}
	if t.services == nil {
		t.services = map[string]*Telemetry{}
	}
	t.services[service] = s
	return s, nil
}

// sharedProcessor is the span processor of t's provider lent to another:
// the owner's provider shuts it down (once), the borrower's does not.
type sharedProcessor struct{ sdktrace.SpanProcessor }

func (sharedProcessor) Shutdown(context.Context) error { return nil }

// LogErrors sends what the OpenTelemetry SDK reports (an exporter that
// cannot upload, a collector that refuses a signal: "failed to upload
// metrics: … Unimplemented") to log as JSON lines at error level, message
// "telemetry error", instead of plain text on stderr; and the SDK's own
// diagnostics (otel.SetLogger) to log as well (its info and debug levels
// map below slog's info). The handler is the process's (global): a main
// calls it once.
func LogErrors(log *slog.Logger) {
	if log == nil {
		log = slog.Default()
	}
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Error("telemetry error", "component", "opentelemetry", "error", err.Error())
	}))
	otel.SetLogger(logr.FromSlogHandler(log.With("component", "opentelemetry").Handler()))
}

// Install makes t's providers the global ones (otel.GetTracerProvider and
// friends), for libraries that use them. Only a main calls it: tests run
// many processes' worth of telemetry in one binary.
func (t *Telemetry) Install() {
	otel.SetTracerProvider(t.TracerProvider)
	otel.SetMeterProvider(t.MeterProvider)
	otel.SetTextMapPropagator(Propagator())
}

// MetricsHandler serves the Prometheus text exposition of every instrument
// (and the Go runtime's): mount it on /metrics.
func (t *Telemetry) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(t.registry, promhttp.HandlerOpts{})
}

// Mux is a mux with /metrics mounted, for health.Probes.Handler.
func (t *Telemetry) Mux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", t.MetricsHandler())
	return mux
}

// Shutdown flushes and stops the exporters Setup started (not providers it
// was given).
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	for i := len(t.shutdown) - 1; i >= 0; i-- {
		if err := t.shutdown[i](ctx); err != nil {
			errs = append(errs, err)
		}
	}
	t.shutdown = nil
	return errors.Join(errs...)
}

// Tracer is the Postback tracer of tp (nil: the global provider).
func Tracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return tp.Tracer(Scope)
}

// Meter is the Postback meter of mp (nil: the global provider).
func Meter(mp metric.MeterProvider) metric.Meter {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	return mp.Meter(Scope)
}
