// Package retry turns a failed attempt into its next step on the retry
// schedule (docs/architecture.md, decision 7): a delayed re-delivery through a JetStream
// message schedule, or a DEAD delivery once the last retry has failed.
//
// The state machine of a delivery, as the services move it:
//
//	PENDING --send--> SUCCEEDED
//	        --final failure (bad URL, NXDOMAIN, guard)--> FAILED
//	        --retryable failure--> RETRYING --(retry service)--> schedule
//	                                        \--no retry left--> DEAD
//	RETRYING --schedule fires, send--> (as PENDING, attempt n)
//	any pending state --endpoint disabled or deleted--> CANCELLED
//
// A retry's delay counts from the end of the failed attempt. The schedule is
// stored in JetStream (schedules.<delivery_id>, one pending per delivery),
// never in this process's memory: if the retry service, the sender or the
// NATS server restarts, the retry still fires once, at its time. Publishing
// the schedule and acking the failure are idempotent (Nats-Msg-Id per
// delivery and retry number), so a crash between them re-publishes the same
// schedule, which the server dedupes.
package retry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/postback-dev/postback/pkg/delivery"
	"github.com/postback-dev/postback/pkg/endpoint"
	"github.com/postback-dev/postback/pkg/endpoints"
	"github.com/postback-dev/postback/pkg/inflight"
	"github.com/postback-dev/postback/pkg/schedule"
	"github.com/postback-dev/postback/pkg/stream"
	"github.com/postback-dev/postback/pkg/telemetry"
)

// Config is what the retry service needs.
type Config struct {
	NATS     *nats.Conn // an open connection; when nil, NATSURL is dialled
	NATSURL  string
	Layout   stream.Options
	Schedule schedule.Schedule // nil = the seed's 15 steps
	Logger   *slog.Logger
	Workers  int // default 16
	// TracerProvider and MeterProvider receive the retry service's spans
	// and metrics (nil: the global providers).
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
}

// Run schedules retries until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	log := telemetry.Logger(cfg.Logger)
	if cfg.Schedule == nil {
		cfg.Schedule = schedule.Default()
	}
	js, closeNATS, err := stream.Open(ctx, cfg.NATS, cfg.NATSURL, "postback-retry", cfg.Layout)
	if err != nil {
		return fmt.Errorf("retry: %w", err)
	}
	defer closeNATS()
	eps, err := endpoints.OpenStore(ctx, js)
	if err != nil {
		return err
	}
	dls, err := inflight.OpenDeliveries(ctx, js)
	if err != nil {
		return err
	}
	dls.Grace = cfg.Layout.Grace
	c, err := stream.Consumer(ctx, js, stream.RetryConsumer, stream.AckWait, 4096)
	if err != nil {
		return fmt.Errorf("retry: %w", err)
	}
	if err := stream.WatchConsumers(ctx, cfg.MeterProvider, 0, c); err != nil {
		return fmt.Errorf("retry: %w", err)
	}
	cache, err := endpoints.NewCache(ctx, eps, 0)
	if err != nil {
		return err
	}
	r := &retrier{js: js, endpoints: cache, deliveries: dls, attempts: inflight.NewAttempts(js), schedule: cfg.Schedule, log: log,
		tracer: stream.NewTracer(cfg.TracerProvider), metrics: telemetry.NewMetrics(cfg.MeterProvider)}
	workers := cfg.Workers
	if workers <= 0 {
		workers = 16
	}
	if r.dead, err = stream.NewDeadLetters(js, stream.RetryConsumer, log, cfg.MeterProvider); err != nil {
		return fmt.Errorf("retry: %w", err)
	}
	log.Info("retry consuming", "schedule", cfg.Schedule.String())
	go stream.Keep(ctx, js, stream.DeliveriesStream)
	return stream.Work(ctx, c, workers, r.tracer.Traced(stream.RetryConsumer, r.dead.Guard(r.handle)))
}

type retrier struct {
	js         jetstream.JetStream
	endpoints  *endpoints.Cache
	deliveries *inflight.Deliveries
	attempts   *inflight.Attempts
	schedule   schedule.Schedule
	log        *slog.Logger
	tracer     *stream.Tracer
	metrics    *telemetry.Metrics
	dead       *stream.DeadLetters
}

func (r *retrier) handle(ctx context.Context, m jetstream.Msg) {
	span := trace.SpanFromContext(ctx)
	var f stream.Failure
	err := stream.DecodeFailure(m.Data(), &f)
	if err != nil {
		err = stream.Poison("undecodable failed attempt: %v", err)
	} else {
		err = stream.CheckJob(&f.Job)
	}
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		r.dead.Reject(ctx, m, err, time.Second)
		return
	}
	if span.IsRecording() {
		span.SetAttributes(telemetry.DeliveryID.String(f.Job.DeliveryID), telemetry.EndpointID.String(f.Job.EndpointID),
			telemetry.AccountID.String(f.Job.AccountID), telemetry.EventType.String(f.Job.EventType), telemetry.EventID.String(f.Job.EventID),
			telemetry.Attempt.Int(f.Job.Attempt), telemetry.Requests.Int(f.Job.Sent))
	}
	if err := r.process(ctx, &f); err != nil {
		r.log.WarnContext(ctx, "retry step will be tried again", "delivery_id", f.Job.DeliveryID, "error", err)
		span.SetStatus(codes.Error, err.Error())
		_ = m.NakWithDelay(time.Second)
		return
	}
	_ = m.Ack()
}

// Next is the job of the next retry after failure f, or ok=false when the
// delivery is dead.
func Next(s schedule.Schedule, f *stream.Failure) (job delivery.Job, at time.Time, ok bool) {
	n, delay, ok := s.Next(f.Job.Attempt, f.StatusCode)
	if !ok {
		return delivery.Job{}, time.Time{}, false
	}
	job = f.Job
	job.Attempt = n
	job.Sent = f.Job.Sent + 1
	job.Slot, job.EndpointVersion = time.Time{}, 0
	job.LastStatus, job.LastError = f.StatusCode, f.Error
	job.Scheduled = f.End.Add(delay)
	return job, job.Scheduled, true
}

func (r *retrier) process(ctx context.Context, f *stream.Failure) error {
	log := r.log.With("delivery_id", f.Job.DeliveryID, "endpoint_id", f.Job.EndpointID, "attempt", f.Job.Attempt)
	rec, err := r.deliveries.Get(ctx, f.Job.AccountID, f.Job.EndpointID, f.Job.DeliveryID)
	if errors.Is(err, inflight.ErrNotFound) {
		log.WarnContext(ctx, "dropping a failure whose delivery record is gone (aged out?)")
		r.metrics.Outcome(ctx, telemetry.OutcomeDropped, "the delivery record is gone")
		return nil
	}
	if err != nil {
		return err
	}
	d := rec.Delivery
	if d.Status != delivery.Retrying || int(d.AttemptCount) != f.Job.Sent+1 {
		// Cancelled, retried by hand, or already scheduled by an earlier
		// pass over this same failure.
		log.InfoContext(ctx, "failure already handled", "status", d.Status.String())
		r.metrics.Outcome(ctx, telemetry.OutcomeDropped, "already handled")
		return nil
	}
	now := time.Now()
	ep, err := r.endpoints.ForJob(ctx, &f.Job)
	switch {
	case errors.Is(err, endpoints.ErrNotFound):
		return r.settle(ctx, rec, delivery.Cancel(endpoint.ReasonDeleted), now, telemetry.OutcomeCancelled, log)
	case err != nil:
		return err
	case !endpoint.Enabled(ep):
		return r.settle(ctx, rec, delivery.Cancel(endpoint.DisabledReason(ep)), now, telemetry.OutcomeCancelled, log) // held when auto-disabled
	}
	job, at, ok := Next(r.schedule, f)
	if !ok {
		kill := delivery.Kill(fmt.Sprintf("all %d retries failed; last: %s", len(r.schedule), f.Error))
		return r.settle(ctx, rec, kill, now, telemetry.OutcomeDead, log)
	}
	if err := delivery.Schedule(at).Apply(d, now); err != nil {
		return err
	}
	rec.Job = &job
	if err := r.attempts.Retire(ctx, rec); err != nil { // the retry will replace the record's latest attempt
		return err
	}
	if err := r.deliveries.Update(ctx, rec); err != nil {
		if errors.Is(err, inflight.ErrConflict) {
			r.metrics.Outcome(ctx, telemetry.OutcomeDropped, "the delivery changed meanwhile")
		}
		return ignoreConflict(err)
	}
	job.Revision = rec.Revision // the sender claims against what was just written
	// The schedule's span (and so the retry's send, which the fired message
	// continues) says which retry this is and when it is due.
	if err := r.tracer.Schedule(ctx, r.js, &job, at, stream.RetryID(job.DeliveryID, job.Sent),
		telemetry.DeliveryID.String(job.DeliveryID), telemetry.Attempt.Int(job.Attempt),
		telemetry.Retry.Int(job.Attempt), telemetry.RetryScheduledAt.String(at.UTC().Format(time.RFC3339Nano))); err != nil {
		return err
	}
	r.metrics.RetryScheduled(ctx, job.Attempt)
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(telemetry.Retry.Int(job.Attempt), telemetry.RetryScheduledAt.String(at.UTC().Format(time.RFC3339Nano)))
	}
	r.metrics.Outcome(ctx, telemetry.OutcomeScheduled, "")
	log.InfoContext(ctx, "retry scheduled", "retry", job.Attempt, "at", at)
	return nil
}

// settle records a final state decided here (dead, cancelled).
func (r *retrier) settle(ctx context.Context, rec *inflight.Record, t delivery.Transition, now time.Time, outcome string, log *slog.Logger) error {
	if err := t.Apply(rec.Delivery, now); err != nil {
		return err
	}
	if err := r.deliveries.Update(ctx, rec); err != nil {
		if errors.Is(err, inflight.ErrConflict) {
			r.metrics.Outcome(ctx, telemetry.OutcomeDropped, "the delivery changed meanwhile")
		}
		return ignoreConflict(err)
	}
	log.InfoContext(ctx, "delivery "+outcome, "reason", rec.Delivery.Reason)
	r.metrics.Outcome(ctx, outcome, rec.Delivery.Reason)
	return nil
}

// ignoreConflict: a record changed since it was read was moved on by someone
// else (cancelled, retried by hand); this failure is no longer its news.
func ignoreConflict(err error) error {
	if errors.Is(err, inflight.ErrConflict) {
		return nil
	}
	return err
}
