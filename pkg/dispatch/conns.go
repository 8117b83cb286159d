package dispatch

// The postback transport: HTTP/1.1 on the sending goroutine.
//
// net/http's Transport gives every connection a reader and a writer
// goroutine and hands each request and its response between them and the
// caller over channels. A postback is one request and one response on a
// kept-alive connection, so that machinery was most of the ~20 µs of CPU a
// request cost the sender (measured against this transport: about 10 µs a
// request less, see BenchmarkTransport). Here the calling goroutine writes
// the request (http.Request.Write) and reads the response
// (http.ReadResponse) itself, over a pool of idle connections per
// destination: the HTTP on the wire is still the standard library's.
//
// What it leaves out, on purpose: proxies (a proxy would hide the
// destination from the network guard, which checks every dial), HTTP/2
// (TLS offers only http/1.1 in ALPN; a postback is one small request, and
// brands' receivers all speak HTTP/1.1), and following redirects (the
// brand's answer is the first response, docs/architecture.md, decision 6).
//
// Failure policy: a connection is reused only when its response was read
// to the end (at most drainLimit bytes past what the caller read), neither
// side asked to close it, and the exchange ended before its deadline; any
// error closes it. Idle connections are dropped after idleTimeout. A
// request that fails on a reused connection before a single response byte
// came back (the server closed the connection while it sat idle, the usual
// keep-alive race) is sent once more on a newly dialled connection, never
// on another idle one (a receiver that restarted closed them all). The
// receiver did not answer it, and postbacks are at least once with a
// stable delivery id for receivers that drop duplicates. A context that ends (the endpoint's
// timeout) stops the exchange at once, and the error says so
// (context.DeadlineExceeded); it bounds the response body too, its reading
// and its draining on Close, so a receiver that answers slowly, sends an
// endless body or never closes the connection holds a request no longer
// than its timeout.

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

const (
	idleTimeout     = 90 * time.Second
	maxIdlePerHost  = 256
	maxIdle         = 1024
	drainLimit      = 1 << 20
	maxHeaderBytes  = 1 << 20 // of a response's status line and headers
	handshakeBudget = 10 * time.Second
)

// transport is an http.RoundTripper for postbacks (see the file comment).
type transport struct {
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
	tls  *tls.Config // for https; ServerName is set per destination
	now  func() time.Time

	mu        sync.Mutex
	idle      map[string][]*conn // by scheme://host:port, most recently used last
	idleCount int
	swept     time.Time
}

func newTransport(dial func(ctx context.Context, network, addr string) (net.Conn, error), tlsConfig *tls.Config) *transport {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if tlsConfig != nil {
		cfg = tlsConfig.Clone()
	}
	cfg.NextProtos = []string{"http/1.1"}
	return &transport{dial: dial, tls: cfg, now: time.Now, idle: map[string][]*conn{}}
}

// conn is one connection and its buffers.
type conn struct {
	net.Conn
	key       string
	br        *bufio.Reader
	bw        *bufio.Writer
	read      int64 // bytes read from the connection so far
	limit     int64 // read no further than this (the response headers' budget); 0: no limit
	reused    bool
	idleSince time.Time
}

func (c *conn) Read(p []byte) (int, error) {
	if c.limit > 0 {
		left := c.limit - c.read
		if left <= 0 {
			return 0, fmt.Errorf("response headers over %d bytes", maxHeaderBytes)
		}
		if int64(len(p)) > left {
			p = p[:left]
		}
	}
	n, err := c.Conn.Read(p)
	c.read += int64(n)
	return n, err
}

// RoundTrip sends req and returns the response, whose body must be closed.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	u := req.URL
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("unsupported scheme %q", u.Scheme)
	}
	host := u.Hostname()
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	addr := net.JoinHostPort(host, port)
	key := u.Scheme + "://" + addr
	ctx := req.Context()
	if u.User != nil && req.Header.Get("Authorization") == "" {
		// The URL's user and password, as http.Client sends them.
		password, _ := u.User.Password()
		req = req.Clone(ctx)
		req.SetBasicAuth(u.User.Username(), password)
	}
	for try := 0; ; try++ {
		c, err := t.get(ctx, key, u.Scheme, host, addr, try > 0)
		if err != nil {
			return nil, withContext(ctx, err)
		}
		readBefore := c.read
		resp, err := t.exchange(ctx, c, req)
		if err == nil {
			return resp, nil
		}
		_ = c.Close()
		if try == 0 && c.reused && c.read == readBefore && ended(ctx) == nil {
			// The server closed the idle connection before reading this
			// request: send it again on a new one.
			if req.Body != nil && req.Body != http.NoBody {
				if req.GetBody == nil {
					return nil, err
				}
				if req.Body, err = req.GetBody(); err != nil {
					return nil, err
				}
			}
			continue
		}
		return nil, withContext(ctx, err)
	}
}

// withContext makes an error caused by the context ending say so: an i/o
// timeout once the context's deadline has passed is that deadline.
func withContext(ctx context.Context, err error) error {
	cerr := ended(ctx)
	if cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w (%v)", cerr, err)
	}
	return err
}

// ended is ctx.Err(), or DeadlineExceeded once ctx's deadline has passed.
func ended(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}

// aLongTimeAgo is a deadline that stops every read and write at once.
var aLongTimeAgo = time.Unix(1, 0)

// exchange sends req on c and reads the response's head. The context bounds
// it (and the body's reading, until Close) through one mechanism: when ctx
// ends (its deadline is the request's timeout) the connection's deadline is
// moved into the past, which stops every read and write at once. No
// deadline is set otherwise, so a kept connection never needs one cleared:
// setting and clearing one per request cost ~3% of the sender's CPU in
// timer updates.
func (t *transport) exchange(ctx context.Context, c *conn, req *http.Request) (*http.Response, error) {
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(aLongTimeAgo) })
	if err := req.Write(c.bw); err != nil {
		stop()
		return nil, err
	}
	if err := c.bw.Flush(); err != nil {
		stop()
		return nil, err
	}
	for {
		// A receiver cannot make the sender hold more than maxHeaderBytes
		// of headers (net/http's Transport has the same kind of limit).
		c.limit = c.read + maxHeaderBytes
		resp, err := http.ReadResponse(c.br, req)
		c.limit = 0
		if err != nil {
			stop()
			return nil, err
		}
		// An informational answer (103 Early Hints, a 100 nobody asked
		// for) comes before the real one.
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			continue
		}
		resp.Body = &body{ReadCloser: resp.Body, t: t, c: c, stop: stop, ctx: ctx,
			reusable: !resp.Close && !req.Close && resp.StatusCode != http.StatusSwitchingProtocols}
		return resp, nil
	}
}

// body gives the connection back when the response is closed.
type body struct {
	io.ReadCloser
	t        *transport
	c        *conn
	stop     func() bool
	ctx      context.Context
	reusable bool
	closed   bool
}

// Close drains what is left of the response (at most drainLimit bytes, and
// only while the request's context lasts: the context's hook still cuts the
// connection at the deadline) and gives the connection back for reuse, or
// closes it. A connection that is not kept is closed before the response
// is: net/http's body Close reads a body to its end, which for a slow or
// endless answer would outlive the timeout (or never return).
func (b *body) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	reuse := b.reusable && ended(b.ctx) == nil
	if reuse {
		n, err := io.CopyN(io.Discard, b.ReadCloser, drainLimit+1)
		reuse = err == io.EOF && n <= drainLimit
	}
	// false: the context ended and cut the connection (or is cutting it).
	reuse = b.stop() && reuse && ended(b.ctx) == nil
	if !reuse {
		_ = b.c.Close()
	}
	err := b.ReadCloser.Close()
	if reuse { // stop won: no deadline was set on the connection
		b.t.put(b.c)
	}
	return err
}

// get takes an idle connection to key or dials a new one; fresh always
// dials (the once-more send: the idle connections beside the one the
// server closed, after a receiver's restart, are likely closed too).
func (t *transport) get(ctx context.Context, key, scheme, host, addr string, fresh bool) (*conn, error) {
	now := t.now()
	var stale []*conn
	t.mu.Lock()
	var c *conn
	for idle := t.idle[key]; len(idle) > 0 && !fresh; {
		last := idle[len(idle)-1]
		idle = idle[:len(idle)-1]
		t.idleCount--
		t.idle[key] = idle
		if now.Sub(last.idleSince) > idleTimeout {
			stale = append(stale, last)
			continue
		}
		c = last
		break
	}
	if len(t.idle[key]) == 0 {
		delete(t.idle, key)
	}
	t.mu.Unlock()
	for _, s := range stale {
		_ = s.Close()
	}
	if c != nil {
		c.reused = true
		return c, nil
	}
	raw, err := t.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	nc := raw
	if scheme == "https" {
		cfg := t.tls.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName = host
		}
		tc := tls.Client(raw, cfg)
		hctx, cancel := context.WithTimeout(ctx, handshakeBudget)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			_ = raw.Close()
			return nil, err
		}
		nc = tc
	}
	c = &conn{Conn: nc, key: key}
	c.br = bufio.NewReaderSize(c, 4<<10) // through c.Read, which counts
	c.bw = bufio.NewWriterSize(nc, 4<<10)
	return c, nil
}

// put keeps c for the next request to its destination, unless the pool is
// full; now and then it drops connections idle for too long.
func (t *transport) put(c *conn) {
	now := t.now()
	c.idleSince = now
	var drop []*conn
	t.mu.Lock()
	if now.Sub(t.swept) > idleTimeout {
		t.swept = now
		for key, idle := range t.idle {
			kept := idle[:0]
			for _, ic := range idle {
				if now.Sub(ic.idleSince) > idleTimeout {
					drop = append(drop, ic)
					t.idleCount--
				} else {
					kept = append(kept, ic)
				}
			}
			if len(kept) == 0 {
				delete(t.idle, key)
			} else {
				t.idle[key] = kept
			}
		}
	}
	if len(t.idle[c.key]) >= maxIdlePerHost || t.idleCount >= maxIdle {
		drop = append(drop, c)
	} else {
		t.idle[c.key] = append(t.idle[c.key], c)
		t.idleCount++
	}
	t.mu.Unlock()
	for _, d := range drop {
		_ = d.Close()
	}
}

// CloseIdle closes every idle connection.
func (t *transport) CloseIdle() {
	t.mu.Lock()
	idle := t.idle
	t.idle, t.idleCount = map[string][]*conn{}, 0
	t.mu.Unlock()
	for _, cs := range idle {
		for _, c := range cs {
			_ = c.Close()
		}
	}
}
