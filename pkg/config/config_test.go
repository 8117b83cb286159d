package config

import (
	"io"
	"strings"
	"testing"
)

func TestPProfIsOffByDefaultAndOnFromTheEnvironmentOrTheFlag(t *testing.T) {
	cases := []struct {
		name    string
		env     map[string]string
		args    []string
		want    bool
		wantErr string // "" = loads
	}{
		{name: "default"},
		{name: "env true", env: map[string]string{"POSTBACK_PPROF": "true"}, want: true},
		{name: "env 1", env: map[string]string{"POSTBACK_PPROF": "1"}, want: true},
		{name: "env false", env: map[string]string{"POSTBACK_PPROF": "false"}},
		{name: "bare flag", args: []string{"--pprof"}, want: true},
		{name: "flag wins over env", env: map[string]string{"POSTBACK_PPROF": "true"}, args: []string{"--pprof=false"}},
		{name: "not a boolean", env: map[string]string{"POSTBACK_PPROF": "yes please"}, wantErr: "POSTBACK_PPROF"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Load("postback-test", c.args, func(k string) string { return c.env[k] }, io.Discard)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.PProf != c.want {
				t.Fatalf("PProf = %v, want %v", cfg.PProf, c.want)
			}
		})
	}
}
