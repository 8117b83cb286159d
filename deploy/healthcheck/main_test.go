package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestResolve(t *testing.T) {
	for _, c := range []struct{ target, addr, want string }{
		{"/readyz", "", "http://127.0.0.1:7071/readyz"},
		{"/readyz", "0.0.0.0:9000", "http://127.0.0.1:9000/readyz"},
		{"/healthz", ":7071", "http://127.0.0.1:7071/healthz"},
		{"/healthz", "[::]:7071", "http://127.0.0.1:7071/healthz"},
		{"/healthz", "10.0.0.5:7071", "http://10.0.0.5:7071/healthz"},
		{"http://x:1/y", "ignored", "http://x:1/y"},
	} {
		got, err := resolve(c.target, c.addr)
		if err != nil || got != c.want {
			t.Errorf("resolve(%q, %q) = %q, %v; want %q", c.target, c.addr, got, err, c.want)
		}
	}
	if _, err := resolve("readyz", ""); err == nil {
		t.Error("a relative path must be refused")
	}
}

func TestCheck(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	if err := check(srv.URL+"/healthz", time.Second); err != nil {
		t.Errorf("healthz: %v", err)
	}
	if err := check(srv.URL+"/readyz", time.Second); err == nil {
		t.Error("a 503 must fail")
	}
}
