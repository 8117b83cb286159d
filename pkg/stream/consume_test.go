package stream

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func TestABacklogInOnePartitionDoesNotHoldUpTheOthers(t *testing.T) {
	js := startJetStream(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	consumers, err := SenderConsumers(ctx, js, time.Minute, 1024)
	if err != nil {
		t.Fatal(err)
	}
	// One endpoint's burst: 500 jobs in partition 0, then 5 in partition 1.
	for i := range 500 {
		if _, err := js.Publish(ctx, fmt.Sprintf("deliveries.0.burst.ep.%d", i), []byte("burst")); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		if _, err := js.Publish(ctx, fmt.Sprintf("deliveries.1.quiet.ep.%d", i), []byte("quiet")); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	var order []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = WorkAll(ctx, consumers, 1, func(_ context.Context, m jetstream.Msg) {
			time.Sleep(time.Millisecond) // one worker, a millisecond a job
			mu.Lock()
			order = append(order, string(m.Data()))
			n := len(order)
			mu.Unlock()
			_ = m.Ack()
			if n == 505 {
				cancel()
			}
		})
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("505 jobs not handled within a minute")
	}
	mu.Lock()
	defer mu.Unlock()
	last := -1
	for i, d := range order {
		if d == "quiet" {
			last = i
		}
	}
	// Served in turn, the quiet partition's 5 jobs come within the first
	// few dozen, not after the burst's 500.
	if last < 0 || last >= 100 {
		t.Fatalf("the quiet partition's last job was the %dth of %d handled", last+1, len(order))
	}
	t.Logf("the quiet partition's last job was handled %dth of %d", last+1, len(order))
}

func TestTheSenderConsumersReplaceTheSingleConsumerOfEarlierVersions(t *testing.T) {
	js := startJetStream(t)
	ctx := context.Background()
	if _, err := js.CreateOrUpdateConsumer(ctx, DeliveriesStream, jetstream.ConsumerConfig{
		Durable: SenderConsumer, FilterSubject: "deliveries.>", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	if _, err := SenderConsumers(ctx, js, time.Minute, 64); err != nil {
		t.Fatalf("partition consumers beside the old one: %v", err)
	}
	if _, err := js.Consumer(ctx, DeliveriesStream, SenderConsumer); err == nil {
		t.Fatal("the single consumer of earlier versions is still there")
	}
	if _, err := SenderConsumers(ctx, js, time.Minute, 64); err != nil {
		t.Fatalf("a second start: %v", err)
	}
}

func TestTheRendererReadsEachPartitionAndTheSubjectsOfEarlierVersions(t *testing.T) {
	js := startJetStream(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// An earlier version's consumer read all of events.>.
	if _, err := js.CreateOrUpdateConsumer(ctx, EventsStream, jetstream.ConsumerConfig{
		Durable: RendererConsumer, FilterSubject: "events.>", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	consumers, err := RendererConsumers(ctx, js, time.Minute, 64)
	if err != nil {
		t.Fatalf("partition consumers beside the old one: %v", err)
	}
	subjects := []string{"events.action_clearing"} // as earlier versions published
	for _, account := range []string{"brand-1", "brand-2", "brand-3", "brand-4"} {
		subjects = append(subjects, EventSubject("action_clearing", account))
	}
	for _, s := range subjects {
		if _, err := js.Publish(ctx, s, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan string, len(subjects))
	go func() {
		_ = WorkAll(ctx, consumers, 2, func(_ context.Context, m jetstream.Msg) {
			got <- string(m.Data())
			_ = m.Ack()
		})
	}()
	seen := map[string]bool{}
	for range subjects {
		select {
		case s := <-got:
			seen[s] = true
		case <-time.After(20 * time.Second):
			t.Fatalf("handled %v of %v", seen, subjects)
		}
	}
	for _, s := range subjects {
		if !seen[s] {
			t.Errorf("%s was not read", s)
		}
	}
}
