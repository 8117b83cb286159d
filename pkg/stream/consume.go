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

// AckWait is the ack wait of every work consumer: how long a message handed
// to a process that died waits before JetStream hands it to another. It is
// short so that a killed process's work is back in other hands within
// seconds; a live process keeps what it holds for longer (a slow request,
// a store that is down) with in-progress signals (see WorkAll).
const AckWait = 10 * time.Second

// MaxHold is how long a live process keeps a message from going back to
// the stream with in-progress signals: longer than any handler takes (the
// sender's longest request, 60 s, plus its settling, 45 s), so a handler
// held past it is stuck, and after one more ack wait the message is handed
// to another process.
const MaxHold = 3 * time.Minute

// PullExpiry is how long one pull request of a work iterator waits at the
// server, and PullHeartbeat how often the server says, while the request
// waits with nothing to deliver, that it still holds it. The client counts
// the messages its pull requests are owed; a request the server no longer
// holds while the client still counts on it leaves the iterator waiting
// with messages queued, until two heartbeats are missed and the client
// pulls again. That happened: in about one multi-process burst in twenty,
// a partition's iterator had no pull request at the server (its consumer
// showed thousands of messages pending, none waiting for an ack, no pull
// waiting) and the whole pipeline stood still for the five seconds that
// the default heartbeat (half the expiry) allowed. (The server also drops
// a pull request silently, counting on the heartbeats, when the consumer
// already has MaxWaiting requests.) A heartbeat every half second bounds
// such a stall to about a second, at the cost of two small status messages
// a second per idle iterator.
const (
	PullExpiry    = 5 * time.Second
	PullHeartbeat = 500 * time.Millisecond
)

// Work pulls messages from a durable consumer and runs them through handler
// on a pool of workers goroutines until ctx ends; it then lets running
// handlers finish and gives back (naks) the messages still queued. The workers live as long as Work: a goroutine per
// message had its stack grown (copied) again for every message, ~15% of
// the sender's CPU in a burst.
func Work(ctx context.Context, c jetstream.Consumer, workers int, handler Handler) error {
	return WorkAll(ctx, []jetstream.Consumer{c}, workers, handler)
}

// WorkAll is Work over several consumers (the partitions of one stream's
// work) sharing one pool of workers.
//
// Fair turns: each consumer has its own pull iterator and queue, and the
// pool takes their messages in turn: each consumer hands its messages to
// the pool over one unbuffered channel, and Go serves the senders waiting
// on a channel in the order they began to wait. So a consumer with a deep
// backlog (one endpoint's burst) gets one message into the pool for each
// message of every other consumer that has one waiting, instead of all the
// messages ahead of theirs. (Turns order the work; WorkShared also bounds
// how much of the pool a backlogged consumer holds beside a light one:
// turns.go.)
//
// Held messages: from the moment JetStream hands a message to this process
// its ack wait runs. Each iterator pulls as many as the pool at a time
// (smaller pulls, a pull request every few messages of a busy partition,
// cost a burst a quarter of its throughput in nats-server's and the
// services' CPU), and every message is taken out of it at once into the consumer's
// queue (twice the pool) and noted as held until its handler returns. Every
// fifth of the (shortest) ack wait the messages held for a third of their
// consumer's ack wait since their last signal get an in-progress signal,
// so a message waits in the queue, or in a slow handler, as long as it
// needs without JetStream handing a second copy to another process; a
// process that dies sends none, and what it held goes to the others after
// one ack wait. A message held longer than MaxHold gets no more signals.
// Only while a queue is full (the pool is twice its size behind on that
// consumer) do messages wait unsignalled, in the iterator's buffer; a
// process takes at most three pools' worth of a consumer's messages, so
// replicas share a backlog.
func WorkAll(ctx context.Context, consumers []jetstream.Consumer, workers int, handler Handler) error {
	return WorkShared(ctx, consumers, Pool{Workers: workers}, handler)
}

// WorkShared is WorkAll with its pool shared between the consumers by
// pool's rule (turns.go): a consumer runs at most pool.Share handlers at
// once while another consumer is light.
func WorkShared(ctx context.Context, consumers []jetstream.Consumer, pool Pool, handler Handler) error {
	workers := max(pool.Workers, 1)
	pool.Workers = workers
	its := make([]jetstream.MessagesContext, 0, len(consumers))
	stop := func() {
		for _, it := range its {
			it.Stop()
		}
	}
	for _, c := range consumers {
		it, err := c.Messages(jetstream.PullMaxMessages(workers), jetstream.PullExpiry(PullExpiry), jetstream.PullHeartbeat(PullHeartbeat))
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
	held := newHolding()
	tick := AckWait
	for _, c := range consumers {
		tick = min(tick, ackWaitOf(c))
	}
	signalling, stopSignals := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSignals() // only once every handler has returned
	go held.signal(signalling, tick/5, MaxHold)
	// unbuffered: a message is taken only by an idle worker
	msgs := make(chan turn)
	share := newTurns(pool, len(its), time.Now)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range msgs {
				hctx := Extract(context.WithoutCancel(ctx), t.m)
				var mark *turnMark // only a shared pool's handlers may wait (Waiting)
				if share.share > 0 {
					mark = &turnMark{t: share, i: t.consumer}
					hctx = context.WithValue(hctx, turnKey{}, mark)
				}
				handler(hctx, t.m)
				held.done(t.m)
				if mark != nil {
					mark.end()
				} else {
					share.done(t.consumer)
				}
			}
		}()
	}
	var pulls sync.WaitGroup
	for i, it := range its {
		queue := make(chan jetstream.Msg, 2*workers)
		ackWait := ackWaitOf(consumers[i])
		pulls.Add(2)
		go func() {
			defer pulls.Done()
			defer close(queue)
			pullInto(ctx, it, held, ackWait, queue)
		}()
		go func() {
			defer pulls.Done()
			for m := range queue {
				if share.admit(ctx, i, len(queue)) {
					select {
					case msgs <- turn{m, i}:
						continue
					case <-ctx.Done():
						share.done(i)
					}
				}
				// Stopping: what is still queued goes back to the stream
				// at once, for the other processes.
				_ = m.Nak()
				held.done(m)
			}
		}()
	}
	pulls.Wait()
	close(msgs)
	wg.Wait()
	return nil
}

// turn is a message handed to a worker, with the index of its consumer.
type turn struct {
	m        jetstream.Msg
	consumer int
}

// ackWaitOf is the consumer's ack wait (AckWait when unknown).
func ackWaitOf(c jetstream.Consumer) time.Duration {
	if info := c.CachedInfo(); info != nil && info.Config.AckWait > 0 {
		return info.Config.AckWait
	}
	return AckWait
}

// pullInto takes the iterator's messages into queue, noting each as held
// (under its consumer's ack wait), until the iterator is stopped.
func pullInto(ctx context.Context, it jetstream.MessagesContext, held *holding, ackWait time.Duration, queue chan<- jetstream.Msg) {
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
		held.add(m, ackWait)
		queue <- m
	}
}

// holding is the set of messages this process holds: taken from an
// iterator, their handler not yet returned.
type holding struct {
	mu   sync.Mutex
	msgs map[jetstream.Msg]*heldSince
}

type heldSince struct {
	since, signalled time.Time
	every            time.Duration // a third of its consumer's ack wait
}

func newHolding() *holding { return &holding{msgs: make(map[jetstream.Msg]*heldSince)} }

func (h *holding) add(m jetstream.Msg, ackWait time.Duration) {
	now := time.Now()
	h.mu.Lock()
	h.msgs[m] = &heldSince{since: now, signalled: now, every: ackWait / 3}
	h.mu.Unlock()
}

func (h *holding) done(m jetstream.Msg) {
	h.mu.Lock()
	delete(h.msgs, m)
	h.mu.Unlock()
}

// signal sends, every tick until ctx ends, an in-progress signal for each
// message held for a third of its ack wait since its last one, and held
// for less than maxHold in all.
func (h *holding) signal(ctx context.Context, tick, maxHold time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	var due []jetstream.Msg
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		due = due[:0]
		h.mu.Lock()
		for m, s := range h.msgs {
			if now.Sub(s.signalled) >= s.every && now.Sub(s.since) < maxHold {
				s.signalled = now
				due = append(due, m)
			}
		}
		h.mu.Unlock()
		for _, m := range due {
			_ = m.InProgress() // no reply awaited; a message acked meanwhile ignores it
		}
	}
}
