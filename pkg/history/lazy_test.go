package history

import (
	"context"
	"errors"
	"testing"
	"time"
)

// nothing is a store with no rows.
type nothing struct{ Store }

func (nothing) Get(context.Context, string) (*Row, error) { return nil, ErrNotFound }
func (nothing) Close() error                              { return nil }

func TestALazyStoreOpensWhenItsDatabaseComesUpAndNotBefore(t *testing.T) {
	down := errors.New("connection refused")
	opens := 0
	up := false
	s := Lazy(func(context.Context) (Store, error) {
		opens++
		if !up {
			return nil, down
		}
		return nothing{}, nil
	})
	ctx := context.Background()
	if _, err := s.Get(ctx, "dlv_1"); !errors.Is(err, down) {
		t.Fatalf("Get while down = %v, want the open error", err)
	}
	if _, err := s.Get(ctx, "dlv_1"); !errors.Is(err, down) || opens != 1 {
		t.Fatalf("a second call within a second: %v after %d opens, want the same error and no new open", err, opens)
	}
	up = true
	time.Sleep(retryEvery)
	if _, err := s.Get(ctx, "dlv_1"); !errors.Is(err, ErrNotFound) || opens != 2 {
		t.Fatalf("Get once up = %v after %d opens, want the store's answer after 2", err, opens)
	}
	if _, err := s.Get(ctx, "dlv_1"); !errors.Is(err, ErrNotFound) || opens != 2 {
		t.Fatalf("opened again: %d opens", opens)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
