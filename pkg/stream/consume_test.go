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

// One account's burst beside another account's steady flow, through the
// renderer's consumers and a shared pool: alone, the burst takes as many
// workers as it can use; once the other account's events flow, it runs
// at most Share handlers at once, and every one of the other account's
// events is handled.
func TestABurstTakesThePoolAloneAndItsShareBesideAFlow(t *testing.T) {
	js := startJetStream(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	consumers, err := RendererConsumers(ctx, js, time.Minute, 8192)
	if err != nil {
		t.Fatal(err)
	}
	const burst, flow, share, workers = 4000, 50, 2, 32
	burstSubject, flowSubject := EventSubject("action_clearing", "brand-1"), EventSubject("action_clearing", "brand-3")
	if Partition("brand-1") == Partition("brand-3") {
		t.Fatal("the two accounts share a partition: pick others")
	}
	for range burst {
		if _, err := js.PublishAsync(burstSubject, []byte("burst")); err != nil {
			t.Fatal(err)
		}
	}
	<-js.PublishAsyncComplete()

	var mu sync.Mutex
	running := map[string]int{}
	var flowStarted, flowEnded time.Time
	flowHandled := 0
	type sample struct {
		at      time.Time
		running int
	}
	var burstSamples []sample
	go func() {
		_ = WorkShared(ctx, consumers, Pool{Workers: workers, Share: share}, func(_ context.Context, m jetstream.Msg) {
			kind := string(m.Data())
			mu.Lock()
			running[kind]++
			if kind == "burst" {
				burstSamples = append(burstSamples, sample{time.Now(), running[kind]})
			} else {
				if flowStarted.IsZero() {
					flowStarted = time.Now()
				}
				flowEnded = time.Now()
				flowHandled++
			}
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
			mu.Lock()
			running[kind]--
			mu.Unlock()
			_ = m.Ack()
		})
	}()
	time.Sleep(200 * time.Millisecond) // the burst alone
	for range flow {
		if _, err := js.Publish(ctx, flowSubject, []byte("flow")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		handled := flowHandled
		mu.Unlock()
		if handled == flow {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of the flow's %d events handled", handled, flow)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	mu.Lock()
	defer mu.Unlock()
	alone, beside := 0, 0
	for _, s := range burstSamples {
		switch {
		case s.at.Before(flowStarted):
			alone = max(alone, s.running)
		case s.at.After(flowStarted.Add(100*time.Millisecond)) && s.at.Before(flowEnded):
			// past the handlers the burst had running when the flow began
			beside = max(beside, s.running)
		}
	}
	t.Logf("the burst ran up to %d handlers alone and %d beside the flow (share %d of %d workers)", alone, beside, share, workers)
	if alone <= share {
		t.Errorf("alone, the burst ran at most %d handlers at once: the share held it back with nothing beside it", alone)
	}
	if beside == 0 || beside > share {
		t.Errorf("beside the flow, the burst ran up to %d handlers at once, want 1 to %d", beside, share)
	}
}

// A pull request the server no longer holds, while the client still counts
// on it, is noticed by its missing heartbeats: the iterator pulls again
// within about two heartbeats, not after its pull's expiry. The server is
// made to drop the work iterator's request silently by a consumer whose one
// waiting place is taken by another client's long pull (with heartbeats set,
// the server answers such a request with nothing, counting on the client to
// miss them).
func TestAPullRequestTheServerDroppedIsMadeAgainWithinTwoHeartbeats(t *testing.T) {
	js := startJetStream(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "DROPPED", Subjects: []string{"dropped.>"}, Retention: jetstream.WorkQueuePolicy}); err != nil {
		t.Fatal(err)
	}
	c, err := js.CreateOrUpdateConsumer(ctx, "DROPPED", jetstream.ConsumerConfig{Durable: "one-waiting", AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: time.Minute, MaxWaiting: 1})
	if err != nil {
		t.Fatal(err)
	}
	// Another client's pull for one message takes the only waiting place.
	// Its inbox is a plain one: under the connection's request inbox
	// prefix, the message delivered to it could be taken for the answer to
	// a publish below (it failed about once in twenty runs so).
	nc := js.Conn()
	inbox := nc.NewInbox()
	taken, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	req := fmt.Sprintf(`{"batch":1,"expires":%d,"idle_heartbeat":%d}`, time.Minute, 20*time.Second)
	if err := nc.PublishRequest("$JS.API.CONSUMER.MSG.NEXT.DROPPED.one-waiting", inbox, []byte(req)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		info, err := c.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.NumWaiting == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the other client's pull is not waiting")
		}
	}
	handled := make(chan time.Time, 10)
	started := time.Now()
	go func() {
		_ = Work(ctx, c, 4, func(_ context.Context, m jetstream.Msg) {
			_ = m.Ack()
			handled <- time.Now()
		})
	}()
	time.Sleep(200 * time.Millisecond) // the iterator's first pull is refused meanwhile
	for i := range 5 {
		if _, err := js.Publish(ctx, fmt.Sprintf("dropped.%d", i), []byte("job")); err != nil {
			t.Fatal(err)
		}
	}
	// The other client gets one; the iterator, once it pulls again, the rest.
	if _, err := taken.NextMsg(10 * time.Second); err != nil {
		t.Fatalf("the other client's pull got nothing: %v", err)
	}
	var last time.Time
	for i := range 4 {
		select {
		case last = <-handled:
		case <-time.After(30 * time.Second):
			t.Fatalf("%d of 4 messages handled after 30 s", i)
		}
	}
	// Two heartbeats and the round trips after its first pull: about a
	// second. With the default heartbeat (half the expiry) it was the whole
	// expiry, five seconds.
	if took := last.Sub(started); took >= PullExpiry*4/5 {
		t.Fatalf("the iterator pulled again %s after its first pull was dropped, not within about two heartbeats (%s)", took, 2*PullHeartbeat)
	}
}
