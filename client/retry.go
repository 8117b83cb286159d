package client

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// retryPolicy is WithRetry's policy. jitter and sleep are replaced by tests.
type retryPolicy struct {
	maxAttempts int           // attempts in all; <= 0: until the context ends
	base, max   time.Duration // the first retry's delay bound, and the cap
	jitter      func() float64
	sleep       func(context.Context, time.Duration) error
}

func defaultRetry() retryPolicy {
	return retryPolicy{maxAttempts: 10, base: 100 * time.Millisecond, max: 5 * time.Second}
}

func (p retryPolicy) validate() error {
	if p.base < 0 || p.max < 0 {
		return errors.New("postback client: WithRetry: negative delay")
	}
	if p.max < p.base {
		return fmt.Errorf("postback client: WithRetry: max %s below base %s", p.max, p.base)
	}
	return nil
}

// delay is the wait before retry n (n >= 1): uniform in [d/2, d] with
// d = min(max, base·2^(n-1)). Half of it is jitter, so that clients that
// failed together do not retry together; the other half keeps the backoff
// growing.
func (p retryPolicy) delay(n int) time.Duration {
	d := p.base
	for i := 1; i < n && d < p.max; i++ {
		d *= 2
	}
	d = min(d, p.max)
	j := p.jitter
	if j == nil {
		j = rand.Float64
	}
	return d/2 + time.Duration(j()*float64(d-d/2))
}

// wait sleeps before retry n, or returns ctx's error when it ends first.
func (p retryPolicy) wait(ctx context.Context, n int) error {
	d := p.delay(n)
	if p.sleep != nil {
		return p.sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// more reports whether an attempt may follow attempt n.
func (p retryPolicy) more(n int) bool { return p.maxAttempts <= 0 || n < p.maxAttempts }

// do calls f until it succeeds, fails for good, runs out of attempts or ctx
// ends. The error is f's last; when ctx ended during a backoff it wraps
// both ctx's error and f's last.
func (p retryPolicy) do(ctx context.Context, f func(context.Context) error) error {
	for n := 1; ; n++ {
		err := f(ctx)
		if err == nil || !retryable(err) || !p.more(n) {
			return err
		}
		if werr := p.wait(ctx, n); werr != nil {
			return giveUp(werr, n, err)
		}
	}
}

// giveUp is the error of a retry loop whose context ended after n
// attempts, the last answered last.
func giveUp(ctxErr error, n int, last error) error {
	return fmt.Errorf("postback client: %w after %d attempts, the last: %w", ctxErr, n, last)
}

// retryable reports whether a call that failed with err may succeed when
// made again unchanged: Unavailable (the gateway or a dependency is down or
// restarting), and ResourceExhausted when it is back-pressure (a full
// event queue) rather than a size limit, which no retry can pass. Size
// limits are told apart by their messages (gateway: "over the limit of",
// "at most N events a batch"; gRPC: "larger than max").
func retryable(err error) bool {
	s, ok := status.FromError(err)
	if !ok {
		return false
	}
	switch s.Code() {
	case codes.Unavailable:
		return true
	case codes.ResourceExhausted:
		return !sizeLimit(s.Message())
	}
	return false
}

func sizeLimit(msg string) bool {
	for _, m := range []string{"over the limit of", "events a batch", "larger than max"} {
		if strings.Contains(msg, m) {
			return true
		}
	}
	return false
}

// NewIdempotencyKey returns a random key (128 bits, "pbk_" and 32 hex
// digits): what Publish and Publisher set on a request that has none.
func NewIdempotencyKey() string {
	var b [16]byte
	_, _ = crand.Read(b[:])
	return "pbk_" + hex.EncodeToString(b[:])
}

// Publish publishes one event. When req.IdempotencyKey is empty it is set
// (in place, before the first attempt) to a new random key, so that every
// retry of this call, and a caller's own later retry of the same req, is
// answered duplicate instead of making a second event. A call answered
// Unavailable or ResourceExhausted (back-pressure) is retried with backoff
// and jitter (WithRetry), for as long as ctx allows.
//
// A retry may be answered Duplicate = true: an earlier attempt was stored
// although its answer was lost. The event then exists once, with the
// returned id.
func (c *Client) Publish(ctx context.Context, req *postbackv1.PublishRequest) (*postbackv1.PublishResponse, error) {
	if req.IdempotencyKey == "" {
		req.IdempotencyKey = NewIdempotencyKey()
	}
	var resp *postbackv1.PublishResponse
	err := c.retry.do(ctx, func(ctx context.Context) error {
		var err error
		resp, err = c.events.Publish(ctx, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}
