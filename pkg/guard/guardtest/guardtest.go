// Package guardtest holds test doubles for the network guard's neighbours:
// a DNS server on loopback that answers NXDOMAIN to every name, and a
// resolver that asks only it, so tests of "the host does not resolve" never
// send a packet to the machine's real nameserver; and a receiver on
// loopback that counts the connections it accepts.
package guardtest

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// CountingServer is an httptest server with handler h on addr ("127.0.0.1:0"
// or "[::1]:0") that counts the connections it accepts.
func CountingServer(t testing.TB, addr string, h http.Handler) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

// NXDOMAINServer answers every DNS query on 127.0.0.1 (UDP) with
// NXDOMAIN, echoing the question, and returns its address.
func NXDOMAINServer(t testing.TB) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			q := buf[:n]
			if len(q) < 12 {
				continue
			}
			end := 12 // question: QNAME labels, then QTYPE and QCLASS
			for end < len(q) && q[end] != 0 {
				end += int(q[end]) + 1
			}
			end += 5
			if end > len(q) {
				continue
			}
			resp := append([]byte(nil), q[:end]...)
			resp[2] = 0x80 | q[2]&0x01 // QR, opcode QUERY, RD copied
			resp[3] = 0x80 | 3         // RA, RCODE NXDOMAIN
			resp[4], resp[5] = 0, 1    // QDCOUNT 1
			for i := 6; i < 12; i++ {  // no answers, authority or additional
				resp[i] = 0
			}
			_, _ = pc.WriteTo(resp, from)
		}
	}()
	return pc.LocalAddr().String()
}

// Resolver asks only the DNS server at addr (e.g. NXDOMAINServer's).
func Resolver(addr string) *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "udp", addr)
		},
	}
}
