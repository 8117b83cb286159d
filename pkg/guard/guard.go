// Package guard is the network guard (docs/architecture.md, decision 11): by default no
// postback goes to loopback, private, link-local, CGNAT, multicast, reserved,
// documentation or cloud-metadata addresses, over IPv4 or IPv6. An operator's
// allow-list (POSTBACK_ALLOW_CIDRS) opens exactly the prefixes it names, e.g.
// 127.0.0.0/8 for tests and the local demo.
//
// Where the check runs: on the resolved address at connect time, in the
// net.Dialer's Control hook, after DNS and immediately before connect(2). A
// name that resolves to a public address for a "pre-check" and to a private
// one for the real connection (DNS rebinding) is therefore still caught, and
// every address a multi-address name yields is checked as it is tried. No
// proxy may sit in between (Transport sets none): with a proxy the dialled
// address would be the proxy's, not the destination's.
//
// Decisions are a pure function (Check) so they are tested without opening
// any connection. IPv4-mapped IPv6 (::ffff:a.b.c.d) is unmapped and zones
// (fe80::1%eth0) are dropped before checking, so neither disguises an address.
// A refusal is a *BlockedError, which survives the net.OpError / url.Error
// wrapping of net/http and is found with errors.As; the sender treats it, like
// an NXDOMAIN (IsNotFound), as final: no retry.
package guard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// BlockedError is a destination refused by the guard.
type BlockedError struct {
	IP     netip.Addr
	Reason string // e.g. "private address (10.0.0.0/8)"
}

func (e *BlockedError) Error() string {
	return fmt.Sprintf("destination %s is blocked by the network guard: %s", e.IP, e.Reason)
}

type blockedRange struct {
	prefix netip.Prefix
	kind   string
}

// blocked is checked in order; more specific entries come before the ranges
// that contain them so the reason names the most telling one.
var blocked = func() []blockedRange {
	list := []struct{ cidr, kind string }{
		// Cloud metadata endpoints (AWS, GCP, Azure, ...; AWS's IPv6 one).
		{"169.254.169.254/32", "cloud metadata address"},
		{"fd00:ec2::254/128", "cloud metadata address"},

		// IPv4.
		{"0.0.0.0/32", "unspecified address"},
		{"0.0.0.0/8", "\"this network\" address"},
		{"10.0.0.0/8", "private address"},
		{"100.64.0.0/10", "carrier-grade NAT address"},
		{"127.0.0.0/8", "loopback address"},
		{"169.254.0.0/16", "link-local address"},
		{"172.16.0.0/12", "private address"},
		{"192.0.0.0/24", "IETF protocol assignment address"},
		{"192.0.2.0/24", "documentation address"},
		{"192.88.99.0/24", "6to4 relay anycast address"},
		{"192.168.0.0/16", "private address"},
		{"198.18.0.0/15", "benchmarking address"},
		{"198.51.100.0/24", "documentation address"},
		{"203.0.113.0/24", "documentation address"},
		{"224.0.0.0/4", "multicast address"},
		{"255.255.255.255/32", "broadcast address"},
		{"240.0.0.0/4", "reserved address"},

		// IPv6.
		{"::/128", "unspecified address"},
		{"::1/128", "loopback address"},
		{"::/96", "IPv4-compatible address"},
		{"::ffff:0:0:0/96", "IPv4-translated address"},
		{"64:ff9b::/96", "NAT64 address"},
		{"64:ff9b:1::/48", "local NAT64 address"},
		{"100::/64", "discard-only address"},
		{"2001::/23", "IETF protocol assignment address"}, // includes Teredo 2001::/32
		{"2001:db8::/32", "documentation address"},
		{"2002::/16", "6to4 address"},
		{"3fff::/20", "documentation address"},
		{"5f00::/16", "segment routing address"},
		{"fc00::/7", "private address"}, // unique local
		{"fe80::/10", "link-local address"},
		{"fec0::/10", "site-local address"},
		{"ff00::/8", "multicast address"},
	}
	out := make([]blockedRange, len(list))
	for i, e := range list {
		out[i] = blockedRange{netip.MustParsePrefix(e.cidr), e.kind}
	}
	return out
}()

// Check decides whether ip may be dialled: nil when allowed, else a
// *BlockedError. An allow prefix containing ip opens it whatever range it
// is in; otherwise ip is refused when it falls in a blocked range.
func Check(ip netip.Addr, allow []netip.Prefix) error {
	if !ip.IsValid() {
		return &BlockedError{IP: ip, Reason: "invalid address"}
	}
	ip = ip.Unmap().WithZone("")
	for _, p := range allow {
		if normalize(p).Contains(ip) {
			return nil
		}
	}
	for _, b := range blocked {
		if b.prefix.Contains(ip) {
			return &BlockedError{IP: ip, Reason: fmt.Sprintf("%s (%s)", b.kind, b.prefix)}
		}
	}
	// Belt and braces: anything the standard library classifies as not
	// globally routable but the table missed.
	switch {
	case ip.IsLoopback():
		return &BlockedError{IP: ip, Reason: "loopback address"}
	case ip.IsPrivate():
		return &BlockedError{IP: ip, Reason: "private address"}
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		return &BlockedError{IP: ip, Reason: "link-local address"}
	case ip.IsMulticast(), ip.IsInterfaceLocalMulticast():
		return &BlockedError{IP: ip, Reason: "multicast address"}
	case ip.IsUnspecified():
		return &BlockedError{IP: ip, Reason: "unspecified address"}
	}
	return nil
}

// normalize turns an IPv4-mapped prefix (::ffff:10.0.0.0/104) into its IPv4
// form, so an allow-list written either way matches the unmapped address.
func normalize(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96).Masked()
	}
	return p
}

// ParseAllow parses POSTBACK_ALLOW_CIDRS: comma-separated CIDRs, spaces
// around entries ignored, empty entries skipped; a bare IP means that one
// address (/32 or /128). The error names the bad entry and its 1-based
// position.
func ParseAllow(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for i, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		var p netip.Prefix
		if strings.Contains(entry, "/") {
			var err error
			if p, err = netip.ParsePrefix(entry); err != nil {
				return nil, fmt.Errorf("allow-list entry %d %q is not a CIDR: %w", i+1, entry, err)
			}
		} else {
			a, err := netip.ParseAddr(entry)
			if err != nil {
				return nil, fmt.Errorf("allow-list entry %d %q is not an IP address or CIDR: %w", i+1, entry, err)
			}
			if a.Zone() != "" {
				return nil, fmt.Errorf("allow-list entry %d %q has a zone; name the address without it", i+1, entry)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, normalize(p.Masked()))
	}
	return out, nil
}

// Dialer returns a net.Dialer that refuses, at connect time, every resolved
// address Check blocks; the error is a *net.OpError wrapping *BlockedError.
// timeout is the connect timeout (0 = none beyond the context's).
func Dialer(allow []netip.Prefix, timeout time.Duration) *net.Dialer {
	allow = append([]netip.Prefix(nil), allow...)
	return &net.Dialer{
		Timeout:   timeout,
		KeepAlive: 30 * time.Second,
		ControlContext: func(_ context.Context, network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				// Only IP:port reaches Control for tcp/udp; refuse anything else.
				return &BlockedError{Reason: fmt.Sprintf("unparsable %s address %q", network, address)}
			}
			return Check(ap.Addr(), allow)
		},
	}
}

// Transport returns an http.Transport for postbacks: dialling through
// Dialer(allow, timeout), no proxy (a proxy would hide the destination from
// the guard), and otherwise net/http's defaults. Redirects are the client's
// business (the sender does not follow them, docs/architecture.md, decision 6).
func Transport(allow []netip.Prefix, timeout time.Duration) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.DialContext = Dialer(allow, timeout).DialContext
	return t
}

// IsBlocked reports whether err (from a dial or an HTTP request) is a
// refusal by the guard, and returns it.
func IsBlocked(err error) (*BlockedError, bool) {
	var b *BlockedError
	ok := errors.As(err, &b)
	return b, ok
}

// IsNotFound reports whether err carries an NXDOMAIN (the name does not
// exist) anywhere in its chain. A timeout or server failure is not one: only
// a definite "no such host" is final.
func IsNotFound(err error) bool {
	var dnsErr *net.DNSError
	return errors.As(err, &dnsErr) && dnsErr.IsNotFound
}
