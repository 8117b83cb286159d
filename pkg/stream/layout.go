// Package stream is the only package that knows Postback's NATS layout: the
// JetStream streams, their subjects, the KV buckets, and how messages cross
// them with trace context. Everything is created idempotently by Ensure at
// start-up, by every service, so no service depends on another having started.
//
// The layout (retention, dedupe window and why):
//
//	EVENTS      events.<event_type>.<partition>
//	            The partition token is a hash of the account id, so one
//	            account's events stay in one partition, in order. The renderer
//	            reads each partition through its own durable consumer
//	            (renderer-p<N>, events.*.<N>) into one pool of workers that
//	            takes the partitions in turn (WorkAll), so one account's burst
//	            waits in its own partition's line; its "renderer" consumer
//	            reads events.<event_type>, the subjects of earlier versions.
//	            A message is one event, or a group of up to 32 events of one
//	            subject: consecutive ones of a PublishBatch, or unary
//	            Publishes that came while one of their subject was being
//	            stored (group.go: the stream's cost follows its messages,
//	            not their bytes).
//	            The stream stores its messages one at a time in arrival
//	            order, so the gateway holds PublishBatch to a window of
//	            unacknowledged messages (services/gateway intake.go): another
//	            account's event queues behind at most that many of a burst's.
//	            Work queue: a message leaves when the renderer acks it, which
//	            it does only after every delivery of its events is durable.
//	            Discard new: when full, Publish fails (the gateway answers
//	            ResourceExhausted) instead of silently dropping old events.
//	idem.<account_id>.<hash of the idempotency key>
//	            The marker of an idempotency key: the first event id
//	            published with it, stored in one atomic batch with that
//	            event, expected to be the subject's first message (so a key
//	            already used fails the batch whole), and kept for the dedupe
//	            window (Options.EventDedupe, default 1h) by its per-message
//	            TTL. No consumer reads idem.>, so the work queue keeps a
//	            marker until its TTL, across restarts of any process and of
//	            the server (services/gateway idempotency.go). Markers count
//	            towards MaxEvents.
//
//	DELIVERIES  deliveries.<partition>.<account_id>.<endpoint_id>.<delivery_id>
//	                                                   first sends, for the sender
//	            failed.<partition>.<endpoint_id>       failed attempts for retry
//	            Work queue, discard new, dedupe 2m: every hop publishes with a
//	            Nats-Msg-Id derived from the delivery id and attempt number, so
//	            a message republished after a crash is dropped, not sent twice.
//	            The partition token (hash of the endpoint id mod Partitions)
//	            lets several consumers share the load while one endpoint always
//	            lands in the same partition. The sender reads first sends
//	            through one durable consumer per partition (sender-p<N>,
//	            deliveries.<N>.>), each with its own pull buffer, into one
//	            pool of workers that takes the partitions in turn (WorkAll):
//	            a burst queued for one endpoint waits in its own partition's
//	            line while the other partitions' jobs go past it. (Jobs of
//	            endpoints that share the burst's partition still wait behind
//	            it, and so does everything behind the renderer's intake of
//	            the burst's events: EVENTS is read in order.)
//	            A first send is queued on its delivery's own subject because
//	            it is that delivery's record until the sender writes one: the
//	            renderer writes no record for a delivery that rendered (one
//	            stored message fewer per delivery — the bucket's per-key
//	            bookkeeping and a second publish made it ~20% of the whole
//	            pipeline's CPU), and Deliveries reads a queued job as a
//	            PENDING record, found by id and listed by account or endpoint
//	            with subject filters, as records are. (Subjects of the older
//	            deliveries.<partition>.<endpoint_id> form still reach the
//	            sender; their deliveries have records.)
//
//	SCHEDULES   schedules.<delivery_id>                one pending schedule per delivery
//	            retries.<partition>.<endpoint_id>      what a schedule fires
//	            JetStream message schedules (nats-server >= 2.12): the retry
//	            service (and the sender, to wait for an endpoint's limits)
//	            publishes a definition with "Nats-Schedule: @at <RFC 3339 with
//	            fractions>"; at that time the server publishes its body to the
//	            retries subject and purges the definition. Nothing waits in a
//	            process's memory: a restart of any service or of the server
//	            loses no retry. Work queue. The server refuses discard-new on a
//	            stream with schedules, so this stream has no message or byte
//	            limit: it is bounded by the account's JetStream storage, where a
//	            publish fails rather than dropping old schedules.
//
//	ATTEMPTS    attempts.<account_id>.<delivery_id>
//	            History: every attempt a later attempt replaced (a delivery's
//	            latest attempt is kept in its record, written with its state,
//	            so a delivery that succeeds at once writes nothing here),
//	            limits retention with MaxAge = Options.AttemptsAge (default
//	            24 h), discard old. The history store has each of them too
//	            (it came with the change it was written with), and
//	            ListAttempts reads both: NATS keeps the attempts of the
//	            deliveries being worked on, not the retention.
//
//	HISTORY     history.<account_id>.<endpoint_id>.<delivery_id>
//	            Every change of a delivery record, on its way to the history
//	            store (pkg/inflight history.go): the history writer's work queue, discard
//	            new, bounded by Options.MaxHistory. A store that is slow or
//	            down makes changes wait here, never a send; a change still
//	            waiting is read by id (Deliveries.Pending). Also
//	            history.queued.<n>: a batch of the renderer's PENDING entries
//	            of deliveries still queued 2 s after they were (pkg/inflight
//	            queuedlog.go, services/renderer queued.go: the sender's ack
//	            floor, SenderAckFloor, tells the others), never read by id;
//	            history.done.<n>: a batch
//	            of the sender's final entries of deliveries ended at their
//	            first send, naming them in a header (Deliveries.Concluded).
//
//	DEADLETTERS deadletter.<consumer>
//	            Messages no service can process, each with why (see
//	            deadletter.go): limits retention, MaxAge = Options.Retention,
//	            discard old. A poison message never loops.
//
//	OPERATIONS  operations.<account_id>.<type>     e.g. operations.acme.endpoint.disabled
//	            Operational events (pkg/opsevents): endpoint.failing,
//	            endpoint.disabled, endpoint.recovered, delivery.dead, one
//	            message each, published by the history writer as it sees
//	            them happen. Limits retention, MaxAge 7 days, discard old,
//	            dedupe 2m (each event's id is its Nats-Msg-Id, so a writer
//	            that publishes one twice after a crash stores it once).
//	            Read by operators with core or JetStream subscriptions and
//	            by OperationsService.WatchOperationalEvents, through
//	            ephemeral ordered consumers: nothing here is work.
//
//	KV postback-endpoint-health   <endpoint_id>
//	            Each endpoint's run of failed attempts, last success and
//	            last failure (pkg/endpointhealth), kept by the history
//	            writer with compare-and-set; read by the gateway (the
//	            Endpoint's health block) and /metrics.
//	KV postback-accounts    <account_id>
//	            Each account's settings (the auto-disable default).
//	KV postback-endpoints   ep.<account_id>.<event_type>.<endpoint_id>
//	            Endpoint configuration, keyed so the renderer finds "this
//	            account's endpoints for this event type" by prefix.
//	KV postback-deliveries  <account_id>.<endpoint_id>.<delivery_id>
//	            The current state of each delivery, its rendered job and its
//	            latest attempt, from its first outcome (or deferral, or
//	            cancellation) on — before that its queued job stands for it;
//	            found by id alone or listed per endpoint with subject
//	            filters. The hot state only: a final record carries a
//	            per-message TTL (Deliveries.Grace, default 10 minutes) and
//	            is then read from the history store, so the bucket follows
//	            the work in flight, not the retention (Options.Retention
//	            stays its backstop MaxAge).
//	KV postback-recent-events  <account_id>.<event_type>
//	            A small sample of each account's recent events of a type
//	            (pkg/recent): the last few (5) with their id, accept time
//	            and data, for the console's preview with a real event. The
//	            renderer writes a key at most every ~10 s, off the render's
//	            path, and skips an event whose data is over 64 KiB; a
//	            failed write is dropped (it is a sample, not a log). Bounded:
//	            MaxAge RecentEventsAge (7 days) and a per-value size cap. Read
//	            by the gateway (EventService.ListRecentEvents).
//	keep.<STREAM>  (EVENTS, DELIVERIES, SCHEDULES, HISTORY)
//	            One keeper message per work stream, on a subject no
//	            consumer reads, published again every second, every 100 ms
//	            while the stream is busy (with a subject roll-up, so there
//	            is one) by the services that consume the stream, so that
//	            acks never empty the stream's newest file block: emptying
//	            it made the file store roll a new block for nearly every
//	            message (keep.go).
//
// Every consumer is a durable pull consumer with explicit ack; a message is
// acked only after its effect is durable.
package stream

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Stream, subject and bucket names.
const (
	EventsStream     = "EVENTS"
	DeliveriesStream = "DELIVERIES"
	SchedulesStream  = "SCHEDULES"
	AttemptsStream   = "ATTEMPTS"

	EndpointsBucket  = "postback-endpoints"
	DeliveriesBucket = "postback-deliveries"

	OperationsStream = "OPERATIONS"
	HealthBucket     = "postback-endpoint-health"
	AccountsBucket   = "postback-accounts"
	// RecentEventsBucket keeps a small sample of recent events per
	// account and event type (pkg/recent).
	RecentEventsBucket = "postback-recent-events"
	// RecentEventsAge is how long a sample is kept after its last write.
	RecentEventsAge = 7 * 24 * time.Hour
	// RecentEventsMaxValue bounds one key's value (pkg/recent keeps a few
	// events of at most 64 KiB of data each within it).
	RecentEventsMaxValue = 512 << 10
	// OperationsAge is how long OPERATIONS keeps an event.
	OperationsAge = 7 * 24 * time.Hour

	// Durable consumer names.
	RendererConsumer     = "renderer"
	SenderConsumer       = "sender"
	SenderRetryConsumer  = "sender-retries"
	RetryConsumer        = "retry"
	DefaultPartitions    = 16
	deliveryDedupeWindow = 2 * time.Minute
)

// Options size the layout.
type Options struct {
	// Replicas for every stream and bucket (1 standalone, 3 in production).
	Replicas int
	// EventDedupe is the idempotency window of Publish.
	EventDedupe time.Duration
	// Retention is how long delivery records are kept at most.
	Retention time.Duration
	// AttemptsAge is how long ATTEMPTS keeps an attempt that a later one
	// replaced in its delivery's record (0 = DefaultAttemptsAge, never
	// beyond Retention). The history store has it once the writer has
	// stored the change that carried it; ListAttempts reads both, so NATS
	// holds the attempts of deliveries in flight, not a month of them.
	AttemptsAge time.Duration
	// MaxEvents and MaxDeliveries bound the work streams (0 = unlimited);
	// when full, publishes fail instead of dropping data.
	MaxEvents, MaxDeliveries int64
	// MaxHistory bounds the record changes waiting for the history writer
	// (0 = DefaultMaxHistory); when full, record writes fail (and the work
	// that made them is retried) rather than a change being lost.
	MaxHistory int64
	// Grace is how long a final delivery record stays in the hot state
	// before readers find it in the history store (0 = DefaultGrace).
	Grace time.Duration
	// Memory selects memory storage (tests); the default is file storage.
	Memory bool
}

// DefaultAttemptsAge is how long ATTEMPTS keeps a replaced attempt: far
// longer than the history writer is ever behind.
const DefaultAttemptsAge = 24 * time.Hour

// DefaultMaxHistory is how many record changes may wait for the history
// writer: at 5,000 changes a second, well over half an hour of a store
// being down.
const DefaultMaxHistory = 10_000_000

// DefaultOptions are the standalone defaults.
func DefaultOptions() Options {
	return Options{Replicas: 1, EventDedupe: time.Hour, Retention: 30 * 24 * time.Hour}
}

// Subjects.

// EventSubject is the subject an account's event of the given type is
// published on: events.<event_type>.<partition of the account>.
func EventSubject(eventType, accountID string) string {
	return "events." + eventType + "." + Partition(accountID)
}

// MarkerSubject is where the marker of an account's idempotency key is
// kept: idem.<account>.<keyHash>, keyHash being a subject token made from
// the key (the gateway's).
func MarkerSubject(accountID, keyHash string) string {
	return "idem." + accountID + "." + keyHash
}

// Partition is the partition token of an endpoint (or, for events, of an
// account).
func Partition(id string) string {
	h := fnv.New32a()
	h.Write([]byte(id))
	return strconv.Itoa(int(h.Sum32() % DefaultPartitions))
}

// DeliverySubject is where the renderer queues a delivery's first send:
// one subject per delivery, so a delivery with no record yet is found (and
// listed per account or endpoint) by its queued job.
func DeliverySubject(accountID, endpointID, deliveryID string) string {
	return "deliveries." + Partition(endpointID) + "." + accountID + "." + endpointID + "." + deliveryID
}

// FailedSubject is where a failed attempt goes for the retry service.
func FailedSubject(endpointID string) string {
	return "failed." + Partition(endpointID) + "." + endpointID
}

// RetrySubject is what a schedule fires for an endpoint.
func RetrySubject(endpointID string) string {
	return "retries." + Partition(endpointID) + "." + endpointID
}

// ScheduleSubject holds the one pending schedule of a delivery.
func ScheduleSubject(deliveryID string) string { return "schedules." + deliveryID }

// OperationsSubject is where an account's operational event of a type
// ("endpoint.disabled") is published: operations.<account>.<type>.
func OperationsSubject(accountID, eventType string) string {
	return "operations." + accountID + "." + eventType
}

// AttemptSubject holds a delivery's attempts.
func AttemptSubject(accountID, deliveryID string) string {
	return "attempts." + accountID + "." + deliveryID
}

// Ensure creates or updates every stream and bucket. It is safe to call from
// every service at every start. Services that start together against a new
// replicated layout can make each other's creates time out while the
// cluster places the streams, so a failed pass is tried again (for up to a
// minute) rather than ending the process.
func Ensure(ctx context.Context, js jetstream.JetStream, o Options) error {
	deadline := time.Now().Add(time.Minute)
	for wait := 250 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		err := ensure(ctx, js, o)
		if err == nil || ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

func ensure(ctx context.Context, js jetstream.JetStream, o Options) error {
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.EventDedupe <= 0 {
		o.EventDedupe = time.Hour
	}
	if o.Retention <= 0 {
		o.Retention = 30 * 24 * time.Hour
	}
	if o.AttemptsAge <= 0 {
		o.AttemptsAge = DefaultAttemptsAge
	}
	o.AttemptsAge = min(o.AttemptsAge, o.Retention)
	storage := jetstream.FileStorage
	if o.Memory {
		storage = jetstream.MemoryStorage
	}
	limit := func(n int64) int64 {
		if n <= 0 {
			return -1
		}
		return n
	}
	maxHistory := o.MaxHistory
	if maxHistory <= 0 {
		maxHistory = DefaultMaxHistory
	}
	streams := []jetstream.StreamConfig{
		{
			Name: EventsStream, Subjects: []string{"events.>", "idem.>", KeepSubject(EventsStream)}, AllowRollup: true,
			Retention: jetstream.WorkQueuePolicy, Discard: jetstream.DiscardNew,
			MaxMsgs: limit(o.MaxEvents), Duplicates: o.EventDedupe, AllowAtomicPublish: true, AllowMsgTTL: true,
			Storage: storage, Replicas: o.Replicas,
		},
		{
			Name: DeliveriesStream, Subjects: []string{"deliveries.>", "failed.>", KeepSubject(DeliveriesStream)}, AllowRollup: true,
			Retention: jetstream.WorkQueuePolicy, Discard: jetstream.DiscardNew,
			MaxMsgs: limit(o.MaxDeliveries), Duplicates: deliveryDedupeWindow,
			Storage: storage, Replicas: o.Replicas,
		},
		{
			Name: SchedulesStream, Subjects: []string{"schedules.>", "retries.>", KeepSubject(SchedulesStream)}, AllowRollup: true,
			Retention: jetstream.WorkQueuePolicy, Discard: jetstream.DiscardOld,
			MaxMsgs: -1, Duplicates: deliveryDedupeWindow,
			AllowMsgSchedules: true, Storage: storage, Replicas: o.Replicas,
		},
		{
			Name: DeadLettersStream, Subjects: []string{"deadletter.>"},
			Retention: jetstream.LimitsPolicy, Discard: jetstream.DiscardOld,
			MaxAge: o.Retention, MaxMsgs: maxDeadLetters, Duplicates: deliveryDedupeWindow,
			Storage: storage, Replicas: o.Replicas,
		},
		{
			Name: HistoryStream, Subjects: []string{"history.>", KeepSubject(HistoryStream)}, AllowRollup: true,
			Retention: jetstream.WorkQueuePolicy, Discard: jetstream.DiscardNew,
			MaxMsgs: maxHistory, Storage: storage, Replicas: o.Replicas,
		},
		{
			Name: OperationsStream, Subjects: []string{"operations.>"},
			Retention: jetstream.LimitsPolicy, Discard: jetstream.DiscardOld,
			MaxAge: OperationsAge, Duplicates: deliveryDedupeWindow,
			Storage: storage, Replicas: o.Replicas,
		},
		{
			Name: AttemptsStream, Subjects: []string{"attempts.>"},
			Retention: jetstream.LimitsPolicy, Discard: jetstream.DiscardOld,
			MaxAge: o.AttemptsAge, Duplicates: min(deliveryDedupeWindow, o.AttemptsAge),
			Storage: storage, Replicas: o.Replicas,
		},
	}
	for _, cfg := range streams {
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("ensure stream %s: %w", cfg.Name, err)
		}
	}
	buckets := []jetstream.KeyValueConfig{
		{Bucket: EndpointsBucket, Description: "endpoint configuration", History: 1, Storage: storage, Replicas: o.Replicas},
		// LimitMarkerTTL turns on per-message TTLs (a final record's grace,
		// pkg/inflight history.go); the markers left when records expire live a second.
		{Bucket: DeliveriesBucket, Description: "delivery state", History: 1, TTL: o.Retention, LimitMarkerTTL: time.Second,
			Storage: storage, Replicas: o.Replicas},
		{Bucket: HealthBucket, Description: "endpoint health", History: 1, Storage: storage, Replicas: o.Replicas},
		{Bucket: AccountsBucket, Description: "account settings", History: 1, Storage: storage, Replicas: o.Replicas},
		{Bucket: RecentEventsBucket, Description: "a sample of recent events per account and event type", History: 1,
			TTL: RecentEventsAge, MaxValueSize: RecentEventsMaxValue, Storage: storage, Replicas: o.Replicas},
	}
	for _, cfg := range buckets {
		if _, err := js.CreateOrUpdateKeyValue(ctx, cfg); err != nil {
			return fmt.Errorf("ensure bucket %s: %w", cfg.Bucket, err)
		}
	}
	return nil
}

// ErrFull is returned when a work stream is full (discard new).
var ErrFull = errors.New("stream full")

// consumer specs: name, stream, filter.
type consumerSpec struct {
	name, stream, filter string
}

var consumers = map[string]consumerSpec{
	SenderRetryConsumer: {SenderRetryConsumer, SchedulesStream, "retries.>"},
	RetryConsumer:       {RetryConsumer, DeliveriesStream, "failed.>"},
	HistoryConsumer:     {HistoryConsumer, HistoryStream, "history.>"},
}

// RendererConsumers creates (or finds) the renderer's consumers: one per
// partition of events.<event_type>.<partition>, and "renderer" for the
// events.<event_type> subjects of earlier versions. Earlier versions'
// "renderer" read all of events.>, which overlaps the partitions' filters
// (refused on a work queue), so it is narrowed first (or, should the
// server refuse that, deleted and made again: its unacked messages go
// back to the stream).
func RendererConsumers(ctx context.Context, js jetstream.JetStream, ackWait time.Duration, maxAckPending int) ([]jetstream.Consumer, error) {
	legacy := consumerSpec{RendererConsumer, EventsStream, "events.*"}
	c, err := durable(ctx, js, legacy, ackWait, maxAckPending)
	if err != nil {
		if derr := js.DeleteConsumer(ctx, EventsStream, RendererConsumer); derr != nil && !errors.Is(derr, jetstream.ErrConsumerNotFound) {
			return nil, err
		}
		if c, err = durable(ctx, js, legacy, ackWait, maxAckPending); err != nil {
			return nil, err
		}
	}
	out := []jetstream.Consumer{c}
	for p := range DefaultPartitions {
		c, err := durable(ctx, js, consumerSpec{RendererConsumer + "-p" + strconv.Itoa(p), EventsStream, "events.*." + strconv.Itoa(p)},
			ackWait, maxAckPending)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// SenderPartitionConsumer is the durable consumer of one partition of the
// first sends (deliveries.<partition>.>).
func SenderPartitionConsumer(partition int) string {
	return SenderConsumer + "-p" + strconv.Itoa(partition)
}

// SenderAckFloor is the stream sequence up to which the sender has acked
// every first send of a partition (the partition token of
// DeliverySubject): a job at or below it has left DELIVERIES. It is 0
// while the partition's consumer does not exist (no sender has started).
func SenderAckFloor(ctx context.Context, js jetstream.JetStream, partition string) (uint64, error) {
	p, err := strconv.Atoi(partition)
	if err != nil || p < 0 || p >= DefaultPartitions {
		return 0, fmt.Errorf("sender ack floor: %q is not a partition", partition)
	}
	c, err := js.Consumer(ctx, DeliveriesStream, SenderPartitionConsumer(p))
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("sender ack floor of partition %s: %w", partition, err)
	}
	return c.CachedInfo().AckFloor.Stream, nil
}

// SenderConsumers creates (or finds) the sender's consumers of first sends,
// one per partition, so that a burst queued for one endpoint waits only in
// its own partition's line (WorkAll serves the partitions in turn). Work
// queue streams refuse consumers whose filters overlap, so the single
// "sender" consumer on deliveries.> of earlier versions is removed first;
// the messages it had handed out and not yet seen acked go to the
// partition consumers. (A sender of an earlier version still running loses
// its consumer and stops taking work: upgrade the senders together.)
func SenderConsumers(ctx context.Context, js jetstream.JetStream, ackWait time.Duration, maxAckPending int) ([]jetstream.Consumer, error) {
	if err := js.DeleteConsumer(ctx, DeliveriesStream, SenderConsumer); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("remove the single sender consumer of earlier versions: %w", err)
	}
	out := make([]jetstream.Consumer, 0, DefaultPartitions)
	for p := range DefaultPartitions {
		c, err := durable(ctx, js, consumerSpec{SenderPartitionConsumer(p), DeliveriesStream, "deliveries." + strconv.Itoa(p) + ".>"},
			ackWait, maxAckPending)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// Consumer creates (or finds) one of the durable pull consumers.
func Consumer(ctx context.Context, js jetstream.JetStream, name string, ackWait time.Duration, maxAckPending int) (jetstream.Consumer, error) {
	spec, ok := consumers[name]
	if !ok {
		return nil, fmt.Errorf("unknown consumer %q", name)
	}
	return durable(ctx, js, spec, ackWait, maxAckPending)
}

func durable(ctx context.Context, js jetstream.JetStream, spec consumerSpec, ackWait time.Duration, maxAckPending int) (jetstream.Consumer, error) {
	c, err := js.CreateOrUpdateConsumer(ctx, spec.stream, jetstream.ConsumerConfig{
		Durable:       spec.name,
		FilterSubject: spec.filter,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxAckPending: maxAckPending,
		MaxDeliver:    -1,
	})
	if err != nil {
		return nil, fmt.Errorf("consumer %s on %s: %w", spec.name, spec.stream, err)
	}
	return c, nil
}

// HistoryStream carries record changes to the history writer.
const HistoryStream = "HISTORY"

// HistoryConsumer is the history writer's durable consumer.
const HistoryConsumer = "history"

// HistorySubject is where a delivery's record changes are logged.
func HistorySubject(accountID, endpointID, deliveryID string) string {
	return "history." + accountID + "." + endpointID + "." + deliveryID
}
