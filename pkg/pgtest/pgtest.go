// Package pgtest starts a real, private PostgreSQL server for tests.
//
// Each Start runs initdb into a fresh temporary directory and launches its
// own postgres on a free port of 127.0.0.1 (listen_addresses=127.0.0.1, its
// Unix socket inside the temporary directory), with the settings of a
// throwaway server (fsync, synchronous_commit and full_page_writes off), waits
// until it accepts connections, and stops it when the test ends. Clients
// connect over TCP as the superuser postgres with no password (initdb
// --auth=trust: only loopback is listened on, and only the test binary knows
// the port). Nothing else is touched: the system postgresql service is never
// started, and only loopback is ever dialled.
//
// postgres is started directly, not through pg_ctl (which daemonizes it), so
// that on Linux it is the test binary's own child with a parent-death signal:
// a test binary that dies without running its cleanups (a panic, a timeout,
// SIGKILL) takes its server with it.
//
// PostgreSQL refuses to run as root. When the test runs as root, initdb and
// postgres run as an unprivileged user (the postgres system user if there is
// one, else nobody), through the child's credentials rather than runuser, so
// that the parent-death signal reaches postgres itself; the temporary
// directory is made over to that user.
//
// When initdb or pg_ctl is not installed, the binaries are installed by
// scripts/ensure-postgres.sh (found relative to this source file), which
// installs Debian's postgresql under a file lock so that parallel test
// binaries install it once. If that fails the test fails: a test that needs
// PostgreSQL is never silently skipped.
//
// Stop and Restart (same port, same data) let tests exercise "PostgreSQL down
// and back". NewDatabase gives each test (or subtest) a database of its own.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/postback-dev/postback/pkg/ensure"
)

const (
	// startTimeout bounds how long a started server may take to accept
	// connections (initdb is not counted).
	startTimeout = 30 * time.Second
	// initdbTimeout bounds initdb.
	initdbTimeout = 2 * time.Minute
	// stopTimeout bounds a fast shutdown before the server is killed.
	stopTimeout = 10 * time.Second
	// Superuser is the role initdb makes and clients connect as.
	Superuser = "postgres"
)

// Server is one running (or stopped) PostgreSQL server owned by a test or,
// from StartShared, by a test binary.
type Server struct {
	// Host is always 127.0.0.1.
	Host string
	// Port is the TCP port, the same across Restart.
	Port int

	tb   testing.TB // nil for StartShared
	bin  string     // directory holding initdb and postgres
	dir  string     // temporary directory: data/, sock/, logs; removed by Close
	as   *runAs     // nil: run as ourselves
	seq  atomic.Int64
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	log  *os.File
	// logPath is the current server log.
	logPath string
	closed  bool
}

// Start starts a PostgreSQL server for tb and stops it (removing its data)
// in tb.Cleanup. It fails tb (never skips) when PostgreSQL cannot be found,
// installed or started.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s, err := launch()
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	s.tb = tb
	tb.Cleanup(s.Close)
	return s
}

// StartShared starts a server not tied to one test, for a package's TestMain
// to share across tests or benchmarks; the caller must call Close (on Linux
// the server also dies with the test binary, but its temporary directory is
// then left behind). Its Restart panics on failure, having no test to fail.
func StartShared() (*Server, error) {
	s, err := launch()
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	return s, nil
}

var shared struct {
	once sync.Once
	s    *Server
	err  error
}

// Shared returns the test binary's shared server, starting it on first use
// (StartShared, once per process). It fails tb when the server cannot be
// started. The server outlives every test; call CloseShared from TestMain
// after m.Run to stop it and remove its directory (otherwise it dies with the
// test binary, leaving the directory behind). Tests sharing it should each
// take a database of their own with NewDatabase, and must not Stop it.
func Shared(tb testing.TB) *Server {
	tb.Helper()
	shared.once.Do(func() { shared.s, shared.err = StartShared() })
	if shared.err != nil {
		tb.Fatalf("%v", shared.err)
	}
	return shared.s
}

// CloseShared stops the shared server if Shared started one.
func CloseShared() {
	shared.once.Do(func() { shared.err = errors.New("pgtest: shared server already closed") })
	if shared.s != nil {
		shared.s.Close()
	}
}

// URL is the connection URL of database db: postgres://postgres@127.0.0.1:PORT/db?sslmode=disable.
func (s *Server) URL(db string) string {
	return "postgres://" + Superuser + "@" + s.Addr() + "/" + url.PathEscape(db) + "?sslmode=disable"
}

// Addr is host:port.
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// NewDatabase creates a fresh, uniquely named, empty database and returns its
// URL. The database is dropped in tb.Cleanup (if the server is up then).
func (s *Server) NewDatabase(tb testing.TB) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	name, err := s.CreateDatabase(ctx, tb.Name())
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	})
	return s.URL(name)
}

// CreateDatabase creates a fresh, uniquely named, empty database (its name
// made from hint, which may be anything, and a sequence number) and returns
// its name. Nothing drops it but the server's end.
func (s *Server) CreateDatabase(ctx context.Context, hint string) (string, error) {
	name := dbName(hint, s.seq.Add(1))
	if err := s.exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return name, nil
}

// dbName makes a database name (at most 63 bytes, lower case) from a hint.
func dbName(hint string, seq int64) string {
	var b strings.Builder
	for _, r := range strings.ToLower(hint) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			if s := b.String(); s != "" && !strings.HasSuffix(s, "_") {
				b.WriteByte('_')
			}
		}
	}
	suffix := "_" + strconv.FormatInt(seq, 10)
	base := "t_" + b.String()
	if len(base)+len(suffix) > 63 {
		base = base[:63-len(suffix)]
	}
	return strings.TrimSuffix(base, "_") + suffix
}

// exec runs one statement in the postgres database.
func (s *Server) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// Stop stops the server (a fast shutdown: sessions are ended, data is kept).
// Stopping a stopped server is a no-op.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

// Restart starts the server again on the same port with the same data. A
// running server is stopped first.
func (s *Server) Restart() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
	if err := s.startLocked(); err != nil {
		if s.tb == nil {
			panic(fmt.Sprintf("pgtest: restart: %v", err))
		}
		s.tb.Helper()
		s.tb.Fatalf("pgtest: restart: %v", err)
	}
}

// Close stops the server and removes its directory. Close is idempotent.
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
	if !s.closed {
		s.closed = true
		os.RemoveAll(s.dir)
	}
}

// Log returns the end of the current server log, for failure messages.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return tail(s.logPath)
}

func launch() (*Server, error) {
	bin, err := Binaries()
	if err != nil {
		return nil, err
	}
	as, err := lookupRunAs()
	if err != nil {
		return nil, err
	}
	// Not tb.TempDir: its parents are private to us, and when we are root
	// the server's user could not reach into them. $TMPDIR must be
	// reachable by that user (/tmp is).
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, fmt.Errorf("make temp dir: %w", err)
	}
	s := &Server{Host: "127.0.0.1", bin: bin, dir: dir, as: as}
	fail := func(err error) (*Server, error) {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := os.Mkdir(s.sockDir(), 0o700); err != nil {
		return fail(fmt.Errorf("make socket dir: %w", err))
	}
	if as != nil {
		for _, p := range []string{dir, s.sockDir()} {
			if err := os.Chown(p, as.uid, as.gid); err != nil {
				return fail(fmt.Errorf("hand %s to user %s: %w", p, as.name, err))
			}
		}
	}
	if err := s.initdb(); err != nil {
		return fail(err)
	}
	// The free port is found by binding :0 and closing it, so another process
	// may take it before postgres binds; try a few ports before failing.
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			return fail(err)
		}
		s.Port = port
		s.mu.Lock()
		lastErr = s.startLocked()
		s.mu.Unlock()
		if lastErr == nil {
			return s, nil
		}
	}
	return fail(lastErr)
}

func (s *Server) dataDir() string { return filepath.Join(s.dir, "data") }
func (s *Server) sockDir() string { return filepath.Join(s.dir, "sock") }

// command makes a command that runs as s.as (when set) in s.dir.
func (s *Server) command(name string, args ...string) (*exec.Cmd, error) {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Dir = s.dir
	// LC_ALL=C: messages in English and no dependence on the host's locales.
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	attr, err := procAttr(s.as)
	if err != nil {
		return nil, err
	}
	cmd.SysProcAttr = attr
	return cmd, nil
}

func (s *Server) initdb() error {
	logPath := filepath.Join(s.dir, "initdb.log")
	log, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("open initdb log: %w", err)
	}
	defer log.Close()
	cmd, err := s.command("initdb",
		"-D", s.dataDir(),
		"--auth=trust", "-U", Superuser,
		"--encoding=UTF8", "--locale=C",
		"--no-sync",
	)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start initdb: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(initdbTimeout):
		_ = cmd.Process.Kill()
		<-done
		err = fmt.Errorf("did not finish within %s", initdbTimeout)
	}
	if err != nil {
		return fmt.Errorf("initdb %s%s: %w; output:\n%s", s.dataDir(), s.as.describe(), err, tail(logPath))
	}
	return nil
}

func (s *Server) startLocked() error {
	if s.closed {
		return errors.New("server closed")
	}
	if s.cmd != nil {
		return nil
	}
	s.logPath = filepath.Join(s.dir, "postgres-"+strconv.Itoa(s.Port)+".log")
	log, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open server log: %w", err)
	}
	cmd, err := s.command("postgres",
		"-D", s.dataDir(),
		"-p", strconv.Itoa(s.Port),
		"-k", s.sockDir(),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_permissions=0700",
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=200",
		// Queries on a partitioned table lock every partition and its
		// indexes; leave room for many of both.
		"-c", "max_locks_per_transaction=256",
		"-c", "log_min_messages=warning",
		"-c", "log_connections=off",
	)
	if err != nil {
		log.Close()
		return err
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.cmd, s.done, s.log = cmd, done, log

	deadline := time.Now().Add(startTimeout)
	for {
		err := s.ping()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			s.stopLocked()
			return fmt.Errorf("postgres on %s did not accept connections within %s: %w; log:\n%s", s.Addr(), startTimeout, err, tail(s.logPath))
		}
		select {
		case <-done:
			s.stopLocked()
			return fmt.Errorf("postgres on %s exited at start; log:\n%s", s.Addr(), tail(s.logPath))
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// ping connects to the postgres database and runs SELECT 1.
func (s *Server) ping() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var one int
	return conn.QueryRow(ctx, "SELECT 1").Scan(&one)
}

func (s *Server) stopLocked() {
	if s.cmd == nil {
		return
	}
	// SIGINT is PostgreSQL's fast shutdown: sessions are ended, a
	// checkpoint is written, the data survives. SIGQUIT (immediate) and
	// SIGKILL are the fallbacks.
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.done:
	case <-time.After(stopTimeout):
		_ = s.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	}
	s.log.Close()
	s.cmd, s.done, s.log = nil, nil, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free loopback port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(path string) string {
	if path == "" {
		return ""
	}
	b, _ := os.ReadFile(path)
	return ensure.Tail(b)
}

// runAs is the unprivileged user the server runs as when we are root.
type runAs struct {
	name     string
	uid, gid int
}

func (r *runAs) describe() string {
	if r == nil {
		return ""
	}
	return " (as user " + r.name + ")"
}

// lookupRunAs returns nil when not root, else the postgres user or nobody.
func lookupRunAs() (*runAs, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	var errs []error
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		uid, err1 := strconv.Atoi(u.Uid)
		gid, err2 := strconv.Atoi(u.Gid)
		if err1 != nil || err2 != nil || uid == 0 {
			errs = append(errs, fmt.Errorf("user %s has uid %q gid %q", name, u.Uid, u.Gid))
			continue
		}
		return &runAs{name: name, uid: uid, gid: gid}, nil
	}
	return nil, fmt.Errorf("running as root, and no unprivileged user to run PostgreSQL as: %w", errors.Join(errs...))
}

var (
	binaryOnce sync.Once
	binaryDir  string
	binaryErr  error
)

// Binaries returns the directory holding initdb, pg_ctl and postgres,
// installing them with scripts/ensure-postgres.sh (once per process) when
// they are missing.
func Binaries() (string, error) {
	binaryOnce.Do(func() { binaryDir, binaryErr = findOrInstall() })
	return binaryDir, binaryErr
}

func findOrInstall() (string, error) {
	return ensure.Installed("pgtest", "initdb/pg_ctl", "ensure-postgres.sh", lookBinaries)
}

// lookBinaries finds a directory with initdb, pg_ctl and postgres: that of
// initdb on PATH (symlinks followed), else Debian's /usr/lib/postgresql/N/bin,
// newest N first.
func lookBinaries() (string, error) {
	var dirs []string
	if p, err := exec.LookPath("initdb"); err == nil {
		if _, err := exec.LookPath("pg_ctl"); err == nil {
			if real, err := filepath.EvalSymlinks(p); err == nil {
				dirs = append(dirs, filepath.Dir(real))
			}
			dirs = append(dirs, filepath.Dir(p))
		}
	}
	debian, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(debian, func(a, b string) int {
		return majorOf(b) - majorOf(a)
	})
	dirs = append(dirs, debian...)
	for _, d := range dirs {
		if executable(filepath.Join(d, "initdb")) && executable(filepath.Join(d, "pg_ctl")) && executable(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", errors.New("initdb, pg_ctl and postgres are neither on PATH nor in /usr/lib/postgresql/*/bin")
}

func majorOf(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func executable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// ensureScript finds ../../scripts/ensure-postgres.sh from this source file.
func ensureScript() (string, error) { return ensure.Script("ensure-postgres.sh") }
