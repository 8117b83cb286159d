// Package renderer turns each published event into one delivery per
// subscribed endpoint: it finds the account's enabled endpoints for the event
// type (a KV prefix lookup), renders URL, templated headers and body, and
// queues each delivery for the sender on its own subject, where the queued
// job stands for the delivery's PENDING record until the sender writes one.
// The event is acked only when every delivery is durable; a redelivered
// event renders the same delivery ids, and looking each one up first (plus
// the publish's Nats-Msg-Id) makes the second pass a no-op.
package renderer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/postback-dev/postback/pkg/delivery"
	"github.com/postback-dev/postback/pkg/endpoint"
	"github.com/postback-dev/postback/pkg/endpoints"
	"github.com/postback-dev/postback/pkg/id"
	"github.com/postback-dev/postback/pkg/inflight"
	"github.com/postback-dev/postback/pkg/recent"
	"github.com/postback-dev/postback/pkg/render"
	"github.com/postback-dev/postback/pkg/secret"
	"github.com/postback-dev/postback/pkg/stream"
	"github.com/postback-dev/postback/pkg/telemetry"
	"github.com/postback-dev/postback/pkg/template"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// Config is what the renderer needs.
type Config struct {
	NATS    *nats.Conn // an open connection; when nil, NATSURL is dialled
	NATSURL string
	Layout  stream.Options
	Logger  *slog.Logger
	// JobKey tags every job the renderer writes (POSTBACK_JOB_KEY), so the
	// sender can tell it from a forged one (pkg/delivery auth.go). Required.
	JobKey *secret.Keyring
	// Workers is how many events are rendered at once (default 256). A
	// worker spends most of an event waiting for its jobs' acknowledgements,
	// so the renderer's rate is about Workers / that wait: at 64 it capped
	// the burst below what the CPU allowed (docs/benchmarks.md).
	Workers int
	// Share is how many events of one partition are rendered at once while
	// another partition's events are flowing (stream.Pool's Share; default
	// stream.DefaultShare): a burst for one account is taken in at that pace, and
	// leaves the CPU to the other accounts' postbacks.
	Share int
	// QueuedAfter is how long a delivery queued for its first send may
	// wait before its PENDING entry goes to the history (default
	// DefaultQueuedAfter; negative: at once). Most are sent sooner, and the
	// sender's entry is then all the history needs (queued.go).
	QueuedAfter time.Duration
	// TracerProvider and MeterProvider receive the renderer's spans and
	// metrics (nil: the global providers).
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
}

// Run renders events until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	log := telemetry.Logger(cfg.Logger)
	if cfg.JobKey == nil {
		return errors.New("renderer: JobKey is required")
	}
	js, closeNATS, err := stream.Open(ctx, cfg.NATS, cfg.NATSURL, "postback-renderer", cfg.Layout)
	if err != nil {
		return fmt.Errorf("renderer: %w", err)
	}
	defer closeNATS()
	// The queued log outlives ctx until the pool has finished the events
	// in hand: a clean stop completes their renders instead of failing
	// them for a redelivery to do again.
	logging, stopLog := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLog()
	r, err := newRenderer(ctx, js, log, logging)
	if err != nil {
		return err
	}
	after := cfg.QueuedAfter
	if after == 0 {
		after = DefaultQueuedAfter
	}
	r.later = newLaterLog(r.queued, func(ctx context.Context, partition string) (uint64, error) {
		return stream.SenderAckFloor(ctx, js, partition)
	}, after, log)
	go r.later.run(ctx, logging)
	r.tracer = stream.NewTracer(cfg.TracerProvider)
	r.jobKey = cfg.JobKey
	r.deliveries.Grace = cfg.Layout.Grace
	consumers, err := stream.RendererConsumers(ctx, js, stream.AckWait, 4096)
	if err != nil {
		return fmt.Errorf("renderer: %w", err)
	}
	if err := stream.WatchConsumers(ctx, cfg.MeterProvider, 0, consumers...); err != nil {
		return fmt.Errorf("renderer: %w", err)
	}
	if r.dead, err = stream.NewDeadLetters(js, stream.RendererConsumer, log, cfg.MeterProvider); err != nil {
		return fmt.Errorf("renderer: %w", err)
	}
	workers := cfg.Workers
	if workers <= 0 {
		workers = 256
	}
	share := cfg.Share
	if share <= 0 {
		share = stream.DefaultShare()
	}
	log.Info("renderer consuming", "stream", stream.EventsStream, "workers", workers, "share", share)
	go stream.Keep(ctx, js, stream.EventsStream)
	err = stream.WorkShared(ctx, consumers, stream.Pool{Workers: workers, Share: share},
		r.tracer.Traced(stream.RendererConsumer, r.dead.Guard(r.handle)))
	// The events in hand are done: what they queued and is still waiting
	// goes to the history now, not lost with the process.
	fctx, cancel := context.WithTimeout(logging, 5*time.Second)
	defer cancel()
	r.later.look(fctx, true)
	return err
}

type renderer struct {
	js         jetstream.JetStream
	endpoints  *endpoints.Cache
	deliveries *inflight.Deliveries
	queued     *inflight.QueuedLog // the history's PENDING entries, batched
	later      *laterLog           // queued deliveries until they are logged PENDING or gone (queued.go)
	log        *slog.Logger
	tracer     *stream.Tracer
	dead       *stream.DeadLetters
	jobKey     *secret.Keyring
	// sample keeps a few recent events per account and event type for
	// the console's preview (pkg/recent): nil when its bucket could not be
	// opened; it never fails or slows a render.
	sample *recent.Sampler

	// limits bound each rendered request: render.DefaultLimits, the body
	// held to what a queued delivery can carry over this connection.
	limits render.Limits

	mu       sync.Mutex
	compiled map[string]compiled // by endpoint key; bounded by maxCompiled
}

type compiled struct {
	updated   time.Time
	endpoint  *render.Endpoint
	templated map[string]bool // header names whose value holds macros
}

const maxCompiled = 10000

// newRenderer opens the renderer's stores; its queued log runs until
// logging ends.
func newRenderer(ctx context.Context, js jetstream.JetStream, log *slog.Logger, logging context.Context) (*renderer, error) {
	eps, err := endpoints.OpenStore(ctx, js)
	if err != nil {
		return nil, err
	}
	dls, err := inflight.OpenDeliveries(ctx, js)
	if err != nil {
		return nil, err
	}
	cache, err := endpoints.NewCache(ctx, eps, 0)
	if err != nil {
		return nil, err
	}
	var sample *recent.Sampler
	if rs, err := recent.OpenStore(ctx, js); err != nil {
		log.WarnContext(ctx, "recent events: no sample kept", "error", err)
	} else {
		sample = recent.NewSampler(rs, log)
		go sample.Run(ctx)
	}
	queued := inflight.NewQueuedLog(logging, js.Conn())
	return &renderer{js: js, endpoints: cache, deliveries: dls, queued: queued, later: newLaterLog(queued, nil, -1, log), log: log, tracer: stream.NewTracer(nil),
		limits: render.DefaultLimits().WithMaxPayload(js.Conn().MaxPayload()), compiled: map[string]compiled{}, sample: sample}, nil
}

func (r *renderer) handle(ctx context.Context, m jetstream.Msg) {
	if count := m.Headers().Get(stream.GroupHeader); count != "" {
		r.handleGroup(ctx, m, count)
		return
	}
	span := trace.SpanFromContext(ctx)
	ev, err := stream.DecodeEvent(m.Data())
	if err != nil {
		err = stream.Poison("undecodable event: %v", err)
	} else {
		err = ev.Check()
	}
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		r.dead.Reject(ctx, m, err, time.Second)
		return
	}
	if span.IsRecording() {
		span.SetAttributes(telemetry.EventID.String(ev.ID), telemetry.AccountID.String(ev.AccountID), telemetry.EventType.String(ev.Type))
	}
	meta, err := m.Metadata()
	if err != nil {
		r.log.ErrorContext(ctx, "event without metadata", "event_id", ev.ID, "error", err)
		span.SetStatus(codes.Error, "event without metadata")
		_ = m.NakWithDelay(time.Second)
		return
	}
	n, err := r.render(ctx, &ev, meta.Sequence.Stream, meta.NumDelivered > 1)
	if err != nil {
		r.log.WarnContext(ctx, "render failed; will retry", "event_id", ev.ID, "account_id", ev.AccountID, "error", err)
		span.SetStatus(codes.Error, err.Error())
		_ = m.NakWithDelay(time.Second) // a dependency (NATS): work waiting, not poison
		return
	}
	if span.IsRecording() {
		span.SetAttributes(telemetry.Outcome.String(telemetry.OutcomeRendered), telemetry.Deliveries.Int(n))
	}
	if r.log.Enabled(ctx, slog.LevelDebug) {
		r.log.DebugContext(ctx, "event rendered", "event_id", ev.ID, "account_id", ev.AccountID, "event_type", ev.Type, "deliveries", n)
	}
	_ = m.Ack()
	// After the ack, and never blocking: at most one event per account
	// and type every few seconds goes to the sample's own writer.
	r.sample.Offer(ev.AccountID, ev.Type, ev.ID, ev.Time, ev.Data)
}

// handleGroup renders the events of a group (pkg/stream group.go) in order
// and acks the message once all are rendered. A group whose framing does
// not decode is poison whole; an event of it that does not decode or check
// is dead-lettered alone, and the others are rendered.
func (r *renderer) handleGroup(ctx context.Context, m jetstream.Msg, count string) {
	span := trace.SpanFromContext(ctx)
	raws, err := stream.GroupEvents(m.Data(), count)
	if err != nil {
		err = stream.Poison("%v", err)
		span.SetStatus(codes.Error, err.Error())
		r.dead.Reject(ctx, m, err, time.Second)
		return
	}
	meta, err := m.Metadata()
	if err != nil {
		r.log.ErrorContext(ctx, "event group without metadata", "events", len(raws), "error", err)
		span.SetStatus(codes.Error, "event group without metadata")
		_ = m.NakWithDelay(time.Second)
		return
	}
	if span.IsRecording() {
		span.SetAttributes(telemetry.Events.Int(len(raws)))
	}
	rendered := make([]stream.Event, 0, len(raws))
	n := 0
	traces := stream.EventTraces(m.Headers(), len(raws)) // a group of unary calls: each event's own trace
	for i, raw := range raws {
		ev, err := stream.DecodeEvent(raw)
		if err == nil {
			err = ev.Check()
		}
		if err != nil {
			reason := fmt.Sprintf("undecodable event %d of a group of %d: %v", i, len(raws), err)
			id := stream.DeadLetterID(meta.Stream, meta.Sequence.Stream) + "." + strconv.Itoa(i)
			if err := r.dead.Add(ctx, m.Subject(), raw, id, reason); err != nil {
				r.log.WarnContext(ctx, "could not dead-letter an event of a group; will retry", "error", err)
				_ = m.NakWithDelay(time.Second)
				return
			}
			continue
		}
		queued, err := r.renderEvent(ctx, m.Subject(), traces, i, &ev, stream.GroupPlace(meta.Sequence.Stream, i), meta.NumDelivered > 1)
		if err != nil {
			r.log.WarnContext(ctx, "render failed; will retry", "event_id", ev.ID, "account_id", ev.AccountID, "error", err)
			span.SetStatus(codes.Error, err.Error())
			_ = m.NakWithDelay(time.Second) // the group comes back whole; what was queued is seen
			return
		}
		n += queued
		rendered = append(rendered, ev)
	}
	if span.IsRecording() {
		span.SetAttributes(telemetry.Outcome.String(telemetry.OutcomeRendered), telemetry.Deliveries.Int(n))
	}
	_ = m.Ack()
	for _, ev := range rendered {
		r.sample.Offer(ev.AccountID, ev.Type, ev.ID, ev.Time, ev.Data)
	}
}

// renderEvent is renderAt of event i of a group. When the group's events
// carry their own trace contexts (traces), an event after the first (the
// first's is the message's) is rendered in a span of its own caller's
// trace, linked to the message's.
func (r *renderer) renderEvent(ctx context.Context, subject string, traces []string, i int, ev *stream.Event, place string, redelivered bool) (int, error) {
	if i == 0 || traces == nil {
		return r.renderAt(ctx, ev, place, redelivered)
	}
	ctx, span := r.tracer.StartEvent(ctx, subject, traces[i])
	if span.IsRecording() {
		span.SetAttributes(telemetry.EventID.String(ev.ID), telemetry.AccountID.String(ev.AccountID), telemetry.EventType.String(ev.Type))
	}
	n, err := r.renderAt(ctx, ev, place, redelivered)
	stream.EndSpan(span, err)
	return n, err
}

// render queues the deliveries of one event, and returns how many it
// queued. A delivery that rendered is queued for the sender with no record
// (its queued job stands for it until the sender records it: see
// inflight.Deliveries); one that did not is recorded FAILED. Each publish is
// a PRODUCER span whose context the delivery message carries; they are
// pipelined and awaited together.
//
// An event delivered again (redelivered after a crash, or after its ack
// was lost) renders the same deliveries: the same ids, and the same create
// time (its event's, not the render's), so the same PENDING entry at the
// same history version. It first looks each delivery up (seen) and queues
// only those not seen. What a look-up cannot see (a delivery ended and
// already in the history store) is caught at two more places: the job's
// Nats-Msg-Id, within DELIVERIES' dedupe window, keeps it from being sent
// again; past that window (a redelivery more than two minutes late, or
// after a broker restart lost the window) it is sent again, at least once
// as documented, and its repeated PENDING entry, at a version below its
// ending's, changes nothing in the store.
func (r *renderer) render(ctx context.Context, ev *stream.Event, seq uint64, redelivered bool) (int, error) {
	return r.renderAt(ctx, ev, strconv.FormatUint(seq, 10), redelivered)
}

// renderAt is render of an event whose place in the stream (what its
// deliveries' ids are derived from) is place: its sequence, or its place in
// a group (stream.GroupPlace).
func (r *renderer) renderAt(ctx context.Context, ev *stream.Event, place string, redelivered bool) (int, error) {
	eps, err := r.endpoints.List(ctx, ev.AccountID, ev.Type)
	if err != nil {
		return 0, err
	}
	// pending is one pipelined publish: a queued job with its PRODUCER
	// span, or the record of a delivery that failed to render (no span).
	type pending struct {
		f         jetstream.PubAckFuture
		logged    <-chan error // instead of f: a queued entry in r.queued's batch
		span      trace.Span
		record    bool
		job       *delivery.Job // a queued job's, handed to r.later once stored
		body      []byte
		partition string
	}
	var (
		pubs   []pending
		ended  int // pubs[:ended] are awaited and their spans ended
		queued int
	)
	defer func() { // an early return: end the spans of publishes not awaited
		for _, p := range pubs[ended:] {
			p.span.End()
		}
	}()
	for _, ep := range eps {
		if !endpoint.Enabled(ep) && !endpoint.Holding(ep) {
			continue // an auto-disabled endpoint's deliveries are rendered and held (the sender holds them)
		}
		dlvID := id.Derive(id.Delivery, ev.Time, ev.ID, place, ep.Id)
		if redelivered {
			if done, err := r.seen(ctx, ev.AccountID, ep.Id, dlvID); err != nil {
				return 0, err
			} else if done {
				continue
			}
		}
		job, body, renderErr := r.job(ep, ev, dlvID)
		if renderErr != nil {
			reason := failureReason(renderErr)
			r.log.InfoContext(ctx, "delivery failed to render", "delivery_id", dlvID, "endpoint_id", ep.Id, "event_id", ev.ID, "reason", reason)
			failed := &postbackv1.Delivery{Id: dlvID, AccountId: ev.AccountID, EndpointId: ep.Id, EventId: ev.ID, EventType: ev.Type,
				CreateTime: timestamppb.New(ev.Time)}
			_ = delivery.RenderFailed(reason).Apply(failed, time.Now()) // a new delivery: always allowed
			f, err := r.deliveries.CreateAsync(&inflight.Record{Delivery: failed})
			if err != nil {
				return 0, err
			}
			pubs = append(pubs, pending{f: f, span: noop.Span{}, record: true})
			continue
		}
		subject := stream.DeliverySubject(ev.AccountID, ep.Id, dlvID)
		pctx, span := r.tracer.StartPublish(ctx, subject, telemetry.DeliveryID.String(dlvID), telemetry.EndpointID.String(ep.Id), telemetry.Attempt.Int(0))
		f, err := r.js.PublishMsgAsync(stream.NewJobMsg(pctx, subject, job, body, stream.FirstSendID(dlvID)))
		if err != nil {
			span.End()
			return 0, fmt.Errorf("publish delivery %s: %w", dlvID, err)
		}
		pubs = append(pubs, pending{f: f, span: span, job: job, body: body, partition: stream.Partition(ep.Id)})
		queued++
	}
	for i := 0; i < len(pubs); i++ { // an entry logged at once is appended and awaited too
		p := pubs[i]
		if p.logged != nil {
			select {
			case err := <-p.logged:
				if err != nil {
					ended = i + 1
					return 0, err
				}
			case <-ctx.Done():
				return 0, ctx.Err()
			}
			ended = i + 1
			continue
		}
		select {
		case ack := <-p.f.Ok():
			p.span.End()
			if p.job != nil {
				logged, err := r.later.add(p.partition, ack.Sequence, p.job, p.body)
				if err != nil {
					ended = i + 1
					return 0, err
				}
				if logged != nil { // logged at once: stored before the event is acked
					pubs = append(pubs, pending{logged: logged, span: noop.Span{}})
				}
			}
		case err := <-p.f.Err():
			if !p.record || !stream.IsExists(err) {
				stream.EndSpan(p.span, err)
				ended = i + 1
				return 0, fmt.Errorf("publish delivery: %w", err)
			}
			p.span.End() // a failed render recorded by an earlier pass
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		ended = i + 1
	}
	return queued, nil
}

// seen reports whether a delivery of a redelivered event was queued or
// ended by an earlier pass: it has a record or a queued job (Lookup), or
// a final entry still waiting for the history writer (Pending, or in a
// batch: Concluded), as a delivery ended at its first send has until the
// writer stores it. An earlier pass's own PENDING entry is not enough: its
// job's publish may have failed (that is why the event came back), and
// only queueing the job again delivers it.
func (r *renderer) seen(ctx context.Context, accountID, endpointID, dlvID string) (bool, error) {
	_, err := r.deliveries.Lookup(ctx, accountID, endpointID, dlvID)
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, inflight.ErrNotFound) {
		return false, err
	}
	logged, err := r.deliveries.Pending(ctx, dlvID)
	if errors.Is(err, inflight.ErrNotFound) {
		logged, err = r.deliveries.Concluded(ctx, dlvID)
	}
	switch {
	case err == nil:
		return delivery.Final(logged.Delivery.Status), nil
	case errors.Is(err, inflight.ErrNotFound):
		return false, nil
	default:
		return false, err
	}
}

// maxReason bounds the reason of a delivery that failed to render: an
// error may quote a template or a rendered URL.
const maxReason = 1 << 10

// failureReason is err's text, at most maxReason bytes (cut at a character).
func failureReason(err error) string {
	s := err.Error()
	if len(s) <= maxReason {
		return s
	}
	cut := maxReason - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// job renders one endpoint's request for the event and encodes it. A
// request over the limits of a rendered request (r.limits: the render
// stops there, so memory stays bounded whatever the template and the
// event), or too large for one message, fails to render: retrying renders
// the same bytes, so the delivery is FAILED with the reason and the event
// acked.
func (r *renderer) job(ep *postbackv1.Endpoint, ev *stream.Event, dlvID string) (*delivery.Job, []byte, error) {
	c, err := r.compile(ep)
	if err != nil {
		return nil, nil, fmt.Errorf("endpoint configuration no longer renders: %w", err)
	}
	req, err := c.endpoint.RenderWithin(ev.Data, r.limits)
	if err != nil {
		return nil, nil, err
	}
	job := &delivery.Job{
		DeliveryID: dlvID, AccountID: ev.AccountID, EndpointID: ep.Id, EventID: ev.ID, EventType: ev.Type,
		Created: ev.Time, Published: ev.Time, Method: req.Method, URL: req.URL, Body: req.Body, ContentType: req.ContentType,
		EndpointVersion: endpoint.Version(ep), Queued: true,
	}
	for _, h := range req.Headers {
		if c.templated[h.Name] && !h.Secret {
			job.Headers = append(job.Headers, delivery.Header{Name: h.Name, Value: h.Value})
		}
	}
	if err := job.Authenticate(r.jobKey); err != nil {
		return nil, nil, err
	}
	body, err := job.MarshalBinary()
	if err != nil {
		return nil, nil, fmt.Errorf("encode delivery %s: %w", dlvID, err)
	}
	if limit := r.js.Conn().MaxPayload() - render.JobHeadroom; limit > 0 && int64(len(body)) > limit {
		return nil, nil, fmt.Errorf("the rendered request is %d bytes, over the %d bytes a queued delivery may hold", len(body), limit)
	}
	return job, body, nil
}

// compile returns the endpoint's compiled templates, cached by key and
// update time.
func (r *renderer) compile(ep *postbackv1.Endpoint) (compiled, error) {
	key := endpoints.Key(ep)
	updated := ep.GetUpdateTime().AsTime()
	r.mu.Lock()
	c, ok := r.compiled[key]
	r.mu.Unlock()
	if ok && c.updated.Equal(updated) {
		return c, nil
	}
	re, err := render.Compile(endpoint.Spec(ep))
	if err != nil {
		return compiled{}, err
	}
	c = compiled{updated: updated, endpoint: re, templated: map[string]bool{}}
	for _, h := range ep.Headers {
		if h.Secret {
			continue
		}
		if t, err := template.Parse(h.Value, re.EventType()); err == nil {
			if _, literal := t.Literal(); !literal {
				c.templated[h.Name] = true
			}
		}
	}
	r.mu.Lock()
	if len(r.compiled) >= maxCompiled {
		clear(r.compiled)
	}
	r.compiled[key] = c
	r.mu.Unlock()
	return c, nil
}
