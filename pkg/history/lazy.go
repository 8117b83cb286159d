package history

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// Lazy is a Store that opens its backend on first use, and tries again on
// later calls while opening fails, so a process can start while its
// database is down: the gateway keeps taking events (the delivery log
// answers Unavailable meanwhile) and the history writer keeps its changes
// in the stream until the store answers. Attempts to open are at least
// retryEvery apart; a call in between fails at once with the last error.
func Lazy(open func(ctx context.Context) (Store, error)) Store {
	return &lazy{open: open}
}

const retryEvery = time.Second

type lazy struct {
	open func(ctx context.Context) (Store, error)

	mu      sync.Mutex
	s       Store
	lastTry time.Time
	lastErr error
	closed  bool
}

func (l *lazy) store(ctx context.Context) (Store, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.s != nil:
		return l.s, nil
	case l.closed:
		return nil, errors.New("history store closed")
	case l.lastErr != nil && time.Since(l.lastTry) < retryEvery:
		return nil, l.lastErr
	}
	l.lastTry = time.Now()
	s, err := l.open(ctx)
	if err != nil {
		l.lastErr = fmt.Errorf("history store not open yet: %w", err)
		return nil, l.lastErr
	}
	l.s, l.lastErr = s, nil
	return s, nil
}

func (l *lazy) Append(ctx context.Context, es []Entry) error {
	s, err := l.store(ctx)
	if err != nil {
		return err
	}
	return s.Append(ctx, es)
}

func (l *lazy) Get(ctx context.Context, id string) (*Row, error) {
	s, err := l.store(ctx)
	if err != nil {
		return nil, err
	}
	return s.Get(ctx, id)
}

func (l *lazy) List(ctx context.Context, q Query) (*Page, error) {
	s, err := l.store(ctx)
	if err != nil {
		return nil, err
	}
	return s.List(ctx, q)
}

func (l *lazy) Attempts(ctx context.Context, deliveryID string) ([]*postbackv1.Attempt, error) {
	s, err := l.store(ctx)
	if err != nil {
		return nil, err
	}
	return s.Attempts(ctx, deliveryID)
}

func (l *lazy) Counts(ctx context.Context, endpointID string, start, end time.Time) (map[postbackv1.DeliveryStatus]int64, error) {
	s, err := l.store(ctx)
	if err != nil {
		return nil, err
	}
	return s.Counts(ctx, endpointID, start, end)
}

func (l *lazy) Expire(ctx context.Context, before time.Time) (int, error) {
	s, err := l.store(ctx)
	if err != nil {
		return 0, err
	}
	return s.Expire(ctx, before)
}

func (l *lazy) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.s == nil {
		return nil
	}
	return l.s.Close()
}
