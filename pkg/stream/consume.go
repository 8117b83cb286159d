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
// on up to workers goroutines until ctx ends; it then lets running handlers
// finish. The pull buffer is no larger than the worker pool, so no message
// waits in a client buffer long enough to hit its ack wait.
func Work(ctx context.Context, c jetstream.Consumer, workers int, handler Handler) error {
	if workers <= 0 {
		workers = 1
	}
	it, err := c.Messages(jetstream.PullMaxMessages(workers), jetstream.PullExpiry(5*time.Second))
	if err != nil {
		return fmt.Errorf("consume %s: %w", c.CachedInfo().Name, err)
	}
	go func() {
		<-ctx.Done()
		it.Stop()
	}()
	sem := make(chan struct{}, workers)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		m, err := it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) || ctx.Err() != nil {
				return nil
			}
			// Heartbeats missed or the connection dropped: the iterator
			// recovers by itself; wait a moment and try again.
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			handler(Extract(context.WithoutCancel(ctx), m), m)
		}()
	}
}
