package pgtest

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestStartServesANewDatabaseOnLoopback(t *testing.T) {
	s := Start(t)
	if s.Host != "127.0.0.1" || s.Port == 0 {
		t.Fatalf("server on %s, want 127.0.0.1:port", s.Addr())
	}
	u := s.NewDatabase(t)
	if !strings.HasPrefix(u, "postgres://postgres@"+s.Addr()+"/t_") || !strings.HasSuffix(u, "?sslmode=disable") {
		t.Fatalf("NewDatabase URL %q", u)
	}
	conn := connect(t, u)
	var one int
	if err := conn.QueryRow(context.Background(), "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("SELECT 1 = %d, %v", one, err)
	}
	var db string
	if err := conn.QueryRow(context.Background(), "SELECT current_database()").Scan(&db); err != nil || !strings.HasSuffix(u, "/"+db+"?sslmode=disable") {
		t.Fatalf("current_database() = %q, %v; URL %s", db, err, u)
	}
	if other := s.NewDatabase(t); other == u {
		t.Fatalf("two databases with one URL %s", u)
	}
}

func TestStopAndRestartKeepPortAndData(t *testing.T) {
	s := Start(t)
	ctx := context.Background()
	u := s.NewDatabase(t)
	conn := connect(t, u)
	if _, err := conn.Exec(ctx, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')"); err != nil {
		t.Fatal(err)
	}
	port := s.Port
	s.Stop()
	if err := s.ping(); err == nil {
		t.Fatal("server answers after Stop")
	}
	s.Stop() // idempotent
	s.Restart()
	if s.Port != port {
		t.Fatalf("port changed from %d to %d", port, s.Port)
	}
	var v string
	if err := connect(t, u).QueryRow(ctx, "SELECT v FROM kept").Scan(&v); err != nil || v != "still here" {
		t.Fatalf("after Restart: %q, %v", v, err)
	}
}

func TestSharedIsStartedOnce(t *testing.T) {
	a, b := Shared(t), Shared(t)
	if a != b {
		t.Fatal("Shared returned two servers")
	}
	var one int
	if err := connect(t, a.NewDatabase(t)).QueryRow(context.Background(), "SELECT 1").Scan(&one); err != nil {
		t.Fatal(err)
	}
}

func TestStartSharedAndClose(t *testing.T) {
	s, err := StartShared()
	if err != nil {
		t.Fatal(err)
	}
	dir := s.dir
	s.Close()
	s.Close() // idempotent
	if err := s.ping(); err == nil {
		t.Fatal("server answers after Close")
	}
	if _, err := Binaries(); err != nil {
		t.Fatal(err)
	}
	if _, err := lookBinaries(); err != nil {
		t.Fatal(err)
	}
	if fileExists(dir) {
		t.Fatalf("%s left after Close", dir)
	}
}

func TestEnsureScriptIsFound(t *testing.T) {
	p, err := ensureScript()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(p, "scripts/ensure-postgres.sh") {
		t.Fatalf("script path %q", p)
	}
}

func TestDatabaseNames(t *testing.T) {
	for hint, want := range map[string]string{
		"TestX/sub test #1":      "t_testx_sub_test_1_7",
		"":                       "t_7",
		strings.Repeat("a", 100): "t_" + strings.Repeat("a", 59) + "_7",
	} {
		if got := dbName(hint, 7); got != want || len(got) > 63 {
			t.Errorf("dbName(%q) = %q, want %q", hint, got, want)
		}
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func TestMain(m *testing.M) {
	code := m.Run()
	CloseShared()
	os.Exit(code)
}
