package dispatch

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postback-dev/postback/pkg/guard"
	"github.com/postback-dev/postback/pkg/guard/guardtest"
)

// All traffic here goes to httptest servers or listeners on 127.0.0.1.

var plainDial = (&net.Dialer{Timeout: 5 * time.Second}).DialContext

// counted is a receiver on 127.0.0.1 that counts the connections it accepted.
func counted(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	return guardtest.CountingServer(t, "127.0.0.1:0", h)
}

func post(t *testing.T, tr *transport, ctx context.Context, url, body string) (*http.Response, string, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

func echo(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", r.Header.Get("Content-Type"))
	_, _ = w.Write(append([]byte(r.Method+" "+r.URL.RequestURI()+" "), b...))
}

func TestPostbacksShareOneKeptAliveConnection(t *testing.T) {
	s, conns := counted(t, echo)
	tr := newTransport(plainDial, nil)
	for i := range 20 {
		resp, got, err := post(t, tr, context.Background(), s.URL+"/pb?a=ACT-1", `{"n":1}`)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if resp.StatusCode != 200 || got != `POST /pb?a=ACT-1 {"n":1}` || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("request %d: %d %q %v", i, resp.StatusCode, got, resp.Header)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("20 sequential postbacks used %d connections, want 1", n)
	}
}

func TestAConnectionIsNotReusedWhen(t *testing.T) {
	big := strings.Repeat("x", drainLimit+100) // read 10: more than the limit is left
	cases := []struct {
		name    string
		handler http.HandlerFunc
		read    int // bytes of the body the caller reads before closing; -1: all
	}{
		{"the receiver asks to close it", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			_, _ = io.WriteString(w, "ok")
		}, -1},
		{"the unread rest of the body is over the drain limit", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, big)
		}, 10},
		{"the body has no length and ends with the connection", func(w http.ResponseWriter, r *http.Request) {
			conn, buf, err := w.(http.Hijacker).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close")
			_ = buf.Flush()
			_ = conn.Close()
		}, -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, conns := counted(t, c.handler)
			tr := newTransport(plainDial, nil)
			for i := range 3 {
				req, _ := http.NewRequest(http.MethodGet, s.URL+"/", nil)
				resp, err := tr.RoundTrip(req)
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				if c.read < 0 {
					_, _ = io.Copy(io.Discard, resp.Body)
				} else {
					_, _ = io.CopyN(io.Discard, resp.Body, int64(c.read))
				}
				_ = resp.Body.Close()
				tr.mu.Lock()
				kept := tr.idleCount
				tr.mu.Unlock()
				if kept != 0 {
					t.Fatalf("request %d: the connection was kept for reuse", i)
				}
			}
			if n := conns.Load(); n != 3 {
				t.Fatalf("3 requests used %d connections, want 3 (none reused)", n)
			}
		})
	}
}

// The keep-alive race: the receiver closes an idle connection just as a
// postback is written to it. The postback goes again on a new connection,
// and the receiver gets it once.
func TestAPostbackOnAConnectionTheReceiverClosedWhileIdleIsSentAgain(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var requests, accepted atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() { // one request per connection, then a silent close
				defer c.Close()
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, req.Body)
				requests.Add(1)
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			}()
		}
	}()
	tr := newTransport(plainDial, nil)
	url := "http://" + ln.Addr().String() + "/pb"
	for i := range 3 {
		if i > 0 {
			time.Sleep(50 * time.Millisecond) // the close reaches the idle connection
		}
		resp, got, err := post(t, tr, context.Background(), url, `{"n":1}`)
		if err != nil || resp.StatusCode != 200 || got != "ok" {
			t.Fatalf("postback %d: %v %q", i, err, got)
		}
	}
	if r, a := requests.Load(), accepted.Load(); r != 3 || a != 3 {
		t.Fatalf("receiver got %d requests on %d connections, want 3 on 3", r, a)
	}
}

func TestAReceiverThatDoesNotAnswerInTimeIsATimeout(t *testing.T) {
	release := make(chan struct{})
	s, _ := counted(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	tr := newTransport(plainDial, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	began := time.Now()
	_, _, err := post(t, tr, ctx, s.URL, "{}")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
	if waited := time.Since(began); waited > 5*time.Second {
		t.Fatalf("the request took %s to give up", waited)
	}
}

func TestChunkedAndEarlyHintsResponsesReadAsTheFinalAnswer(t *testing.T) {
	s, _ := counted(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.WriteHeader(http.StatusAccepted)
		for _, part := range []string{"accepted", " in ", "parts"} {
			_, _ = io.WriteString(w, part)
			w.(http.Flusher).Flush()
		}
	})
	tr := newTransport(plainDial, nil)
	for range 2 {
		resp, got, err := post(t, tr, context.Background(), s.URL, "{}")
		if err != nil || resp.StatusCode != http.StatusAccepted || got != "accepted in parts" {
			t.Fatalf("got %v %q, want 202 \"accepted in parts\"", err, got)
		}
	}
}

func TestHTTPSVerifiesTheReceiversCertificate(t *testing.T) {
	s := httptest.NewTLSServer(http.HandlerFunc(echo))
	defer s.Close()
	roots := x509.NewCertPool()
	roots.AddCert(s.Certificate())
	trusted := newTransport(plainDial, &tls.Config{RootCAs: roots})
	resp, got, err := post(t, trusted, context.Background(), s.URL+"/hook", `{"a":1}`)
	if err != nil || resp.StatusCode != 200 || got != `POST /hook {"a":1}` {
		t.Fatalf("trusted receiver: %v %q", err, got)
	}
	if resp.Proto != "HTTP/1.1" {
		t.Fatalf("spoke %s, want HTTP/1.1", resp.Proto)
	}
	untrusted := newTransport(plainDial, nil)
	if _, _, err := post(t, untrusted, context.Background(), s.URL+"/hook", `{}`); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted receiver: err = %v, want a certificate error", err)
	}
}

func TestDialRefusalsComeBackAsTheyAre(t *testing.T) {
	refuse := func(context.Context, string, string) (net.Conn, error) {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: &guard.BlockedError{Reason: "a private address"}}
	}
	tr := newTransport(refuse, nil)
	req, _ := http.NewRequest(http.MethodGet, "http://brand.example/pb", nil)
	_, err := tr.RoundTrip(req)
	var blocked *guard.BlockedError
	if !errors.As(err, &blocked) {
		t.Fatalf("err = %v, want the guard's refusal", err)
	}
}

func TestConcurrentPostbacksEachGetTheirOwnAnswer(t *testing.T) {
	s, conns := counted(t, echo)
	tr := newTransport(plainDial, nil)
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				body := strings.Repeat("b", w*100+i)
				req, _ := http.NewRequest(http.MethodPost, s.URL+"/w", bytes.NewReader([]byte(body)))
				resp, err := tr.RoundTrip(req)
				if err != nil {
					t.Error(err)
					return
				}
				got, _ := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if string(got) != "POST /w "+body {
					t.Errorf("worker %d request %d got another answer", w, i)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := conns.Load(); n > 16 {
		t.Fatalf("16 workers used %d connections", n)
	}
}

// BenchmarkTransport sends the same ~1 KB postback through net/http's
// Transport and through this one, to the same loopback receiver, 16 at a
// time: the ratio of the two is what the transport saves (the receiver's
// cost is in both).
func BenchmarkTransport(b *testing.B) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "ok")
	}))
	defer s.Close()
	payload := bytes.Repeat([]byte("x"), 1000)
	run := func(b *testing.B, rt http.RoundTripper) {
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				req, _ := http.NewRequest(http.MethodPost, s.URL+"/pb?a=ACT-1", bytes.NewReader(payload))
				req.Header.Set("Content-Type", "application/json")
				resp, err := rt.RoundTrip(req)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
			}
		})
	}
	b.Run("net-http", func(b *testing.B) {
		run(b, &http.Transport{MaxIdleConnsPerHost: 256, DialContext: plainDial})
	})
	b.Run("postback", func(b *testing.B) { run(b, newTransport(plainDial, nil)) })
}

func TestTheURLsUserAndPasswordGoAsBasicAuth(t *testing.T) {
	got := make(chan string, 2)
	s, _ := counted(t, func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("Authorization") + " " + r.URL.RequestURI()
	})
	tr := newTransport(plainDial, nil)
	u := strings.Replace(s.URL, "http://", "http://brand:s3cret@", 1) + "/pb?a=1"
	if _, _, err := post(t, tr, context.Background(), u, "{}"); err != nil {
		t.Fatal(err)
	}
	if a := <-got; a != "Basic YnJhbmQ6czNjcmV0 /pb?a=1" {
		t.Fatalf("receiver saw %q, want basic auth of brand:s3cret and no user info in the request line", a)
	}
	// An Authorization header of the endpoint's own wins, as with http.Client.
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer t0ken")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if a := <-got; a != "Bearer t0ken /pb?a=1" {
		t.Fatalf("receiver saw %q", a)
	}
}

func TestAReceiverCannotSendEndlessHeaders(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = http.ReadRequest(bufio.NewReader(c))
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\n")
		line := "X-Filler: " + strings.Repeat("f", 1000) + "\r\n"
		for range 4 * maxHeaderBytes / len(line) { // 4 MiB of headers, never ending them
			if _, err := io.WriteString(c, line); err != nil {
				return
			}
		}
	}()
	tr := newTransport(plainDial, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _, err = post(t, tr, ctx, "http://"+ln.Addr().String()+"/", "{}")
	if err == nil || !strings.Contains(err.Error(), "response headers over") {
		t.Fatalf("err = %v, want the header limit", err)
	}
}

// A receiver that restarts closes every kept-alive connection: each later
// postback is sent again once on a newly dialled connection, not on another
// idle one of the dead, and so gets its answer.
func TestAfterTheReceiverClosedEveryIdleConnectionEachPostbackIsAnswered(t *testing.T) {
	s, conns := counted(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond) // so the first round needs a connection each
		echo(w, r)
	})
	tr := newTransport(plainDial, nil)
	const n = 8
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := post(t, tr, context.Background(), s.URL+"/pb", `{"n":1}`); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if c := conns.Load(); c < 2 {
		t.Fatalf("the first round used %d connection(s); the test needs several idle", c)
	}
	s.CloseClientConnections() // the receiver restarts
	time.Sleep(50 * time.Millisecond)
	for i := range n {
		resp, got, err := post(t, tr, context.Background(), s.URL+"/pb", `{"n":2}`)
		if err != nil || resp.StatusCode != 200 || got != `POST /pb {"n":2}` {
			t.Fatalf("postback %d after the restart: %v %q", i, err, got)
		}
	}
}
