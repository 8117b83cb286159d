package standalone

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postback-dev/postback/pkg/config"
	"github.com/postback-dev/postback/pkg/datadir"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// A stop asked while the standalone is still starting (a deploy rolled
// back at once, a Ctrl-C after `make run`) is a clean stop: Run returns
// nil, and the process exits 0, whatever service was cut short.
func TestAStopAskedWhileStartingIsACleanStop(t *testing.T) {
	for _, after := range []time.Duration{0, 10 * time.Millisecond, 50 * time.Millisecond, 150 * time.Millisecond, 400 * time.Millisecond} {
		t.Run(after.String(), func(t *testing.T) {
			cfg := quietConfig(t.TempDir())
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

// quietConfig is a standalone on loopback ports and dataDir, logging nowhere.
func quietConfig(dataDir string) Config {
	cfg := Config{Config: config.Defaults(), Version: "test", Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))}
	cfg.GRPCAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.DataDir = dataDir
	cfg.AllowCIDRs = "127.0.0.1/32"
	cfg.Tokens = ""
	return cfg
}

// Two standalones on one data dir would consume one embedded store behind
// each other's backs: the second is refused at once, naming the first's
// PID, and the first serves on.
func TestASecondStandaloneOnTheSameDataDirIsRefused(t *testing.T) {
	dir := t.TempDir()
	first := start(t, dir, nil)
	err := Run(context.Background(), quietConfig(dir))
	if !errors.Is(err, datadir.ErrInUse) || !strings.Contains(err.Error(), "process "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("second standalone on %s: %v, want it refused naming process %d", dir, err, os.Getpid())
	}
	if _, err := first.types.ListEventTypes(context.Background(), &postbackv1.ListEventTypesRequest{}); err != nil {
		t.Errorf("the first standalone stopped serving: %v", err)
	}
}
