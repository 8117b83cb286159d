package client

// The client against a real postback-standalone (built from this
// repository's workspace, run as a child process on 127.0.0.1): a gateway
// restart, graceful or a crash, during a batching publish loses and
// doubles no event.

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/structpb"

	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// standaloneBinary builds postback-standalone from the repository's
// workspace (the client module sits at its top, in client/), or uses
// $POSTBACK_STANDALONE_BIN when set.
func standaloneBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("POSTBACK_STANDALONE_BIN"); bin != "" {
		return bin
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Clean(filepath.Join(filepath.Dir(file), ".."))
	if _, err := os.Stat(filepath.Join(root, "go.work")); err != nil {
		t.Fatalf("the standalone test needs the postback repository around the client module (or POSTBACK_STANDALONE_BIN): %v", err)
	}
	out := filepath.Join(t.TempDir(), "postback-standalone")
	cmd := exec.Command("go", "build", "-o", out, "./services/standalone/cmd/postback-standalone")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOWORK="+filepath.Join(root, "go.work"))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build postback-standalone: %v\n%s", err, b)
	}
	return out
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// standalone is a postback-standalone child process.
type standalone struct {
	t        *testing.T
	bin, log string
	env      []string
	http     string
	cmd      *exec.Cmd
	exited   chan struct{}
}

func (s *standalone) start() error {
	f, err := os.OpenFile(s.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	s.cmd = exec.Command(s.bin)
	s.cmd.Env = append(os.Environ(), s.env...)
	s.cmd.Stdout, s.cmd.Stderr = f, f
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return err
	}
	s.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) {
		_ = cmd.Wait()
		close(exited)
	}(s.cmd, s.exited)
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + s.http + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.exited:
			return fmt.Errorf("postback-standalone exited before it was ready; log %s:\n%s", s.log, tail(s.log))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postback-standalone not ready within 60s; log:\n%s", tail(s.log))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends sig and waits for the process to exit (SIGKILL after 30s).
func (s *standalone) stop(sig syscall.Signal) {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		s.t.Errorf("postback-standalone still running 30s after %s; killing it", sig)
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd = nil
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// rxLog records what the receiver got.
type rxLog struct {
	mu       sync.Mutex
	requests int
	bySeq    map[string]map[string]int // seq -> delivery id -> requests
	unknown  []string
}

func (r *rxLog) seqs() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.bySeq)
}

func TestStandaloneRestartDuringBatchPublishLosesAndDoublesNothing(t *testing.T) {
	bin := standaloneBinary(t)
	for _, tc := range []struct {
		name string
		sig  syscall.Signal
	}{
		{"graceful restart (SIGTERM)", syscall.SIGTERM},
		{"crash (SIGKILL)", syscall.SIGKILL},
	} {
		t.Run(tc.name, func(t *testing.T) { restartDuringPublish(t, bin, tc.sig) })
	}
}

func restartDuringPublish(t *testing.T, bin string, sig syscall.Signal) {
	const (
		n       = 2000
		account = "brand-restart"
		token   = "tok-restart-test"
	)
	dir := t.TempDir()
	grpcAddr := freeAddr(t)
	httpAddr := freeAddr(t)
	sa := &standalone{t: t, bin: bin, log: filepath.Join(dir, "standalone.log"), http: httpAddr, env: []string{
		"POSTBACK_GRPC_ADDR=" + grpcAddr,
		"POSTBACK_HTTP_ADDR=" + httpAddr,
		"POSTBACK_DATA_DIR=" + filepath.Join(dir, "data"), // the same across the restart
		"POSTBACK_ALLOW_CIDRS=127.0.0.1/32",
		"POSTBACK_TOKENS=" + token + "=*",
		"POSTBACK_LOG_LEVEL=warn",
	}}
	t.Cleanup(func() { sa.stop(syscall.SIGKILL) })
	if err := sa.start(); err != nil {
		t.Fatal(err)
	}

	rx := &rxLog{bySeq: map[string]map[string]int{}}
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seq, dlv := r.URL.Query().Get("seq"), r.Header.Get("Postback-Delivery-Id")
		rx.mu.Lock()
		rx.requests++
		if seq == "" || dlv == "" {
			rx.unknown = append(rx.unknown, r.URL.String())
		} else {
			if rx.bySeq[seq] == nil {
				rx.bySeq[seq] = map[string]int{}
			}
			rx.bySeq[seq][dlv]++
		}
		rx.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	defer receiver.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// Every event as the client sent it, attempt by attempt: its seq and
	// idempotency key.
	var sentMu sync.Mutex
	sent := map[string]map[string]int{} // seq -> idempotency key -> times sent
	answers := map[string]int{}         // the retryable answers, by message
	record := grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if b, ok := req.(*postbackv1.PublishBatchRequest); ok {
			sentMu.Lock()
			for _, e := range b.Events {
				seq := e.GetData().GetFields()["ActionIds"].GetStringValue()
				if sent[seq] == nil {
					sent[seq] = map[string]int{}
				}
				sent[seq][e.IdempotencyKey]++
			}
			sentMu.Unlock()
		}
		err := invoker(ctx, method, req, reply, cc, opts...)
		sentMu.Lock()
		defer sentMu.Unlock()
		if err != nil {
			answers[trim(err.Error())]++
		} else if b, ok := reply.(*postbackv1.PublishBatchResponse); ok {
			for _, r := range b.Results {
				if r.Error != nil {
					answers["events[]: "+trim(r.Error.Message)]++
				}
			}
		}
		return err
	})
	c, err := New(ctx, grpcAddr, WithToken(token), WithRetry(60, 50*time.Millisecond, time.Second), WithDialOptions(record))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ep, err := c.Endpoints().CreateEndpoint(ctx, &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{
		AccountId: account, EventType: "action_clearing", Url: receiver.URL + "/rx?seq={ActionIds}",
		Method: postbackv1.HttpMethod_HTTP_METHOD_GET}})
	if err != nil {
		t.Fatal(err)
	}

	// Publish n events through a Publisher; once 30% of them are queued
	// (so batches are in flight and more wait), restart the standalone.
	p := c.NewPublisher(PublisherOptions{MaxBatch: 100, Linger: 5 * time.Millisecond, MaxPending: 300, MaxInFlight: 2})
	results := make([]*Result, n)
	restarted := make(chan error, 1)
	var gap time.Duration
	started := time.Now()
	for i := range n {
		if i == n*3/10 {
			go func() {
				down := time.Now()
				sa.stop(sig)
				err := sa.start()
				gap = time.Since(down)
				if err != nil {
					cancel() // the publish cannot succeed: end it
				}
				restarted <- err
			}()
		}
		data := &structpb.Struct{Fields: map[string]*structpb.Value{
			"CampaignId": structpb.NewNumberValue(9876), "ActionIds": structpb.NewStringValue(fmt.Sprint("seq-", i))}}
		results[i] = p.Publish(ctx, &postbackv1.PublishRequest{AccountId: account, EventType: "action_clearing", Data: data})
	}
	closeErr := p.Close(ctx)
	if err := <-restarted; err != nil {
		t.Fatalf("restart: %v", err)
	}
	if closeErr != nil {
		t.Fatalf("Close: %v", closeErr)
	}
	published := time.Since(started)

	accepted := map[string]*postbackv1.PublishResponse{} // seq -> answer
	duplicates := 0
	for i, r := range results {
		resp, err := r.Wait(ctx)
		if err != nil {
			t.Errorf("event seq-%d not accepted: %v", i, err)
			continue
		}
		accepted[fmt.Sprint("seq-", i)] = resp
		if resp.Duplicate {
			duplicates++ // an earlier attempt was stored; its answer was lost
		}
	}
	// The client's part: each event went out under one idempotency key,
	// however many times it was sent.
	resent := 0
	for i := range n {
		seq := fmt.Sprint("seq-", i)
		keys := sent[seq]
		if len(keys) != 1 {
			t.Errorf("%s was sent under %d idempotency keys %v, want 1", seq, len(keys), keys)
		}
		for _, times := range keys {
			if times > 1 {
				resent++
			}
		}
	}
	t.Logf("%d events published in %s across a restart (%s) of %s; %d accepted; %d sent more than once (same key), %d answered duplicate",
		n, published.Round(time.Millisecond), sig, gap.Round(time.Millisecond), len(accepted), resent, duplicates)
	for msg, count := range answers {
		t.Logf("answered %d× %s", count, msg)
	}
	if len(accepted) != n {
		t.Fatalf("%d of %d events accepted", len(accepted), n)
	}

	// Every accepted event arrives.
	deadline := time.Now().Add(2 * time.Minute)
	for rx.seqs() < len(accepted) {
		if time.Now().After(deadline) {
			t.Fatalf("the receiver got %d of %d events within 2 minutes", rx.seqs(), len(accepted))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The history settles: every delivery of the endpoint SUCCEEDED.
	dlvEvent := map[string]string{} // delivery id -> event id
	deadline = time.Now().Add(time.Minute)
	for {
		clear(dlvEvent)
		succeeded := 0
		err := c.EachDelivery(ctx, &postbackv1.ListDeliveriesRequest{EndpointId: ep.Id, PageSize: 500}, func(d *postbackv1.Delivery) error {
			dlvEvent[d.Id] = d.EventId
			if d.Status == postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED {
				succeeded++
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if succeeded == len(dlvEvent) && len(dlvEvent) >= len(accepted) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("history: %d deliveries, %d SUCCEEDED, want %d all SUCCEEDED within a minute", len(dlvEvent), succeeded, len(accepted))
		}
		time.Sleep(250 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // a late re-send would show here

	rx.mu.Lock()
	defer rx.mu.Unlock()
	if len(rx.unknown) > 0 {
		t.Errorf("%d requests without a seq or delivery id, e.g. %s", len(rx.unknown), rx.unknown[0])
	}
	events := map[string]bool{}
	for _, e := range dlvEvent {
		events[e] = true
	}
	if len(dlvEvent) != len(accepted) || len(events) != len(accepted) {
		t.Errorf("the endpoint has %d deliveries of %d distinct events, want %d: an event was doubled", len(dlvEvent), len(events), len(accepted))
	}
	var repeats []string
	idMismatch, doubled := 0, 0
	for seq, resp := range accepted {
		dlvs := rx.bySeq[seq]
		if len(dlvs) == 0 {
			t.Errorf("%s (event %s) accepted but never delivered", seq, resp.EventId)
			continue
		}
		if len(dlvs) > 1 {
			var evs []string
			for dlv := range dlvs {
				evs = append(evs, dlvEvent[dlv])
			}
			sort.Strings(evs)
			doubled++
			if doubled <= 5 {
				t.Errorf("%s (one idempotency key, sent %d times) was stored as %d events %v; Publish answered %s duplicate=%v",
					seq, sumValues(sent[seq]), len(evs), evs, resp.EventId, resp.Duplicate)
			}
		}
		for dlv, count := range dlvs {
			ev, ok := dlvEvent[dlv]
			if !ok {
				t.Errorf("%s: delivery %s is not in the endpoint's history", seq, dlv)
			}
			if ev != resp.EventId {
				idMismatch++
			}
			if count > 1 {
				repeats = append(repeats, fmt.Sprintf("%s×%d", dlv, count))
			}
		}
	}
	for seq := range rx.bySeq {
		if accepted[seq] == nil {
			t.Errorf("the receiver got %s, which was never accepted", seq)
		}
	}
	if doubled > 0 {
		t.Errorf("%d of %d events were stored more than once although each was sent under one idempotency key",
			doubled, len(accepted))
	}
	sort.Strings(repeats)
	t.Logf("receiver: %d requests, %d distinct events, %d distinct deliveries in history; "+
		"%d deliveries re-sent with the same delivery id after the restart %v; %d answers naming an event id that was not delivered",
		rx.requests, len(rx.bySeq), len(dlvEvent), len(repeats), repeats[:min(len(repeats), 5)], idMismatch)
}

func sumValues(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// trim shortens an error message for the log, without its ids.
func trim(msg string) string {
	if i := strings.Index(msg, "events["); i >= 0 {
		if j := strings.Index(msg[i:], "]"); j >= 0 {
			msg = msg[:i] + "events[…" + msg[i+j:]
		}
	}
	return msg[:min(len(msg), 120)]
}
