package guard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postback-dev/postback/pkg/guard/guardtest"
)

// NETWORK RULE: these tests only ever dial loopback. Decisions about other
// addresses are tested through Check, a pure function; nothing else is dialled.

func TestCheck(t *testing.T) {
	loopback8 := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	for _, tc := range []struct {
		ip     string
		allow  []netip.Prefix
		reason string // "" = allowed
	}{
		{"127.0.0.1", nil, "loopback address (127.0.0.0/8)"},
		{"127.255.255.254", nil, "loopback address (127.0.0.0/8)"},
		{"10.1.2.3", nil, "private address (10.0.0.0/8)"},
		{"172.16.0.1", nil, "private address (172.16.0.0/12)"},
		{"172.31.255.255", nil, "private address (172.16.0.0/12)"},
		{"172.32.0.1", nil, ""},
		{"172.15.255.255", nil, ""},
		{"192.168.1.1", nil, "private address (192.168.0.0/16)"},
		{"100.64.0.1", nil, "carrier-grade NAT address (100.64.0.0/10)"},
		{"100.127.255.255", nil, "carrier-grade NAT address (100.64.0.0/10)"},
		{"100.128.0.1", nil, ""},
		{"169.254.169.254", nil, "cloud metadata address (169.254.169.254/32)"},
		{"169.254.1.1", nil, "link-local address (169.254.0.0/16)"},
		{"224.0.0.1", nil, "multicast address (224.0.0.0/4)"},
		{"239.255.255.250", nil, "multicast address (224.0.0.0/4)"},
		{"0.0.0.0", nil, "unspecified address (0.0.0.0/32)"},
		{"0.1.2.3", nil, "\"this network\" address (0.0.0.0/8)"},
		{"255.255.255.255", nil, "broadcast address (255.255.255.255/32)"},
		{"240.0.0.1", nil, "reserved address (240.0.0.0/4)"},
		{"192.0.0.8", nil, "IETF protocol assignment address (192.0.0.0/24)"},
		{"192.0.2.1", nil, "documentation address (192.0.2.0/24)"},
		{"198.18.0.1", nil, "benchmarking address (198.18.0.0/15)"},
		{"198.19.255.255", nil, "benchmarking address (198.18.0.0/15)"},
		{"198.51.100.7", nil, "documentation address (198.51.100.0/24)"},
		{"203.0.113.9", nil, "documentation address (203.0.113.0/24)"},
		{"8.8.8.8", nil, ""},
		{"1.1.1.1", nil, ""},
		{"fc00::1", nil, "private address (fc00::/7)"},
		{"fd12::1", nil, "private address (fc00::/7)"},
		{"fd00:ec2::254", nil, "cloud metadata address (fd00:ec2::254/128)"},
		{"fe80::1", nil, "link-local address (fe80::/10)"},
		{"fe80::1%eth0", nil, "link-local address (fe80::/10)"},
		{"::1", nil, "loopback address (::1/128)"},
		{"::", nil, "unspecified address (::/128)"},
		{"::ffff:127.0.0.1", nil, "loopback address (127.0.0.0/8)"},
		{"::ffff:10.0.0.1", nil, "private address (10.0.0.0/8)"},
		{"::ffff:169.254.169.254", nil, "cloud metadata address (169.254.169.254/32)"},
		{"::ffff:8.8.8.8", nil, ""},
		{"::10.0.0.1", nil, "IPv4-compatible address (::/96)"},
		{"ff02::1", nil, "multicast address (ff00::/8)"},
		{"2001:db8::1", nil, "documentation address (2001:db8::/32)"},
		{"64:ff9b::a00:1", nil, "NAT64 address (64:ff9b::/96)"},
		{"2001::1", nil, "IETF protocol assignment address (2001::/23)"},
		{"2002:a00:1::1", nil, "6to4 address (2002::/16)"},
		{"2606:4700::1111", nil, ""},
		{"2a00:1450:4001::1", nil, ""},

		// The allow-list opens exactly what it names.
		{"127.0.0.1", loopback8, ""},
		{"127.0.0.2", loopback8, ""},
		{"::ffff:127.0.0.1", loopback8, ""},
		{"::1", loopback8, "loopback address (::1/128)"},
		{"10.0.0.1", loopback8, "private address (10.0.0.0/8)"},
		{"10.0.0.5", []netip.Prefix{netip.MustParsePrefix("10.0.0.5/32")}, ""},
		{"10.0.0.6", []netip.Prefix{netip.MustParsePrefix("10.0.0.5/32")}, "private address (10.0.0.0/8)"},
		{"::1", []netip.Prefix{netip.MustParsePrefix("::1/128")}, ""},
		{"127.0.0.1", []netip.Prefix{netip.MustParsePrefix("::ffff:127.0.0.0/104")}, ""},
		{"fd00::5", []netip.Prefix{netip.MustParsePrefix("fd00::/64")}, ""},
		{"169.254.169.254", []netip.Prefix{netip.MustParsePrefix("169.254.0.0/16")}, ""},
		{"8.8.8.8", loopback8, ""},
	} {
		name := tc.ip
		if tc.allow != nil {
			name += fmt.Sprintf(" allow %v", tc.allow)
		}
		t.Run(name, func(t *testing.T) {
			err := Check(netip.MustParseAddr(tc.ip), tc.allow)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("Check = %v, want allowed", err)
				}
				return
			}
			var b *BlockedError
			if !errors.As(err, &b) {
				t.Fatalf("Check = %v, want *BlockedError (%s)", err, tc.reason)
			}
			if b.Reason != tc.reason {
				t.Fatalf("reason %q, want %q", b.Reason, tc.reason)
			}
		})
	}
}

func TestCheckInvalidAddressIsBlocked(t *testing.T) {
	if _, ok := IsBlocked(Check(netip.Addr{}, nil)); !ok {
		t.Fatal("zero netip.Addr was not blocked")
	}
	allowAll := []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
	if _, ok := IsBlocked(Check(netip.Addr{}, allowAll)); !ok {
		t.Fatal("zero netip.Addr was let through by an allow-all list")
	}
}

func TestBlockedErrorMessage(t *testing.T) {
	err := Check(netip.MustParseAddr("10.0.0.1"), nil)
	want := "destination 10.0.0.1 is blocked by the network guard: private address (10.0.0.0/8)"
	if err == nil || err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
	if err := Check(netip.MustParseAddr("::ffff:10.0.0.1"), nil); !strings.HasPrefix(err.Error(), "destination 10.0.0.1 ") {
		t.Fatalf("mapped address not shown unmapped: %q", err)
	}
}

func TestParseAllow(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "", want: "[]"},
		{in: " , ,", want: "[]"},
		{in: "127.0.0.0/8", want: "[127.0.0.0/8]"},
		{in: "127.0.0.0/8, ::1", want: "[127.0.0.0/8 ::1/128]"},
		{in: "10.0.0.7", want: "[10.0.0.7/32]"},
		{in: "fd00::1", want: "[fd00::1/128]"},
		{in: "10.1.2.3/8", want: "[10.0.0.0/8]"},
		{in: "::ffff:127.0.0.1", want: "[127.0.0.1/32]"},
		{in: "::ffff:127.0.0.0/104", want: "[127.0.0.0/8]"},
		{in: "127.0.0.0/8,bad", err: `allow-list entry 2 "bad" is not an IP address or CIDR`},
		{in: "10.0.0.0/33", err: `allow-list entry 1 "10.0.0.0/33" is not a CIDR`},
		{in: "10.0.0.0/8, 10.0.0.0/x, 1.2.3.4", err: `allow-list entry 2 "10.0.0.0/x"`},
		{in: "fe80::1%eth0", err: `allow-list entry 1 "fe80::1%eth0" has a zone`},
		{in: "example.com", err: `allow-list entry 1 "example.com"`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseAllow(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseAllow(%q) error = %v, want %q", tc.in, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseAllow(%q): %v", tc.in, err)
			}
			if s := fmt.Sprint(got); s != tc.want && !(tc.want == "[]" && len(got) == 0) {
				t.Fatalf("ParseAllow(%q) = %s, want %s", tc.in, s, tc.want)
			}
		})
	}
}

// countingServer is a counting receiver on addr that answers "OK".
func countingServer(t *testing.T, addr string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	return guardtest.CountingServer(t, addr, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "OK")
	}))
}

// offlineResolver answers names from /etc/hosts only ("localhost"); any DNS
// query fails here, so no test can reach the machine's nameserver.
var offlineResolver = &net.Resolver{
	PreferGo: true,
	Dial: func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("DNS is not used by these tests")
	},
}

// guardedClient is Transport(allow) with DNS limited to /etc/hosts.
func guardedClient(allow []netip.Prefix) *http.Client {
	d := Dialer(allow, 2*time.Second)
	d.Resolver = offlineResolver
	tr := Transport(allow, 2*time.Second)
	tr.DialContext = d.DialContext
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}
}

func TestTransportBlocksLoopbackOutsideTheAllowList(t *testing.T) {
	srv, conns := countingServer(t, "127.0.0.1:0")
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	client := guardedClient(nil)
	for _, u := range []string{
		srv.URL, // something listens here: still refused, and never reached
		"http://127.0.0.2:" + port + "/",
		"http://[::1]:" + port + "/",
		"http://[::ffff:127.0.0.2]:" + port + "/",
		"http://localhost:" + port + "/",
	} {
		t.Run(u, func(t *testing.T) {
			resp, err := client.Get(u)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("GET %s succeeded through the guard", u)
			}
			b, ok := IsBlocked(err)
			if !ok {
				t.Fatalf("GET %s error %v (%T) is not a *BlockedError via errors.As", u, err, err)
			}
			if !b.IP.IsLoopback() {
				t.Fatalf("blocked IP %v is not the loopback destination", b.IP)
			}
			var ue *url.Error
			var oe *net.OpError
			if !errors.As(err, &ue) || !errors.As(err, &oe) {
				t.Fatalf("error %v lost its url.Error/net.OpError chain", err)
			}
			if IsNotFound(err) {
				t.Fatal("a blocked destination reads as NXDOMAIN")
			}
		})
	}
	time.Sleep(50 * time.Millisecond) // let any stray accept be counted
	if n := conns.Load(); n != 0 {
		t.Fatalf("server accepted %d connections; the guard must refuse before connect", n)
	}
}

func TestTransportLetsAllowedLoopbackThrough(t *testing.T) {
	srv, conns := countingServer(t, "127.0.0.1:0")
	allow, err := ParseAllow("127.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := guardedClient(allow).Get(srv.URL)
	if err != nil {
		t.Fatalf("GET %s with 127.0.0.0/8 allowed: %v", srv.URL, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "OK" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	if conns.Load() != 1 {
		t.Fatalf("server saw %d connections, want 1", conns.Load())
	}
}

func TestTransportAllowListIsExact(t *testing.T) {
	v6, _ := countingServer(t, "[::1]:0")
	// Only IPv4 loopback opened: IPv6 loopback stays blocked.
	if _, err := guardedClient([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}).Get(v6.URL); err == nil {
		t.Fatal("::1 reached with only 127.0.0.0/8 allowed")
	} else if _, ok := IsBlocked(err); !ok {
		t.Fatalf("error %v is not a *BlockedError", err)
	}
	allow, _ := ParseAllow("::1")
	resp, err := guardedClient(allow).Get(v6.URL)
	if err != nil {
		t.Fatalf("GET %s with ::1 allowed: %v", v6.URL, err)
	}
	resp.Body.Close()
}

func TestDialerRefusesBeforeConnect(t *testing.T) {
	d := Dialer(nil, time.Second)
	_, err := d.DialContext(context.Background(), "tcp", "127.0.0.2:9")
	var oe *net.OpError
	if !errors.As(err, &oe) {
		t.Fatalf("error %v is not a *net.OpError", err)
	}
	if b, ok := IsBlocked(err); !ok || b.IP != netip.MustParseAddr("127.0.0.2") {
		t.Fatalf("error %v, want *BlockedError for 127.0.0.2", err)
	}
}

func TestIsNotFound(t *testing.T) {
	nx := &net.DNSError{Err: "no such host", Name: "nothing.invalid", IsNotFound: true}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"plain NXDOMAIN", nx, true},
		{"wrapped in OpError and url.Error", &url.Error{Op: "Get", URL: "http://nothing.invalid/", Err: &net.OpError{Op: "dial", Net: "tcp", Err: nx}}, true},
		{"wrapped with fmt", fmt.Errorf("send: %w", nx), true},
		{"timeout", &net.DNSError{Err: "i/o timeout", Name: "x.example", IsTimeout: true}, false},
		{"server failure", &net.DNSError{Err: "server misbehaving", Name: "x.example", IsTemporary: true}, false},
		{"blocked", &BlockedError{IP: netip.MustParseAddr("10.0.0.1"), Reason: "private address"}, false},
		{"other", errors.New("connection refused"), false},
	} {
		if got := IsNotFound(tc.err); got != tc.want {
			t.Errorf("%s: IsNotFound = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestNXDOMAINThroughTheTransport resolves a name under the reserved .invalid
// TLD against a DNS server on loopback that answers NXDOMAIN to everything:
// the system resolver is never asked, so no packet leaves the machine.
func TestNXDOMAINThroughTheTransport(t *testing.T) {
	dns := guardtest.NXDOMAINServer(t)
	d := Dialer(nil, time.Second)
	d.Resolver = &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var nd net.Dialer
			return nd.DialContext(ctx, "udp", dns) // ignore the configured nameserver
		},
	}
	tr := Transport(nil, time.Second)
	tr.DialContext = d.DialContext
	_, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("http://postback-test.invalid./")
	if err == nil {
		t.Fatal("GET of a .invalid name succeeded")
	}
	if !IsNotFound(err) {
		t.Fatalf("error %v is not NXDOMAIN", err)
	}
	if _, ok := IsBlocked(err); ok {
		t.Fatal("NXDOMAIN reads as blocked")
	}
}
