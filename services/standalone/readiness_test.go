package standalone

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// /readyz passes only once the gateway takes gRPC calls: a caller (a
// load balancer, a test harness, a deploy script) that waits for it and
// then dials finds a listener. It once passed on NATS, the streams and the
// limiter alone, in the moment before the gateway goroutine had started,
// and CI saw a CreateEndpoint refused right after a restart. Here the
// gateway is held back until /readyz has answered, so that moment is
// always seen.
func TestReadyzPassesOnlyOnceGRPCIsTakingCalls(t *testing.T) {
	release := make(chan struct{})
	saved := targets
	targets = append([]target(nil), targets...)
	t.Cleanup(func() { targets = saved })
	for i, tg := range targets {
		if tg.name == "gateway" {
			run := tg.run
			targets[i].run = func(ctx context.Context, w *wiring) error {
				select {
				case <-release:
				case <-ctx.Done():
					return ctx.Err()
				}
				return run(ctx, w)
			}
		}
	}

	cfg := quietConfig(t.TempDir())
	cfg.GRPCAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg.HTTPAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	client := &http.Client{Timeout: 2 * time.Second}
	readyz := func() (int, string) {
		resp, err := client.Get("http://" + cfg.HTTPAddr + "/readyz")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// Every other check passes while the gateway is held back; /readyz
	// still fails, naming it.
	eventually(t, 30*time.Second, "/readyz to fail on the gateway alone", func() bool {
		code, body := readyz()
		return code == http.StatusServiceUnavailable && strings.TrimSpace(body) == "not ready\ngrpc: the gateway is not serving gRPC yet"
	})
	close(release)
	eventually(t, 30*time.Second, "/readyz to pass", func() bool {
		code, _ := readyz()
		return code == http.StatusOK
	})
	c, err := net.DialTimeout("tcp", cfg.GRPCAddr, 2*time.Second)
	if err != nil {
		t.Fatalf("/readyz passed, but the gRPC listener refused: %v", err)
	}
	c.Close()
}
