// Package historian is the history writer: it takes the record changes
// the sender, retry service, renderer and gateway log to the HISTORY stream
// (pkg/inflight history.go) and applies them to the delivery history store in
// batches, and it enforces retention by dropping the store's whole days.
//
// Design and failure policy:
//
//   - Sending never waits for it. Changes wait in the stream (work queue,
//     discard new, bounded) while the store is slow or down; the writer
//     retries the same batch, with backoff, telling JetStream the messages
//     are still in progress, and acks a batch only once the store has it.
//     A crash (kill -9) between the store's commit and the acks redelivers
//     the batch, which the store applies as a no-op: rows are upserted by
//     version and attempts keyed by (delivery id, number).
//   - Several writers may run (one per replica): they share the durable
//     consumer, and any order of their batches ends in the same rows.
//   - A message may carry one change, or a batch of the renderer's PENDING
//     entries or of the sender's final ones (pkg/inflight queuedlog.go);
//     either way its changes are stored
//     at most Batch at a time and the message is acked once all are.
//   - Held changes: a PENDING change (queued, or waiting for its limits)
//     is held in the writer until Hold (1 s) after it was made (its
//     version's time; at most Hold after it was fetched), until a later
//     change of its delivery comes, and both go to the store in one write,
//     which keeps the later: a change that is followed within a second
//     would otherwise cost the store an insert and then an update of every
//     index it touched. (The renderer logs a queued delivery only once it
//     has waited two seconds, so its entries come already due.) A held
//     change's message stays unacked (and readable by id in the stream)
//     meanwhile, so a crash loses nothing; a clean stop stores what it
//     holds first. So ListDeliveries shows a deferred delivery up to Hold
//     later (GetDelivery finds it at once, from the stream); a finished one
//     is as prompt as ever. At most maxHeld changes are held: past that
//     the oldest go.
//   - Deferred while the send path is busy (pace.go): while jobs are queued
//     on DELIVERIES at BusyRate (2,000) a second or more, as in a burst,
//     the writer holds every change, fetched and unacked, until the rate
//     falls or Defer (3 s, at most a third of the ack wait) has passed since
//     it fetched the oldest, or it holds maxHeld. The store's writes are
//     the writer's main cost, and on a shared machine they took the CPU the
//     burst's sending needed; held, they go after it in larger writes. So in
//     a burst ListDeliveries trails sending by up to Defer (GetDelivery reads
//     the stream, as for any held change); a crash loses nothing (the
//     changes are unacked). A failed look at the stream counts as not busy.
//   - A message that is not a history entry is dead-lettered, never retried
//     forever, and never holds up the batch it came in. A change the store
//     refuses for what it holds (history.ErrRefused: a value a column
//     cannot take) is found by storing the batch in halves and set aside in
//     the dead letters; the rest of its batch is stored.
//   - Endpoint health (health.go): once a batch is stored, it is handed
//     (without waiting) to the health keeper, whose goroutine updates each
//     endpoint's health from its attempts, publishes operational events and
//     may auto-disable an endpoint. It never holds up the history: a
//     failure there is logged and the keeper goes on.
//   - Its lag (the age of the oldest change in the batch it just stored) and
//     the changes still waiting are metrics (postback.history.lag,
//     postback.history.pending) with an alert in docs/operations.md.
package historian

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/protobuf/proto"

	"github.com/postback-dev/postback/pkg/delivery"
	"github.com/postback-dev/postback/pkg/history"
	"github.com/postback-dev/postback/pkg/inflight"
	"github.com/postback-dev/postback/pkg/stream"
	"github.com/postback-dev/postback/pkg/telemetry"
)

// Config is what the history writer needs.
type Config struct {
	NATS    *nats.Conn // an open connection; when nil, NATSURL is dialled
	NATSURL string
	Layout  stream.Options
	// Store is where the history goes (required; the caller closes it).
	Store history.Store
	// Batch is the most changes stored at once (default 1000).
	Batch int
	// Linger is how long a batch waits to fill (default 50 ms).
	Linger time.Duration
	// Hold is how long a PENDING change waits for a later change of its
	// delivery, to be stored with it (default DefaultHold; negative: none;
	// at most a third of the ack wait, so a held change is never handed out
	// again meanwhile).
	// Other changes (a RETRYING one lasts 15 s at least) are not held.
	Hold time.Duration
	// AckWait is how long a fetched change may go unacked before JetStream
	// hands it to another writer (default stream.AckWait, the other
	// services'), so what a dead writer held is back in another's hands
	// within seconds. A live writer marks its changes in progress every
	// third of it while the store takes, or refuses, a write, so a slow
	// store does not get them twice.
	AckWait time.Duration
	// Defer is how long the writer may hold every change while the send
	// path is busy, jobs being queued at BusyRate a second or more (default
	// DefaultDefer; negative: never; at most a third of the ack wait). A
	// burst's history is then stored after it, in larger writes, and the
	// CPU goes to sending meanwhile.
	Defer time.Duration
	// BusyRate is the rate of queued jobs (DELIVERIES messages a second)
	// at which the send path counts as busy (default 2,000).
	BusyRate int
	// ExpireEvery is how often whole days past the retention are dropped
	// (default 1 h); the retention is Layout.Retention.
	ExpireEvery time.Duration
	Logger      *slog.Logger
	// MeterProvider receives the writer's metrics (nil: the global one).
	MeterProvider metric.MeterProvider
}

// DefaultDefer is the writer's default Defer.
const DefaultDefer = 3 * time.Second

// DefaultHold is the writer's default Hold: most postbacks end within it
// of being queued, even in a burst.
const DefaultHold = time.Second

// Run writes the history until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Store == nil {
		return errors.New("historian: no history store")
	}
	log := telemetry.Logger(cfg.Logger)
	if cfg.Batch <= 0 {
		cfg.Batch = 1000
	}
	if cfg.Linger <= 0 {
		cfg.Linger = 50 * time.Millisecond
	}
	if cfg.Hold == 0 {
		cfg.Hold = DefaultHold
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = stream.AckWait
	}
	cfg.Hold = min(cfg.Hold, cfg.AckWait/3)
	if cfg.Defer == 0 {
		cfg.Defer = DefaultDefer
	}
	cfg.Defer = min(cfg.Defer, cfg.AckWait/3)
	if cfg.BusyRate <= 0 {
		cfg.BusyRate = 2000
	}
	if cfg.ExpireEvery <= 0 {
		cfg.ExpireEvery = time.Hour
	}
	if cfg.Layout.Retention <= 0 {
		cfg.Layout.Retention = stream.DefaultOptions().Retention
	}
	js, closeNATS, err := stream.Open(ctx, cfg.NATS, cfg.NATSURL, "postback-historian", cfg.Layout)
	if err != nil {
		return fmt.Errorf("historian: %w", err)
	}
	defer closeNATS()
	c, err := stream.Consumer(ctx, js, stream.HistoryConsumer, cfg.AckWait, 4*cfg.Batch)
	if err != nil {
		return fmt.Errorf("historian: %w", err)
	}
	w := &writer{cfg: cfg, log: log, c: c, pace: &sendPace{js: js, rate: cfg.BusyRate}}
	if w.dead, err = stream.NewDeadLetters(js, stream.HistoryConsumer, log, cfg.MeterProvider); err != nil {
		return fmt.Errorf("historian: %w", err)
	}
	if err := w.metrics(cfg.MeterProvider); err != nil {
		return fmt.Errorf("historian: %w", err)
	}
	if w.health, err = newHealthKeeper(ctx, js, log); err != nil {
		return fmt.Errorf("historian: %w", err)
	}
	go w.health.run(ctx)
	if err := watchHealthMetrics(ctx, w.health.health, cfg.Store, cfg.MeterProvider, log); err != nil {
		return fmt.Errorf("historian: %w", err)
	}
	go w.expire(ctx)
	go stream.Keep(ctx, js, stream.HistoryStream)
	log.Info("history writer consuming", "batch", cfg.Batch, "retention", cfg.Layout.Retention)
	for ctx.Err() == nil {
		if err := w.once(ctx); err != nil && ctx.Err() == nil {
			log.Warn("history batch failed; fetching again", "error", err)
			sleep(ctx, time.Second)
		}
	}
	// Stopping: what is held is stored now rather than waiting out its
	// messages' ack wait in another writer.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := w.flush(fctx, true); err != nil {
		log.Warn("storing the held changes at stop failed; they come back from the stream", "error", err)
	}
	return nil
}

type writer struct {
	cfg    Config
	log    *slog.Logger
	c      jetstream.Consumer
	dead   *stream.DeadLetters
	health *healthKeeper // endpoint health, auto-disable, operational events (health.go)

	pace  *sendPace       // how fast jobs are queued (Defer)
	held  []heldChange    // fetched, not yet stored, in the order they came
	moved map[string]bool // deliveries with a held change past PENDING: stored at once, their PENDING ones with it

	lagMicros atomic.Int64 // age of the oldest change of the last stored batch
	pending   atomic.Int64 // changes waiting behind it
	stored    metric.Int64Counter
	failures  metric.Int64Counter
}

func (w *writer) metrics(mp metric.MeterProvider) error {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter("github.com/postback-dev/postback/services/historian")
	var err error
	if w.stored, err = m.Int64Counter("postback.history.stored", metric.WithDescription("record changes stored in the delivery history")); err != nil {
		return err
	}
	if w.failures, err = m.Int64Counter("postback.history.failures", metric.WithDescription("batches the history store refused (retried)")); err != nil {
		return err
	}
	// At 0 from start-up, so the first failure after a restart shows in
	// increase() (docs/operations.md, "Zero series").
	w.stored.Add(context.Background(), 0)
	w.failures.Add(context.Background(), 0)
	_, err = m.Float64ObservableGauge("postback.history.lag", metric.WithUnit("s"),
		metric.WithDescription("age of the oldest change in the history writer's last stored batch"),
		metric.WithFloat64Callback(func(_ context.Context, o metric.Float64Observer) error {
			o.Observe(float64(w.lagMicros.Load()) / 1e6)
			return nil
		}))
	if err != nil {
		return err
	}
	_, err = m.Int64ObservableGauge("postback.history.pending",
		metric.WithDescription("record changes waiting for the history writer"),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(w.pending.Load())
			return nil
		}))
	return err
}

// heldChange is a change fetched and not yet stored, with its message.
type heldChange struct {
	entry history.Entry
	msg   *heldMsg
	at    time.Time // when its message was taken
}

// heldMsg is a fetched message: acked once its changes are all stored.
type heldMsg struct {
	m      jetstream.Msg
	left   int       // its changes not yet stored
	stamp  time.Time // when it was published
	length uint64    // changes waiting behind it then (NumPending)
}

// maxHeld bounds the changes held in the writer (Hold): past it the
// oldest are stored at once.
const maxHeld = 20_000

// once fetches one batch, holds its changes, and stores and acks what is
// due (flush).
func (w *writer) once(ctx context.Context) error {
	batch, err := w.c.Fetch(w.cfg.Batch, jetstream.FetchMaxWait(w.cfg.Linger))
	if err != nil {
		return err
	}
	now, fetched := time.Now(), 0
	for m := range batch.Messages() {
		es, err := inflight.HistoryEntries(m.Data(), m.Headers())
		if err != nil {
			w.dead.Reject(ctx, m, stream.Poison("not a history entry: %v", err), time.Second)
			continue
		}
		hm := &heldMsg{m: m, left: len(es), stamp: now}
		if md, err := m.Metadata(); err == nil {
			hm.stamp, hm.length = md.Timestamp, md.NumPending
		}
		for _, e := range es {
			w.held = append(w.held, heldChange{entry: e, msg: hm, at: now})
			if e.Delivery.GetStatus() != delivery.Pending {
				if w.moved == nil {
					w.moved = map[string]bool{}
				}
				w.moved[e.Delivery.GetId()] = true
			}
		}
		fetched++
	}
	if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && fetched == 0 {
		return err
	}
	if fetched == 0 && len(w.held) == 0 {
		w.lagMicros.Store(0)
		w.pending.Store(0)
		return nil
	}
	return w.flush(ctx, false)
}

// flush stores the held changes that are due (all of them with all set):
// every change but a PENDING one, with the PENDING ones of its delivery;
// those held for Hold; and the oldest past maxHeld. The store keeps the latest change of each delivery
// in a write, so a delivery queued and ended within Hold costs it one row
// write. A message is acked once all its changes are stored.
func (w *writer) flush(ctx context.Context, all bool) error {
	if len(w.held) == 0 {
		return nil
	}
	now := time.Now()
	if !all && w.cfg.Defer > 0 && len(w.held) < maxHeld && now.Sub(w.held[0].at) < w.cfg.Defer && w.pace.busy(ctx, now) {
		return nil
	}
	over := len(w.held) - maxHeld
	var due, keep []heldChange
	for i, h := range w.held {
		if all || w.cfg.Hold < 0 || i < over || w.moved[h.entry.Delivery.GetId()] || now.Sub(h.at) >= w.cfg.Hold ||
			now.Sub(time.UnixMicro(h.entry.Version)) >= w.cfg.Hold || h.entry.Delivery.GetStatus() != delivery.Pending {
			due = append(due, h)
		} else {
			keep = append(keep, h)
		}
	}
	if len(due) == 0 {
		return nil
	}
	msgs := make([]jetstream.Msg, 0, len(w.held))
	seen := map[*heldMsg]bool{}
	for _, h := range w.held {
		if !seen[h.msg] {
			seen[h.msg] = true
			msgs = append(msgs, h.msg.m) // all held: kept in progress while the store is retried
		}
	}
	// A delivery's changes go in one write (its entries side by side, never
	// split between writes), and the store takes about Batch at once.
	entries := make([]history.Entry, len(due))
	for i, h := range due {
		entries[i] = h.entry
	}
	slices.SortStableFunc(entries, func(a, b history.Entry) int { return strings.Compare(a.Delivery.GetId(), b.Delivery.GetId()) })
	for rest := entries; len(rest) > 0; {
		n := min(len(rest), w.cfg.Batch)
		for n < len(rest) && rest[n].Delivery.GetId() == rest[n-1].Delivery.GetId() {
			n++
		}
		if err := w.storeSplitting(ctx, msgs, rest[:n]); err != nil {
			return err
		}
		rest = rest[n:]
	}
	if w.health != nil {
		w.health.hand(entries)
	}
	var oldest time.Time
	var length uint64
	for _, h := range due {
		if oldest.IsZero() || h.msg.stamp.Before(oldest) {
			oldest = h.msg.stamp
		}
		length = max(length, h.msg.length)
		if h.msg.left--; h.msg.left == 0 {
			_ = h.msg.m.Ack() // a lost ack redelivers the change: a no-op in the store
		}
	}
	w.held = keep
	if len(keep) == 0 {
		clear(w.moved)
	} else {
		for _, h := range due {
			delete(w.moved, h.entry.Delivery.GetId())
		}
	}
	w.stored.Add(ctx, int64(len(due)))
	w.lagMicros.Store(time.Since(oldest).Microseconds())
	w.pending.Store(int64(length) + int64(len(keep)))
	return nil
}

// storeSplitting stores entries; when the store refuses them for what they
// hold (history.ErrRefused), it stores each half in turn, down to the one
// entry refused on its own, which is set aside in the dead letters. So a
// bad change costs about 2·log2(batch) tries, and the others are stored.
func (w *writer) storeSplitting(ctx context.Context, msgs []jetstream.Msg, entries []history.Entry) error {
	err := w.store(ctx, msgs, entries)
	if !errors.Is(err, history.ErrRefused) {
		return err
	}
	if len(entries) == 1 {
		return w.setAside(ctx, entries[0], err)
	}
	half := len(entries) / 2
	if err := w.storeSplitting(ctx, msgs, entries[:half]); err != nil {
		return err
	}
	return w.storeSplitting(ctx, msgs, entries[half:])
}

// setAside moves a change the store refuses for good to the dead letters,
// with the store's reason, so an operator can see it (ListDeadLetters).
func (w *writer) setAside(ctx context.Context, e history.Entry, refused error) error {
	d := e.Delivery
	data, _ := proto.Marshal(d)                // what can be encoded of it; the reason says the rest
	subject := strings.Map(func(r rune) rune { // a header value: no control characters
		if r < ' ' {
			return '?'
		}
		return r
	}, stream.HistorySubject(d.GetAccountId(), d.GetEndpointId(), d.GetId()))
	if err := w.dead.Add(ctx, subject, data, stream.SetAsideID(d.GetId(), e.Version), "the history store refuses this change: "+refused.Error()); err != nil {
		return err
	}
	w.log.Error("history store refuses a change for good; it is in the dead letters", "delivery_id", d.GetId(), "version", e.Version, "error", refused)
	return nil
}

// store appends a batch, retrying while the store fails, and keeps the
// messages in progress meanwhile so no other writer takes them. A refusal
// for what the entries hold (history.ErrRefused) is returned at once.
func (w *writer) store(ctx context.Context, msgs []jetstream.Msg, entries []history.Entry) error {
	done := make(chan struct{})
	defer close(done)
	go inProgress(msgs, w.cfg.AckWait/3, done)
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		err := w.cfg.Store.Append(ctx, entries)
		if err == nil || errors.Is(err, history.ErrRefused) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		w.failures.Add(ctx, 1)
		w.log.Warn("history store refused a batch; changes wait in the stream", "changes", len(entries), "error", err, "retry_in", wait)
		sleep(ctx, wait)
	}
}

// inProgress marks msgs in progress every tick until done is closed.
func inProgress(msgs []jetstream.Msg, tick time.Duration, done <-chan struct{}) {
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			for _, m := range msgs {
				_ = m.InProgress()
			}
		}
	}
}

// expire drops the days past the retention, at start and every ExpireEvery.
func (w *writer) expire(ctx context.Context) {
	t := time.NewTicker(w.cfg.ExpireEvery)
	defer t.Stop()
	for {
		before := time.Now().Add(-w.cfg.Layout.Retention)
		n, err := w.cfg.Store.Expire(ctx, before)
		switch {
		case err != nil && ctx.Err() == nil:
			w.log.Warn("dropping expired history failed; trying again later", "error", err)
		case n > 0:
			w.log.Info("dropped expired history", "days", n, "before", before.UTC().Format(time.DateOnly))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
