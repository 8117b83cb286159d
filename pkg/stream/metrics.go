package stream

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Queue lag gauges: the backlog of each durable consumer, read from
// JetStream's consumer info.
const (
	// MetricConsumerPending: messages in the stream not yet delivered to the
	// consumer (waiting work).
	MetricConsumerPending = "postback.consumer.pending"
	// MetricConsumerAckPending: messages delivered and not yet acked (work in
	// hand, including requests waiting on slow endpoints).
	MetricConsumerAckPending = "postback.consumer.ack_pending"
	// MetricConsumerRedelivered: messages delivered more than once and not
	// yet acked (nak'ed or ack wait expired).
	MetricConsumerRedelivered = "postback.consumer.redelivered"
)

// DefaultLagInterval is how often WatchConsumers reads consumer info.
const DefaultLagInterval = 10 * time.Second

// lag is one consumer's cached backlog.
type lag struct {
	c                                jetstream.Consumer
	attrs                            metric.MeasurementOption
	mu                               sync.Mutex
	ok                               bool
	pending, ackPending, redelivered int64
}

// WatchConsumers reports the backlog of consumers as observable gauges
// (labels stream and consumer) on mp (nil: the global provider). A goroutine
// reads each consumer's info every interval (DefaultLagInterval when <= 0)
// until ctx ends; the gauges report the last reading, so scrapes and
// exports never call the server, however often they come. A consumer whose
// info cannot be read is left out until it can.
func WatchConsumers(ctx context.Context, mp metric.MeterProvider, interval time.Duration, consumers ...jetstream.Consumer) error {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	if interval <= 0 {
		interval = DefaultLagInterval
	}
	m := mp.Meter(scope)
	pending, err := m.Int64ObservableGauge(MetricConsumerPending, metric.WithUnit("{message}"),
		metric.WithDescription("Messages waiting for a durable consumer (not yet delivered): queue lag."))
	if err != nil {
		return err
	}
	ackPending, err := m.Int64ObservableGauge(MetricConsumerAckPending, metric.WithUnit("{message}"),
		metric.WithDescription("Messages delivered to a durable consumer and not yet acknowledged."))
	if err != nil {
		return err
	}
	redelivered, err := m.Int64ObservableGauge(MetricConsumerRedelivered, metric.WithUnit("{message}"),
		metric.WithDescription("Messages delivered more than once and not yet acknowledged."))
	if err != nil {
		return err
	}
	lags := make([]*lag, 0, len(consumers))
	for _, c := range consumers {
		info := c.CachedInfo()
		lags = append(lags, &lag{c: c, attrs: metric.WithAttributeSet(attribute.NewSet(
			attribute.String("stream", info.Stream), attribute.String("consumer", info.Name)))})
	}
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for _, l := range lags {
			l.mu.Lock()
			if l.ok {
				o.ObserveInt64(pending, l.pending, l.attrs)
				o.ObserveInt64(ackPending, l.ackPending, l.attrs)
				o.ObserveInt64(redelivered, l.redelivered, l.attrs)
			}
			l.mu.Unlock()
		}
		return nil
	}, pending, ackPending, redelivered)
	if err != nil {
		return err
	}
	read := func() {
		for _, l := range lags {
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			info, err := l.c.Info(rctx)
			cancel()
			l.mu.Lock()
			l.ok = err == nil
			if err == nil {
				l.pending, l.ackPending, l.redelivered = int64(info.NumPending), int64(info.NumAckPending), int64(info.NumRedelivered)
			}
			l.mu.Unlock()
		}
	}
	go func() {
		defer func() { _ = reg.Unregister() }()
		read()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				read()
			}
		}
	}()
	return nil
}
