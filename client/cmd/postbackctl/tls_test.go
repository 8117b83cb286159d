package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

const tlsToken = "tls-token-0123456789abcdef"

// typesOverTLS answers ListEventTypes with one type named for how the
// caller came: "mtls-ok" with a verified client certificate, else "tls-ok".
// It wants the bearer token.
type typesOverTLS struct {
	postbackv1.UnimplementedEventTypeServiceServer
}

func (typesOverTLS) ListEventTypes(ctx context.Context, _ *postbackv1.ListEventTypesRequest) (*postbackv1.ListEventTypesResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if got := md.Get("authorization"); len(got) != 1 || got[0] != "Bearer "+tlsToken {
		return nil, status.Error(codes.Unauthenticated, "want the test's token")
	}
	name := "tls-ok"
	if p, ok := peer.FromContext(ctx); ok {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.VerifiedChains) > 0 {
			name = "mtls-ok"
		}
	}
	return &postbackv1.ListEventTypesResponse{EventTypes: []*postbackv1.EventType{{Name: name}}}, nil
}

// pki is a test CA with a server certificate for 127.0.0.1 and a client
// certificate, as PEM files.
type pki struct {
	caFile, clientCert, clientKey string
	pool                          *x509.CertPool
	server                        tls.Certificate
}

func newPKI(t *testing.T) pki {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "postbackctl test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(serial int64, client bool) ([]byte, []byte) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: fmt.Sprintf("leaf %d", serial)},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
		if client {
			tmpl.ExtKeyUsage, tmpl.IPAddresses = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, nil
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	}
	p := pki{caFile: filepath.Join(dir, "ca.pem"), clientCert: filepath.Join(dir, "client.pem"), clientKey: filepath.Join(dir, "client-key.pem"),
		pool: x509.NewCertPool()}
	p.pool.AddCert(caCert)
	writeFile(t, p.caFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})))
	certPEM, keyPEM := issue(2, true)
	writeFile(t, p.clientCert, string(certPEM))
	writeFile(t, p.clientKey, string(keyPEM))
	certPEM, keyPEM = issue(3, false)
	if p.server, err = tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestTLS: TLS and mutual TLS from flags, the environment and the config
// file, against a loopback gRPC server with a test CA.
func TestTLS(t *testing.T) {
	p := newPKI(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12,
		Certificates: []tls.Certificate{p.server}, ClientCAs: p.pool, ClientAuth: tls.VerifyClientCertIfGiven})))
	postbackv1.RegisterEventTypeServiceServer(srv, typesOverTLS{})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	addr := lis.Addr().String()
	// The config file names the PEM files relative to its folder.
	cfg := filepath.Join(filepath.Dir(p.caFile), "tls.yaml")
	writeFile(t, cfg, fmt.Sprintf("addr: %s\ntoken: %s\ntls_ca: %s\ntls_cert: %s\ntls_key: %s\n", addr, tlsToken,
		filepath.Base(p.caFile), filepath.Base(p.clientCert), filepath.Base(p.clientKey)))

	list := []string{"event-types", "list", "--addr", addr, "--rpc-timeout", "5s"}
	withToken := slices.Clip(slices.Concat(list, []string{"--token", tlsToken})) // each append below copies
	cases := []struct {
		name string
		run  cli
		code int
		want string
	}{
		{"--tls-ca", cli{args: append(withToken, "--tls-ca", p.caFile)}, 0, "tls-ok"},
		{"--tls-ca with a client certificate", cli{args: append(withToken, "--tls-ca", p.caFile, "--tls-cert", p.clientCert, "--tls-key", p.clientKey)}, 0, "mtls-ok"},
		{"environment", cli{args: list, env: []string{"POSTBACK_TOKEN=" + tlsToken, "POSTBACK_TLS_CA=" + p.caFile,
			"POSTBACK_CLIENT_CERT=" + p.clientCert, "POSTBACK_CLIENT_KEY=" + p.clientKey}}, 0, "mtls-ok"},
		{"config file", cli{args: []string{"event-types", "list", "--config", cfg}}, 0, "mtls-ok"},
		{"no token", cli{args: append(list, "--tls-ca", p.caFile)}, exitDenied, "unauthenticated"},
		{"--tls with the system roots", cli{args: append(withToken, "--tls")}, exitError, "unavailable"},
		{"plaintext (the loopback default)", cli{args: withToken}, exitError, "unavailable"},
		{"--insecure", cli{args: append(withToken, "--insecure")}, exitError, "unavailable"},
		{"--tls-cert without --tls-key", cli{args: append(withToken, "--tls-ca", p.caFile, "--tls-cert", p.clientCert)}, exitUsage, "--tls-key"},
		{"--insecure against the config file's TLS", cli{args: []string{"event-types", "list", "--config", cfg, "--insecure"}}, exitUsage, "--insecure"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := c.run.exec(t)
			if r.code != c.code {
				t.Fatalf("want exit %d, got %s", c.code, r)
			}
			out := r.stdout
			if c.code != 0 {
				out = r.stderr
			}
			if !strings.Contains(out, c.want) {
				t.Errorf("want %q: %s", c.want, r)
			}
			if strings.Contains(r.stdout+r.stderr, tlsToken) {
				t.Errorf("the token is printed: %s", r)
			}
		})
	}
}
