package main

// The end-to-end harness: TestMain builds postbackctl and
// postback-standalone, starts the standalone on loopback ports with API
// tokens and a short retry schedule, and a loopback receiver; the tests
// run the postbackctl binary against them.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The standalone's API tokens: an operator's and brand-a's.
const (
	operatorToken = "op-token-0123456789abcdef"
	brandToken    = "brand-a-token-0123456789"
)

// env is what TestMain set up.
var env struct {
	dir      string // the temp folder of the run
	ctl      string // the postbackctl binary
	addr     string // the standalone's gRPC address
	xdg      string // XDG_CONFIG_HOME of every postbackctl run
	rc       *receiver
	logPath  string
	buildDur time.Duration
}

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "postbackctl-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	env.dir = dir
	stop, err := setup(dir)
	if stop != nil {
		defer stop()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "setup: %v\n", err)
		if b, rerr := os.ReadFile(env.logPath); rerr == nil {
			fmt.Fprintf(os.Stderr, "standalone log:\n%s\n", tail(b, 4000))
		}
		return 1
	}
	code := m.Run()
	if code != 0 {
		if b, rerr := os.ReadFile(env.logPath); rerr == nil {
			fmt.Fprintf(os.Stderr, "standalone log (tail):\n%s\n", tail(b, 4000))
		}
	}
	return code
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// setup builds the binaries, starts the receiver and the standalone, and
// writes the default config file (address and operator token).
func setup(dir string) (func(), error) {
	start := time.Now()
	wd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	root := filepath.Clean(filepath.Join(wd, "..", "..", ".."))
	env.ctl = filepath.Join(dir, "postbackctl")
	standalone := filepath.Join(dir, "postback-standalone")
	for _, b := range []struct{ out, dir, pkg string }{
		{env.ctl, wd, "."},
		{standalone, root, "./services/standalone/cmd/postback-standalone"},
	} {
		cmd := exec.Command("go", "build", "-o", b.out, b.pkg)
		cmd.Dir = b.dir
		if b.dir == root { // the repository's go.work, even under GOWORK=off
			cmd.Env = append(os.Environ(), "GOWORK="+filepath.Join(root, "go.work"))
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
		}
	}
	env.buildDur = time.Since(start)

	env.rc = newReceiver()
	stops := []func(){env.rc.Close}
	stopAll := func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}

	env.logPath = filepath.Join(dir, "standalone.log")
	logFile, err := os.Create(env.logPath)
	if err != nil {
		return stopAll, err
	}
	stops = append(stops, func() { logFile.Close() })
	cmd := exec.Command(standalone)
	cmd.Env = append(withoutPostback(os.Environ()),
		"POSTBACK_GRPC_ADDR=127.0.0.1:0",
		"POSTBACK_HTTP_ADDR=127.0.0.1:0",
		"POSTBACK_DATA_DIR="+filepath.Join(dir, "data"),
		"POSTBACK_ALLOW_CIDRS=127.0.0.1/32",
		"POSTBACK_RETRY_SCHEDULE=100ms,100ms",
		"POSTBACK_TOKENS="+operatorToken+"=*,"+brandToken+"=brand-a",
		"POSTBACK_LOG_LEVEL=warn",
	)
	cmd.Stderr = logFile
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return stopAll, err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return stopAll, err
	}
	stops = append(stops, func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logFile, line)
			// "postback dev ready: grpc 127.0.0.1:N, http …"
			if _, rest, ok := strings.Cut(line, " ready: grpc "); ok {
				addr, _, _ := strings.Cut(rest, ",")
				select {
				case ready <- addr:
				default:
				}
			}
		}
	}()
	select {
	case env.addr = <-ready:
	case <-time.After(60 * time.Second):
		return stopAll, fmt.Errorf("postback-standalone not ready within 60s")
	}

	env.xdg = filepath.Join(dir, "xdg")
	if err := os.MkdirAll(filepath.Join(env.xdg, "postback"), 0o700); err != nil {
		return stopAll, err
	}
	cfg := fmt.Sprintf("# written by the test\naddr: %s\ntoken: %s\n", env.addr, operatorToken)
	if err := os.WriteFile(filepath.Join(env.xdg, "postback", "config.yaml"), []byte(cfg), 0o600); err != nil {
		return stopAll, err
	}
	return stopAll, nil
}

// withoutPostback drops the POSTBACK_* and XDG_CONFIG_HOME variables of
// the test's own environment.
func withoutPostback(environ []string) []string {
	var out []string
	for _, kv := range environ {
		if strings.HasPrefix(kv, "POSTBACK_") || strings.HasPrefix(kv, "XDG_CONFIG_HOME=") || strings.HasPrefix(kv, "HOME=") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// result is one postbackctl run.
type result struct {
	code           int
	stdout, stderr string
	args           []string
}

func (r result) String() string {
	return fmt.Sprintf("postbackctl %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// cli is one postbackctl invocation.
type cli struct {
	args  []string
	stdin string
	env   []string // extra variables
}

// exec runs postbackctl (the default config file points it at the
// standalone with the operator's token).
func (r cli) exec(t *testing.T) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, env.ctl, r.args...)
	cmd.Env = append(withoutPostback(os.Environ()), "HOME="+env.dir, "XDG_CONFIG_HOME="+env.xdg)
	cmd.Env = append(cmd.Env, r.env...)
	cmd.Stdin = strings.NewReader(r.stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := result{stdout: stdout.String(), stderr: stderr.String(), args: r.args}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("postbackctl %v: %v", r.args, err)
		}
		res.code = ee.ExitCode()
	}
	return res
}

// ctl runs postbackctl with args.
func ctl(t *testing.T, args ...string) result {
	t.Helper()
	return cli{args: args}.exec(t)
}

// ok runs postbackctl and fails the test unless it exits 0.
func ok(t *testing.T, args ...string) result {
	t.Helper()
	r := ctl(t, args...)
	if r.code != 0 {
		t.Fatalf("want exit 0, got %s", r)
	}
	return r
}

// okJSON runs postbackctl with -o json and decodes its output.
func okJSON(t *testing.T, v any, args ...string) result {
	t.Helper()
	r := ok(t, append(args, "-o", "json")...)
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, r)
	}
	return r
}

// eventually polls cond until it holds.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", within, what)
}

// receiver is a loopback HTTP server: /ok answers 200; /flaky answers 503
// while down is set; every request is counted by path.
type receiver struct {
	*httptest.Server
	mu   sync.Mutex
	down bool
	got  map[string][]http.Header
}

func newReceiver() *receiver {
	rc := &receiver{got: map[string][]http.Header{}}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		rc.mu.Lock()
		rc.got[r.URL.Path] = append(rc.got[r.URL.Path], r.Header.Clone())
		down := rc.down
		rc.mu.Unlock()
		if r.URL.Path == "/flaky" && down {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "OK")
	}))
	return rc
}

func (rc *receiver) setDown(down bool) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.down = down
}

func (rc *receiver) requests(path string) []http.Header {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]http.Header(nil), rc.got[path]...)
}
