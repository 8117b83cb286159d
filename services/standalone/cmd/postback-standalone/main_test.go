package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// A bad setting stops a built binary before it starts anything: exit code
// 2, one line on stderr naming the variable (and the value, unless it is a
// secret), nothing on stdout, no log line of a service starting, and no data
// dir written. postback-standalone checks its settings itself;
// postback-retry stands for the separate binaries (pkg/process.Main). No
// NATS is needed: the retry binary is pointed at a port nothing listens on.
func TestABadSettingStopsTheBinaryBeforeItStartsAnything(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go tool builds the binaries under test: %v", err)
	}
	dir := t.TempDir()
	build := func(name, pkg string) string {
		out := filepath.Join(dir, name)
		cmd := exec.Command(goTool, "build", "-o", out, pkg)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, b)
		}
		return out
	}
	bins := map[string]string{
		"postback-standalone": build("postback-standalone", "."),
		"postback-retry":      build("postback-retry", "github.com/postback-dev/postback/services/retry/cmd/postback-retry"),
	}
	const password = "hunter2-pw"
	cases := []struct {
		bin, env, value string
		secret          bool
		noNATS          bool // leave POSTBACK_NATS_URL unset
	}{
		{bin: "postback-standalone", env: "POSTBACK_STREAM_REPLICAS", value: "three"},
		{bin: "postback-standalone", env: "POSTBACK_PPROF", value: "yes"},
		{bin: "postback-standalone", env: "POSTBACK_LOG_LEVEL", value: "loud"},
		{bin: "postback-standalone", env: "POSTBACK_GRPC_ADDR", value: "nonsense"},
		{bin: "postback-standalone", env: "POSTBACK_TARGETS", value: "gateway,mailer"},
		{bin: "postback-standalone", env: "POSTBACK_RETRY_SCHEDULE", value: "1m,5x"},
		{bin: "postback-standalone", env: "POSTBACK_ALLOW_CIDRS", value: "10.0.0.0/33"},
		{bin: "postback-standalone", env: "POSTBACK_REDIS_URL", value: "redis://:" + password + "@127.0.0.1:1?bogus_option=1", secret: true},
		{bin: "postback-standalone", env: "POSTBACK_HISTORY_URL", value: "mysql://u:" + password + "@127.0.0.1/postback", secret: true},
		{bin: "postback-standalone", env: "POSTBACK_TLS_CERT", value: filepath.Join(dir, "missing.crt")},
		{bin: "postback-retry", env: "POSTBACK_STREAM_REPLICAS", value: "three"},
		{bin: "postback-retry", env: "POSTBACK_PPROF", value: "yes"},
		{bin: "postback-retry", env: "POSTBACK_LOG_LEVEL", value: "loud"},
		{bin: "postback-retry", env: "POSTBACK_RETENTION", value: "30d"},
		{bin: "postback-retry", env: "POSTBACK_SECRET_KEY", value: "k1:" + password, secret: true},
		{bin: "postback-retry", env: "POSTBACK_NATS_URL", value: "http://u:" + password + "@127.0.0.1:1", secret: true},
		{bin: "postback-retry", env: "POSTBACK_NATS_URL", noNATS: true},
	}
	for i, c := range cases {
		t.Run(c.bin+" "+c.env+"="+c.value, func(t *testing.T) {
			data := filepath.Join(dir, "data", strconv.Itoa(i))
			env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "POSTBACK_DATA_DIR=" + data,
				"POSTBACK_GRPC_ADDR=127.0.0.1:0", "POSTBACK_HTTP_ADDR=127.0.0.1:0"}
			if c.bin == "postback-retry" && !c.noNATS {
				env = append(env, "POSTBACK_NATS_URL=nats://127.0.0.1:1")
			}
			if c.value != "" {
				env = append(env, c.env+"="+c.value) // the last of a name wins
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bins[c.bin])
			cmd.Env = env
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 2 {
				t.Fatalf("exit: %v, want code 2; stdout %q; stderr %q", err, stdout.String(), stderr.String())
			}
			line := stderr.String()
			if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
				t.Errorf("stderr is not one line: %q", line)
			}
			if !strings.HasPrefix(line, c.bin+": "+c.env) {
				t.Errorf("stderr does not start with %q: %q", c.bin+": "+c.env, line)
			}
			if !strings.Contains(line, "want ") {
				t.Errorf("stderr does not say what is allowed: %q", line)
			}
			if c.secret {
				if strings.Contains(line, password) {
					t.Errorf("stderr shows the secret: %q", line)
				}
			} else if c.value != "" && !strings.Contains(line, `"`+c.value+`"`) {
				t.Errorf("stderr does not show the value %q: %q", c.value, line)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout: %q", stdout.String())
			}
			for _, started := range []string{"ready", "starting", "consuming", `"level":`} {
				if strings.Contains(line, started) {
					t.Errorf("stderr has %q: something started or logged: %q", started, line)
				}
			}
			if _, err := os.Stat(data); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the data dir was made (%v): something started", err)
			}
		})
	}
}

// The ready line names the embedded NATS server's URL for operators and
// tools, but never its admin password (nor any other generated secret): the
// passwords stay in the data dir's nats-credentials file.
func TestTheReadyLineShowsNoPassword(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go tool builds the binary under test: %v", err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "postback-standalone")
	if b, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	data := filepath.Join(dir, "data")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = append(os.Environ(), "POSTBACK_DATA_DIR="+data, "POSTBACK_GRPC_ADDR=127.0.0.1:0", "POSTBACK_HTTP_ADDR=127.0.0.1:0")
	var stdout, stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}()
	for !strings.Contains(stdout.String(), " ready: ") {
		if ctx.Err() != nil {
			t.Fatalf("no ready line within 60 s; stderr: %s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	creds, err := os.ReadFile(filepath.Join(data, "nats-credentials"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "nats://postback:xxxxx@127.0.0.1:") {
		t.Errorf("the ready line does not name the redacted admin URL: %q", stdout.String())
	}
	for _, line := range strings.Split(string(creds), "\n") {
		_, pass, ok := strings.Cut(line, ":")
		if !ok || strings.HasPrefix(line, "#") || pass == "" {
			continue
		}
		if strings.Contains(stdout.String(), pass) || strings.Contains(stderr.String(), pass) {
			t.Errorf("the output shows the password of %s", strings.SplitN(line, ":", 2)[0])
		}
	}
}

// lockedBuffer is a bytes.Buffer a running process writes while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
