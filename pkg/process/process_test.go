package process

import (
	"bytes"
	"strings"
	"testing"
)

// A bad or missing setting is one line on stderr, "name: what is wrong",
// and exit code 2; -h lists the flags and exits 0.
func TestBadConfigurationIsOneLineAndExitCode2(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		args []string
		code int
		says []string // on stderr
	}{
		{name: "postback-retry", env: map[string]string{"POSTBACK_NATS_URL": "nats://127.0.0.1:4222", "POSTBACK_STREAM_REPLICAS": "three"},
			code: 2, says: []string{`postback-retry: POSTBACK_STREAM_REPLICAS: "three" is not a whole number; want a whole number from 1 to 5`}},
		{name: "postback-retry", env: map[string]string{"POSTBACK_NATS_URL": "nats://127.0.0.1:4222"}, args: []string{"--pprof=yes"},
			code: 2, says: []string{`postback-retry: --pprof (POSTBACK_PPROF): "yes" is not a boolean`}},
		{name: "postback-renderer", code: 2, says: []string{"postback-renderer: POSTBACK_NATS_URL is required"}},
		{name: "postback-sender", env: map[string]string{"POSTBACK_NATS_URL": "nats://127.0.0.1:4222"},
			code: 2, says: []string{"postback-sender: POSTBACK_SECRET_KEY is required"}},
		{name: "postback-standalone", env: map[string]string{"POSTBACK_GRPC_ADDR": "nonsense"},
			code: 2, says: []string{`postback-standalone: POSTBACK_GRPC_ADDR: "nonsense" is not host:port`}},
		{name: "postback-standalone", args: []string{"-h"}, code: 0, says: []string{"-grpc-addr", "POSTBACK_GRPC_ADDR"}},
		{name: "postback-retry", env: map[string]string{"POSTBACK_NATS_URL": "nats://127.0.0.1:4222"}, code: -1},
	}
	for _, c := range cases {
		t.Run(c.name+" "+strings.Join(c.args, " "), func(t *testing.T) {
			var stderr bytes.Buffer
			_, code := loadConfig(c.name, c.args, func(k string) string { return c.env[k] }, &stderr)
			if code != c.code {
				t.Fatalf("code = %d, want %d; stderr: %s", code, c.code, stderr.String())
			}
			for _, s := range c.says {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr lacks %q: %s", s, stderr.String())
				}
			}
			if c.code == 2 && strings.Count(stderr.String(), "\n") != 1 {
				t.Errorf("stderr is not one line: %q", stderr.String())
			}
			if c.code == -1 && stderr.Len() != 0 {
				t.Errorf("stderr: %q", stderr.String())
			}
		})
	}
}
