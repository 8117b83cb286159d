package stream_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/postback-dev/postback/pkg/broker"
	"github.com/postback-dev/postback/pkg/broker/brokertest"
	"github.com/postback-dev/postback/pkg/stream"
	"github.com/postback-dev/postback/pkg/stream/streamtest"
)

// newestBlock is the index of the newest file block of a stream in the
// embedded server's store under dir: how many blocks it has started.
func newestBlock(t *testing.T, dir, name string) int {
	t.Helper()
	files, err := os.ReadDir(filepath.Join(dir, "jetstream", "jetstream", "$G", "streams", name, "msgs"))
	if err != nil {
		t.Fatal(err)
	}
	newest := 0
	for _, f := range files {
		if n, err := strconv.Atoi(strings.TrimSuffix(f.Name(), ".blk")); err == nil {
			newest = max(newest, n)
		}
	}
	return newest
}

// keptUp publishes n events with body one at a time to a fresh layout on a
// file store, each taken and acked before the next (a consumer that keeps
// up), pause apart, with or without the keeper, and returns how many
// blocks EVENTS started.
func keptUp(t *testing.T, n int, keeper bool, body []byte, pause time.Duration) int {
	dir := t.TempDir()
	srv, err := broker.Start(broker.Options{Port: -1, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	js := brokertest.Connect(t, srv.ClientURL())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := stream.Ensure(ctx, js, stream.DefaultOptions()); err != nil {
		t.Fatal(err)
	}
	if keeper {
		go stream.Keep(ctx, js, stream.EventsStream)
		deadline := time.Now().Add(5 * time.Second)
		for {
			if s := streamtest.State(t, js, stream.EventsStream); s.Msgs == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("no keeper message within 5s")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	cs, err := stream.RendererConsumers(ctx, js, time.Minute, 64)
	if err != nil {
		t.Fatal(err)
	}
	subject := stream.EventSubject("action_clearing", "brand-1")
	p, _ := strconv.Atoi(stream.Partition("brand-1"))
	c := cs[1+p]
	for range n {
		if _, err := js.Publish(ctx, subject, body); err != nil {
			t.Fatal(err)
		}
		batch, err := c.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			if err := m.DoubleAck(ctx); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(pause)
	}
	if work, err := stream.WorkMessages(ctx, js, stream.EventsStream); err != nil || work != 0 {
		t.Fatalf("work left in EVENTS: %d, %v", work, err)
	}
	return newestBlock(t, dir, stream.EventsStream)
}

// A work stream whose consumer keeps up: without a keeper the file store
// starts a new block (a file created, written, removed) for nearly every
// message; with one, the newest block always holds a message no ack
// removes, and the stream stays in a block or two.
func TestAKeeperStopsAStreamThatKeepsUpFromRollingABlockPerMessage(t *testing.T) {
	const n = 200
	without := keptUp(t, n, false, []byte("event"), 0)
	with := keptUp(t, n, true, []byte("event"), 0)
	t.Logf("%d events taken one at a time: %d blocks started without a keeper, %d with one", n, without, with)
	if with > 5 {
		t.Errorf("with a keeper EVENTS started %d blocks for %d events, want a handful", with, n)
	}
}

// A busy stream fills its newest block and rolls to a new one, which has
// no keeper until the next one is published: meanwhile every ack empties
// it again. With a keeper every KeepEvery (a second) that was most of a
// busy stream's life when blocks fill in under a second; while the stream
// is busy its keeper goes every KeepBusyEvery, so a roll is followed by a
// tenth of a second's churn at most.
func TestABusyStreamThatRollsToANewBlockGetsItsKeeperBackWithinATenthOfASecond(t *testing.T) {
	// 1,200 events of 16 KB (4.7 blocks' worth), about 400 a second: a
	// 4 MB block fills every two thirds of a second or so.
	const n = 1200
	started := keptUp(t, n, true, make([]byte, 16<<10), 2*time.Millisecond)
	t.Logf("%d events of 16 KB taken one at a time: %d blocks started", n, started)
	// Measured: 69-174 blocks; with a keeper a second, 363-378.
	if started > n/4 {
		t.Errorf("EVENTS started %d blocks for %d events: the keeper did not follow its rolls", started, n)
	}
}

func TestAKeeperMessageIsNoWork(t *testing.T) {
	js := brokertest.JetStream(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := stream.Ensure(ctx, js, stream.DefaultOptions()); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, stream.EventSubject("action_clearing", "brand-1"), []byte("work")); err != nil {
		t.Fatal(err)
	}
	// Two keepers (two replicas of a service) a few ticks each: still one
	// keeper message, and the stream's work is the one event.
	go stream.Keep(ctx, js, stream.EventsStream)
	go stream.Keep(ctx, js, stream.EventsStream)
	time.Sleep(2*stream.KeepEvery + 500*time.Millisecond)
	if s := streamtest.State(t, js, stream.EventsStream); s.Msgs != 2 {
		t.Errorf("EVENTS holds %d messages, want the event and one keeper", s.Msgs)
	}
	if work, err := stream.WorkMessages(ctx, js, stream.EventsStream); err != nil || work != 1 {
		t.Errorf("work in EVENTS: %d, %v; want 1", work, err)
	}
}
