package health

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestFollowReportsReadinessAtOnceAndOnEveryChange(t *testing.T) {
	p := New()
	var failing atomic.Bool
	p.Add("dep", func(context.Context) error {
		if failing.Load() {
			return errors.New("down")
		}
		return nil
	})
	var mu sync.Mutex
	var got []bool
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		p.Follow(ctx, 10*time.Millisecond, func(ready bool) {
			mu.Lock()
			got = append(got, ready)
			mu.Unlock()
		})
		close(done)
	}()
	wait := func(n int) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			l := len(got)
			mu.Unlock()
			if l >= n {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Fatalf("want %d reports, got %v", n, got)
	}
	wait(1)
	failing.Store(true)
	wait(2)
	failing.Store(false)
	wait(3)
	time.Sleep(50 * time.Millisecond) // no change: no report
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 3 || !got[0] || got[1] || !got[2] {
		t.Fatalf("reports = %v, want [true false true]", got)
	}
}

func TestNATSCheckFailsWithoutAConnection(t *testing.T) {
	if err := NATS(nil)(context.Background()); err == nil {
		t.Fatal("a nil connection is ready")
	}
}

// An expected check fails, saying why, until the check of that name is
// added; then it is that check that counts.
func TestAnExpectedCheckFailsUntilItIsAdded(t *testing.T) {
	p := New()
	p.Add("nats", func(context.Context) error { return nil })
	p.Expect("grpc", "the gateway is not serving gRPC yet")
	failed := p.Ready(context.Background())
	if err := failed["grpc"]; err == nil || err.Error() != "the gateway is not serving gRPC yet" {
		t.Fatalf("expected check before it is added: %v, want the reason", err)
	}
	if len(failed) != 1 {
		t.Fatalf("failed = %v, want only grpc", failed)
	}
	p.Add("grpc", func(context.Context) error { return nil })
	if failed := p.Ready(context.Background()); len(failed) != 0 {
		t.Fatalf("after the check is added: %v, want ready", failed)
	}
}
