package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// MaxBatch is the most events the gateway accepts in one PublishBatch
// (services/gateway.MaxBatch, docs/api.md "Size limits").
const MaxBatch = 1000

// maxBatchBytes bounds a batch's encoded size: the gateway refuses a
// request message over 8 MiB whole, so a batch stays well below it.
const maxBatchBytes = 7 << 20

// ErrClosed is the error of an event published to a closed Publisher, and
// (wrapped with the context's error) of one still unsent when Close's
// context ended.
var ErrClosed = errors.New("postback client: publisher closed")

// PublisherOptions configure NewPublisher. Zero fields take the defaults.
type PublisherOptions struct {
	// MaxBatch is the most events in one PublishBatch call: default 100, at
	// most MaxBatch (1000, the gateway's limit). A batch is also cut before
	// its encoded size would pass 7 MiB (the gateway takes 8 MiB a call).
	MaxBatch int
	// Linger is how long a batch waits for more events after its first
	// before it is sent: default 10ms. (1ns sends at once what is there.)
	Linger time.Duration
	// MaxPending bounds the events published but not yet answered;
	// Publish blocks while there are that many. Default 10 × MaxBatch.
	MaxPending int
	// MaxInFlight is how many PublishBatch calls run at once. Default 1,
	// which sends batches in publish order.
	MaxInFlight int
}

// Publisher publishes events in batches (PublishBatch): an event waits at
// most Linger for others, and a batch holds at most MaxBatch events.
// Publish does not wait for the gateway: it returns a Result to wait on.
// Flush and Close send what is pending and wait for the answers.
//
// Retries: a batch call answered Unavailable or ResourceExhausted
// (back-pressure) is made again, and so is the part of a batch whose
// per-event results carry those codes, with the backoff of WithRetry. Every
// event keeps the idempotency key it was given at Publish (a random one
// when the request had none), so a retry of an event the gateway already
// stored is answered duplicate, with the first event's id, and never
// makes a second event. Other per-event errors (InvalidArgument…) end that
// event's Result alone.
//
// Trace context: a batch call carries the values (the span, baggage,
// outgoing metadata) of the context given to the Publish of its first
// event, without that context's cancellation.
//
// A Publisher is safe for concurrent use. Close it before its Client.
type Publisher struct {
	c        *Client
	maxBatch int
	maxBytes int
	linger   time.Duration

	space   chan struct{} // a token per pending event (MaxPending)
	queue   chan *batch   // cut batches, in order, to the senders
	closing chan struct{} // closed by Close: unblocks Publish
	abort   context.Context
	cancel  context.CancelCauseFunc // aborts the sends when Close's context ends
	wg      sync.WaitGroup          // the senders

	mu       sync.Mutex
	cur      *batch // the batch being filled
	curBytes int
	open     map[*batch]struct{} // cut batches not yet answered
	closed   bool
	stopOnce sync.Once
}

type batch struct {
	items []*Result
	timer *time.Timer
	done  chan struct{}
}

// NewPublisher returns a batching publisher. Close it when done.
func (c *Client) NewPublisher(opts PublisherOptions) *Publisher {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 100
	}
	opts.MaxBatch = min(opts.MaxBatch, MaxBatch)
	if opts.Linger <= 0 {
		opts.Linger = 10 * time.Millisecond
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = 10 * opts.MaxBatch
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 1
	}
	p := &Publisher{
		c: c, maxBatch: opts.MaxBatch, maxBytes: maxBatchBytes, linger: opts.Linger,
		space:   make(chan struct{}, opts.MaxPending),
		queue:   make(chan *batch, opts.MaxPending), // a batch holds >= 1 pending event: never full
		closing: make(chan struct{}),
		open:    map[*batch]struct{}{},
	}
	p.abort, p.cancel = context.WithCancelCause(context.Background())
	p.wg.Add(opts.MaxInFlight)
	for range opts.MaxInFlight {
		go p.sender()
	}
	return p
}

// Result is the outcome of one event given to Publisher.Publish.
type Result struct {
	p    *Publisher
	req  *postbackv1.PublishRequest
	ctx  context.Context
	held bool // holds a space token
	last error

	done chan struct{}
	resp *postbackv1.PublishResponse
	err  error
}

// Done is closed when the result is known.
func (r *Result) Done() <-chan struct{} { return r.done }

// Wait waits for the gateway's answer to the event, or for ctx to end
// (then it returns ctx's error; the event may still be published). The
// answer is the event's id and whether it was a duplicate, or the event's
// own error: a status error (status.Code works on it) such as
// InvalidArgument naming the field, the last Unavailable or
// ResourceExhausted when the retries ran out, or ErrClosed.
func (r *Result) Wait(ctx context.Context) (*postbackv1.PublishResponse, error) {
	select {
	case <-r.done:
		return r.resp, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (r *Result) resolve(resp *postbackv1.PublishResponse, err error) {
	r.resp, r.err = resp, err
	r.ctx = nil
	close(r.done)
	if r.held {
		<-r.p.space
	}
}

// Publish queues one event and returns its Result at once; it blocks only
// while MaxPending events are unanswered (until ctx ends: then the Result
// holds ctx's error and the event is not sent). When req.IdempotencyKey is
// empty it is set in place to a new random key. req must not be changed
// until the Result is done.
func (p *Publisher) Publish(ctx context.Context, req *postbackv1.PublishRequest) *Result {
	if req.IdempotencyKey == "" {
		req.IdempotencyKey = NewIdempotencyKey()
	}
	r := &Result{p: p, req: req, ctx: ctx, done: make(chan struct{})}
	select {
	case <-p.closing:
		r.resolve(nil, ErrClosed)
		return r
	default:
	}
	select {
	case p.space <- struct{}{}:
		r.held = true
	case <-p.closing:
		r.resolve(nil, ErrClosed)
		return r
	case <-ctx.Done():
		r.resolve(nil, ctx.Err())
		return r
	}
	size := proto.Size(req) + 6 // the field's tag and length
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		r.resolve(nil, ErrClosed)
		return r
	}
	if p.cur != nil && p.curBytes+size > p.maxBytes {
		p.cutLocked()
	}
	if p.cur == nil {
		b := &batch{done: make(chan struct{})}
		b.timer = time.AfterFunc(p.linger, func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.cur == b {
				p.cutLocked()
			}
		})
		p.cur = b
	}
	p.cur.items = append(p.cur.items, r)
	p.curBytes += size
	if len(p.cur.items) >= p.maxBatch {
		p.cutLocked()
	}
	return r
}

// cutLocked hands the batch being filled to the senders.
func (p *Publisher) cutLocked() {
	b := p.cur
	if b == nil {
		return
	}
	p.cur, p.curBytes = nil, 0
	b.timer.Stop()
	p.open[b] = struct{}{}
	p.queue <- b
}

// Flush sends the events published so far without waiting for Linger and
// waits until each has its answer, or until ctx ends (then it returns
// ctx's error; the sends go on).
func (p *Publisher) Flush(ctx context.Context) error {
	p.mu.Lock()
	p.cutLocked()
	wait := make([]chan struct{}, 0, len(p.open))
	for b := range p.open {
		wait = append(wait, b.done)
	}
	p.mu.Unlock()
	for _, d := range wait {
		select {
		case <-d:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Close stops taking events (Publish then answers ErrClosed), sends what
// is pending and waits for every answer, as Flush. When ctx ends first,
// the sends still unanswered are abandoned: their Results end with
// ErrClosed and ctx's error (an event whose call was under way may still
// have been stored), and Close returns ctx's error. Close may be called
// more than once.
func (p *Publisher) Close(ctx context.Context) error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.closing)
	}
	p.cutLocked()
	p.mu.Unlock()
	err := p.Flush(ctx)
	if err != nil {
		p.cancel(fmt.Errorf("%w: %w", ErrClosed, err))
	}
	p.stopOnce.Do(func() { close(p.queue) })
	p.wg.Wait()
	return err
}

func (p *Publisher) sender() {
	defer p.wg.Done()
	for b := range p.queue {
		p.send(b)
		p.mu.Lock()
		delete(p.open, b)
		p.mu.Unlock()
		close(b.done)
	}
}

// send publishes b and resolves each of its events, retrying what may be
// retried; every retry sends the same requests, idempotency keys included.
func (p *Publisher) send(b *batch) {
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(b.items[0].ctx))
	stop := context.AfterFunc(p.abort, func() { cancel(context.Cause(p.abort)) })
	defer func() {
		stop()
		cancel(nil)
	}()
	pending := b.items
	for n := 1; ; n++ {
		if ctx.Err() != nil {
			for _, r := range pending {
				r.resolve(nil, context.Cause(ctx))
			}
			return
		}
		req := &postbackv1.PublishBatchRequest{Events: make([]*postbackv1.PublishRequest, len(pending))}
		for i, r := range pending {
			req.Events[i] = r.req
		}
		resp, err := p.c.events.PublishBatch(ctx, req)
		if err == nil && len(resp.GetResults()) != len(pending) {
			err = status.Errorf(codes.Internal, "postback client: PublishBatch answered %d results for %d events", len(resp.GetResults()), len(pending))
		}
		var again []*Result
		if err != nil {
			if !retryable(err) {
				if ctx.Err() != nil {
					err = fmt.Errorf("%w (the call: %w)", context.Cause(ctx), err)
				}
				for _, r := range pending {
					r.resolve(nil, err)
				}
				return
			}
			for _, r := range pending {
				r.last = err
			}
			again = pending
		} else {
			for i, res := range resp.Results {
				r := pending[i]
				if res.Error == nil || res.Error.Code == int32(codes.OK) {
					r.resolve(&postbackv1.PublishResponse{EventId: res.EventId, Duplicate: res.Duplicate}, nil)
					continue
				}
				e := status.ErrorProto(res.Error)
				if !retryable(e) {
					r.resolve(nil, e)
					continue
				}
				r.last = e
				again = append(again, r)
			}
		}
		if len(again) == 0 {
			return
		}
		if !p.c.retry.more(n) {
			for _, r := range again {
				r.resolve(nil, r.last)
			}
			return
		}
		if werr := p.c.retry.wait(ctx, n); werr != nil {
			for _, r := range again {
				r.resolve(nil, giveUp(context.Cause(ctx), n, r.last))
			}
			return
		}
		pending = again
	}
}
