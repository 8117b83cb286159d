package client

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

func TestRetryableCodes(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"unavailable", unavailable(), true},
		{"back-pressure: full event queue", queueFull(), true},
		{"size limit of an event", status.Error(codes.ResourceExhausted, "data: 300000 bytes, over the limit of 256 KiB (262144 bytes)"), false},
		{"size limit of a batch", status.Error(codes.ResourceExhausted, "events: at most 1000 events a batch, got 1001"), false},
		{"grpc message size", status.Error(codes.ResourceExhausted, "grpc: received message larger than max (9000000 vs. 8388608)"), false},
		{"invalid argument", status.Error(codes.InvalidArgument, "events[3].data.amount: want a number"), false},
		{"unauthenticated", status.Error(codes.Unauthenticated, "unknown token"), false},
		{"deadline exceeded", status.Error(codes.DeadlineExceeded, "deadline"), false},
		{"canceled", status.Error(codes.Canceled, "canceled"), false},
		{"internal", status.Error(codes.Internal, "boom"), false},
		{"aborted", status.Error(codes.Aborted, "changed meanwhile"), false},
		{"not a status", errors.New("plain"), false},
		{"wrapped unavailable", fmt.Errorf("call: %w", unavailable()), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := retryable(tc.err); got != tc.want {
				t.Errorf("retryable(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

func TestBackoffDoublesUpToMaxWithJitterInUpperHalf(t *testing.T) {
	p := retryPolicy{maxAttempts: 10, base: 100 * time.Millisecond, max: time.Second}
	caps := []time.Duration{100, 200, 400, 800, 1000, 1000, 1000, 1000, 1000, 1000}
	for n, c := range caps {
		retry := n + 1
		d := c * time.Millisecond
		for _, tc := range []struct {
			jitter float64
			want   time.Duration
		}{{0, d / 2}, {0.5, d/2 + d/4}, {0.999999999, d}} {
			p.jitter = func() float64 { return tc.jitter }
			if got := p.delay(retry); got < tc.want-time.Microsecond || got > tc.want {
				t.Errorf("retry %d, jitter %v: delay %s, want %s", retry, tc.jitter, got, tc.want)
			}
		}
		p.jitter = nil // the real source: every draw within [d/2, d], and they differ
		seen := map[time.Duration]bool{}
		for range 200 {
			got := p.delay(retry)
			if got < d/2 || got > d {
				t.Fatalf("retry %d: delay %s outside [%s, %s]", retry, got, d/2, d)
			}
			seen[got] = true
		}
		if len(seen) < 2 {
			t.Errorf("retry %d: 200 draws gave %d distinct delays: no jitter", retry, len(seen))
		}
	}
	// A huge retry number does not overflow past max.
	if got := p.delay(1000); got > time.Second || got < 500*time.Millisecond {
		t.Errorf("retry 1000: delay %s, want within [500ms, 1s]", got)
	}
}

func TestWithRetryRefusesNegativeOrInvertedDelays(t *testing.T) {
	for _, o := range []Option{WithRetry(3, -time.Second, time.Second), WithRetry(3, time.Second, time.Millisecond)} {
		if _, err := New(context.Background(), "127.0.0.1:1", o); err == nil {
			t.Error("New accepted a bad retry policy")
		}
	}
}

func TestPublishRetries(t *testing.T) {
	for _, tc := range []struct {
		name        string
		maxAttempts int
		answers     []error // answer of attempt i; past the end: accept
		attempts    int
		code        codes.Code
	}{
		{"unavailable twice, then accepted", 10, []error{unavailable(), unavailable()}, 3, codes.OK},
		{"back-pressure, then accepted", 10, []error{queueFull()}, 2, codes.OK},
		{"invalid argument: no retry", 10, []error{status.Error(codes.InvalidArgument, "data: required")}, 1, codes.InvalidArgument},
		{"size limit: no retry", 10, []error{status.Error(codes.ResourceExhausted, "data: 1 bytes, over the limit of 0")}, 1, codes.ResourceExhausted},
		{"unauthenticated: no retry", 10, []error{status.Error(codes.Unauthenticated, "unknown token")}, 1, codes.Unauthenticated},
		{"attempts run out", 3, []error{unavailable(), unavailable(), unavailable(), unavailable()}, 3, codes.Unavailable},
		{"one attempt: no retry", 1, []error{unavailable()}, 1, codes.Unavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, c, delays := newFake(t, WithRetry(tc.maxAttempts, 10*time.Millisecond, 40*time.Millisecond))
			f.publish = func(n int, _ *postbackv1.PublishRequest) error {
				if n <= len(tc.answers) {
					return tc.answers[n-1]
				}
				return nil
			}
			req := clearing("")
			resp, err := c.Publish(context.Background(), req)
			if got := status.Code(err); got != tc.code {
				t.Fatalf("Publish: %v, want code %s", err, tc.code)
			}
			if err == nil && resp.EventId == "" {
				t.Error("accepted without an event id")
			}
			calls := f.snapshot()
			if len(calls) != tc.attempts {
				t.Fatalf("%d attempts, want %d", len(calls), tc.attempts)
			}
			if len(*delays) != tc.attempts-1 {
				t.Errorf("%d backoff waits for %d attempts", len(*delays), tc.attempts)
			}
			for i, d := range *delays {
				hi := min(40*time.Millisecond, 10*time.Millisecond<<i)
				if d < hi/2 || d > hi {
					t.Errorf("wait %d: %s, want within [%s, %s]", i+1, d, hi/2, hi)
				}
			}
			if req.IdempotencyKey == "" {
				t.Fatal("Publish did not set an idempotency key")
			}
			for i, cl := range calls {
				if cl.keys[0] != req.IdempotencyKey {
					t.Errorf("attempt %d sent key %q, want %q (the same on every attempt)", i+1, cl.keys[0], req.IdempotencyKey)
				}
			}
		})
	}
}

func TestPublishKeepsTheCallersIdempotencyKey(t *testing.T) {
	f, c, _ := newFake(t)
	f.publish = func(n int, _ *postbackv1.PublishRequest) error {
		if n == 1 {
			return unavailable()
		}
		return nil
	}
	req := clearing("")
	req.IdempotencyKey = "order-42"
	if _, err := c.Publish(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	for _, cl := range f.snapshot() {
		if cl.keys[0] != "order-42" {
			t.Errorf("sent key %q, want the caller's order-42", cl.keys[0])
		}
	}
}

func TestPublishGeneratesADistinctKeyPerEvent(t *testing.T) {
	_, c, _ := newFake(t)
	seen := map[string]bool{}
	for range 50 {
		req := clearing("")
		if _, err := c.Publish(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		if seen[req.IdempotencyKey] {
			t.Fatalf("key %q given twice", req.IdempotencyKey)
		}
		seen[req.IdempotencyKey] = true
	}
}

// An attempt the server stored but whose answer was lost is retried with
// the same key and answered duplicate: one event, its first id.
func TestPublishRetryAfterALostAnswerMakesNoSecondEvent(t *testing.T) {
	f, c, _ := newFake(t)
	var first string
	f.publish = func(n int, req *postbackv1.PublishRequest) error {
		if n == 1 {
			first = f.store(req).EventId // stored, then the connection "drops"
			return unavailable()
		}
		return nil
	}
	resp, err := c.Publish(context.Background(), clearing(""))
	if err != nil {
		t.Fatal(err)
	}
	if !resp.Duplicate || resp.EventId != first {
		t.Errorf("answer %v, want duplicate of %s", resp, first)
	}
	if n := f.storedCount(); n != 1 {
		t.Errorf("%d events stored, want 1", n)
	}
}

func TestPublishStopsRetryingWhenTheContextEnds(t *testing.T) {
	t.Run("during a real backoff wait", func(t *testing.T) {
		// Unlimited attempts, hour-long waits: the attempt's answer cancels
		// the context (an interceptor given by WithDialOptions), so Publish
		// returns only if the wait ends with the context.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		cancelAfterAnswer := grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			err := invoker(ctx, method, req, reply, cc, opts...)
			cancel()
			return err
		})
		f, c, _ := newFake(t, WithRetry(0, time.Hour, time.Hour), WithDialOptions(cancelAfterAnswer))
		c.retry.sleep = nil // the real timer
		f.publish = func(int, *postbackv1.PublishRequest) error { return unavailable() }
		_, err := c.Publish(ctx, clearing(""))
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Publish: %v, want context.Canceled", err)
		}
		if status.Code(err) != codes.Unavailable {
			t.Errorf("status.Code = %s, want the last attempt's Unavailable", status.Code(err))
		}
		if n := len(f.snapshot()); n != 1 {
			t.Errorf("%d attempts, want 1", n)
		}
	})
	t.Run("after some attempts", func(t *testing.T) {
		f, c, _ := newFake(t, WithRetry(0, time.Millisecond, time.Millisecond))
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		waits := 0
		c.retry.sleep = func(ctx context.Context, _ time.Duration) error {
			if waits++; waits == 3 {
				cancel()
			}
			return ctx.Err()
		}
		f.publish = func(int, *postbackv1.PublishRequest) error { return unavailable() }
		_, err := c.Publish(ctx, clearing(""))
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Publish: %v, want context.Canceled", err)
		}
		if n := len(f.snapshot()); n != 3 {
			t.Errorf("%d attempts, want 3", n)
		}
	})
}
