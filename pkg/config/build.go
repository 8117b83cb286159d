package config

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/nats-io/nats.go"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/postback-dev/postback/pkg/auth"
	"github.com/postback-dev/postback/pkg/guard"
	"github.com/postback-dev/postback/pkg/history"
	"github.com/postback-dev/postback/pkg/history/postgres"
	"github.com/postback-dev/postback/pkg/history/sqlite"
	"github.com/postback-dev/postback/pkg/limiter"
	"github.com/postback-dev/postback/pkg/limiter/local"
	redislimiter "github.com/postback-dev/postback/pkg/limiter/redis"
	"github.com/postback-dev/postback/pkg/schedule"
	"github.com/postback-dev/postback/pkg/secret"
	"github.com/postback-dev/postback/pkg/stream"
	"github.com/postback-dev/postback/pkg/telemetry"
)

// KeyFile is the keyring standalone generates in the data dir when
// POSTBACK_SECRET_KEY is unset.
const KeyFile = "secret.key"

// JobKeyFile is the job keyring standalone generates in the data dir when
// POSTBACK_JOB_KEY is unset.
const JobKeyFile = "job.key"

// Logger is a JSON slog logger at the configured level; a line logged with a
// context inside a span carries trace_id and span_id.
func (c Config) Logger() *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		level = slog.LevelInfo
	}
	return slog.New(telemetry.LogHandler(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
}

// Keyring parses POSTBACK_SECRET_KEY; when it is unset and generate is true
// (standalone), it loads or creates DataDir/secret.key (mode 0600).
func (c Config) Keyring(generate bool) (*secret.Keyring, error) {
	return c.keyring("POSTBACK_SECRET_KEY", c.SecretKey, "k1", KeyFile, generate)
}

// JobKeyring parses POSTBACK_JOB_KEY; when it is unset and generate is true
// (standalone), it loads or creates DataDir/job.key (mode 0600).
func (c Config) JobKeyring(generate bool) (*secret.Keyring, error) {
	return c.keyring("POSTBACK_JOB_KEY", c.JobKey, "j1", JobKeyFile, generate)
}

// keyring parses the keyring value of variable name, or (unset, generate)
// loads or creates file in the data dir; kid names the example in the error
// for a missing value.
func (c Config) keyring(name, value, kid, file string, generate bool) (*secret.Keyring, error) {
	if value != "" {
		k, err := secret.ParseKeyring(value)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return k, nil
	}
	if !generate {
		return nil, fmt.Errorf("%s is required (kid:base64 of 32 random bytes, e.g. %s:$(head -c 32 /dev/urandom | base64))", name, kid)
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir %s: %w", c.DataDir, err)
	}
	k, err := secret.LoadOrCreate(filepath.Join(c.DataDir, file))
	if err != nil {
		return nil, fmt.Errorf("%s file: %w", file, err)
	}
	return k, nil
}

// NATSOptions are the connection options the configuration adds to
// stream.ClientOptions: the CA bundle for TLS (POSTBACK_NATS_CA).
func (c Config) NATSOptions() []nats.Option {
	if c.NATSCA == "" {
		return nil
	}
	return []nats.Option{nats.RootCAs(c.NATSCA)}
}

// Allow parses POSTBACK_ALLOW_CIDRS.
func (c Config) Allow() ([]netip.Prefix, error) {
	a, err := guard.ParseAllow(c.AllowCIDRs)
	if err != nil {
		return nil, fmt.Errorf("POSTBACK_ALLOW_CIDRS: %w", err)
	}
	return a, nil
}

// Schedule parses POSTBACK_RETRY_SCHEDULE (empty = the seed's 15 steps).
func (c Config) Schedule() (schedule.Schedule, error) {
	s, err := schedule.Parse(c.RetrySchedule)
	if err != nil {
		return nil, fmt.Errorf("POSTBACK_RETRY_SCHEDULE: %w", err)
	}
	return s, nil
}

// Layout is the stream layout options.
func (c Config) Layout() (stream.Options, error) {
	o := stream.DefaultOptions()
	o.Replicas = max(1, c.Replicas)
	if strings.TrimSpace(c.Retention) != "" {
		d, err := time.ParseDuration(c.Retention)
		if err != nil || d <= 0 {
			return o, fmt.Errorf("POSTBACK_RETENTION: want a positive Go duration (e.g. 720h), got %q", c.Retention)
		}
		o.Retention = d
	}
	return o, nil
}

// Limiter is the Redis limiter when POSTBACK_REDIS_URL is set, else the
// in-process one. When restarted, the in-process limiter treats every
// endpoint as having started a request now (the process before this one may
// have, just before it stopped), so a restart never lets two requests
// closer than the endpoint's gap; pass false only when no process can have
// sent for this deployment before (a standalone on a new data dir). The
// returned close func releases the Redis client.
func (c Config) Limiter(restarted bool) (limiter.Limiter, func(), error) {
	if c.RedisURL == "" {
		if !restarted {
			return local.New(nil), func() {}, nil
		}
		return local.NewSince(nil, time.Now()), func() {}, nil
	}
	client, err := RedisClient(c.RedisURL)
	if err != nil {
		return nil, nil, fmt.Errorf("POSTBACK_REDIS_URL: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = client.Ping(ctx).Err() // reported by readiness; deliveries wait while Redis is away
	return redislimiter.New(client), func() { _ = client.Close() }, nil
}

// RedisClient is the client for a Redis URL in one of three forms:
//
//   - one server: redis://[user:password@]host:port[/db] (rediss:// for TLS);
//   - a Redis Cluster: redis+cluster://[user:password@]host:port?addr=host2:port2&addr=...
//     (rediss+cluster:// for TLS), any of its nodes as seeds;
//   - a master watched by Sentinels: redis+sentinel://[user:password@]sentinel:port?master_name=NAME&addr=sentinel2:port
//     (rediss+sentinel:// for TLS), the user and password being the master's.
//
// Each takes go-redis's URL options as query parameters (dial_timeout=2s).
// Its errors never quote the URL, which may hold a password.
func RedisClient(rawURL string) (redis.UniversalClient, error) {
	newClient, err := redisClientFunc(rawURL)
	if err != nil {
		return nil, err
	}
	return newClient(), nil
}

// redisClientFunc parses a Redis URL (RedisClient) without making a client
// yet: Load checks POSTBACK_REDIS_URL with it. Its errors never quote the
// URL.
func redisClientFunc(rawURL string) (func() redis.UniversalClient, error) {
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		return nil, errors.New("not a Redis URL: want redis://, redis+cluster:// or redis+sentinel:// (or rediss…)")
	}
	base, kind, _ := strings.Cut(scheme, "+")
	if base != "redis" && base != "rediss" {
		return nil, fmt.Errorf("unknown scheme %q: want redis, rediss, redis+cluster or redis+sentinel", scheme)
	}
	u := base + "://" + rest
	switch kind {
	case "":
		opts, err := redis.ParseURL(u)
		if err != nil {
			return nil, errors.New("not a valid redis:// URL (host, port, database or an option)")
		}
		return func() redis.UniversalClient { return redis.NewClient(opts) }, nil
	case "cluster":
		opts, err := redis.ParseClusterURL(u)
		if err != nil {
			return nil, errors.New("not a valid redis+cluster:// URL (a seed address or an option)")
		}
		return func() redis.UniversalClient { return redis.NewClusterClient(opts) }, nil
	case "sentinel":
		opts, err := redis.ParseFailoverURL(u)
		if err != nil {
			return nil, errors.New("not a valid redis+sentinel:// URL (a sentinel address or an option)")
		}
		if opts.MasterName == "" {
			return nil, errors.New("a redis+sentinel:// URL needs master_name=<the master's name>")
		}
		return func() redis.UniversalClient { return redis.NewFailoverClient(opts) }, nil
	default:
		return nil, fmt.Errorf("unknown scheme %q: want redis, rediss, redis+cluster or redis+sentinel", scheme)
	}
}

// AuthTokens parses POSTBACK_TOKENS (pairs, or file:<path>); nil when unset.
// Errors never quote a token.
func (c Config) AuthTokens() (*auth.Tokens, error) {
	t, err := auth.LoadTokens(c.Tokens)
	if err != nil {
		return nil, fmt.Errorf("POSTBACK_TOKENS: %w", err)
	}
	return t, nil
}

// ServerTLS is the gRPC listener's TLS configuration from POSTBACK_TLS_CERT,
// POSTBACK_TLS_KEY and POSTBACK_TLS_CLIENT_CA; nil when none is set.
func (c Config) ServerTLS() (*tls.Config, error) {
	return auth.ServerTLS(auth.TLSFiles{Cert: c.TLSCert, Key: c.TLSKey, ClientCA: c.TLSClientCA})
}

// HistoryFile is the embedded history store standalone keeps in the data
// dir when POSTBACK_HISTORY_URL is unset.
const HistoryFile = "history.db"

// History opens the delivery history store: PostgreSQL when
// POSTBACK_HISTORY_URL is a postgres:// URL (connected, and migrations
// applied, on first use), else the embedded SQLite file in the data dir.
// The caller closes it.
func (c Config) History(ctx context.Context) (history.Store, error) {
	u := strings.TrimSpace(c.HistoryURL)
	if u == "" {
		if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("data dir %s: %w", c.DataDir, err)
		}
		return sqlite.Open(filepath.Join(c.DataDir, HistoryFile))
	}
	if !strings.HasPrefix(u, "postgres://") && !strings.HasPrefix(u, "postgresql://") {
		// The URL may hold a password: do not echo it.
		return nil, errors.New("POSTBACK_HISTORY_URL: want a postgres:// URL, or empty for the embedded store")
	}
	// Opened on first use, and again while that fails: a process starts
	// while its database is down (history.Lazy).
	return history.Lazy(func(ctx context.Context) (history.Store, error) {
		s, err := postgres.Open(ctx, u)
		if err != nil {
			return nil, fmt.Errorf("POSTBACK_HISTORY_URL: %w", err)
		}
		return s, nil
	}), nil
}
