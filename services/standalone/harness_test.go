package standalone

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/postback-dev/postback/pkg/broker/brokertest"
	"github.com/postback-dev/postback/pkg/config"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// harness is a running standalone Postback with gRPC clients.
type harness struct {
	addrs      Addrs
	conn       *grpc.ClientConn
	events     postbackv1.EventServiceClient
	endpoints  postbackv1.EndpointServiceClient
	deliveries postbackv1.DeliveryServiceClient
	types      postbackv1.EventTypeServiceClient
	cancel     context.CancelFunc
	done       chan error
}

// start runs standalone on free loopback ports with a temp data dir; edit
// adjusts the configuration.
func start(t testing.TB, dataDir string, edit func(*Config)) *harness {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	cfg := Config{Config: config.Defaults(), Version: "test",
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))}
	cfg.GRPCAddr = "127.0.0.1:0"
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.DataDir = dataDir
	cfg.AllowCIDRs = "127.0.0.1/32"
	cfg.Tokens = ""
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(&testWriter{t: t}, nil))
	}
	if edit != nil {
		edit(&cfg)
	}
	ready := make(chan Addrs, 1)
	cfg.Ready = func(a Addrs) { ready <- a }
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{cancel: cancel, done: make(chan error, 1)}
	go func() { h.done <- Run(ctx, cfg) }()
	select {
	case h.addrs = <-ready:
	case err := <-h.done:
		cancel()
		t.Fatalf("standalone stopped before ready: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("standalone not ready within 30s")
	}
	if h.addrs.GRPC == nil { // no gateway among the targets
		t.Cleanup(h.stop)
		return h
	}
	conn, err := grpc.NewClient(h.addrs.GRPC.String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	h.conn = conn
	h.events = postbackv1.NewEventServiceClient(conn)
	h.endpoints = postbackv1.NewEndpointServiceClient(conn)
	h.deliveries = postbackv1.NewDeliveryServiceClient(conn)
	h.types = postbackv1.NewEventTypeServiceClient(conn)
	t.Cleanup(h.stop)
	return h
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	if h.conn != nil {
		h.conn.Close()
	}
	h.cancel()
	select {
	case <-h.done:
	case <-time.After(15 * time.Second):
	}
	h.cancel = nil
}

type testWriter struct {
	mu sync.Mutex
	t  testing.TB
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.t.Log(string(p))
	return len(p), nil
}

// received is one request a receiver got.
type received struct {
	Method, Path, Query string
	Host, Target        string // the Host header; the request target as on the request line
	Header              http.Header
	Body                []byte
	At                  time.Time
}

// receiver is a local HTTP endpoint that records what arrives and answers
// with answer (200 "OK" by default).
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	got    []received
	arrive chan received
	answer func(n int, r *http.Request) (int, string)
}

func newReceiver(t testing.TB) *receiver {
	rc := &receiver{arrive: make(chan received, 10000)}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		at := time.Now() // the request's start: its headers have arrived
		body, _ := io.ReadAll(r.Body)
		got := received{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Host: r.Host, Target: r.RequestURI,
			Header: r.Header.Clone(), Body: body, At: at}
		rc.mu.Lock()
		rc.got = append(rc.got, got)
		n := len(rc.got)
		answer := rc.answer
		rc.mu.Unlock()
		code, text := 200, "OK"
		if answer != nil {
			code, text = answer(n, r)
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, text)
		select { // next() reads these; a benchmark that never does must not block
		case rc.arrive <- got:
		default:
		}
	}))
	t.Cleanup(rc.Close)
	return rc
}

// failing is a receiver that answers 503 until up is called, then 200.
func failing(t testing.TB) (rc *receiver, up func()) {
	rc = newReceiver(t)
	var mu sync.Mutex
	down := true
	rc.answer = func(int, *http.Request) (int, string) {
		mu.Lock()
		defer mu.Unlock()
		if down {
			return 503, "down"
		}
		return 200, "OK"
	}
	return rc, func() {
		mu.Lock()
		defer mu.Unlock()
		down = false
	}
}

// count is how many requests arrived (without copying them).
func (rc *receiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.got)
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

// next waits for the next request.
func (rc *receiver) next(t *testing.T, within time.Duration) received {
	t.Helper()
	select {
	case r := <-rc.arrive:
		return r
	case <-time.After(within):
		t.Fatalf("no request arrived within %s", within)
		return received{}
	}
}

// eventually polls cond until it holds or the time is up.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", within, what)
}

// jetStream connects to the harness's NATS server until the test ends, to
// look at streams and buckets as an operator would.
func (h *harness) jetStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	return brokertest.Connect(t, h.addrs.NATS)
}
