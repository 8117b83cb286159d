package redistest

import (
	"strings"
	"testing"
)

func TestStartAnswersPingOnLoopback(t *testing.T) {
	s := Start(t)
	if !strings.HasPrefix(s.Addr, "127.0.0.1:") {
		t.Fatalf("Addr = %q, want 127.0.0.1:port", s.Addr)
	}
	if s.URL != "redis://"+s.Addr {
		t.Fatalf("URL = %q, want redis://%s", s.URL, s.Addr)
	}
	if err := ping(s.Addr); err != nil {
		t.Fatalf("PING: %v", err)
	}
}

func TestStopAndRestartKeepTheAddress(t *testing.T) {
	s := Start(t)
	addr := s.Addr
	s.Stop()
	if err := ping(addr); err == nil {
		t.Fatal("PING answered after Stop")
	}
	s.Stop() // idempotent
	s.Restart()
	if s.Addr != addr {
		t.Fatalf("Addr changed from %s to %s", addr, s.Addr)
	}
	if err := ping(addr); err != nil {
		t.Fatalf("PING after Restart: %v", err)
	}
}

func TestTwoServersAreIndependent(t *testing.T) {
	a, b := Start(t), Start(t)
	if a.Addr == b.Addr {
		t.Fatalf("both servers on %s", a.Addr)
	}
	a.Stop()
	if err := ping(b.Addr); err != nil {
		t.Fatalf("second server stopped with the first: %v", err)
	}
}

func TestEnsureScriptIsFound(t *testing.T) {
	p, err := ensureScript()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(p, "scripts/ensure-redis.sh") {
		t.Fatalf("script path %q", p)
	}
}

func TestStartSharedAndClose(t *testing.T) {
	s, err := StartShared()
	if err != nil {
		t.Fatal(err)
	}
	if err := ping(s.Addr); err != nil {
		t.Fatalf("PING: %v", err)
	}
	s.Close()
	if err := ping(s.Addr); err == nil {
		t.Fatal("PING answered after Close")
	}
}
