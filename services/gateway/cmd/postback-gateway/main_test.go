package main

import (
	"bytes"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/postback-dev/postback/pkg/auth"
	"github.com/postback-dev/postback/pkg/config"
)

func TestGatewayWithoutTokensRefusesToStartUnlessExplicitlyInsecure(t *testing.T) {
	const token = "tok-0123456789abcdef"
	cases := []struct {
		name     string
		env      map[string]string
		args     []string
		wantErr  string // "" = starts
		wantOpen bool
		wantWarn string
	}{
		{name: "no tokens", wantErr: "POSTBACK_INSECURE_NO_AUTH"},
		{name: "no tokens, insecure env", env: map[string]string{"POSTBACK_INSECURE_NO_AUTH": "true"}, wantOpen: true, wantWarn: "without authentication"},
		{name: "no tokens, insecure flag", args: []string{"--insecure-no-auth"}, wantOpen: true, wantWarn: "without authentication"},
		{name: "tokens", env: map[string]string{"POSTBACK_TOKENS": token + "=acct-1"}},
		{name: "tokens and insecure", env: map[string]string{"POSTBACK_TOKENS": token + "=*", "POSTBACK_INSECURE_NO_AUTH": "1"}, wantWarn: "ignored"},
		{name: "bad tokens", env: map[string]string{"POSTBACK_TOKENS": "short=acct-1", "POSTBACK_INSECURE_NO_AUTH": "true"}, wantErr: "POSTBACK_TOKENS"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Bad tokens are refused by config.Load already, before the
			// process starts; missing ones by authenticator.
			cfg, err := config.Load("postback-gateway", c.args, func(k string) string { return c.env[k] }, io.Discard)
			var logs bytes.Buffer
			var a *auth.Authenticator
			if err == nil {
				a, err = authenticator(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
			}
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.Open() != c.wantOpen {
				t.Fatalf("Open = %v, want %v", a.Open(), c.wantOpen)
			}
			if c.wantWarn != "" && !strings.Contains(logs.String(), c.wantWarn) {
				t.Fatalf("logs %q lack %q", logs.String(), c.wantWarn)
			}
			if strings.Contains(logs.String(), token) {
				t.Fatal("a token was logged")
			}
		})
	}
}

func TestInsecureNoAuthMustBeABoolean(t *testing.T) {
	_, err := config.Load("postback-gateway", nil, func(k string) string {
		if k == "POSTBACK_INSECURE_NO_AUTH" {
			return "perhaps"
		}
		return ""
	}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "POSTBACK_INSECURE_NO_AUTH") {
		t.Fatalf("err = %v", err)
	}
}
