package auth

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// TLSFiles name the PEM files of the gRPC listener's transport security.
type TLSFiles struct {
	Cert, Key string // server certificate chain and private key (both or neither)
	// ClientCA, when set, turns on mutual TLS: every client must present a
	// certificate that chains to one of these CAs.
	ClientCA string
}

// ServerTLS builds the listener's TLS configuration from files; nil (and no
// error) when no file is named. The certificate and key are read again when
// either file changes (a renewed Kubernetes secret or cert-manager
// certificate) at the next handshake; a renewal that does not load keeps the
// previous pair. The client CA bundle is read once, at start. TLS 1.2 is the
// minimum version.
func ServerTLS(f TLSFiles) (*tls.Config, error) {
	switch {
	case f.Cert == "" && f.Key == "" && f.ClientCA == "":
		return nil, nil
	case f.Cert == "" || f.Key == "":
		return nil, errors.New("POSTBACK_TLS_CERT and POSTBACK_TLS_KEY must be set together (POSTBACK_TLS_CLIENT_CA needs both)")
	}
	kp := &keyPair{certFile: f.Cert, keyFile: f.Key}
	if err := kp.load(); err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: kp.get,
	}
	if f.ClientCA != "" {
		pem, err := os.ReadFile(f.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("POSTBACK_TLS_CLIENT_CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("POSTBACK_TLS_CLIENT_CA: %s holds no PEM certificate", f.ClientCA)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// keyPair is a certificate that reloads when its files change.
type keyPair struct {
	certFile, keyFile string
	mu                sync.Mutex
	cert              *tls.Certificate
	stamp             [2]time.Time
}

func modTimes(a, b string) ([2]time.Time, error) {
	var out [2]time.Time
	for i, f := range []string{a, b} {
		fi, err := os.Stat(f)
		if err != nil {
			return out, err
		}
		out[i] = fi.ModTime()
	}
	return out, nil
}

func (k *keyPair) load() error {
	stamp, err := modTimes(k.certFile, k.keyFile)
	if err != nil {
		return fmt.Errorf("TLS certificate: %w", err)
	}
	c, err := tls.LoadX509KeyPair(k.certFile, k.keyFile)
	if err != nil {
		// The error of LoadX509KeyPair names files and PEM faults, never key bytes.
		return fmt.Errorf("TLS certificate: %w", err)
	}
	k.mu.Lock()
	k.cert, k.stamp = &c, stamp
	k.mu.Unlock()
	return nil
}

func (k *keyPair) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	stamp, err := modTimes(k.certFile, k.keyFile)
	k.mu.Lock()
	changed := err == nil && stamp != k.stamp
	k.mu.Unlock()
	if changed {
		_ = k.load() // a half-written renewal keeps the previous pair until it loads
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.cert, nil
}
