package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// tlsFiles writes a self-signed certificate and its key, and a second key
// that is not its, into dir.
func tlsFiles(t *testing.T, dir string) (cert, key, otherKey string) {
	t.Helper()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	newKey := func(name string) (*ecdsa.PrivateKey, string) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return k, write(name, "PRIVATE KEY", der)
	}
	k, key := newKey("tls.key")
	_, otherKey = newKey("other.key")
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "postback"}, DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return write("tls.crt", "CERTIFICATE", der), key, otherKey
}

func load(env map[string]string, args ...string) (Config, error) {
	return Load("postback-test", args, func(k string) string { return env[k] }, io.Discard)
}

// Every variable, given a bad value, is refused by Load with one line that
// names the variable, shows the value (never a secret's) and says what is
// allowed.
func TestEveryBadSettingIsNamedWithItsValueAndWhatIsAllowed(t *testing.T) {
	dir := t.TempDir()
	cert, key, otherKey := tlsFiles(t, dir)
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	goodKey := "k1:" + base64.StdEncoding.EncodeToString(make([]byte, 32))
	rawKey := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	const token = "tok-0123456789abcdef"
	const tokenLike = "tok.fedcba9876543210" // a token written where an account goes

	cases := []struct {
		env, value string
		secret     bool   // the value must not be shown
		hidden     string // nor this part of it
		want       string // what is allowed, as the error says it
		says       string // what is wrong, as the error says it
		also       map[string]string
	}{
		{env: "POSTBACK_GRPC_ADDR", value: "nonsense", want: "want host:port", says: "missing port"},
		{env: "POSTBACK_GRPC_ADDR", value: "127.0.0.1:99999", want: "want host:port", says: "out of range"},
		{env: "POSTBACK_GRPC_ADDR", value: "127.0.0.1:no-such-service", want: "want host:port", says: "not a known service name"},
		{env: "POSTBACK_GRPC_ADDR", value: "127.0.0.1:", want: "want host:port", says: "no port"},
		{env: "POSTBACK_GRPC_ADDR", value: "bad host!:7070", want: "want host:port", says: "neither an IP address nor a host name"},
		{env: "POSTBACK_GRPC_ADDR", value: "1.2.3.4:5:6", want: "want host:port", says: "too many colons"},
		{env: "POSTBACK_HTTP_ADDR", value: "localhost", want: "want host:port", says: "missing port"},
		{env: "POSTBACK_HTTP_ADDR", value: "0.0.0.0:-1", want: "want host:port", says: "out of range"},

		{env: "POSTBACK_NATS_URL", value: "http://nats-user:s3cret-pw@nats:4222", secret: true, hidden: "s3cret-pw", want: "want nats://host:port", says: `scheme "http"`},
		{env: "POSTBACK_NATS_URL", value: "nats://s3cret-token@:4222", secret: true, hidden: "s3cret-token", want: "want nats://host:port", says: "no host"},
		{env: "POSTBACK_NATS_URL", value: "nats://n1:4222,ws://n2:8080", secret: true, want: "want nats://host:port", says: "mixes ws"},
		{env: "POSTBACK_NATS_URL", value: "nats://n1:port", secret: true, want: "want nats://host:port", says: "not a valid URL"},
		{env: "POSTBACK_NATS_URL", value: ", ,", secret: true, want: "want nats://host:port", says: "no URL"},

		{env: "POSTBACK_DATA_DIR", value: notPEM, want: "want the path of a directory", says: "is a file"},

		{env: "POSTBACK_REDIS_URL", value: "http://:s3cret-pw@redis:6379", secret: true, hidden: "s3cret-pw", want: "want redis://", says: `unknown scheme "http"`},
		{env: "POSTBACK_REDIS_URL", value: "redis://:s3cret-pw@redis:6379?bogus_option=1", secret: true, hidden: "s3cret-pw", want: "want redis://", says: "not a valid redis:// URL"},
		{env: "POSTBACK_REDIS_URL", value: "redis+sentinel://:s3cret-pw@s1:26379", secret: true, hidden: "s3cret-pw", want: "want redis://", says: "master_name"},
		{env: "POSTBACK_REDIS_URL", value: "s3cret-pw@redis:6379", secret: true, hidden: "s3cret-pw", want: "want redis://", says: "not a Redis URL"},

		{env: "POSTBACK_RETRY_SCHEDULE", value: "1m,5x", want: "want comma-separated Go durations", says: `entry 2 "5x" is not a duration`},
		{env: "POSTBACK_RETRY_SCHEDULE", value: "1m,,2m", want: "want comma-separated Go durations", says: "entry 2 is empty"},
		{env: "POSTBACK_RETRY_SCHEDULE", value: "-5s", want: "want comma-separated Go durations", says: "greater than zero"},
		{env: "POSTBACK_RETRY_SCHEDULE", value: strings.Repeat("1s,", 100) + "1s", want: "want comma-separated Go durations", says: "at most 100"},

		{env: "POSTBACK_ALLOW_CIDRS", value: "10.0.0.0/33", want: "want comma-separated IP addresses or CIDRs", says: "not a CIDR"},
		{env: "POSTBACK_ALLOW_CIDRS", value: "10.0.0.0/8,intranet", want: "want comma-separated IP addresses or CIDRs", says: `entry 2 "intranet"`},

		{env: "POSTBACK_SECRET_KEY", value: "k1:not-base64!!", secret: true, want: "want comma-separated kid:base64key", says: "not valid base64"},
		{env: "POSTBACK_SECRET_KEY", value: "k1:" + base64.StdEncoding.EncodeToString(make([]byte, 16)), secret: true, want: "want comma-separated kid:base64key", says: "16 bytes"},
		{env: "POSTBACK_SECRET_KEY", value: rawKey + ":k1", secret: true, hidden: rawKey, want: "want comma-separated kid:base64key", says: "kid"},
		{env: "POSTBACK_SECRET_KEY", value: goodKey + "," + goodKey, secret: true, want: "want comma-separated kid:base64key", says: "twice"},
		{env: "POSTBACK_JOB_KEY", value: "j1:" + base64.StdEncoding.EncodeToString(make([]byte, 16)), secret: true, want: "want comma-separated kid:base64key", says: "16 bytes"},

		{env: "POSTBACK_TOKENS", value: "short-token=acct-1", secret: true, hidden: "short-token", want: "want comma-separated token=account pairs", says: "16 to 256"},
		{env: "POSTBACK_TOKENS", value: token + "=" + tokenLike, secret: true, hidden: tokenLike, want: "want comma-separated token=account pairs", says: "account"},
		{env: "POSTBACK_TOKENS", value: token, secret: true, hidden: token, want: "want comma-separated token=account pairs", says: "file:"},
		{env: "POSTBACK_TOKENS", value: "file:" + missing, secret: true, want: "want comma-separated token=account pairs", says: "token file"},

		{env: "POSTBACK_STREAM_REPLICAS", value: "three", want: "want a whole number from 1 to 5", says: "not a whole number"},
		{env: "POSTBACK_STREAM_REPLICAS", value: "0", want: "want a whole number from 1 to 5", says: "out of range"},
		{env: "POSTBACK_STREAM_REPLICAS", value: "7", want: "want a whole number from 1 to 5", says: "out of range"},
		{env: "POSTBACK_STREAM_REPLICAS", value: "99999999999999999999", want: "want a whole number from 1 to 5", says: "out of range"},

		{env: "POSTBACK_RETENTION", value: "30d", want: "want a Go duration greater than zero", says: "not a Go duration"},
		{env: "POSTBACK_RETENTION", value: "-1h", want: "want a Go duration greater than zero", says: "not greater than zero"},
		{env: "POSTBACK_RETENTION", value: "0s", want: "want a Go duration greater than zero", says: "not greater than zero"},

		{env: "POSTBACK_HISTORY_URL", value: "mysql://u:s3cret-pw@db/postback", secret: true, hidden: "s3cret-pw", want: "want postgres://", says: `scheme "mysql"`},
		{env: "POSTBACK_HISTORY_URL", value: "postgres://u:s3cret-pw@db:port/postback", secret: true, hidden: "s3cret-pw", want: "want postgres://", says: "not a valid postgres:// URL"},
		{env: "POSTBACK_HISTORY_URL", value: "host=db password=s3cret-pw", secret: true, hidden: "s3cret-pw", want: "want postgres://", says: "not a URL"},

		{env: "POSTBACK_LOG_LEVEL", value: "loud", want: "want debug, info, warn or error", says: "not a log level"},
		{env: "POSTBACK_LOG_LEVEL", value: "warning", want: "want debug, info, warn or error", says: "not a log level"},

		{env: "POSTBACK_TARGETS", value: "gateway,mailer", want: "want all, or a comma-separated list of gateway, renderer, sender, retry, historian", says: `entry 2 "mailer" is not a service`},
		{env: "POSTBACK_TARGETS", value: "gateway,", want: "want all, or a comma-separated list of", says: `entry 2 "" is not a service`},

		{env: "POSTBACK_TLS_CERT", value: missing, also: map[string]string{"POSTBACK_TLS_KEY": key}, want: "want the path of a readable PEM certificate file", says: "does not exist"},
		{env: "POSTBACK_TLS_CERT", value: notPEM, also: map[string]string{"POSTBACK_TLS_KEY": key}, want: "want the path of a readable PEM certificate file", says: "holds no PEM certificate"},
		{env: "POSTBACK_TLS_CERT", value: dir, also: map[string]string{"POSTBACK_TLS_KEY": key}, want: "want the path of a readable PEM certificate file", says: "is a directory"},
		{env: "POSTBACK_TLS_KEY", value: missing, also: map[string]string{"POSTBACK_TLS_CERT": cert}, want: "want the path of a readable PEM private key file", says: "does not exist"},
		{env: "POSTBACK_TLS_KEY", value: cert, also: map[string]string{"POSTBACK_TLS_CERT": cert}, want: "want the path of a readable PEM private key file", says: "holds no PEM private key"},
		{env: "POSTBACK_TLS_KEY", value: otherKey, also: map[string]string{"POSTBACK_TLS_CERT": cert}, want: "want the certificate and its own private key", says: "do not make a key pair"},
		{env: "POSTBACK_TLS_KEY", value: key, want: "want both set (TLS) or neither", says: "is set without POSTBACK_TLS_CERT"},
		{env: "POSTBACK_TLS_CERT", value: cert, want: "want both set (TLS) or neither", says: "is set without POSTBACK_TLS_KEY"},
		{env: "POSTBACK_TLS_CLIENT_CA", value: notPEM, also: map[string]string{"POSTBACK_TLS_CERT": cert, "POSTBACK_TLS_KEY": key}, want: "want the path of a readable PEM file of CA certificates", says: "holds no PEM certificate"},
		{env: "POSTBACK_TLS_CLIENT_CA", value: cert, want: "want all three set", says: "without POSTBACK_TLS_CERT and POSTBACK_TLS_KEY"},
		{env: "POSTBACK_NATS_CA", value: notPEM, also: map[string]string{"POSTBACK_NATS_URL": "tls://n1:4222"}, want: "want the path of a readable PEM file of CA certificates", says: "holds no PEM certificate"},
		{env: "POSTBACK_NATS_CA", value: cert, want: "want it with tls:// NATS URLs", says: "without POSTBACK_NATS_URL"},

		{env: "POSTBACK_SENDER_WORKERS", value: "many", want: "want a whole number from 0 (the default, 256) to 100000", says: "not a whole number"},
		{env: "POSTBACK_SENDER_WORKERS", value: "-1", want: "want a whole number from 0 (the default, 256) to 100000", says: "out of range"},
		{env: "POSTBACK_SENDER_WORKERS", value: "100001", want: "want a whole number from 0 (the default, 256) to 100000", says: "out of range"},
		{env: "POSTBACK_IN_FLIGHT_PER_ENDPOINT", value: "1.5", want: "want a whole number from 0", says: "not a whole number"},
		{env: "POSTBACK_IN_FLIGHT_PER_ENDPOINT", value: "-3", want: "want a whole number from 0", says: "out of range"},

		{env: "POSTBACK_INSECURE_NO_AUTH", value: "perhaps", want: "want true or false", says: "not a boolean"},
		{env: "POSTBACK_PPROF", value: "yes", want: "want true or false", says: "not a boolean"},
	}
	covered := map[string]bool{}
	for _, c := range cases {
		covered[c.env] = true
		t.Run(c.env+"="+c.value, func(t *testing.T) {
			env := map[string]string{c.env: c.value}
			for k, v := range c.also {
				env[k] = v
			}
			_, err := load(env)
			if err == nil {
				t.Fatalf("%s=%q loaded", c.env, c.value)
			}
			msg := err.Error()
			t.Log(msg)
			if !strings.HasPrefix(msg, c.env) && !strings.Contains(msg, c.env+" ") {
				t.Errorf("error does not name %s: %s", c.env, msg)
			}
			if strings.ContainsAny(msg, "\n\r") {
				t.Errorf("error is not one line: %q", msg)
			}
			if !strings.Contains(msg, c.want) {
				t.Errorf("error does not say what is allowed (%q): %s", c.want, msg)
			}
			if !strings.Contains(msg, c.says) {
				t.Errorf("error does not say what is wrong (%q): %s", c.says, msg)
			}
			switch {
			case c.secret:
				if strings.Contains(msg, c.value) || (c.hidden != "" && strings.Contains(msg, c.hidden)) {
					t.Errorf("error shows the secret value: %s", msg)
				}
			case !strings.Contains(msg, strconv.Quote(c.value)) && !strings.Contains(msg, c.value):
				t.Errorf("error does not show the value %q: %s", c.value, msg)
			}
		})
	}
	// Every variable of the table has at least one bad value above.
	for _, s := range settings(&Config{}) {
		if !covered[s.env] {
			t.Errorf("%s has no bad-value case", s.env)
		}
	}
}

// The same checks apply to a flag, whose error names the flag and its
// variable; a flag the table lacks and a stray argument are refused too.
func TestBadFlagsAreNamedLikeTheirVariables(t *testing.T) {
	cases := []struct {
		args []string
		says []string
	}{
		{[]string{"--stream-replicas=three"}, []string{`--stream-replicas (POSTBACK_STREAM_REPLICAS): "three" is not a whole number; want a whole number from 1 to 5`}},
		{[]string{"--pprof=yes"}, []string{`--pprof (POSTBACK_PPROF): "yes" is not a boolean; want true or false`}},
		{[]string{"--log-level", "loud"}, []string{`--log-level (POSTBACK_LOG_LEVEL): "loud" is not a log level; want debug, info, warn or error`}},
		{[]string{"--data-dir="}, []string{"--data-dir (POSTBACK_DATA_DIR): it is empty"}},
		{[]string{"--grpc-addr="}, []string{`--grpc-addr (POSTBACK_GRPC_ADDR): "" is not host:port`}},
		{[]string{"--no-such-flag"}, []string{"flag provided but not defined: -no-such-flag", "-h lists the flags"}},
		{[]string{"--pprof", "yes"}, []string{`unexpected argument "yes"`}},
		// Every bad setting at once, on one line.
		{[]string{"--stream-replicas=three", "--log-level=loud"}, []string{"POSTBACK_STREAM_REPLICAS", "POSTBACK_LOG_LEVEL"}},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			_, err := load(nil, c.args...)
			if err == nil {
				t.Fatal("loaded")
			}
			for _, s := range c.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error lacks %q: %s", s, err)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
	// A good flag wins over a bad environment value.
	cfg, err := load(map[string]string{"POSTBACK_STREAM_REPLICAS": "3"}, "--stream-replicas=5")
	if err != nil || cfg.Replicas != 5 {
		t.Fatalf("flag over env: %d, %v", cfg.Replicas, err)
	}
}

// Good values of each kind load, as the process will use them.
func TestGoodSettingsLoad(t *testing.T) {
	dir := t.TempDir()
	cert, key, _ := tlsFiles(t, dir)
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("# ops\ntok-0123456789abcdef=*\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"POSTBACK_GRPC_ADDR":              "[::1]:7070",
		"POSTBACK_HTTP_ADDR":              "localhost:http",
		"POSTBACK_NATS_URL":               "nats://user:pw@n1:4222, tls://n2 ,n3:4223",
		"POSTBACK_DATA_DIR":               filepath.Join(dir, "not-yet"),
		"POSTBACK_REDIS_URL":              "redis+cluster://:pw@r1:7000?addr=r2:7001",
		"POSTBACK_RETRY_SCHEDULE":         "1s, 1m,1h",
		"POSTBACK_ALLOW_CIDRS":            "10.0.0.0/8, 192.168.1.5",
		"POSTBACK_SECRET_KEY":             "k1:" + base64.StdEncoding.EncodeToString(make([]byte, 32)),
		"POSTBACK_JOB_KEY":                "j1:" + base64.StdEncoding.EncodeToString(make([]byte, 32)),
		"POSTBACK_TOKENS":                 "file:" + tokens,
		"POSTBACK_STREAM_REPLICAS":        "3",
		"POSTBACK_RETENTION":              "168h30m",
		"POSTBACK_HISTORY_URL":            "postgresql://u:pw@db:5432/postback?sslmode=disable",
		"POSTBACK_LOG_LEVEL":              "DEBUG",
		"POSTBACK_TARGETS":                "gateway, sender",
		"POSTBACK_TLS_CERT":               cert,
		"POSTBACK_TLS_KEY":                key,
		"POSTBACK_TLS_CLIENT_CA":          cert,
		"POSTBACK_NATS_CA":                cert,
		"POSTBACK_SENDER_WORKERS":         "512",
		"POSTBACK_IN_FLIGHT_PER_ENDPOINT": "0",
		"POSTBACK_INSECURE_NO_AUTH":       "1",
		"POSTBACK_PPROF":                  "false",
	}
	cfg, err := load(env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Replicas != 3 || cfg.LogLevel != "debug" || cfg.SenderWorkers != 512 || !cfg.InsecureNoAuth || cfg.TLSClientCA != cert {
		t.Fatalf("loaded %+v", cfg)
	}
	if _, err := cfg.ServerTLS(); err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.Schedule(); err != nil {
		t.Fatal(err)
	}
	// The defaults load as they are.
	if cfg, err := load(nil); err != nil || cfg != Defaults() {
		t.Fatalf("defaults: %+v, %v", cfg, err)
	}
}

// Require names what a binary needs that is unset.
func TestRequireNamesWhatABinaryNeeds(t *testing.T) {
	key := "k1:" + base64.StdEncoding.EncodeToString(make([]byte, 32))
	cases := []struct {
		name string
		cfg  Config
		want []string // "" = nothing missing
	}{
		{"postback-standalone", Config{}, nil},
		{"postback-renderer", Config{}, []string{"POSTBACK_NATS_URL is required", "POSTBACK_JOB_KEY is required"}},
		{"postback-renderer", Config{NATSURL: "nats://n:4222", JobKey: key}, nil},
		{"postback-retry", Config{NATSURL: "nats://n:4222"}, nil},
		{"postback-historian", Config{NATSURL: "nats://n:4222"}, nil},
		{"postback-sender", Config{NATSURL: "nats://n:4222"}, []string{"POSTBACK_SECRET_KEY is required", "POSTBACK_JOB_KEY is required"}},
		{"postback-gateway", Config{}, []string{"POSTBACK_NATS_URL", "POSTBACK_SECRET_KEY", "POSTBACK_TOKENS is required"}},
		{"postback-gateway", Config{NATSURL: "nats://n:4222", SecretKey: key, InsecureNoAuth: true}, nil},
	}
	for _, c := range cases {
		err := c.cfg.Require(c.name)
		if len(c.want) == 0 {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: nothing required", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v lacks %q", c.name, err, w)
			}
		}
	}
}
