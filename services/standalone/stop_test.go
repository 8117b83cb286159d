package standalone

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/postback-dev/postback/pkg/config"
)

// A stop asked while the standalone is still starting (a deploy rolled
// back at once, a Ctrl-C after `make run`) is a clean stop: Run returns
// nil, and the process exits 0, whatever service was cut short.
func TestAStopAskedWhileStartingIsACleanStop(t *testing.T) {
	for _, after := range []time.Duration{0, 10 * time.Millisecond, 50 * time.Millisecond, 150 * time.Millisecond, 400 * time.Millisecond} {
		t.Run(after.String(), func(t *testing.T) {
			cfg := Config{Config: config.Defaults(), Version: "test", Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))}
			cfg.GRPCAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
			cfg.DataDir = t.TempDir()
			cfg.AllowCIDRs = "127.0.0.1/32"
			cfg.Tokens = ""
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- Run(ctx, cfg) }()
			time.Sleep(after)
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("stopped %s after starting: %v, want a clean stop", after, err)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("still running 30 s after the stop was asked")
			}
		})
	}
}
