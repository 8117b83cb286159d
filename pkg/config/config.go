// Package config reads Postback's configuration: the environment variables of
// docs/api.md, each also a command-line flag of the same name in kebab case
// without the POSTBACK_ prefix (POSTBACK_GRPC_ADDR = --grpc-addr). A flag
// given on the command line wins over the environment.
//
// Load checks every setting before it returns, so a process refuses a bad
// one before it starts anything: the error names the variable (and the flag
// when the value came from one), quotes the bad value unless it is a secret
// (POSTBACK_SECRET_KEY, POSTBACK_TOKENS) or a URL that may hold a password
// (POSTBACK_NATS_URL, POSTBACK_REDIS_URL, POSTBACK_HISTORY_URL), and says
// what is allowed. Settings one binary needs and another does not are
// checked by Require.
package config

import (
	"errors"
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
	NATSCA        string // POSTBACK_NATS_CA: PEM CA bundle trusted for tls:// NATS servers (empty: the system's)
	DataDir       string // POSTBACK_DATA_DIR: embedded JetStream storage, generated key
	RedisURL      string // POSTBACK_REDIS_URL: empty = in-process limiter
	RetrySchedule string // POSTBACK_RETRY_SCHEDULE: comma-separated Go durations
	AllowCIDRs    string // POSTBACK_ALLOW_CIDRS: destinations opened past the network guard
	SecretKey     string // POSTBACK_SECRET_KEY: keyring for secrets at rest
	JobKey        string // POSTBACK_JOB_KEY: keyring that authenticates delivery jobs (renderer → sender)
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

// Limits of the numeric settings.
const (
	MaxReplicas = 5      // JetStream's largest replication factor
	MaxWorkers  = 100000 // POSTBACK_SENDER_WORKERS and POSTBACK_IN_FLIGHT_PER_ENDPOINT
)

// setting is one variable: where it goes in Config, and what is allowed.
type setting struct {
	env, flag, usage string
	// want says what is allowed; every error about the setting ends with it.
	want string
	// secret: the value is never shown in an error (a key, tokens, or a
	// URL that may hold a password).
	secret bool
	str    *string
	num    *int
	b      *bool
	min    int // for num
	max    int // for num
	// check, when set, looks at a string value (already trimmed) and says
	// what is wrong with it ("" = fine). A secret's check never quotes the
	// value.
	check func(v string) string
}

func settings(c *Config) []setting {
	return []setting{
		{env: "POSTBACK_GRPC_ADDR", flag: "grpc-addr", usage: "gRPC listen address", str: &c.GRPCAddr,
			want: "host:port, like 127.0.0.1:7070, 0.0.0.0:7070 or :7070 (port a number 0-65535 or a service name)", check: checkAddr},
		{env: "POSTBACK_HTTP_ADDR", flag: "http-addr", usage: "HTTP listen address for health and metrics", str: &c.HTTPAddr,
			want: "host:port, like 127.0.0.1:7071, 0.0.0.0:7071 or :7071 (port a number 0-65535 or a service name)", check: checkAddr},
		{env: "POSTBACK_NATS_URL", flag: "nats-url", usage: "NATS server URL (empty: embedded server)", str: &c.NATSURL, secret: true,
			want: "nats://host:port (or tls://, ws://, wss://, or host:port), several comma-separated, or empty for standalone's embedded server", check: checkNATSURL},
		{env: "POSTBACK_DATA_DIR", flag: "data-dir", usage: "data directory for embedded JetStream", str: &c.DataDir,
			want: "the path of a directory (created when missing)", check: checkDataDir},
		{env: "POSTBACK_NATS_CA", flag: "nats-ca", usage: "PEM CA bundle trusted for the NATS servers' TLS certificates (empty: the system's roots)", str: &c.NATSCA,
			want: "the path of a readable PEM file of CA certificates, with POSTBACK_NATS_URL set", check: checkCAFile},
		{env: "POSTBACK_REDIS_URL", flag: "redis-url", usage: "Redis URL for limits: redis://, redis+cluster:// or redis+sentinel:// (empty: in-process limiter)", str: &c.RedisURL, secret: true,
			want: "redis://[user:password@]host:port[/db], redis+cluster://host:port?addr=host2:port2, redis+sentinel://host:port?master_name=NAME (rediss… for TLS), or empty for the in-process limiter", check: checkRedisURL},
		{env: "POSTBACK_RETRY_SCHEDULE", flag: "retry-schedule", usage: "comma-separated retry delays (empty: the 15-step default)", str: &c.RetrySchedule,
			want: "comma-separated Go durations greater than zero, like 30s,5m,1h (at most 100), or empty for the 15-step default", check: checkSchedule},
		{env: "POSTBACK_ALLOW_CIDRS", flag: "allow-cidrs", usage: "CIDRs opened past the network guard", str: &c.AllowCIDRs,
			want: "comma-separated IP addresses or CIDRs, like 10.0.0.0/8,192.168.1.5, or empty", check: checkAllow},
		{env: "POSTBACK_SECRET_KEY", flag: "secret-key", usage: "keyring for secrets at rest (kid:base64key,…)", str: &c.SecretKey, secret: true,
			want: "comma-separated kid:base64key entries, each key 32 random bytes in base64 (e.g. k1:$(head -c 32 /dev/urandom | base64))", check: checkSecretKey},
		{env: "POSTBACK_JOB_KEY", flag: "job-key", usage: "keyring that authenticates delivery jobs between renderer and sender (kid:base64key,…)", str: &c.JobKey, secret: true,
			want: "comma-separated kid:base64key entries, each key 32 random bytes in base64 (e.g. j1:$(head -c 32 /dev/urandom | base64)), not the POSTBACK_SECRET_KEY", check: checkSecretKey},
		{env: "POSTBACK_TOKENS", flag: "tokens", usage: "API tokens: token=account pairs or a file path", str: &c.Tokens, secret: true,
			want: "comma-separated token=account pairs (a token 16-256 printable characters without spaces, commas or =; an account 1-64 of A-Z a-z 0-9 _ -, or * for an operator), or file:/path/to/a/file of them", check: checkTokens},
		{env: "POSTBACK_STREAM_REPLICAS", flag: "stream-replicas", usage: "replicas of streams and buckets (3 in production)", num: &c.Replicas, min: 1, max: MaxReplicas,
			want: "a whole number from 1 to 5, JetStream's limit (1 for one server, 3 in production)"},
		{env: "POSTBACK_RETENTION", flag: "retention", usage: "how long delivery history is kept", str: &c.Retention,
			want: "a Go duration greater than zero, like 720h or 168h30m (units ns, us, ms, s, m, h; no days)", check: checkRetention},
		{env: "POSTBACK_HISTORY_URL", flag: "history-url", usage: "delivery history store: postgres://… (empty: embedded SQLite in the data dir)", str: &c.HistoryURL, secret: true,
			want: "postgres://[user:password@]host[:port]/database[?options] (or postgresql://), or empty for the embedded SQLite store in the data dir", check: checkHistoryURL},
		{env: "POSTBACK_LOG_LEVEL", flag: "log-level", usage: "debug, info, warn or error", str: &c.LogLevel,
			want: "debug, info, warn or error", check: checkLogLevel},
		{env: "POSTBACK_TARGETS", flag: "targets", usage: "services standalone runs (comma-separated; default all)", str: &c.Targets,
			want: "all, or a comma-separated list of " + strings.Join(TargetNames, ", "), check: checkTargets},
		{env: "POSTBACK_TLS_CERT", flag: "tls-cert", usage: "PEM certificate chain for the gRPC listener (TLS on when set with --tls-key)", str: &c.TLSCert,
			want: "the path of a readable PEM certificate file, set together with POSTBACK_TLS_KEY", check: checkCertFile},
		{env: "POSTBACK_TLS_KEY", flag: "tls-key", usage: "PEM private key for the gRPC listener", str: &c.TLSKey,
			want: "the path of a readable PEM private key file, set together with POSTBACK_TLS_CERT", check: checkKeyFile},
		{env: "POSTBACK_TLS_CLIENT_CA", flag: "tls-client-ca", usage: "PEM CA bundle: require client certificates it signed (mTLS)", str: &c.TLSClientCA,
			want: "the path of a readable PEM file of CA certificates, with POSTBACK_TLS_CERT and POSTBACK_TLS_KEY set", check: checkCAFile},
		{env: "POSTBACK_SENDER_WORKERS", flag: "sender-workers", usage: "requests a sender has in flight at once (0: 256)", num: &c.SenderWorkers, min: 0, max: MaxWorkers,
			want: "a whole number from 0 (the default, 256) to 100000"},
		{env: "POSTBACK_IN_FLIGHT_PER_ENDPOINT", flag: "in-flight-per-endpoint", usage: "an endpoint's default share of the sender's requests in flight (0: an eighth)", num: &c.InFlightPerEndpoint, min: 0, max: MaxWorkers,
			want: "a whole number from 0 (the default, an eighth of the workers) to 100000"},
		{env: "POSTBACK_INSECURE_NO_AUTH", flag: "insecure-no-auth", usage: "postback-gateway only: start without POSTBACK_TOKENS, every call an operator", b: &c.InsecureNoAuth,
			want: "true or false (or 1 or 0)"},
		{env: "POSTBACK_PPROF", flag: "pprof", usage: "serve /debug/pprof/ on the HTTP address (profiles expose internals)", b: &c.PProf,
			want: "true or false (or 1 or 0)"},
	}
}

// rawValue is a flag's value as given: every flag is read as text and
// checked with its variable, so a bad flag gets the same one-line error.
type rawValue struct {
	val, def string
	set      bool
	isBool   bool
}

func (r *rawValue) String() string {
	if r == nil {
		return ""
	}
	return r.def
}

func (r *rawValue) Set(s string) error { r.val, r.set = s, true; return nil }

func (r *rawValue) IsBoolFlag() bool { return r != nil && r.isBool }

// Load reads the environment (through getenv), then the flags in args, and
// checks every setting. An environment variable set to the empty string
// counts as unset. With -h or --help it writes the flags to usage and
// returns flag.ErrHelp. Any other error is one line naming each bad
// setting.
func Load(name string, args []string, getenv func(string) string, usage io.Writer) (Config, error) {
	c := Defaults()
	all := settings(&c)
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned, in one line; usage only on -h
	fs.Usage = func() {}
	raws := make([]*rawValue, len(all))
	for i, s := range all {
		r := &rawValue{def: s.defaultText(), isBool: s.b != nil}
		raws[i] = r
		fs.Var(r, s.flag, s.usage+" ("+s.env+")")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(usage)
			fmt.Fprintf(usage, "Usage of %s (each flag is also a POSTBACK_* environment variable; a flag wins):\n", name)
			fs.PrintDefaults()
			return c, err
		}
		return c, fmt.Errorf("%v (-h lists the flags)", err)
	}
	var errs []string
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Sprintf("unexpected argument %q: settings are flags (--name=value) or POSTBACK_* variables", fs.Arg(0)))
	}
	for i, s := range all {
		v, from := strings.TrimSpace(getenv(s.env)), s.env
		if raws[i].set {
			v, from = strings.TrimSpace(raws[i].val), "--"+s.flag+" ("+s.env+")"
		} else if v == "" {
			continue // unset: the default
		}
		if problem := s.apply(v); problem != "" {
			errs = append(errs, fmt.Sprintf("%s: %s; want %s", from, problem, s.want))
		}
	}
	if len(errs) == 0 {
		if err := c.checkTogether(); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return c, errors.New(strings.Join(errs, "; and "))
	}
	return c, nil
}

func (s setting) defaultText() string {
	switch {
	case s.str != nil:
		if s.secret {
			return ""
		}
		return *s.str
	case s.num != nil:
		return strconv.Itoa(*s.num)
	default:
		if !*s.b {
			return "" // -h says nothing of a default off
		}
		return "true"
	}
}

// apply stores v and says what is wrong with it ("" = nothing).
func (s setting) apply(v string) (problem string) {
	defer func() {
		if s.secret && problem != "" {
			problem = hide(problem, v)
		}
	}()
	shown := strconv.Quote(v)
	if s.secret {
		shown = "the value (not shown)"
	}
	switch {
	case s.num != nil:
		n, err := strconv.Atoi(v)
		if err != nil {
			var ne *strconv.NumError
			if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
				return shown + " is out of range"
			}
			return shown + " is not a whole number"
		}
		if n < s.min || n > s.max {
			return fmt.Sprintf("%d is out of range", n)
		}
		*s.num = n
	case s.b != nil:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return shown + " is not a boolean"
		}
		*s.b = b
	default:
		if s.check != nil {
			if p := s.check(v); p != "" {
				return p
			}
		}
		if s.env == "POSTBACK_LOG_LEVEL" {
			v = strings.ToLower(v)
		}
		*s.str = v
	}
	return ""
}

// hide makes sure a secret's error does not hold the secret: checks of
// secrets never quote the value, and this covers what a library says.
func hide(problem, v string) string {
	if len(v) >= 6 && strings.Contains(problem, v) {
		problem = strings.ReplaceAll(problem, v, "(not shown)")
	}
	return problem
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
	return fmt.Sprintf("grpc=%s http=%s nats=%s data=%s redis=%s history=%s schedule=%q allow=%q secret_key=%s job_key=%s tokens=%s tls=%s client_ca=%s",
		c.GRPCAddr, c.HTTPAddr, set(c.NATSURL), c.DataDir, set(c.RedisURL), history, c.RetrySchedule, c.AllowCIDRs, set(c.SecretKey), set(c.JobKey), set(c.Tokens),
		set(c.TLSCert), set(c.TLSClientCA))
}
