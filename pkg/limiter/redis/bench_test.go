package redislimiter

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/postback-dev/postback/pkg/limiter"
	"github.com/postback-dev/postback/pkg/redistest"
)

// The two benchmarks share one redis-server (started on first use, stopped
// by TestMain) and one client, so Reserve/INCR is the script's cost over a
// bare round trip on the same loopback connection.

var (
	benchOnce   sync.Once
	benchSrv    *redistest.Server
	benchClient *redis.Client
	benchErr    error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if benchClient != nil {
		_ = benchClient.Close()
	}
	if benchSrv != nil {
		benchSrv.Close()
	}
	os.Exit(code)
}

func sharedClient(b *testing.B) *redis.Client {
	b.Helper()
	benchOnce.Do(func() {
		benchSrv, benchErr = redistest.StartShared()
		if benchErr == nil {
			benchClient = redis.NewClient(&redis.Options{Addr: benchSrv.Addr})
		}
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchClient
}

func BenchmarkReserveRedis(b *testing.B) {
	l := New(sharedClient(b))
	ctx := context.Background()
	lim := limiter.Limits{Rate: 100, MinDelay: time.Millisecond}
	eps := make([]string, 1024)
	for i := range eps {
		eps[i] = fmt.Sprintf("ep_bench_%d", i)
	}
	for i := 0; b.Loop(); i++ {
		if _, err := l.Reserve(ctx, eps[i%len(eps)], lim); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkIncrRedis(b *testing.B) {
	c := sharedClient(b)
	ctx := context.Background()
	for b.Loop() {
		if err := c.Incr(ctx, "postback:bench:incr").Err(); err != nil {
			b.Fatal(err)
		}
	}
}
