package process

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/postback-dev/postback/pkg/config"
	"github.com/postback-dev/postback/pkg/health"
	"github.com/postback-dev/postback/pkg/stream/streamtest"
)

// A bad or missing setting is one line on stderr, "name: what is wrong",
// and exit code 2; -h lists the flags and exits 0.
func TestBadConfigurationIsOneLineAndExitCode2(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		args []string
		code int
		says []string // on stderr
	}{
		{name: "postback-retry", env: map[string]string{"POSTBACK_NATS_URL": "nats://127.0.0.1:4222", "POSTBACK_STREAM_REPLICAS": "three"},
			code: 2, says: []string{`postback-retry: POSTBACK_STREAM_REPLICAS: "three" is not a whole number; want a whole number from 1 to 5`}},
		{name: "postback-retry", env: map[string]string{"POSTBACK_NATS_URL": "nats://127.0.0.1:4222"}, args: []string{"--pprof=yes"},
			code: 2, says: []string{`postback-retry: --pprof (POSTBACK_PPROF): "yes" is not a boolean`}},
		{name: "postback-renderer", code: 2, says: []string{"postback-renderer: POSTBACK_NATS_URL is required"}},
		{name: "postback-sender", env: map[string]string{"POSTBACK_NATS_URL": "nats://127.0.0.1:4222"},
			code: 2, says: []string{"postback-sender: POSTBACK_SECRET_KEY is required"}},
		{name: "postback-standalone", env: map[string]string{"POSTBACK_GRPC_ADDR": "nonsense"},
			code: 2, says: []string{`postback-standalone: POSTBACK_GRPC_ADDR: "nonsense" is not host:port`}},
		{name: "postback-standalone", args: []string{"-h"}, code: 0, says: []string{"-grpc-addr", "POSTBACK_GRPC_ADDR"}},
		{name: "postback-retry", env: map[string]string{"POSTBACK_NATS_URL": "nats://127.0.0.1:4222"}, code: -1},
	}
	for _, c := range cases {
		t.Run(c.name+" "+strings.Join(c.args, " "), func(t *testing.T) {
			var stderr bytes.Buffer
			_, code := loadConfig(c.name, c.args, func(k string) string { return c.env[k] }, &stderr)
			if code != c.code {
				t.Fatalf("code = %d, want %d; stderr: %s", code, c.code, stderr.String())
			}
			for _, s := range c.says {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr lacks %q: %s", s, stderr.String())
				}
			}
			if c.code == 2 && strings.Count(stderr.String(), "\n") != 1 {
				t.Errorf("stderr is not one line: %q", stderr.String())
			}
			if c.code == -1 && stderr.Len() != 0 {
				t.Errorf("stderr: %q", stderr.String())
			}
		})
	}
}

// A check a service adds only once it runs (the gateway's "grpc") is
// expected before /readyz is served: /readyz fails while the service
// starts, instead of passing on the checks that were there first.
func TestReadyzWaitsForTheChecksAServiceAddsOnceItRuns(t *testing.T) {
	js := streamtest.JetStream(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpAddr := l.Addr().String()
	l.Close()
	cfg := config.Defaults()
	cfg.NATSURL = js.Conn().ConnectedUrl()
	cfg.HTTPAddr = httpAddr
	readyz := func() (int, string) {
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		name   string
		opts   []Option
		status int
	}{
		{"expected: not ready while the service starts", []Option{WithProbes(func(p *health.Probes) { p.Expect("grpc", "not serving yet") })}, http.StatusServiceUnavailable},
		{"not expected: ready on the first checks alone", nil, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			starting := make(chan struct{})
			done := make(chan error, 1)
			p := &Process{Name: "postback-test", Version: "test", Config: cfg, Log: slog.New(slog.DiscardHandler)}
			go func() {
				done <- run(ctx, p, func(ctx context.Context, p *Process) error {
					close(starting) // the service has not added its check yet
					<-ctx.Done()
					return nil
				}, tc.opts...)
			}()
			<-starting
			var code int
			var body string
			deadline := time.Now().Add(10 * time.Second)
			for code, body = readyz(); code == 0 && time.Now().Before(deadline); code, body = readyz() {
				time.Sleep(10 * time.Millisecond) // the listener is not bound yet
			}
			if code != tc.status {
				t.Fatalf("/readyz while the service starts = %d %q, want %d", code, body, tc.status)
			}
			if tc.status != http.StatusOK && !strings.Contains(body, "grpc: not serving yet") {
				t.Fatalf("/readyz says %q, want the expected check's reason", body)
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		})
	}
}
