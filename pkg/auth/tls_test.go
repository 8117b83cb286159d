package auth

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/postback-dev/postback/pkg/auth/authtest"
)

func TestServerTLSIsOffWithoutFilesAndRefusesHalfAPair(t *testing.T) {
	cfg, err := ServerTLS(TLSFiles{})
	if cfg != nil || err != nil {
		t.Fatalf("no files: %v, %v", cfg, err)
	}
	ca := authtest.NewCA(t, "test")
	p := ca.Server(t, "server")
	cases := []struct {
		name  string
		files TLSFiles
		want  string
	}{
		{"cert without key", TLSFiles{Cert: p.CertFile}, "together"},
		{"client CA alone", TLSFiles{ClientCA: ca.File}, "together"},
		{"missing cert file", TLSFiles{Cert: p.CertFile + ".nope", Key: p.KeyFile}, "TLS certificate"},
		{"key of another cert", TLSFiles{Cert: p.CertFile, Key: ca.Server(t, "other").KeyFile}, "TLS certificate"},
		{"client CA without PEM", TLSFiles{Cert: p.CertFile, Key: p.KeyFile, ClientCA: p.KeyFile}, "no PEM certificate"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := ServerTLS(c.files); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
}

func TestServerTLSRequiresClientCertificatesWithAClientCA(t *testing.T) {
	ca := authtest.NewCA(t, "test")
	p := ca.Server(t, "server")
	cfg, err := ServerTLS(TLSFiles{Cert: p.CertFile, Key: p.KeyFile})
	if err != nil || cfg.ClientAuth != tls.NoClientCert || cfg.MinVersion != tls.VersionTLS12 {
		t.Fatalf("TLS: %+v, %v", cfg, err)
	}
	cfg, err = ServerTLS(TLSFiles{Cert: p.CertFile, Key: p.KeyFile, ClientCA: ca.File})
	if err != nil || cfg.ClientAuth != tls.RequireAndVerifyClientCert || cfg.ClientCAs == nil {
		t.Fatalf("mTLS: %+v, %v", cfg, err)
	}
}

func TestServerTLSPicksUpARenewedCertificate(t *testing.T) {
	ca := authtest.NewCA(t, "test")
	p := ca.Server(t, "first")
	cfg, err := ServerTLS(TLSFiles{Cert: p.CertFile, Key: p.KeyFile})
	if err != nil {
		t.Fatal(err)
	}
	cn := func() string {
		c, err := cfg.GetCertificate(&tls.ClientHelloInfo{})
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return leaf.Subject.CommonName
	}
	if got := cn(); got != "first" {
		t.Fatalf("CN = %s", got)
	}
	// A half-written renewal (a cert that does not match the key yet) keeps the old pair.
	renewed := ca.Server(t, "second")
	copyFile(t, renewed.CertFile, p.CertFile)
	touch(t, p.CertFile)
	if got := cn(); got != "first" {
		t.Fatalf("after a half renewal CN = %s, want the previous pair", got)
	}
	copyFile(t, renewed.KeyFile, p.KeyFile)
	touch(t, p.KeyFile)
	if got := cn(); got != "second" {
		t.Fatalf("after renewal CN = %s, want second", got)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// touch moves a file's modification time forward, as a later renewal would.
func touch(t *testing.T, path string) {
	t.Helper()
	later := time.Now().Add(2 * time.Second)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
}
