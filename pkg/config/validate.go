package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/postback-dev/postback/pkg/auth"
	"github.com/postback-dev/postback/pkg/guard"
	"github.com/postback-dev/postback/pkg/schedule"
	"github.com/postback-dev/postback/pkg/secret"
)

// TargetNames are the services postback-standalone can run
// (POSTBACK_TARGETS), in its targets table's order.
var TargetNames = []string{"gateway", "renderer", "sender", "retry", "historian"}

// checkAddr: host:port for a listener, the port a number or a service name.
func checkAddr(v string) string {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		why := "not host:port"
		var ae *net.AddrError
		if errors.As(err, &ae) {
			why += " (" + ae.Err + ")"
		}
		return fmt.Sprintf("%q is %s", v, why)
	}
	if port == "" {
		return fmt.Sprintf("%q has no port", v)
	}
	if n, err := strconv.Atoi(port); err == nil {
		if n < 0 || n > 65535 {
			return fmt.Sprintf("%q: port %d is out of range", v, n)
		}
	} else if !validName(port) {
		return fmt.Sprintf("%q: port %q is neither a number nor a service name", v, port)
	} else if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Sprintf("%q: port %q is not a known service name", v, port)
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil && !validHostname(host) {
			return fmt.Sprintf("%q: host %q is neither an IP address nor a host name", v, host)
		}
	}
	return ""
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?$`)

func validName(s string) bool { return len(s) <= 63 && nameRE.MatchString(s) }

func validHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if !validName(label) {
			return false
		}
	}
	return true
}

// checkNATSURL: what nats.Connect takes, comma-separated. The URLs may hold
// a user and password or a token: only an entry's number, scheme, host or
// port is ever named.
func checkNATSURL(v string) string {
	var entries []string
	for _, e := range strings.Split(v, ",") {
		if e = strings.TrimSpace(e); e != "" {
			entries = append(entries, e)
		}
	}
	if len(entries) == 0 {
		return "the value (not shown) holds no URL"
	}
	ws := -1
	for i, e := range entries {
		if !strings.Contains(e, "://") {
			e = "nats://" + e
		}
		u, err := url.Parse(e)
		if err != nil {
			return fmt.Sprintf("entry %d (not shown) is not a valid URL", i+1)
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return fmt.Sprintf("entry %d has the scheme %q", i+1, u.Scheme)
		}
		if u.Hostname() == "" {
			return fmt.Sprintf("entry %d (not shown) has no host", i+1)
		}
		if p := u.Port(); p != "" {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				return fmt.Sprintf("entry %d has the port %q, not a number from 1 to 65535", i+1, p)
			}
		}
		isWS := 0
		if u.Scheme == "ws" || u.Scheme == "wss" {
			isWS = 1
		}
		if ws >= 0 && ws != isWS {
			return "the value (not shown) mixes ws:// or wss:// URLs with others"
		}
		ws = isWS
	}
	return ""
}

func checkDataDir(v string) string {
	if v == "" {
		return "it is empty"
	}
	if fi, err := os.Stat(v); err == nil && !fi.IsDir() {
		return fmt.Sprintf("%q is a file, not a directory", v)
	}
	return ""
}

func checkRedisURL(v string) string {
	if _, err := redisClientFunc(v); err != nil {
		// It never quotes the URL; what it wants is said after it.
		problem, _, _ := strings.Cut(err.Error(), ": want ")
		return problem
	}
	return ""
}

func checkSchedule(v string) string {
	if _, err := schedule.Parse(v); err != nil {
		return fmt.Sprintf("%q: %s", v, strings.TrimPrefix(err.Error(), "schedule: "))
	}
	return ""
}

func checkAllow(v string) string {
	if _, err := guard.ParseAllow(v); err != nil {
		return fmt.Sprintf("%q: %s", v, strings.TrimPrefix(err.Error(), "allow-list "))
	}
	return ""
}

func checkSecretKey(v string) string {
	if _, err := secret.ParseKeyring(v); err != nil {
		// The keyring's errors name entries and kids, never a key.
		return strings.TrimPrefix(err.Error(), secret.ErrBadKeyring.Error()+": ")
	}
	return ""
}

// quoted is a string quoted by %q.
var quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

func checkTokens(v string) string {
	if _, err := auth.LoadTokens(v); err != nil {
		// auth never quotes a token, but it quotes an account, which is
		// a token when a pair is written backwards.
		return quoted.ReplaceAllString(strings.TrimPrefix(err.Error(), auth.ErrBadTokens.Error()+": "), "(not shown)")
	}
	return ""
}

func checkRetention(v string) string {
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Sprintf("%q is not a Go duration", v)
	}
	if d <= 0 {
		return fmt.Sprintf("%q is not greater than zero", v)
	}
	return ""
}

func checkHistoryURL(v string) string {
	scheme, _, ok := strings.Cut(v, "://")
	if !ok {
		return "the value (not shown) is not a URL"
	}
	if scheme != "postgres" && scheme != "postgresql" {
		return fmt.Sprintf("the scheme %q is not postgres", scheme)
	}
	if _, err := pgxpool.ParseConfig(v); err != nil {
		// pgx's message quotes the URL, password and all.
		return "the value (not shown) is not a valid postgres:// URL (its host, port, database or an option)"
	}
	return ""
}

func checkLogLevel(v string) string {
	switch strings.ToLower(v) {
	case "debug", "info", "warn", "error":
		return ""
	}
	return fmt.Sprintf("%q is not a log level", v)
}

func checkTargets(v string) string {
	if v == "" || v == "all" {
		return ""
	}
	for i, t := range strings.Split(v, ",") {
		t = strings.TrimSpace(t)
		if !slices.Contains(TargetNames, t) {
			return fmt.Sprintf("%q: entry %d %q is not a service", v, i+1, t)
		}
	}
	return ""
}

// readable reads a file that must be there; it says what is wrong.
func readable(v string) ([]byte, string) {
	if v == "" {
		return nil, "it is empty"
	}
	fi, err := os.Stat(v)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Sprintf("%q does not exist", v)
	case err != nil:
		return nil, fmt.Sprintf("%q cannot be read (%v)", v, errors.Unwrap(err))
	case fi.IsDir():
		return nil, fmt.Sprintf("%q is a directory, not a file", v)
	}
	b, err := os.ReadFile(v)
	if err != nil {
		return nil, fmt.Sprintf("%q cannot be read (%v)", v, errors.Unwrap(err))
	}
	return b, ""
}

func checkCertFile(v string) string {
	b, problem := readable(v)
	if problem != "" {
		return problem
	}
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return fmt.Sprintf("%q holds no PEM certificate", v)
		}
		if block.Type == "CERTIFICATE" {
			if _, err := x509.ParseCertificate(block.Bytes); err != nil {
				return fmt.Sprintf("%q: its first certificate does not parse (%v)", v, err)
			}
			return ""
		}
	}
}

// checkKeyFile reads the key only to see that it is there: what is wrong is
// said by its file name and PEM block types, never its bytes.
func checkKeyFile(v string) string {
	b, problem := readable(v)
	if problem != "" {
		return problem
	}
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return fmt.Sprintf("%q holds no PEM private key", v)
		}
		if strings.HasSuffix(block.Type, "PRIVATE KEY") {
			return ""
		}
	}
}

func checkCAFile(v string) string {
	b, problem := readable(v)
	if problem != "" {
		return problem
	}
	if !x509.NewCertPool().AppendCertsFromPEM(b) {
		return fmt.Sprintf("%q holds no PEM certificate", v)
	}
	return ""
}

// checkTogether checks the settings that go together, once each is fine on
// its own.
func (c Config) checkTogether() error {
	if c.NATSCA != "" && c.NATSURL == "" {
		return fmt.Errorf("POSTBACK_NATS_CA %q is set without POSTBACK_NATS_URL: the embedded server has no TLS; want it with tls:// NATS URLs, or unset", c.NATSCA)
	}
	switch {
	case c.TLSCert == "" && c.TLSKey == "" && c.TLSClientCA == "":
		return nil
	case c.TLSCert == "" && c.TLSKey == "":
		return fmt.Errorf("POSTBACK_TLS_CLIENT_CA %q is set without POSTBACK_TLS_CERT and POSTBACK_TLS_KEY; want all three set (mutual TLS), the first two (TLS), or none", c.TLSClientCA)
	case c.TLSKey == "":
		return fmt.Errorf("POSTBACK_TLS_CERT %q is set without POSTBACK_TLS_KEY; want both set (TLS) or neither", c.TLSCert)
	case c.TLSCert == "":
		return fmt.Errorf("POSTBACK_TLS_KEY %q is set without POSTBACK_TLS_CERT; want both set (TLS) or neither", c.TLSKey)
	}
	if _, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey); err != nil {
		// Its errors name PEM faults and key types, never key bytes.
		return fmt.Errorf("POSTBACK_TLS_CERT %q and POSTBACK_TLS_KEY %q do not make a key pair (%v); want the certificate and its own private key", c.TLSCert, c.TLSKey, err)
	}
	return nil
}

// Require checks what the binary name needs set, beyond each value being
// fine: the separate binaries need POSTBACK_NATS_URL (only standalone embeds
// a server), postback-gateway and postback-sender a POSTBACK_SECRET_KEY,
// postback-renderer and postback-sender a POSTBACK_JOB_KEY, and
// postback-gateway POSTBACK_TOKENS unless POSTBACK_INSECURE_NO_AUTH is true.
// A process calls it after Load and before it starts anything.
func (c Config) Require(name string) error {
	var errs []string
	separate := strings.HasPrefix(name, "postback-") && slices.Contains(TargetNames, strings.TrimPrefix(name, "postback-"))
	if separate && c.NATSURL == "" {
		errs = append(errs, "POSTBACK_NATS_URL is required: "+name+" does not embed a NATS server (postback-standalone does); want nats://host:port")
	}
	if (name == "postback-gateway" || name == "postback-sender") && c.SecretKey == "" {
		errs = append(errs, "POSTBACK_SECRET_KEY is required: "+name+" reads and writes endpoint secrets; want kid:base64key (e.g. k1:$(head -c 32 /dev/urandom | base64)), the same in every gateway and sender")
	}
	if (name == "postback-renderer" || name == "postback-sender") && c.JobKey == "" {
		errs = append(errs, "POSTBACK_JOB_KEY is required: "+name+" authenticates the delivery jobs the renderer writes and the sender sends; want kid:base64key (e.g. j1:$(head -c 32 /dev/urandom | base64)), the same in every renderer and sender, and not the POSTBACK_SECRET_KEY")
	}
	if name == "postback-gateway" && c.Tokens == "" && !c.InsecureNoAuth {
		errs = append(errs, "POSTBACK_TOKENS is required: want token=account pairs, or file:/path; or set POSTBACK_INSECURE_NO_AUTH=true (--insecure-no-auth) to accept every call without authentication")
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; and "))
	}
	return nil
}
