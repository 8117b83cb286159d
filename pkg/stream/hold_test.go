package stream

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/postback-dev/postback/pkg/broker"
	"github.com/postback-dev/postback/pkg/broker/brokertest"
)

// holdConsumer is a work consumer with a 1 s ack wait on a stream of its
// own, with n messages published to it.
func holdConsumer(t *testing.T, js jetstream.JetStream, n int) jetstream.Consumer {
	t.Helper()
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "HOLD", Subjects: []string{"hold.>"},
		Retention: jetstream.WorkQueuePolicy}); err != nil {
		t.Fatal(err)
	}
	c, err := js.CreateOrUpdateConsumer(ctx, "HOLD", jetstream.ConsumerConfig{Durable: "hold",
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Second, MaxAckPending: 64, MaxDeliver: -1})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := js.Publish(ctx, fmt.Sprintf("hold.%d", i), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// handledOnce runs WorkAll with workers over c until every one of the n
// messages was acked, each handler taking busy, and returns how many
// times each message reached a handler.
func handledOnce(t *testing.T, c jetstream.Consumer, n, workers int, busy time.Duration) map[string]int {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	seen := map[string]int{}
	acked := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = WorkAll(ctx, []jetstream.Consumer{c}, workers, func(_ context.Context, m jetstream.Msg) {
			mu.Lock()
			seen[string(m.Data())]++
			mu.Unlock()
			time.Sleep(busy)
			_ = m.Ack()
			mu.Lock()
			if acked++; acked == n {
				cancel()
			}
			mu.Unlock()
		})
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("messages not all handled within a minute")
	}
	// A copy handed out again would come within an ack wait or two.
	time.Sleep(1500 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	return seen
}

func TestAMessageInASlowHandlerIsNotHandedOutAgain(t *testing.T) {
	js := brokertest.JetStream(t)
	c := holdConsumer(t, js, 2)
	// 3.5 s a message, over a 1 s ack wait: in-progress signals keep it.
	seen := handledOnce(t, c, 2, 2, 3500*time.Millisecond)
	for id, n := range seen {
		if n != 1 {
			t.Errorf("message %s reached a handler %d times, want once", id, n)
		}
	}
}

func TestMessagesQueuedBehindABusyPoolAreNotHandedOutAgain(t *testing.T) {
	js := brokertest.JetStream(t)
	// 20 messages, one worker, 250 ms each: the last waits ~5 s in this
	// process's queue, five ack waits.
	c := holdConsumer(t, js, 20)
	seen := handledOnce(t, c, 20, 1, 250*time.Millisecond)
	if len(seen) != 20 {
		t.Fatalf("%d distinct messages handled, want 20", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("message %s reached a handler %d times, want once", id, n)
		}
	}
}

// A process that dies sends no signals: what it held goes to another
// process after one ack wait.
func TestWhatADeadProcessHeldGoesToAnotherAfterOneAckWait(t *testing.T) {
	srv, err := broker.Start(broker.Options{Port: -1, DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	dying, _ := jetstream.New(nc)
	c := holdConsumer(t, dying, 5)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan struct{}, 5)
	go func() {
		_ = WorkAll(ctx, []jetstream.Consumer{c}, 5, func(context.Context, jetstream.Msg) {
			got <- struct{}{}
			select {} // hangs: the process is about to die
		})
	}()
	for range 5 {
		<-got
	}
	nc.Close() // dies: no more signals, no acks
	died := time.Now()

	other := brokertest.Connect(t, srv.ClientURL())
	c2, err := other.Consumer(context.Background(), "HOLD", "hold")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	handled := 0
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	go func() {
		_ = WorkAll(ctx2, []jetstream.Consumer{c2}, 5, func(_ context.Context, m jetstream.Msg) {
			_ = m.Ack()
			mu.Lock()
			handled++
			mu.Unlock()
		})
	}()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		n := handled
		mu.Unlock()
		if n == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of the 5 messages the dead process held reached another within 30 s", n)
		}
	}
	t.Logf("the dead process's 5 messages were handled elsewhere %s after it died (ack wait 1 s)", time.Since(died).Round(10*time.Millisecond))
}
