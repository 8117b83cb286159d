package broker

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

func lockedServer(t *testing.T) (*Server, Credentials) {
	t.Helper()
	dir := t.TempDir()
	creds, err := LoadOrCreateCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := Start(Options{Port: -1, DataDir: dir, Credentials: creds})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return srv, creds
}

func TestLockedServerRefusesAClientWithoutCredentials(t *testing.T) {
	srv, creds := lockedServer(t)
	for _, tc := range []struct {
		name string
		opts []nats.Option
	}{
		{"no credentials", nil},
		{"a wrong password", []nats.Option{nats.UserInfo(AdminUser, "guess")}},
		{"a user that does not exist", []nats.Option{nats.UserInfo("intruder", creds[AdminUser])}},
		{"a service's name with the admin's password", []nats.Option{nats.UserInfo(SenderUser, creds[AdminUser])}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := nats.Connect(srv.ClientURL(), append(tc.opts, nats.MaxReconnects(0))...)
			if err == nil {
				nc.Close()
				t.Fatal("connected; want an authorization error")
			}
			if !errors.Is(err, nats.ErrAuthorization) && !strings.Contains(strings.ToLower(err.Error()), "authorization") {
				t.Fatalf("err = %v, want an authorization violation", err)
			}
		})
	}
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatalf("the admin URL does not connect: %v", err)
	}
	nc.Close()
}

// publishRefused publishes on subject as user and reports whether the
// server refused it with a permissions violation.
func publishRefused(t *testing.T, srv *Server, user, subject string) bool {
	t.Helper()
	errs := make(chan error, 4)
	nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo(user, srv.creds[user]),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.Publish(subject, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errs:
		if !errors.Is(err, nats.ErrPermissionViolation) {
			t.Fatalf("%s publishing %s: %v, want a permissions violation or nothing", user, subject, err)
		}
		return true
	case <-time.After(300 * time.Millisecond): // the violation comes back right after the flush
		return false
	}
}

func TestEachServiceMayPublishOnlyWhatItWrites(t *testing.T) {
	srv, _ := lockedServer(t)
	for _, tc := range []struct {
		user, subject string
		allowed       bool
	}{
		{GatewayUser, "events.conversion.3", true},
		{GatewayUser, "$KV.postback-endpoints.ep.a.conversion.e1", true},
		{RendererUser, "deliveries.3.acct.ep.dlv", true},
		{RendererUser, "events.conversion.3", false},
		{RendererUser, "$KV.postback-endpoints.ep.a.conversion.e1", false},
		{SenderUser, "failed.3.ep", true},
		{SenderUser, "deliveries.3.acct.ep.dlv", false},
		{SenderUser, "$KV.postback-endpoints.ep.a.conversion.e1", false},
		{RetryUser, "schedules.dlv", true},
		{RetryUser, "deliveries.3.acct.ep.dlv", false},
		{HistorianUser, "deliveries.3.acct.ep.dlv", false},
		{HistorianUser, "schedules.dlv", false},
		{HistorianUser, "$KV.postback-deliveries.a.e.d", false},
		{HistorianUser, "events.action_lifecycle.3", false},
		{HistorianUser, "events.operational_event.3", true},
		{HistorianUser, "operations.acct.endpoint.disabled", true},
		{SenderUser, "$JS.API.STREAM.DELETE.EVENTS", false},
		{GatewayUser, "$JS.API.STREAM.PURGE.EVENTS", false},
		{RetryUser, "$JS.API.STREAM.MSG.DELETE.SCHEDULES", false},
		{RetryUser, "$JS.API.STREAM.PURGE.SCHEDULES", true},
		{AdminUser, "$JS.API.INFO", true},
	} {
		verb := "is refused"
		if tc.allowed {
			verb = "is allowed"
		}
		t.Run(tc.user+" publishing "+tc.subject+" "+verb, func(t *testing.T) {
			if refused := publishRefused(t, srv, tc.user, tc.subject); refused == tc.allowed {
				t.Fatalf("refused = %v, want %v", refused, !tc.allowed)
			}
		})
	}
}

func TestCredentialsAreGeneratedOnceInA0600File(t *testing.T) {
	dir := t.TempDir()
	first, err := LoadOrCreateCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range Users {
		if len(first[u]) < 30 {
			t.Fatalf("password of %s has %d characters, want a long random one", u, len(first[u]))
		}
	}
	if first[SenderUser] == first[RendererUser] {
		t.Fatal("two users share a password")
	}
	path := filepath.Join(dir, CredentialsFile)
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("mode %04o, want 0600", info.Mode().Perm())
	}
	again, err := LoadOrCreateCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range Users {
		if again[u] != first[u] {
			t.Fatalf("password of %s changed on the second start", u)
		}
	}
	if s := first.String() + first.GoString(); strings.Contains(s, first[AdminUser]) {
		t.Fatal("String prints a password")
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateCredentials(dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a world-readable file: err = %v, want a refusal naming chmod 600", err)
	}
}
