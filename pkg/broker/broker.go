// Package broker runs an embedded nats-server with JetStream, for standalone
// mode and tests. Production runs a NATS cluster and points POSTBACK_NATS_URL
// at it instead.
package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Options configure the embedded server.
type Options struct {
	// Host and Port to listen on; Port -1 picks a free port, 0 the default 4222.
	Host string
	Port int
	// DataDir holds JetStream storage (DataDir/jetstream).
	DataDir string
	// Credentials, when set, lock the server: only the users of Users, with
	// these passwords and the permissions of users.go, may connect. Nil
	// leaves it open (tests that need a bare broker).
	Credentials Credentials
	// Logger, when set, receives the server's errors and warnings (among
	// them every permissions violation).
	Logger *slog.Logger
}

// Server is a running embedded nats-server.
type Server struct {
	*server.Server
	creds Credentials
}

// Start starts the server and waits until it accepts connections.
func Start(o Options) (*Server, error) {
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.DataDir == "" {
		return nil, errors.New("broker: DataDir is required")
	}
	opts := &server.Options{
		ServerName: "postback-embedded",
		Host:       o.Host,
		Port:       o.Port,
		JetStream:  true,
		StoreDir:   filepath.Join(o.DataDir, "jetstream"),
		NoSigs:     true,
		NoLog:      o.Logger == nil,
	}
	if o.Credentials != nil {
		for _, u := range Users {
			pass := o.Credentials[u]
			if pass == "" {
				return nil, fmt.Errorf("embedded nats-server: no password for user %q", u)
			}
			opts.Users = append(opts.Users, &server.User{Username: u, Password: pass, Permissions: Permissions(u)})
		}
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats-server: %w", err)
	}
	if o.Logger != nil {
		s.SetLoggerV2(serverLog{o.Logger}, false, false, false)
	}
	go s.Start()
	if !s.ReadyForConnections(15 * time.Second) {
		s.Shutdown()
		return nil, errors.New("embedded nats-server: not ready after 15s")
	}
	return &Server{Server: s, creds: o.Credentials}, nil
}

// Connect opens a connection to the server over its loopback listener, as
// user (ignored when the server is open), with opts (its name, its error
// handler: stream.ClientOptions).
// Not an in-process connection (nats.InProcessServer): that is a
// synchronous pipe, where every write waits for the server's read loop to
// take it, and under load it made the standalone burst slower than TCP over
// loopback (A/B, same window: PublishBatch +5%, unary Publish +13%).
func (s *Server) Connect(user string, opts ...nats.Option) (*nats.Conn, error) {
	if s.creds != nil {
		opts = append(opts, nats.UserInfo(user, s.creds[user]))
	}
	nc, err := nats.Connect(s.ClientURL(), opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to embedded nats-server as %s: %w", user, err)
	}
	return nc, nil
}

// URL is the client URL with the admin user's credentials in it (the plain
// client URL when the server is open): for tests and tools that need the
// whole broker. Log it only through url.Redacted.
func (s *Server) URL() string {
	if s.creds == nil {
		return s.ClientURL()
	}
	u, err := url.Parse(s.ClientURL())
	if err != nil {
		return s.ClientURL()
	}
	u.User = url.UserPassword(AdminUser, s.creds[AdminUser])
	return u.String()
}

// serverLog passes the server's errors and warnings to slog; notices,
// debug and trace lines are dropped.
type serverLog struct{ log *slog.Logger }

func (l serverLog) Noticef(string, ...any) {}
func (l serverLog) Debugf(string, ...any)  {}
func (l serverLog) Tracef(string, ...any)  {}
func (l serverLog) Warnf(format string, v ...any) {
	l.log.Warn(fmt.Sprintf(format, v...), "component", "nats-server")
}
func (l serverLog) Errorf(format string, v ...any) {
	l.log.Error(fmt.Sprintf(format, v...), "component", "nats-server")
}
func (l serverLog) Fatalf(format string, v ...any) {
	l.log.Error(fmt.Sprintf(format, v...), "component", "nats-server", "fatal", true)
}

// Stop shuts the server down and waits for it.
func (s *Server) Stop() {
	s.Shutdown()
	s.WaitForShutdown()
}
