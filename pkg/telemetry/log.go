package telemetry

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/trace"
)

// Log attribute names of the trace context, as OpenTelemetry's log data model
// and most log pipelines (Loki derived fields, Elastic) name them.
const (
	LogTraceID = "trace_id"
	LogSpanID  = "span_id"
)

// LogHandler wraps h so that every record logged with a context that carries
// a span (log.InfoContext(ctx, …)) gets trace_id and span_id. A line logged
// without a context, or outside any span, is left as it is. Wrapping twice
// is a no-op.
func LogHandler(h slog.Handler) slog.Handler {
	if _, ok := h.(*traceHandler); ok {
		return h
	}
	return &traceHandler{Handler: h}
}

// Logger is l with its handler wrapped by LogHandler (nil: slog.Default()).
func Logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		l = slog.Default()
	}
	if _, ok := l.Handler().(*traceHandler); ok {
		return l
	}
	return slog.New(&traceHandler{Handler: l.Handler()})
}

// traceHandler adds the span's ids to each record. Attributes given with
// Logger.With are kept aside and added when a record is handled rather than
// formatted at once (what the JSON handler's WithAttrs does): the services
// make a logger with the delivery's ids for every message they handle and
// log through it only when something goes wrong (or at info level, which
// production runs may turn off), so formatting them up front cost every
// message for nothing.
type traceHandler struct {
	slog.Handler
	attrs []slog.Attr // from With, not yet given to Handler
}

func (h *traceHandler) Handle(ctx context.Context, r slog.Record) error {
	sc := trace.SpanContextFromContext(ctx)
	if len(h.attrs) > 0 {
		// The With attributes come first, as the wrapped handler would
		// have written them.
		nr := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
		nr.AddAttrs(h.attrs...)
		r.Attrs(func(a slog.Attr) bool { nr.AddAttrs(a); return true })
		r = nr
	}
	if sc.IsValid() {
		r.AddAttrs(slog.String(LogTraceID, sc.TraceID().String()), slog.String(LogSpanID, sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h *traceHandler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return h
	}
	return &traceHandler{Handler: h.Handler, attrs: append(h.attrs[:len(h.attrs):len(h.attrs)], as...)}
}

// WithGroup gives the pending attributes to the wrapped handler first: they
// belong outside the group.
func (h *traceHandler) WithGroup(name string) slog.Handler {
	inner := h.Handler
	if len(h.attrs) > 0 {
		inner = inner.WithAttrs(h.attrs)
	}
	return &traceHandler{Handler: inner.WithGroup(name)}
}
