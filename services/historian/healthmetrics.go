package historian

// Endpoint health on /metrics.
//
// Cardinality: a series per endpoint for every endpoint would be millions
// of series (pkg/telemetry has no endpoint label for that reason). So only
// endpoints in a run of failures are exported, labelled endpoint_id, at
// most maxHealthSeries of them (those whose runs began first, the longest);
// a healthy endpoint has no series, and its series go when it recovers.
// postback.endpoints.failing counts every failing endpoint, exported or
// not. The state comes from a watch of the health bucket, so every writer
// replica exports the same series (aggregate with max by (endpoint_id)).
// The windowed counts are read from the history store for the exported
// endpoints every healthCountsEvery.

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/postback-dev/postback/pkg/endpointhealth"
	"github.com/postback-dev/postback/pkg/history"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

const (
	maxHealthSeries   = 1000
	healthCountsEvery = 30 * time.Second
	maxReasonLabel    = 120
)

type healthMetrics struct {
	mu      sync.Mutex
	failing map[string]endpointhealth.State // every endpoint in a run of failures
	counts  map[string][2]*postbackv1.HealthCounts
}

// exported is the failing endpoints exported, longest run first.
func (h *healthMetrics) exported() []string {
	ids := make([]string, 0, len(h.failing))
	for id := range h.failing {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int {
		if c := h.failing[a].FailingSince.Compare(h.failing[b].FailingSince); c != 0 {
			return c
		}
		return compareStrings(a, b)
	})
	return ids[:min(len(ids), maxHealthSeries)]
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func watchHealthMetrics(ctx context.Context, hs *endpointhealth.Store, store history.Store, mp metric.MeterProvider, log *slog.Logger) error {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	h := &healthMetrics{failing: map[string]endpointhealth.State{}, counts: map[string][2]*postbackv1.HealthCounts{}}
	if err := hs.Watch(ctx, func(id string, st endpointhealth.State, deleted bool) {
		h.mu.Lock()
		defer h.mu.Unlock()
		if deleted || st.ConsecutiveFailures == 0 {
			delete(h.failing, id)
			delete(h.counts, id)
			return
		}
		h.failing[id] = st
	}); err != nil {
		return err
	}
	m := mp.Meter("github.com/postback-dev/postback/services/historian")
	unix := func(t time.Time) float64 { return float64(t.UnixMicro()) / 1e6 }
	var insts []metric.Observable
	failing, err := m.Int64ObservableGauge("postback.endpoints.failing",
		metric.WithDescription("endpoints in a run of failed attempts"))
	if err != nil {
		return err
	}
	consecutive, err := m.Int64ObservableGauge("postback.endpoint.consecutive_failures",
		metric.WithDescription("failed attempts in a row of a failing endpoint (endpoint_id; failing endpoints only, at most 1000)"))
	if err != nil {
		return err
	}
	since, err := m.Float64ObservableGauge("postback.endpoint.failing_since", metric.WithUnit("s"),
		metric.WithDescription("Unix time of the first failed attempt of a failing endpoint's run"))
	if err != nil {
		return err
	}
	lastSuccess, err := m.Float64ObservableGauge("postback.endpoint.last_success", metric.WithUnit("s"),
		metric.WithDescription("Unix time of a failing endpoint's last successful attempt (0: none)"))
	if err != nil {
		return err
	}
	lastFailure, err := m.Float64ObservableGauge("postback.endpoint.last_failure", metric.WithUnit("s"),
		metric.WithDescription("Unix time of a failing endpoint's last failed attempt, with its reason"))
	if err != nil {
		return err
	}
	deliveries, err := m.Int64ObservableGauge("postback.endpoint.deliveries",
		metric.WithDescription("a failing endpoint's deliveries created in the window (1h, 24h), by result (succeeded, failed)"))
	if err != nil {
		return err
	}
	insts = append(insts, failing, consecutive, since, lastSuccess, lastFailure, deliveries)
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		h.mu.Lock()
		defer h.mu.Unlock()
		o.ObserveInt64(failing, int64(len(h.failing)))
		for _, id := range h.exported() {
			st := h.failing[id]
			ep := attribute.String("endpoint_id", id)
			o.ObserveInt64(consecutive, int64(st.ConsecutiveFailures), metric.WithAttributes(ep))
			o.ObserveFloat64(since, unix(st.FailingSince), metric.WithAttributes(ep))
			ls := 0.0
			if !st.LastSuccess.IsZero() {
				ls = unix(st.LastSuccess)
			}
			o.ObserveFloat64(lastSuccess, ls, metric.WithAttributes(ep))
			reason := st.LastFailureReason
			if len(reason) > maxReasonLabel {
				reason = reason[:maxReasonLabel]
			}
			o.ObserveFloat64(lastFailure, unix(st.LastFailure), metric.WithAttributes(ep, attribute.String("reason", reason)))
			if c, ok := h.counts[id]; ok {
				for i, window := range []string{"1h", "24h"} {
					w := attribute.String("window", window)
					o.ObserveInt64(deliveries, c[i].Succeeded, metric.WithAttributes(ep, w, attribute.String("result", "succeeded")))
					o.ObserveInt64(deliveries, c[i].Failed, metric.WithAttributes(ep, w, attribute.String("result", "failed")))
				}
			}
		}
		return nil
	}, insts...)
	if err != nil {
		return err
	}
	go h.refreshCounts(ctx, store, log)
	return nil
}

// refreshCounts reads the windowed counts of the exported endpoints from
// the history store, now and every healthCountsEvery.
func (h *healthMetrics) refreshCounts(ctx context.Context, store history.Store, log *slog.Logger) {
	t := time.NewTicker(healthCountsEvery)
	defer t.Stop()
	for {
		h.mu.Lock()
		ids := h.exported()
		h.mu.Unlock()
		for _, id := range ids {
			hour, day, err := endpointhealth.Windows(ctx, store, id, time.Now())
			if err != nil {
				if ctx.Err() == nil {
					log.Warn("endpoint health counts unreadable; trying again later", "error", err)
				}
				break
			}
			h.mu.Lock()
			if _, ok := h.failing[id]; ok {
				h.counts[id] = [2]*postbackv1.HealthCounts{hour, day}
			}
			h.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
