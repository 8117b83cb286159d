package standalone

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// repoRoot is the checkout's top folder.
func repoRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// binary returns bin/<name> when `make tools`/`make build` made it, else
// builds it from the workspace (pkg is the Go package path; in dir).
func binary(t *testing.T, name, dir, pkg string, env ...string) string {
	t.Helper()
	root := repoRoot(t)
	out := filepath.Join(t.TempDir(), name)
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = filepath.Join(root, dir)
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", name, err, b)
	}
	return out
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// process is a child process the test can SIGKILL and start again.
type process struct {
	t    *testing.T
	path string
	args []string
	env  []string
	log  string
	cmd  *exec.Cmd
}

func (p *process) start() {
	p.t.Helper()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	p.cmd = exec.Command(p.path, p.args...)
	p.cmd.Env = append(os.Environ(), p.env...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(p.kill)
}

func (p *process) kill() {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		_, _ = p.cmd.Process.Wait()
		p.cmd = nil
	}
}

func waitTCP(t *testing.T, addr string) {
	t.Helper()
	eventually(t, 20*time.Second, addr+" to accept connections", func() bool {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// TestScheduledRetriesSurviveAKilledBrokerAndRetryService: 200 deliveries
// fail once and wait for their retry in JetStream; the NATS server (a
// separate process, file storage) and the retry service (a separate
// process) are SIGKILLed and restarted; every retry still fires exactly
// once, no earlier than scheduled and late by at most the restart gap.
func TestScheduledRetriesSurviveAKilledBrokerAndRetryService(t *testing.T) {
	const n = 200
	const delay = 5 * time.Second
	dir := t.TempDir()
	natsBin := binary(t, "nats-server", "scripts/tools", "github.com/nats-io/nats-server/v2", "GOWORK=off")
	retryBin := binary(t, "postback-retry", ".", "./services/retry/cmd/postback-retry")
	port := freePort(t)
	natsURL := fmt.Sprintf("nats://127.0.0.1:%d", port)
	broker := &process{t: t, path: natsBin, log: filepath.Join(dir, "nats.log"),
		args: []string{"-js", "-sd", filepath.Join(dir, "js"), "-a", "127.0.0.1", "-p", fmt.Sprint(port)}}
	broker.start()
	waitTCP(t, fmt.Sprintf("127.0.0.1:%d", port))
	sched := delay.String()
	retrySvc := &process{t: t, path: retryBin, log: filepath.Join(dir, "retry.log"),
		env: []string{"POSTBACK_NATS_URL=" + natsURL, "POSTBACK_RETRY_SCHEDULE=" + sched, "POSTBACK_HTTP_ADDR=127.0.0.1:0"}}
	retrySvc.start()

	var mu sync.Mutex
	seen := map[string]int{}
	rc := newReceiver(t)
	rc.answer = func(_ int, r *http.Request) (int, string) {
		mu.Lock()
		defer mu.Unlock()
		id := r.Header.Get("Postback-Delivery-Id")
		seen[id]++
		if seen[id] == 1 {
			return 503, "not yet"
		}
		return 200, "OK"
	}
	h := start(t, filepath.Join(dir, "standalone"), func(c *Config) {
		c.NATSURL = natsURL
		c.Targets = "gateway,renderer,sender,historian"
		c.RetrySchedule = sched
	})
	postTo(t, h, rc.URL)
	ctx := context.Background()
	batch := &postbackv1.PublishBatchRequest{}
	for range n {
		batch.Events = append(batch.Events, &postbackv1.PublishRequest{AccountId: "brand-1", EventType: "action_clearing",
			Data: &structpb.Struct{Fields: map[string]*structpb.Value{"CampaignId": structpb.NewNumberValue(9876), "ActionIds": structpb.NewStringValue("ACT-1")}}})
	}
	res, err := h.events.PublishBatch(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res.Results {
		if r.Error != nil {
			t.Fatalf("event %d refused: %v", i, r.Error)
		}
	}
	eventually(t, 20*time.Second, "every delivery RETRYING with its retry scheduled", func() bool {
		ds := listAll(t, h)
		if len(ds) != n {
			return false
		}
		for _, d := range ds {
			if d.Status != postbackv1.DeliveryStatus_DELIVERY_STATUS_RETRYING || d.NextAttemptTime == nil {
				return false
			}
		}
		return true
	})
	due := map[string]time.Time{}
	for _, d := range listAll(t, h) {
		due[d.Id] = d.NextAttemptTime.AsTime()
	}
	killed := time.Now()
	broker.kill()
	retrySvc.kill()
	time.Sleep(time.Second)
	broker.start()
	waitTCP(t, fmt.Sprintf("127.0.0.1:%d", port))
	retrySvc.start()
	gap := time.Since(killed)
	t.Logf("broker and retry service down for %s", gap)

	eventually(t, 60*time.Second, "every delivery SUCCEEDED", func() bool {
		ds, err := h.deliveries.ListDeliveries(ctx, &postbackv1.ListDeliveriesRequest{AccountId: "brand-1", PageSize: 500})
		return err == nil && allStatus(ds.Deliveries, n, postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED)
	})
	time.Sleep(500 * time.Millisecond)
	groups := byDelivery(rc.requests())
	if len(groups) != n {
		t.Fatalf("receiver saw %d deliveries, want %d", len(groups), n)
	}
	var worstLate time.Duration
	for id, rs := range groups {
		if len(rs) != 2 {
			t.Errorf("delivery %s got %d requests, want 2 (the first send and its one retry)", id, len(rs))
			continue
		}
		late := rs[1].At.Sub(due[id])
		if late < -50*time.Millisecond {
			t.Errorf("delivery %s retried %s before its time", id, -late)
		}
		worstLate = max(worstLate, late)
	}
	if worstLate > gap+3*time.Second {
		t.Errorf("a retry fired %s late; the restart gap was %s", worstLate, gap)
	}
	t.Logf("%d retries fired once each; the latest was %s after its time", n, worstLate)
}
