package stream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Handler handles one message. It must ack, nak or term the message itself
// (acking only once the message's effect is durable).
type Handler func(ctx context.Context, m jetstream.Msg)

// Work pulls messages from a durable consumer and runs them through handler
// on a pool of workers goroutines until ctx ends; it then lets running
// handlers finish. The pull buffer is no larger than the worker pool, so no
// message waits in a client buffer long enough to hit its ack wait. The
// workers live as long as Work: a goroutine per message had its stack grown
// (copied) again for every message, ~15% of the sender's CPU in a burst.
func Work(ctx context.Context, c jetstream.Consumer, workers int, handler Handler) error {
	return WorkAll(ctx, []jetstream.Consumer{c}, workers, handler)
}

// WorkAll is Work over several consumers (the partitions of one stream's
// work) sharing one pool of workers. Each consumer has its own pull
// iterator with a buffer as large as the pool (smaller ones, a pull
// request every few messages of a busy partition, cost a burst a quarter
// of its throughput in nats-server's and the services' CPU; a message
// waits in a buffer no longer than the pool takes to handle the buffers
// ahead of it, well within the ack waits), and the pool takes their
// messages in turn: each iterator hands its messages
// to the pool over one unbuffered channel, and Go serves the senders
// waiting on a channel in the order they began to wait. So a consumer with
// a deep backlog (one endpoint's burst) gets one message into the pool for
// each message of every other consumer that has one waiting, instead of
// all the messages ahead of theirs.
func WorkAll(ctx context.Context, consumers []jetstream.Consumer, workers int, handler Handler) error {
	if workers <= 0 {
		workers = 1
	}
	its := make([]jetstream.MessagesContext, 0, len(consumers))
	stop := func() {
		for _, it := range its {
			it.Stop()
		}
	}
	for _, c := range consumers {
		it, err := c.Messages(jetstream.PullMaxMessages(workers), jetstream.PullExpiry(5*time.Second))
		if err != nil {
			stop()
			return fmt.Errorf("consume %s: %w", c.CachedInfo().Name, err)
		}
		its = append(its, it)
	}
	go func() {
		<-ctx.Done()
		stop()
	}()
	msgs := make(chan jetstream.Msg) // unbuffered: a message is taken only by an idle worker
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range msgs {
				handler(Extract(context.WithoutCancel(ctx), m), m)
			}
		}()
	}
	var pulls sync.WaitGroup
	for _, it := range its {
		pulls.Add(1)
		go func() {
			defer pulls.Done()
			pullInto(ctx, it, msgs)
		}()
	}
	pulls.Wait()
	close(msgs)
	wg.Wait()
	return nil
}

// pullInto hands the iterator's messages to msgs until it is stopped.
func pullInto(ctx context.Context, it jetstream.MessagesContext, msgs chan<- jetstream.Msg) {
	for {
		m, err := it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) || ctx.Err() != nil {
				return
			}
			// Heartbeats missed or the connection dropped: the iterator
			// recovers by itself; wait a moment and try again.
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		msgs <- m // the workers run until every iterator has returned
	}
}
