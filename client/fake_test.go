package client

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// fakeEvents is an in-process EventService: it records every call and
// answers by a script (nil: accept every event). Like the gateway, it
// stores an event once per idempotency key and answers a repeat
// duplicate with the first event's id.
type fakeEvents struct {
	postbackv1.UnimplementedEventServiceServer

	mu       sync.Mutex
	calls    []call
	stored   map[string]string // idempotency key -> event id
	nextID   int
	publish  func(n int, req *postbackv1.PublishRequest) error                                     // n counts Publish calls from 1
	batch    func(n int, req *postbackv1.PublishBatchRequest) ([]*postbackv1.PublishResult, error) // nil results: store all
	block    chan struct{}                                                                         // when set, PublishBatch waits for it to close
	received chan struct{}                                                                         // when set, signalled at each call
}

// call is one call as the server saw it.
type call struct {
	method string
	md     metadata.MD
	keys   []string // the events' idempotency keys
}

func (f *fakeEvents) record(ctx context.Context, method string, keys ...string) int {
	md, _ := metadata.FromIncomingContext(ctx)
	f.mu.Lock()
	f.calls = append(f.calls, call{method: method, md: md, keys: keys})
	n := len(f.calls)
	f.mu.Unlock()
	if f.received != nil {
		select {
		case f.received <- struct{}{}:
		default:
		}
	}
	return n
}

// store stores one event (once per key) and answers as the gateway does.
func (f *fakeEvents) store(req *postbackv1.PublishRequest) *postbackv1.PublishResult {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stored == nil {
		f.stored = map[string]string{}
	}
	if id, ok := f.stored[req.IdempotencyKey]; ok && req.IdempotencyKey != "" {
		return &postbackv1.PublishResult{EventId: id, Duplicate: true}
	}
	f.nextID++
	id := "evt_" + time.Duration(f.nextID).String()
	f.stored[req.IdempotencyKey] = id
	return &postbackv1.PublishResult{EventId: id}
}

func (f *fakeEvents) Publish(ctx context.Context, req *postbackv1.PublishRequest) (*postbackv1.PublishResponse, error) {
	n := f.record(ctx, "Publish", req.IdempotencyKey)
	if f.publish != nil {
		if err := f.publish(n, req); err != nil {
			return nil, err
		}
	}
	r := f.store(req)
	return &postbackv1.PublishResponse{EventId: r.EventId, Duplicate: r.Duplicate}, nil
}

func (f *fakeEvents) PublishBatch(ctx context.Context, req *postbackv1.PublishBatchRequest) (*postbackv1.PublishBatchResponse, error) {
	keys := make([]string, len(req.Events))
	for i, e := range req.Events {
		keys[i] = e.IdempotencyKey
	}
	n := f.record(ctx, "PublishBatch", keys...)
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	var results []*postbackv1.PublishResult
	if f.batch != nil {
		var err error
		if results, err = f.batch(n, req); err != nil {
			return nil, err
		}
	}
	if results == nil {
		for _, e := range req.Events {
			results = append(results, f.store(e))
		}
	}
	return &postbackv1.PublishBatchResponse{Results: results}, nil
}

// snapshot is a copy of the calls so far.
func (f *fakeEvents) snapshot() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...)
}

func (f *fakeEvents) storedCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.stored)
}

// serve starts a gRPC server on 127.0.0.1 with the given services
// registered and returns its address; it stops at the test's end.
func serve(t *testing.T, register func(*grpc.Server), opts ...grpc.ServerOption) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(opts...)
	register(s)
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	return lis.Addr().String()
}

// newFake starts a fake EventService and returns it with a client of it
// whose retries do not sleep (the delays are recorded in *delays).
func newFake(t *testing.T, opts ...Option) (*fakeEvents, *Client, *[]time.Duration) {
	t.Helper()
	f := &fakeEvents{}
	addr := serve(t, func(s *grpc.Server) { postbackv1.RegisterEventServiceServer(s, f) })
	c, err := New(context.Background(), addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var mu sync.Mutex
	delays := &[]time.Duration{}
	c.retry.sleep = func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		*delays = append(*delays, d)
		mu.Unlock()
		return ctx.Err()
	}
	return f, c, delays
}

func unavailable() error { return status.Error(codes.Unavailable, "nats down") }
func queueFull() error {
	return status.Error(codes.ResourceExhausted, "event queue is full: nats: maximum bytes exceeded")
}

func clearing(seq string) *postbackv1.PublishRequest {
	return &postbackv1.PublishRequest{AccountId: "brand-1", EventType: "action_clearing", Data: nil, EventId: seq}
}
