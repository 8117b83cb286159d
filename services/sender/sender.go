// Package sender consumes deliveries and sends them: it reads the endpoint's
// current configuration, waits for the endpoint's limits, sends through the
// dispatcher, records the attempt and the delivery's state, and hands
// retryable failures to the retry service.
//
// Waiting for limits: each delivery reserves its slot once (one limiter call,
// whatever the backlog). A slot within MaxInlineWait is waited for in the
// worker; a later slot is deferred through a JetStream message schedule that
// fires the job back at its slot, so a long wait never holds a worker or the
// consumer's ack-pending window, and a busy endpoint never holds up others.
// When the slot has come the worker books the request's real start as well
// (a gap after the endpoint's last start, by any replica) and starts it
// within 2 ms of that, so the limits hold between the starts a brand's
// server sees, not only between the slots.
// If the limiter is unreachable the message is nak'ed with a delay: nothing
// is sent unthrottled and nothing is lost; Ready reports the outage.
//
// Pacing (pacing.go): each answer's word on the receiver's load (429/503,
// Retry-After, rising latency) goes back to the limiter, which then spaces
// the endpoint's requests wider than its limits, never closer, until the
// receiver copes again; unless the endpoint opted out.
//
// Sharing the workers (share.go): each endpoint may have only so many
// requests in flight at once (its max_in_flight, by default an eighth of
// the workers); a job of a full endpoint waits briefly for a place when the
// endpoint is fast and is deferred to its expected turn otherwise, so a
// server that answers slowly, or never, holds only its own share.
//
// Poison (stream.DeadLetters): a job that cannot be decoded, names no
// well-formed delivery, or does not carry the renderer's tag under the job
// key (pkg/delivery auth.go: a job forged on the broker) goes to the dead
// letters at once, unsent; a handler that
// panics on a job gives it back a bounded number of times first.
//
// Sending once: before a request goes out the sender claims the attempt, a
// compare-and-set on the delivery record at the revision the job was written
// against (IN_FLIGHT, naming the message); a copy of the job that finds the
// record moved on (a later attempt, a final state, another claim) is
// dropped. Once the request has gone out, recording it (the attempt, the
// record, the hand-over to retry) is retried in place, never by sending
// again. Only a crash between send and record resends: at least once, with a
// stable Postback-Delivery-Id for the receiver to drop the repeat.
//
// First sends skip the claim. The renderer's own job for a delivery (it
// carries the endpoint version it was rendered against) has no rival copy
// while that endpoint is unchanged: retries and deferrals are made only
// after it, RetryDelivery refuses a delivery still queued for its first
// send, and cancelling its pending deliveries changes the endpoint. So such
// a job is sent without writing IN_FLIGHT first, and its outcome and
// attempt are recorded in one write. A delivery that ends at its first send
// (succeeded, failed for good, cancelled) never gets a hot record: that one
// write is its final history entry (inflight.Deliveries.Conclude), since the
// renderer queues the job with no record (the queued job stands for the
// PENDING record until then). The whole pipeline stores three messages for
// it (event, job, final entry); a queued entry too only if it waited long
// (services/renderer queued.go).
// Only a delivery that must be retried or waits gets a record. (A redelivery
// of the same message after the ack wait is not stopped by a claim either:
// the claim names the message.)
package sender

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/postback-dev/postback/pkg/delivery"
	"github.com/postback-dev/postback/pkg/dispatch"
	"github.com/postback-dev/postback/pkg/endpoint"
	"github.com/postback-dev/postback/pkg/endpoints"
	"github.com/postback-dev/postback/pkg/inflight"
	"github.com/postback-dev/postback/pkg/limiter"
	"github.com/postback-dev/postback/pkg/secret"
	"github.com/postback-dev/postback/pkg/stream"
	"github.com/postback-dev/postback/pkg/telemetry"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// Config is what the sender needs.
type Config struct {
	NATS       *nats.Conn // an open connection; when nil, NATSURL is dialled
	NATSURL    string
	Layout     stream.Options
	Limiter    limiter.Limiter
	Dispatcher *dispatch.Dispatcher
	Keyring    *secret.Keyring
	// JobKey checks the tag the renderer puts on every job
	// (POSTBACK_JOB_KEY): a job whose tag does not verify is FAILED and
	// sent nowhere (pkg/delivery auth.go). Required.
	JobKey *secret.Keyring
	Logger *slog.Logger
	// Workers is how many requests are in flight at once (default 256).
	Workers int
	// InFlightPerEndpoint is an endpoint's default share: how many of its
	// requests are in flight at once (default Workers/8; an endpoint's own
	// max_in_flight overrides it, held to Workers/2). See share.go.
	InFlightPerEndpoint int
	// Share is how many of one partition's jobs are handled at once,
	// not counting those waiting on a brand's server or for a slot, while
	// another partition's jobs are flowing (stream.Pool's Share; default
	// stream.DefaultShare): a burst of jobs to defer (an endpoint allowing 1/s
	// given 5,000) is taken in at that pace, and leaves the CPU to the
	// other endpoints' postbacks. A request out to a server holds a worker,
	// not a share (stream.Waiting).
	Share int
	// MaxInlineWait is the longest limiter wait held in a worker (default
	// 500ms; it must exceed earlyFire).
	MaxInlineWait time.Duration
	// MaxRetryAfter bounds the Retry-After a receiver's 429 or 503 may hold
	// its endpoint back for (pacing.go; default: the seed schedule's longest
	// step).
	MaxRetryAfter time.Duration
	// Health, when set, receives the sender's readiness (limiter reachable).
	Health func(ready bool, reason string)
	// TracerProvider and MeterProvider receive the sender's spans and
	// metrics (nil: the global providers). The Dispatcher traces requests
	// with its own (dispatch.Options.TracerProvider).
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
}

// Run sends deliveries until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	log := telemetry.Logger(cfg.Logger)
	if cfg.Limiter == nil || cfg.Dispatcher == nil || cfg.Keyring == nil || cfg.JobKey == nil {
		return errors.New("sender: Limiter, Dispatcher, Keyring and JobKey are required")
	}
	js, closeNATS, err := stream.Open(ctx, cfg.NATS, cfg.NATSURL, "postback-sender", cfg.Layout)
	if err != nil {
		return fmt.Errorf("sender: %w", err)
	}
	defer closeNATS()
	s, err := newSender(ctx, js, cfg, log)
	if err != nil {
		return err
	}
	// Final entries of first sends are group-committed, one stored message
	// for many under load. The log outlives ctx: the jobs in hand when ctx
	// ends are finished (stream.WorkAll), and a conclusion that failed then
	// would bring its job back to be sent again. Run returns only after
	// every handler has.
	logging, stopLogging := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLogging()
	s.deliveries.BatchConcludes(logging)
	workers := s.cfg.Workers
	// A short ack wait: a dead sender's jobs go to the others within
	// seconds; a live one keeps a slow request's job with in-progress
	// signals (stream.WorkAll).
	ackWait := stream.AckWait
	fresh, err := stream.SenderConsumers(ctx, js, ackWait, 4*workers)
	if err != nil {
		return fmt.Errorf("sender: %w", err)
	}
	retries, err := stream.Consumer(ctx, js, stream.SenderRetryConsumer, ackWait, 4*workers)
	if err != nil {
		return fmt.Errorf("sender: %w", err)
	}
	if err := stream.WatchConsumers(ctx, cfg.MeterProvider, 0, append(fresh, retries)...); err != nil {
		return fmt.Errorf("sender: %w", err)
	}
	freshDead, err := stream.NewDeadLetters(js, stream.SenderConsumer, log, cfg.MeterProvider)
	if err != nil {
		return fmt.Errorf("sender: %w", err)
	}
	retriesDead, err := stream.NewDeadLetters(js, stream.SenderRetryConsumer, log, cfg.MeterProvider)
	if err != nil {
		return fmt.Errorf("sender: %w", err)
	}
	log.Info("sender consuming", "workers", workers, "in_flight_per_endpoint", s.cfg.InFlightPerEndpoint, "share", s.cfg.Share)
	go stream.Keep(ctx, js, stream.DeliveriesStream, stream.SchedulesStream)
	errc := make(chan error, 2)
	go func() {
		errc <- stream.WorkShared(ctx, fresh, stream.Pool{Workers: workers, Share: s.cfg.Share},
			s.tracer.Traced(stream.SenderConsumer, s.handler(freshDead)))
	}()
	go func() {
		errc <- stream.Work(ctx, retries, workers/4+1, s.tracer.Traced(stream.SenderRetryConsumer, s.handler(retriesDead)))
	}()
	err = <-errc
	if err2 := <-errc; err == nil {
		err = err2
	}
	return err
}

type sender struct {
	js         jetstream.JetStream
	endpoints  *endpoints.Store
	cache      *endpoints.Cache
	deliveries *inflight.Deliveries
	attempts   *inflight.Attempts
	cfg        Config
	log        *slog.Logger
	tracer     *stream.Tracer
	metrics    *telemetry.Metrics
	limiterOK  atomic.Bool
	clock      clockSync
	opened     openedCache
	shares     *shares
	pacer      *pacer
}

// openedCache keeps endpoints with their secrets opened, by id and version
// (endpoint.Version: every change sets it), so a request does not copy its
// endpoint and decrypt its sealed values again (a copy cost ~3% of the
// sender's CPU). The opened values are what every request of the endpoint
// uses anyway; the keyring that opens them is in memory too. An entry serves
// only the endpoint's account, id and URL it was opened for (a URL changed in
// storage without a new version must not find secrets opened for the old
// one: they are bound to it, endpoint.Binding). Bounded: it is
// cleared when it reaches maxOpened endpoints.
type openedCache struct {
	mu sync.Mutex
	m  map[string]openedEndpoint
}

type openedEndpoint struct {
	version int64
	binding string // endpoint.Binding: the secrets opened for this account, id and URL only
	ep      *postbackv1.Endpoint
}

const maxOpened = 4096

// open returns ep with its secrets opened (shared: callers must not change
// it).
func (c *openedCache) open(ep *postbackv1.Endpoint, k *secret.Keyring) (*postbackv1.Endpoint, error) {
	v := endpoint.Version(ep)
	c.mu.Lock()
	o, ok := c.m[ep.Id]
	c.mu.Unlock()
	if ok && v != 0 && o.version == v && o.binding == endpoint.Binding(ep) {
		return o.ep, nil
	}
	opened, err := endpoint.Open(ep, k)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxOpened {
		c.m = map[string]openedEndpoint{}
	}
	c.m[ep.Id] = openedEndpoint{version: v, binding: endpoint.Binding(ep), ep: opened}
	c.mu.Unlock()
	return opened, nil
}

// clockSync maps the limiter's clock (Redis TIME) onto this process's clock.
// Each reservation is a sample: the limiter read its clock somewhere between
// before and after; the sample with the shortest round trip in the last
// minute gives the offset, so a worker descheduled right after a reply does
// not shift its slot (which would crowd the next request's).
type clockSync struct {
	mu     sync.Mutex
	offset time.Duration // limiter clock - local clock
	rtt    time.Duration
	taken  time.Time
}

func (c *clockSync) local(res limiter.Reservation, before, after time.Time) time.Time {
	rtt := after.Sub(before)
	sample := res.Now.Sub(before.Add(rtt / 2))
	c.mu.Lock()
	if c.taken.IsZero() || rtt <= c.rtt || after.Sub(c.taken) > time.Minute {
		c.offset, c.rtt, c.taken = sample, rtt, after
	}
	offset := c.offset
	c.mu.Unlock()
	return res.At.Add(-offset)
}

func newSender(ctx context.Context, js jetstream.JetStream, cfg Config, log *slog.Logger) (*sender, error) {
	eps, err := endpoints.OpenStore(ctx, js)
	if err != nil {
		return nil, err
	}
	dls, err := inflight.OpenDeliveries(ctx, js)
	if err != nil {
		return nil, err
	}
	dls.Grace = cfg.Layout.Grace
	cache, err := endpoints.NewCache(ctx, eps, 0)
	if err != nil {
		return nil, err
	}
	if cfg.MaxInlineWait <= 0 {
		cfg.MaxInlineWait = earlyFire + 150*time.Millisecond
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 256
	}
	if cfg.InFlightPerEndpoint <= 0 {
		cfg.InFlightPerEndpoint = max(1, cfg.Workers/8)
	}
	if cfg.Share <= 0 {
		cfg.Share = stream.DefaultShare()
	}
	s := &sender{js: js, endpoints: eps, cache: cache, deliveries: dls, attempts: inflight.NewAttempts(js), cfg: cfg, log: log,
		tracer: stream.NewTracer(cfg.TracerProvider), metrics: telemetry.NewMetrics(cfg.MeterProvider), shares: newShares(),
		pacer: newPacer(cfg.Limiter, cfg.MaxRetryAfter, cfg.MeterProvider, log)}
	s.limiterOK.Store(true)
	return s, nil
}

// handler is the sender's handler for one of its consumers, whose dead
// letters go to dead.
func (s *sender) handler(dead *stream.DeadLetters) stream.Handler {
	return dead.Guard(func(ctx context.Context, m jetstream.Msg) { s.handle(ctx, m, dead) })
}

func (s *sender) handle(ctx context.Context, m jetstream.Msg, dead *stream.DeadLetters) {
	span := trace.SpanFromContext(ctx)
	job, err := stream.DecodeJob(m)
	if err != nil {
		err = stream.Poison("undecodable delivery job: %v", err)
	} else {
		err = stream.CheckJob(&job)
	}
	if err == nil {
		// Before anything is booked or recorded: a job the renderer did
		// not write (forged by someone with access to the broker) is
		// dead-lettered, never sent, and touches no delivery record.
		if aerr := job.Authentic(s.cfg.JobKey); aerr != nil {
			s.log.ErrorContext(ctx, "refused a delivery job that does not authenticate; it goes to the dead letters, unsent",
				"delivery_id", job.DeliveryID, "endpoint_id", job.EndpointID, "account_id", job.AccountID, "subject", m.Subject(), "error", aerr)
			err = stream.Poison("%v", aerr)
		}
	}
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		dead.Reject(ctx, m, err, time.Second)
		return
	}
	if span.IsRecording() {
		span.SetAttributes(telemetry.DeliveryID.String(job.DeliveryID), telemetry.EndpointID.String(job.EndpointID),
			telemetry.AccountID.String(job.AccountID), telemetry.EventType.String(job.EventType), telemetry.EventID.String(job.EventID),
			telemetry.Attempt.Int(job.Attempt), telemetry.Requests.Int(job.Sent))
		if !job.Scheduled.IsZero() { // a retry: which one, and when it was planned for
			span.SetAttributes(telemetry.Retry.Int(job.Attempt), telemetry.RetryScheduledAt.String(job.Scheduled.UTC().Format(time.RFC3339Nano)))
		}
	}
	claim := &claimName{m: m}
	log := s.log.With("delivery_id", job.DeliveryID, "endpoint_id", job.EndpointID, "attempt", job.Attempt)
	if err := s.process(ctx, &job, m.Data(), claim, log); err != nil {
		log.WarnContext(ctx, "delivery will be retried after a transient error", "error", err)
		span.SetStatus(codes.Error, err.Error())
		_ = m.NakWithDelay(time.Second)
		return
	}
	_ = m.Ack()
}

// claimName names the message a job came in, "<stream>:<sequence>", for an
// in-flight claim. It is worked out when first asked for: a first send,
// the common case, never claims.
type claimName struct {
	m    jetstream.Msg
	name string
}

func (c *claimName) String() string {
	if c.name == "" {
		c.name = c.m.Subject()
		if meta, err := c.m.Metadata(); err == nil {
			c.name = meta.Stream + ":" + strconv.FormatUint(meta.Sequence.Stream, 10)
		}
	}
	return c.name
}

// errDeferred means the job was handed to a schedule to wait for its
// limiter slot, errBusy to wait for a place among its endpoint's requests
// in flight: ack it.
var (
	errDeferred = errors.New("deferred")
	errBusy     = errors.New("deferred: the endpoint is busy")
)

// stale reports why a job must not be sent: its record has moved past it, or
// another copy of it holds the in-flight claim.
func stale(rec *inflight.Record, job *delivery.Job, claim string) string {
	d := rec.Delivery
	switch {
	case int(d.AttemptCount) > job.Sent:
		return "a later attempt was already sent"
	case delivery.Final(d.Status):
		return "the delivery is " + d.Status.String()
	case d.Status == delivery.InFlight && rec.Claim != claim:
		return "another copy is in flight"
	}
	return ""
}

// process does one job; a returned error means "try this message again".
func (s *sender) process(ctx context.Context, job *delivery.Job, raw []byte, claim *claimName, log *slog.Logger) error {
	// A job written with its record's revision (or queued with none) is
	// claimed by a compare-and-set on that revision (0: create), without
	// reading the record: if the record changed since (or was written),
	// the claim fails and the record is read and judged then.
	rec := assumed(job)
	if rec == nil {
		var err error
		if rec, err = s.current(ctx, job, claim, log); rec == nil || err != nil {
			return err
		}
	}
	ep, err := s.cache.ForJob(ctx, job)
	if errors.Is(err, endpoints.ErrNotFound) {
		return s.cancel(ctx, rec, job, endpoint.ReasonDeleted, log)
	}
	if err != nil {
		return err
	}
	if !endpoint.Enabled(ep) {
		return s.cancel(ctx, rec, job, endpoint.DisabledReason(ep), log) // held when auto-disabled
	}
	// A place among the endpoint's requests in flight first (share.go): a
	// job deferred for want of one keeps the limiter's slots for others.
	places, widest := s.shareOf(ep)
	pl, ok := s.shares.take(ctx, ep.Id, places, widest)
	if !ok {
		return s.slotted(ctx, s.busy(ctx, rec, job, s.shares.later(ep.Id, places)))
	}
	defer func() { pl.done(0) }() // every return before the request is sent (pl is read at return)
	lim := endpoint.Limits(ep)
	first := firstSend(job, rec, ep)
	if err = s.slot(ctx, ep.Id, lim, rec, job); err != nil {
		return s.slotted(ctx, err)
	}
	if !first {
		// Claim the attempt: only one copy of a job is ever sent. The claim
		// is written before the last wait, so its latency cannot make the
		// request miss its slot.
		if rec, err = s.claim(ctx, rec, job, raw, claim, log); rec == nil || err != nil {
			return err
		}
	}
	for !lim.Unlimited() {
		if err := sleepUntil(ctx, job.Slot); err != nil {
			return err
		}
		if time.Since(job.Slot) <= lateTolerance {
			started, err := s.startOnTime(ctx, ep.Id, lim)
			if err != nil {
				return err
			}
			if !started.IsZero() {
				break
			}
		}
		job.Slot = time.Time{} // woke too late, or starts run behind: take a fresh slot
		if err := s.slot(ctx, ep.Id, lim, rec, job); err != nil {
			return s.slotted(ctx, err)
		}
	}
	opened, err := s.opened.open(ep, s.cfg.Keyring)
	if err != nil {
		const reason = "the endpoint's secrets cannot be opened with the current keyring"
		rec.JobBytes = unchanged(job, raw)
		if err := s.finish(ctx, rec, job, delivery.Fail(nil, job.Sent, reason), nil); err != nil {
			return err
		}
		log.ErrorContext(ctx, "postback failed for good", "reason", reason)
		s.metrics.Outcome(ctx, telemetry.OutcomeFailed, reason)
		return nil
	}
	if job.Sent == 0 && !job.Published.IsZero() {
		s.metrics.FirstAttempt(ctx, time.Since(job.Published))
	}
	resume := stream.Waiting(ctx) // the brand's server holds this worker, not the partition's share
	res := s.cfg.Dispatcher.Send(ctx, opened, job)
	resume()
	pl.done(res.Attempt.GetDuration().AsDuration())
	pl = place{} // given back: the deferred done does nothing
	s.metrics.Attempt(ctx, int(res.Attempt.StatusCode), res.Attempt.GetDuration().AsDuration())
	s.pacer.observe(ctx, ep.Id, lim, res) // pacing.go: what the answer says about the receiver's load
	// The request went out: recording it is retried here, never by sending
	// again. (A crash still resends: at least once.)
	end := time.Now()
	return retryFor(ctx, settleFor, log, func() error { return s.settle(ctx, rec, job, raw, res, end, log) })
}

// firstSend reports whether job is the renderer's first send of a delivery
// whose endpoint is unchanged since it was rendered, judged against the
// record assumed at the job's revision (not read): such a job is sent
// without a claim (see the package comment).
func firstSend(job *delivery.Job, assumedRec *inflight.Record, ep *postbackv1.Endpoint) bool {
	assumedAsWritten := job.Queued || assumedRec.Revision != 0 && assumedRec.Revision == job.Revision
	return assumedAsWritten && job.Sent == 0 &&
		job.Slot.IsZero() && job.EndpointVersion != 0 && job.EndpointVersion == endpoint.Version(ep)
}

// claim moves the record to IN_FLIGHT under this message's claim with a
// compare-and-set; it returns the claimed record, or nil (and no error)
// when the job is to be dropped.
func (s *sender) claim(ctx context.Context, rec *inflight.Record, job *delivery.Job, raw []byte, claim *claimName, log *slog.Logger) (*inflight.Record, error) {
	if err := delivery.Claim().Apply(rec.Delivery, time.Now()); err != nil {
		return nil, err
	}
	rec.Claim, rec.Job = claim.String(), job
	rec.JobBytes = unchanged(job, raw)
	err := s.deliveries.Update(ctx, rec)
	if errors.Is(err, inflight.ErrConflict) && (job.Revision != 0 || job.Queued) {
		// The record moved since the job was written (or was written, for
		// a queued job): read it and judge.
		job.Revision, job.Queued = 0, false
		var cur *inflight.Record
		if cur, err = s.current(ctx, job, claim, log); cur == nil || err != nil {
			return nil, err
		}
		if err := delivery.Claim().Apply(cur.Delivery, time.Now()); err != nil {
			return nil, err // re-read and re-judged when the message comes again
		}
		cur.Claim, cur.Job = claim.String(), job
		rec = cur
		err = s.deliveries.Update(ctx, rec)
	}
	if errors.Is(err, inflight.ErrConflict) {
		return nil, fmt.Errorf("claim %s: %w", job.DeliveryID, err) // re-read and re-judge
	}
	if err != nil {
		return nil, err
	}
	return rec, nil
}

// settleFor bounds how long a sent attempt's recording is retried in place
// (JetStream failing over) before the message is given back: a request's
// longest timeout plus this stays inside stream.MaxHold, so in-progress
// signals keep a second copy from being handed out while the first is
// still settling.
const settleFor = 45 * time.Second

// retryFor runs fn until it succeeds, ctx ends or limit passes, backing off
// between tries.
func retryFor(ctx context.Context, limit time.Duration, log *slog.Logger, fn func() error) error {
	deadline := time.Now().Add(limit)
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		err := fn()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		log.WarnContext(ctx, "recording a sent attempt failed; trying again", "error", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

// settle records a sent attempt and what follows from it: the delivery's
// state with the attempt as its latest (one record write), and for a
// retryable failure the hand-over to the retry service. Every step is
// idempotent, so settle can run again.
func (s *sender) settle(ctx context.Context, rec *inflight.Record, job *delivery.Job, raw []byte, res dispatch.Result, end time.Time, log *slog.Logger) error {
	if rec.Last != nil && !delivery.SameAttempt(rec.Last, res.Attempt) {
		// Whoever queued this attempt moves the previous one to the
		// history; should the record still hold one, it is moved here.
		if err := s.attempts.Retire(ctx, rec); err != nil {
			return err
		}
	}
	rec.JobBytes = unchanged(job, raw) // the record stores the job as it came when the sender did not change it
	switch {
	case res.Success:
		if err := s.finish(ctx, rec, job, delivery.Succeed(res.Attempt, job.Sent), res.Attempt); err != nil {
			return err
		}
		log.InfoContext(ctx, "postback delivered", "status_code", res.Attempt.StatusCode)
		s.metrics.Outcome(ctx, telemetry.OutcomeSucceeded, "")
		return nil
	case res.Final:
		if err := s.finish(ctx, rec, job, delivery.Fail(res.Attempt, job.Sent, res.Reason), res.Attempt); err != nil {
			return err
		}
		log.InfoContext(ctx, "postback failed for good", "reason", res.Reason)
		s.metrics.Outcome(ctx, telemetry.OutcomeFailed, res.Reason)
		return nil
	}
	if err := s.finish(ctx, rec, job, delivery.Retry(res.Attempt, job.Sent), res.Attempt); err != nil {
		return err
	}
	f := stream.Failure{Job: *job, StatusCode: int(res.Attempt.StatusCode), Error: res.Reason, End: end}
	f.Job.Slot = time.Time{}
	body, err := stream.EncodeFailure(&f)
	if err != nil {
		return err
	}
	msgID := stream.FailureID(job.DeliveryID, job.Sent)
	if _, err := s.tracer.Publish(ctx, s.js, stream.FailedSubject(job.EndpointID), body, msgID,
		telemetry.DeliveryID.String(job.DeliveryID), telemetry.Attempt.Int(job.Attempt)); err != nil {
		return fmt.Errorf("hand %s to retry: %w", job.DeliveryID, err)
	}
	log.InfoContext(ctx, "postback failed; handed to retry", "status_code", res.Attempt.StatusCode, "reason", res.Reason)
	s.metrics.Outcome(ctx, telemetry.OutcomeRetrying, res.Reason)
	return nil
}

// unchanged is the job's encoding as it arrived when the sender has not
// changed the job (no limiter slot), so the record stores it without
// encoding again. (A job that came as JSON, written before the binary
// format, is stored as JSON: records read both.)
func unchanged(job *delivery.Job, raw []byte) []byte {
	if job.Slot.IsZero() {
		return raw
	}
	return nil
}

// assumed is the record a job with a revision was written against: a
// pending delivery at that revision; for a queued job (no record yet), the
// pending delivery it stands for, at revision 0 (so a compare-and-set
// creates the record only if there is still none). nil when the job has
// neither.
func assumed(job *delivery.Job) *inflight.Record {
	if job.Revision == 0 && !job.Queued {
		return nil
	}
	return &inflight.Record{Revision: job.Revision, Queued: job.Queued, Job: job, Delivery: delivery.Queued(job)}
}

// current reads the job's record and judges the job against it; nil (and
// no error) when the job is to be dropped.
func (s *sender) current(ctx context.Context, job *delivery.Job, claim *claimName, log *slog.Logger) (*inflight.Record, error) {
	rec, err := s.deliveries.Get(ctx, job.AccountID, job.EndpointID, job.DeliveryID)
	if errors.Is(err, inflight.ErrNotFound) {
		log.WarnContext(ctx, "dropping a job whose delivery record is gone (aged out?)")
		s.metrics.Outcome(ctx, telemetry.OutcomeDropped, "the delivery record is gone")
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if why := stale(rec, job, claim.String()); why != "" {
		// Its outcome may be the one whose history entry a crash lost
		// (history.go in pkg/inflight): logged again, a no-op if stored.
		if err := s.deliveries.Relog(ctx, rec); err != nil {
			return nil, err
		}
		log.InfoContext(ctx, "dropping duplicate job", "why", why)
		s.metrics.Outcome(ctx, telemetry.OutcomeDropped, why)
		return nil, nil
	}
	return rec, nil
}

// cancel finishes a delivery whose endpoint is gone or disabled.
func (s *sender) cancel(ctx context.Context, rec *inflight.Record, job *delivery.Job, reason string, log *slog.Logger) error {
	if err := s.finish(ctx, rec, job, delivery.Cancel(reason), nil); err != nil {
		return err
	}
	log.InfoContext(ctx, "delivery cancelled", "reason", reason)
	s.metrics.Outcome(ctx, telemetry.OutcomeCancelled, reason)
	return nil
}

// slotted handles slot's error: a deferral or a lost race ends this job
// (ack); anything else is transient.
func (s *sender) slotted(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, errDeferred):
		s.metrics.Outcome(ctx, telemetry.OutcomeDeferred, "waiting for the endpoint's limits")
		return nil
	case errors.Is(err, errBusy):
		s.metrics.Outcome(ctx, telemetry.OutcomeDeferred, "waiting for a place among the endpoint's requests in flight")
		return nil
	case errors.Is(err, inflight.ErrConflict):
		s.metrics.Outcome(ctx, telemetry.OutcomeDropped, "the delivery changed meanwhile")
		return nil
	}
	return err
}

// Timing of deferred jobs: nats-server runs due schedules in batches at
// most every 250 ms, so a schedule fires up to ~250 ms after its time. A
// deferred job is therefore scheduled earlyFire before its slot and the
// worker waits the rest (at most MaxInlineWait), so a request starts at its
// slot within a millisecond or two. A job that still wakes more than
// lateTolerance past its slot has lost it: it takes a fresh slot. A job
// that wakes within it books its real start (start), which waits for the
// endpoint's last start by a gap: a request started late pushes the next
// one back by as much instead of crowding it, so the gap holds between the
// starts the receiver sees, across replicas. Starts run at most about
// lateTolerance behind the slots; startWait bounds the wait with room to
// spare.
const (
	earlyFire     = 350 * time.Millisecond
	lateTolerance = 10 * time.Millisecond
	startWait     = 3 * lateTolerance
	startLate     = 2 * time.Millisecond
)

// start books the request's real start now that its slot has come
// (limiter.Limiter.Start): at most startWait away, after the endpoint's
// last start by a gap, so a request that another replica started a little
// late is not crowded. missed is a start this job booked and woke too late
// for (zero: none), as the limiter gave it. It returns the start on this
// process's clock and as the limiter gave it; zero when the endpoint's
// starts run further behind its slots than startWait (the job then takes
// a fresh slot).
func (s *sender) start(ctx context.Context, endpointID string, lim limiter.Limits, missed time.Time) (local, booked time.Time, err error) {
	before := time.Now()
	res, ok, err := s.cfg.Limiter.Start(ctx, endpointID, lim, missed, startWait)
	if err != nil {
		s.setLimiterHealth(ctx, false, err)
		return time.Time{}, time.Time{}, fmt.Errorf("book a start: %w", err)
	}
	s.setLimiterHealth(ctx, true, nil)
	if !ok {
		return time.Time{}, time.Time{}, nil
	}
	return s.clock.local(res, before, time.Now()), res.At, nil
}

// startOnTime books the request's start and waits for it. A worker that
// wakes more than startLate after the start it booked names it as missed
// and books again: the start moves to now when no other started after it,
// else it comes a gap after the last. A few tries at most; it returns zero
// when the endpoint's starts run too far behind, and the job takes a fresh
// slot.
func (s *sender) startOnTime(ctx context.Context, endpointID string, lim limiter.Limits) (time.Time, error) {
	var missed time.Time
	for range 4 {
		at, booked, err := s.start(ctx, endpointID, lim, missed)
		if err != nil || at.IsZero() {
			return time.Time{}, err
		}
		if err := sleepUntil(ctx, at); err != nil {
			return time.Time{}, err
		}
		if time.Since(at) <= startLate {
			return at, nil
		}
		missed = booked
	}
	return time.Time{}, nil
}

// slot makes sure the job holds a slot within MaxInlineWait: it reserves
// one (once per attempt; again only if the job woke too late for its slot),
// and defers the job through a schedule when the slot is further away. It
// does not sleep; the caller waits for the slot after claiming the attempt.
func (s *sender) slot(ctx context.Context, endpointID string, lim limiter.Limits, rec *inflight.Record, job *delivery.Job) error {
	if lim.Unlimited() {
		job.Slot = time.Time{}
		return nil
	}
	if !job.Slot.IsZero() && time.Since(job.Slot) > lateTolerance {
		job.Slot = time.Time{}
	}
	if job.Slot.IsZero() {
		before := time.Now()
		res, err := s.cfg.Limiter.Reserve(ctx, endpointID, lim)
		if err != nil {
			s.setLimiterHealth(ctx, false, err)
			return fmt.Errorf("reserve a slot: %w", err)
		}
		s.setLimiterHealth(ctx, true, nil)
		after := time.Now()
		job.Slot = s.clock.local(res, before, after)
		s.metrics.LimiterWait(ctx, job.Slot.Sub(after))
	}
	if time.Until(job.Slot) <= s.cfg.MaxInlineWait {
		return nil
	}
	msgID := func(revision uint64) string {
		return stream.SlotID(job.DeliveryID, job.Sent, job.Slot.UnixNano(), revision)
	}
	if err := s.postpone(ctx, rec, job, job.Slot.Add(-earlyFire), job.Slot, msgID); err != nil {
		return err
	}
	return errDeferred
}

// busy defers a job whose endpoint has no free place until at, when its
// turn is expected (share.go). A limiter slot it held is given up: it is
// reserved again when the job comes back.
func (s *sender) busy(ctx context.Context, rec *inflight.Record, job *delivery.Job, at time.Time) error {
	job.Slot = time.Time{}
	job.EndpointVersion = 0 // a copy: it is claimed when it comes back
	msgID := func(uint64) string { return stream.BusyID(job.DeliveryID, job.Sent, at.UnixNano()) }
	if err := s.postpone(ctx, rec, job, at, at, msgID); err != nil {
		return err
	}
	return errBusy
}

// postpone notes on the delivery's record that its next attempt is due at
// next, then hands the job to its delivery's one pending schedule, to fire
// at fire, as a copy that claims against the record just written.
//
// The record comes first. The other order lost deliveries: a job deferred
// to a place expected a millisecond later has its schedule fire at once,
// and its copy could arrive before the record was written. A first send's
// copy then found no record (the renderer writes none) and was dropped as
// aged out; a claimed job's copy found the record still claimed by the
// message that deferred it and was dropped as a duplicate. Either way the
// record written a moment later said PENDING with nothing left to send it
// (seen in a few bursts: 1 and 18 postbacks of 20,000 never sent). Written
// first, the record is there for the copy, at the revision it names.
//
// Failure policy: a crash between the record and the schedule leaves the
// job's message unacked; it comes again, finds the record deferred and is
// deferred again. A record changed meanwhile (compare-and-set) means this
// job was here before or the delivery moved on (cancelled, or another
// copy holds it): the job is judged against it and scheduled at its
// revision, or dropped (inflight.ErrConflict). A second pass replaces the
// delivery's one pending schedule, and the claim lets one copy send. The
// schedule's message id is made from the revision it names (msgID): a
// pass publishing again after a crash repeats its id and is deduplicated;
// a later pass never repeats an earlier one's.
func (s *sender) postpone(ctx context.Context, rec *inflight.Record, job *delivery.Job, fire, next time.Time, msgID func(revision uint64) string) error {
	if err := delivery.Defer(next).Apply(rec.Delivery, time.Now()); err != nil {
		return inflight.ErrConflict // nothing left to defer: dropped
	}
	rec.Claim, rec.Job = "", job
	err := s.deliveries.Update(ctx, rec) // at revision 0 (none yet) it creates the record
	if errors.Is(err, inflight.ErrConflict) {
		cur, gerr := s.deliveries.Get(ctx, job.AccountID, job.EndpointID, job.DeliveryID)
		if gerr != nil {
			return fmt.Errorf("defer %s: read the record written meanwhile: %w", job.DeliveryID, gerr)
		}
		if stale(cur, job, "") != "" {
			return err // dropped: the delivery changed meanwhile
		}
		rec, err = cur, nil
	}
	if err != nil {
		return err
	}
	job.Revision, job.Queued = rec.Revision, false
	return s.tracer.Schedule(ctx, s.js, job, fire, msgID(rec.Revision),
		telemetry.DeliveryID.String(job.DeliveryID), telemetry.Attempt.Int(job.Attempt))
}

// shareOf is how many of the endpoint's requests may be in flight at once
// in this sender: its own max_in_flight, at most half the workers; or the
// default share, widened to half the workers while the endpoint is fast
// (share.go).
func (s *sender) shareOf(ep *postbackv1.Endpoint) (places, widest int) {
	half := max(1, s.cfg.Workers/2)
	if ep.MaxInFlight > 0 {
		n := min(int(ep.MaxInFlight), half)
		return n, n
	}
	return max(1, min(s.cfg.InFlightPerEndpoint, half)), half
}

// sleepUntil waits for a slot at t. The wait takes no CPU: it holds a
// worker, not the partition's share (stream.Waiting).
func sleepUntil(ctx context.Context, t time.Time) error {
	wait := time.Until(t)
	if wait <= 0 {
		return nil
	}
	defer stream.Waiting(ctx)()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *sender) setLimiterHealth(ctx context.Context, ok bool, err error) {
	if !ok {
		s.metrics.LimiterError(ctx)
	}
	if s.limiterOK.Swap(ok) == ok {
		return
	}
	if s.cfg.Health != nil {
		reason := ""
		if err != nil {
			reason = "limiter unreachable: " + err.Error()
		}
		s.cfg.Health(ok, reason)
	}
	if ok {
		s.log.InfoContext(ctx, "limiter reachable again")
	} else {
		s.log.ErrorContext(ctx, "limiter unreachable: deliveries wait", "error", err)
	}
}

// finish makes the transition t that ends this job, and records it with
// the attempt sent (if any) as the record's latest. rec.JobBytes, when set, is the job
// already encoded.
func (s *sender) finish(ctx context.Context, rec *inflight.Record, job *delivery.Job, t delivery.Transition, at *postbackv1.Attempt) error {
	if err := t.Apply(rec.Delivery, time.Now()); err != nil {
		return err
	}
	if at != nil {
		rec.Last = at
	}
	rec.Claim, rec.Job = "", job
	if rec.Queued && rec.Revision == 0 && delivery.Final(t.To()) {
		// Ended by its first send with no record behind it: the history
		// entry is its only record (inflight.Deliveries.Conclude).
		return s.deliveries.Conclude(ctx, rec)
	}
	// Unconditional: the request was sent (or the outcome is decided); this
	// is the truth about it whatever changed meanwhile.
	return s.deliveries.Put(ctx, rec)
}
