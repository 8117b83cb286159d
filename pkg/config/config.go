// Package config reads Postback's configuration: the environment variables of
// docs/api.md, each also a command-line flag of the same name in kebab case
// without the POSTBACK_ prefix (POSTBACK_GRPC_ADDR = --grpc-addr). A flag
// given on the command line wins over the environment.
package config

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Config is every setting a Postback process reads.
type Config struct {
	GRPCAddr      string // POSTBACK_GRPC_ADDR: gRPC listener
	HTTPAddr      string // POSTBACK_HTTP_ADDR: health, /metrics
	NATSURL       string // POSTBACK_NATS_URL: empty = embedded server (standalone)
	DataDir       string // POSTBACK_DATA_DIR: embedded JetStream storage, generated key
	RedisURL      string // POSTBACK_REDIS_URL: empty = in-process limiter
	RetrySchedule string // POSTBACK_RETRY_SCHEDULE: comma-separated Go durations
	AllowCIDRs    string // POSTBACK_ALLOW_CIDRS: destinations opened past the network guard
	SecretKey     string // POSTBACK_SECRET_KEY: keyring for secrets at rest
	Tokens        string // POSTBACK_TOKENS: token=account pairs, or a file path
	Replicas      int    // POSTBACK_STREAM_REPLICAS: stream and bucket replicas
	Retention     string // POSTBACK_RETENTION: delivery history retention (Go duration)
	HistoryURL    string // POSTBACK_HISTORY_URL: postgres://… ; empty = embedded SQLite in the data dir
	LogLevel      string // POSTBACK_LOG_LEVEL: debug, info, warn, error
	Targets       string // POSTBACK_TARGETS: services standalone runs (default all: gateway,renderer,sender,retry)
	TLSCert       string // POSTBACK_TLS_CERT: PEM certificate chain of the gRPC listener (with TLSKey: TLS on)
	TLSKey        string // POSTBACK_TLS_KEY: PEM private key of the gRPC listener
	TLSClientCA   string // POSTBACK_TLS_CLIENT_CA: PEM CA bundle; set = clients must present a certificate it signed (mTLS)
	// POSTBACK_SENDER_WORKERS: requests a sender has in flight at once
	// (0: 256).
	SenderWorkers int
	// POSTBACK_IN_FLIGHT_PER_ENDPOINT: an endpoint's default share of them
	// (0: an eighth); an endpoint's max_in_flight overrides it.
	InFlightPerEndpoint int
	// POSTBACK_INSECURE_NO_AUTH: lets postback-gateway start without
	// POSTBACK_TOKENS, accepting every call as an operator (standalone does
	// so without it, with a warning).
	InsecureNoAuth bool
	// POSTBACK_PPROF: serve Go's /debug/pprof/ handlers on the HTTP address
	// next to /healthz and /metrics; off by default: profiles expose
	// internals.
	PProf bool
}

// Defaults are docs/api.md's defaults.
func Defaults() Config {
	return Config{
		GRPCAddr:  "127.0.0.1:7070",
		HTTPAddr:  "127.0.0.1:7071",
		DataDir:   "./data",
		Replicas:  1,
		Retention: "720h",
		LogLevel:  "info",
	}
}

type setting struct {
	env, flag, usage string
	str              *string
	num              *int
}

// boolSetting is an on/off setting: the environment takes true/false (or
// 1/0), the flag may be given bare (--insecure-no-auth).
type boolSetting struct {
	env, flag, usage string
	val              *bool
}

func boolSettings(c *Config) []boolSetting {
	return []boolSetting{
		{"POSTBACK_INSECURE_NO_AUTH", "insecure-no-auth", "postback-gateway only: start without POSTBACK_TOKENS, every call an operator", &c.InsecureNoAuth},
		{"POSTBACK_PPROF", "pprof", "serve /debug/pprof/ on the HTTP address (profiles expose internals)", &c.PProf},
	}
}

func settings(c *Config) []setting {
	return []setting{
		{"POSTBACK_GRPC_ADDR", "grpc-addr", "gRPC listen address", &c.GRPCAddr, nil},
		{"POSTBACK_HTTP_ADDR", "http-addr", "HTTP listen address for health and metrics", &c.HTTPAddr, nil},
		{"POSTBACK_NATS_URL", "nats-url", "NATS server URL (empty: embedded server)", &c.NATSURL, nil},
		{"POSTBACK_DATA_DIR", "data-dir", "data directory for embedded JetStream", &c.DataDir, nil},
		{"POSTBACK_REDIS_URL", "redis-url", "Redis URL for limits: redis://, redis+cluster:// or redis+sentinel:// (empty: in-process limiter)", &c.RedisURL, nil},
		{"POSTBACK_RETRY_SCHEDULE", "retry-schedule", "comma-separated retry delays (empty: the 15-step default)", &c.RetrySchedule, nil},
		{"POSTBACK_ALLOW_CIDRS", "allow-cidrs", "CIDRs opened past the network guard", &c.AllowCIDRs, nil},
		{"POSTBACK_SECRET_KEY", "secret-key", "keyring for secrets at rest (kid:base64key,…)", &c.SecretKey, nil},
		{"POSTBACK_TOKENS", "tokens", "API tokens: token=account pairs or a file path", &c.Tokens, nil},
		{"POSTBACK_STREAM_REPLICAS", "stream-replicas", "replicas of streams and buckets (3 in production)", nil, &c.Replicas},
		{"POSTBACK_RETENTION", "retention", "how long delivery history is kept", &c.Retention, nil},
		{"POSTBACK_HISTORY_URL", "history-url", "delivery history store: postgres://… (empty: embedded SQLite in the data dir)", &c.HistoryURL, nil},
		{"POSTBACK_LOG_LEVEL", "log-level", "debug, info, warn or error", &c.LogLevel, nil},
		{"POSTBACK_TARGETS", "targets", "services standalone runs (comma-separated; default all)", &c.Targets, nil},
		{"POSTBACK_TLS_CERT", "tls-cert", "PEM certificate chain for the gRPC listener (TLS on when set with --tls-key)", &c.TLSCert, nil},
		{"POSTBACK_TLS_KEY", "tls-key", "PEM private key for the gRPC listener", &c.TLSKey, nil},
		{"POSTBACK_TLS_CLIENT_CA", "tls-client-ca", "PEM CA bundle: require client certificates it signed (mTLS)", &c.TLSClientCA, nil},
		{"POSTBACK_SENDER_WORKERS", "sender-workers", "requests a sender has in flight at once (0: 256)", nil, &c.SenderWorkers},
		{"POSTBACK_IN_FLIGHT_PER_ENDPOINT", "in-flight-per-endpoint", "an endpoint's default share of the sender's requests in flight (0: an eighth)", nil, &c.InFlightPerEndpoint},
	}
}

// Load reads the environment (through getenv) and then the flags in args.
func Load(name string, args []string, getenv func(string) string, usage io.Writer) (Config, error) {
	c := Defaults()
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(usage)
	for _, s := range settings(&c) {
		v := strings.TrimSpace(getenv(s.env))
		if s.str != nil {
			if v != "" {
				*s.str = v
			}
			fs.StringVar(s.str, s.flag, *s.str, s.usage+" ("+s.env+")")
			continue
		}
		if v != "" {
			var n int
			if _, err := fmt.Sscanf(v, "%d", &n); err != nil {
				return c, fmt.Errorf("%s: want a whole number, got %q", s.env, v)
			}
			*s.num = n
		}
		fs.IntVar(s.num, s.flag, *s.num, s.usage+" ("+s.env+")")
	}
	for _, s := range boolSettings(&c) {
		if v := strings.TrimSpace(getenv(s.env)); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return c, fmt.Errorf("%s: want true or false, got %q", s.env, v)
			}
			*s.val = b
		}
		fs.BoolVar(s.val, s.flag, *s.val, s.usage+" ("+s.env+")")
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.SenderWorkers < 0 || c.SenderWorkers > 100000 {
		return c, fmt.Errorf("POSTBACK_SENDER_WORKERS: want 0 (the default) to 100000, got %d", c.SenderWorkers)
	}
	if c.InFlightPerEndpoint < 0 {
		return c, fmt.Errorf("POSTBACK_IN_FLIGHT_PER_ENDPOINT: want 0 (the default) or more, got %d", c.InFlightPerEndpoint)
	}
	return c, nil
}

// String describes the configuration without any secret: the secret key and
// tokens are reported only as set or not.
func (c Config) String() string {
	set := func(s string) string {
		if s == "" {
			return "unset"
		}
		return "set"
	}
	history := "embedded"
	if c.HistoryURL != "" {
		history = "postgres"
	}
	return fmt.Sprintf("grpc=%s http=%s nats=%q data=%s redis=%s history=%s schedule=%q allow=%q secret_key=%s tokens=%s tls=%s client_ca=%s",
		c.GRPCAddr, c.HTTPAddr, c.NATSURL, c.DataDir, set(c.RedisURL), history, c.RetrySchedule, c.AllowCIDRs, set(c.SecretKey), set(c.Tokens),
		set(c.TLSCert), set(c.TLSClientCA))
}
