// Package redistest starts a real, private redis-server for tests.
//
// Each Start launches its own redis-server on a free port of 127.0.0.1 with
// no persistence (--save "" --appendonly no) and a temporary working dir, waits
// until it answers PING, and stops it when the test ends. Nothing else is
// touched: the system redis service is never started, and only loopback is
// ever dialled.
//
// When redis-server is not installed, Start runs scripts/ensure-redis.sh (found
// relative to this source file) which installs Debian's redis-server under a
// file lock, so parallel test binaries install it once. If that fails the test
// fails: a test that needs Redis is never silently skipped.
//
// Stop and Restart (same port, empty data) let tests exercise "Redis down".
package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/postback-dev/postback/pkg/ensure"
)

// startTimeout bounds how long a fresh server may take to answer PING.
const startTimeout = 15 * time.Second

// Server is one running (or stopped) redis-server owned by a test.
type Server struct {
	// Addr is host:port, always on 127.0.0.1.
	Addr string
	// URL is redis://Addr, for clients that take a URL.
	URL string

	tb     testing.TB // nil for StartShared
	bin    string
	args   []string // added to the command line (cluster mode, sentinel mode)
	dir    string
	ownDir bool // dir is removed by Close
	port   int

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	log  *os.File
}

// Start starts a redis-server for tb and stops it in tb.Cleanup. It fails tb
// (never skips) when redis-server cannot be found, installed or started.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s, err := launch(tb.TempDir())
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	s.tb = tb
	tb.Cleanup(s.stop)
	return s
}

// StartShared starts a server not tied to one test, for a package's TestMain
// to share across tests or benchmarks; the caller must call Close (the
// server also dies with the test binary on Linux). Its Restart panics on
// failure, having no test to fail.
func StartShared() (*Server, error) {
	dir, err := os.MkdirTemp("", "redistest-")
	if err != nil {
		return nil, fmt.Errorf("redistest: make temp dir: %w", err)
	}
	s, err := launch(dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("redistest: %w", err)
	}
	s.ownDir = true
	return s, nil
}

// Close stops a server from StartShared and removes its directory.
func (s *Server) Close() {
	s.stop()
	if s.ownDir {
		os.RemoveAll(s.dir)
	}
}

func launch(dir string, args ...string) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin, dir: dir, args: args}
	// The free port is found by binding :0 and closing it, so another process
	// may take it before redis binds; try a few ports before failing.
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s.port = port
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		s.URL = "redis://" + s.Addr
		if lastErr = s.start(); lastErr == nil {
			return s, nil
		}
	}
	return nil, lastErr
}

// Stop stops the server (its data is lost). Stopping a stopped server is a no-op.
func (s *Server) Stop() { s.stop() }

// Restart starts the server again on the same address, empty. A running
// server is stopped first.
func (s *Server) Restart() {
	s.stop()
	if err := s.start(); err != nil {
		if s.tb == nil {
			panic(fmt.Sprintf("redistest: restart: %v", err))
		}
		s.tb.Helper()
		s.tb.Fatalf("redistest: restart: %v", err)
	}
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	logPath := filepath.Join(s.dir, "redis-"+strconv.Itoa(s.port)+".log")
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("open server log: %w", err)
	}
	var first []string // a config file must come first
	rest := s.args
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "--") {
		first, rest = rest[:1], rest[1:]
	}
	cmd := exec.Command(s.bin, append(append(first,
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--daemonize", "no",
		"--loglevel", "warning"),
		rest...)...,
	)
	cmd.Dir = s.dir
	cmd.Stdout = log
	cmd.Stderr = log
	setParentDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.cmd, s.done, s.log = cmd, done, log

	deadline := time.Now().Add(startTimeout)
	for {
		if err := ping(s.Addr); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			s.stopLocked()
			return fmt.Errorf("redis-server on %s did not answer PING within %s: %w; log:\n%s", s.Addr, startTimeout, err, tail(logPath))
		}
		select {
		case <-done:
			s.stopLocked()
			return fmt.Errorf("redis-server on %s exited at start; log:\n%s", s.Addr, tail(logPath))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (s *Server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

func (s *Server) stopLocked() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.log.Close()
	s.cmd, s.done, s.log = nil, nil, nil
}

// ping sends an inline PING and expects +PONG.
func ping(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
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
	b, _ := os.ReadFile(path)
	return ensure.Tail(b)
}

var (
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
)

// Binary returns the path of redis-server, installing it with
// scripts/ensure-redis.sh (once per process) when it is missing.
func Binary() (string, error) {
	binaryOnce.Do(func() { binaryPath, binaryErr = findOrInstall() })
	return binaryPath, binaryErr
}

func findOrInstall() (string, error) {
	return ensure.Installed("redistest", "redis-server", "ensure-redis.sh", lookRedis)
}

func lookRedis() (string, error) {
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p, nil
	}
	const debian = "/usr/bin/redis-server"
	if _, err := os.Stat(debian); err == nil {
		return debian, nil
	}
	return "", errors.New("redis-server is not on PATH nor at /usr/bin/redis-server")
}

// ensureScript finds ../../scripts/ensure-redis.sh from this source file.
func ensureScript() (string, error) { return ensure.Script("ensure-redis.sh") }
