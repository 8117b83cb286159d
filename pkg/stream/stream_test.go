package stream

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/postback-dev/postback/pkg/broker/brokertest"
	"github.com/postback-dev/postback/pkg/delivery"
)

func startJetStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	js := brokertest.JetStream(t)
	ctx := context.Background()
	for range 2 { // idempotent: every service calls it at start-up
		if err := Ensure(ctx, js, DefaultOptions()); err != nil {
			t.Fatal(err)
		}
	}
	return js
}

func TestWorkStreamsRefuseNewMessagesWhenFullInsteadOfDroppingOld(t *testing.T) {
	js := startJetStream(t)
	ctx := context.Background()
	for _, name := range []string{EventsStream, DeliveriesStream} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if cfg := s.CachedInfo().Config; cfg.Discard != jetstream.DiscardNew || cfg.Retention != jetstream.WorkQueuePolicy {
			t.Errorf("%s: discard %v retention %v, want discard new on a work queue", name, cfg.Discard, cfg.Retention)
		}
	}
	s, _ := js.Stream(ctx, SchedulesStream)
	if cfg := s.CachedInfo().Config; !cfg.AllowMsgSchedules || cfg.MaxMsgs != -1 || cfg.MaxBytes != -1 {
		t.Errorf("schedules stream: %+v, want message schedules and no count or byte limit", cfg)
	}
}

func TestAnEndpointAlwaysLandsInTheSamePartition(t *testing.T) {
	a, b := DeliverySubject("acc", "ep_01", "dlv_1"), DeliverySubject("acc", "ep_01", "dlv_2")
	partition := func(subject string) string { return strings.Split(subject, ".")[1] }
	for _, other := range []string{b, RetrySubject("ep_01"), FailedSubject("ep_01")} {
		if partition(other) != partition(a) {
			t.Fatalf("partitions differ: %s %s", a, other)
		}
	}
}

// queue publishes a renderer's first send, which has no record.
// ListDeliveries must not lose a delivery whose record is being written at
// that moment (its outcome lands while a client lists): the listing reads
// the bucket's per-subject state, where a key being replaced never goes
// missing.
// A record written before the attempt section and the format byte existed
// (delivery, claim, then the job as JSON) still reads: an upgrade keeps the
// delivery history readable.
// A scheduled copy of a queued job never carries the Queued mark: whoever
// schedules a job (a deferral) writes its record.
func TestAScheduledCopyOfAQueuedJobIsNotQueued(t *testing.T) {
	js := startJetStream(t)
	ctx := context.Background()
	job := &delivery.Job{DeliveryID: "dlv_1", AccountID: "acc", EndpointID: "ep_1", URL: "http://127.0.0.1/", Queued: true}
	if err := Schedule(ctx, js, job, time.Now().Add(time.Hour), "slot:dlv_1"); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, SchedulesStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(ctx, ScheduleSubject("dlv_1"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get(QueuedHeader) != "" || m.Header.Get("Nats-Schedule") == "" {
		t.Fatalf("schedule headers %v: want a schedule without %s", m.Header, QueuedHeader)
	}
}

// An EVENTS stream made by a version before the key markers (no idem.>,
// no atomic publish, no message TTLs, events waiting in it) takes them
// when an upgraded service lays the streams out, and keeps its events.
func TestAnEventsStreamOfAnEarlierVersionTakesTheKeyMarkers(t *testing.T) {
	js := brokertest.JetStream(t)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: EventsStream, Subjects: []string{"events.>", KeepSubject(EventsStream)},
		AllowRollup: true, Retention: jetstream.WorkQueuePolicy, Discard: jetstream.DiscardNew, MaxMsgs: -1, Duplicates: time.Hour,
		Storage: jetstream.FileStorage, Replicas: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, EventSubject("action_clearing", "brand-1"), []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if err := Ensure(ctx, js, DefaultOptions()); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	if !cfg.AllowAtomicPublish || !cfg.AllowMsgTTL || !slices.Contains(cfg.Subjects, "idem.>") {
		t.Errorf("EVENTS after the upgrade: atomic %v, TTLs %v, subjects %v; want both and idem.>", cfg.AllowAtomicPublish, cfg.AllowMsgTTL, cfg.Subjects)
	}
	if n, err := WorkMessages(ctx, js, EventsStream); err != nil || n != 1 {
		t.Errorf("%d events waiting after the upgrade (%v), want the 1 published before", n, err)
	}
}
