package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// checkCompose loads docker-compose.yml as `docker compose config` would
// (compose-go, schema validation on, interpolation with a stand-in secret
// key) and checks the shape the deployment needs.
func checkCompose(root string, known map[string]bool) []error {
	_, errs := loadCompose(root, known)
	return errs
}

// printCompose writes the resolved model, as `docker compose config` would.
func printCompose(root string) error {
	p, errs := loadCompose(root, nil)
	if p == nil {
		return errors.Join(errs...)
	}
	b, err := p.MarshalYAML()
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(b)
	return err
}

func loadCompose(root string, known map[string]bool) (*types.Project, []error) {
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	file := filepath.Join(root, "docker-compose.yml")
	opts, err := cli.NewProjectOptions([]string{file},
		cli.WithWorkingDirectory(root),
		cli.WithEnv(append([]string{
			"POSTBACK_SECRET_KEY=k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
			"POSTBACK_JOB_KEY=j1:HxwdHh8AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBk=",
			"POSTBACK_TOKENS=deploycheck-operator-token=*",
		}, natsPasswordEnv()...)),
		cli.WithInterpolation(true),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		return nil, []error{err}
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		return nil, []error{fmt.Errorf("docker-compose.yml: %v", err)}
	}
	if known == nil {
		return p, nil
	}
	postbackServices, err := services(root)
	if err != nil {
		return p, []error{err}
	}
	want := append([]string{"nats-1", "nats-2", "nats-3", "redis", "postgres", "otel-collector", "jaeger"}, postbackServices...)
	for _, name := range want {
		if _, ok := p.Services[name]; !ok {
			fail("service %q is missing", name)
		}
	}
	if len(errs) > 0 {
		return p, errs
	}
	// NATS: >= 2.12 (message schedules), JetStream, a 3-node cluster.
	natsVersion := regexp.MustCompile(`^docker\.io/library/nats:(\d+)\.(\d+)`)
	for _, name := range []string{"nats-1", "nats-2", "nats-3"} {
		s := p.Services[name]
		m := natsVersion.FindStringSubmatch(s.Image)
		if m == nil {
			fail("%s: image %q is not docker.io/library/nats:<major>.<minor>…", name, s.Image)
		} else if maj, _ := strconv.Atoi(m[1]); maj < 2 || (maj == 2 && atoi(m[2]) < 12) {
			fail("%s: image %q: nats-server >= 2.12 is required (JetStream message schedules)", name, s.Image)
		}
		// The node's settings (JetStream, the cluster, the users) are in
		// deploy/nats/compose.conf, which includes auth.conf.
		cmd := strings.Join(s.Command, " ")
		for _, flag := range []string{"-c /etc/nats/compose.conf", "--name " + name} {
			if !strings.Contains(cmd+" ", flag) {
				fail("%s: command lacks %q", name, strings.TrimSpace(flag))
			}
		}
		mounted := false
		for _, v := range s.Volumes {
			mounted = mounted || (filepath.Clean(v.Source) == filepath.Join(root, "deploy", "nats") && v.Target == "/etc/nats")
		}
		if !mounted {
			fail("%s: deploy/nats is not mounted at /etc/nats (its configuration and auth.conf)", name)
		}
		for _, u := range natsUsers {
			if v := s.Environment[natsPasswordVar(u)]; v == nil || *v == "" {
				fail("%s: %s is not set (auth.conf reads it)", name, natsPasswordVar(u))
			}
		}
		if s.HealthCheck == nil || s.HealthCheck.Disable {
			fail("%s: needs a health check (the services wait for service_healthy)", name)
		}
	}
	if s := p.Services["redis"]; s.HealthCheck == nil || s.HealthCheck.Disable {
		fail("redis: needs a health check")
	}
	for _, name := range postbackServices {
		s := p.Services[name]
		if s.Build == nil {
			fail("%s: no build section", name)
		} else {
			df := s.Build.Dockerfile
			if !filepath.IsAbs(df) {
				df = filepath.Join(s.Build.Context, df)
			}
			if _, err := os.Stat(df); err != nil {
				fail("%s: dockerfile: %v", name, err)
			}
			if filepath.Clean(df) != filepath.Join(root, "deploy", "Dockerfile") {
				fail("%s: dockerfile %s, want deploy/Dockerfile (one for every service)", name, s.Build.Dockerfile)
			}
			if arg := s.Build.Args["SERVICE"]; arg == nil || *arg != name {
				got := "(none)"
				if arg != nil {
					got = *arg
				}
				fail("%s: build args SERVICE=%s, want %s", name, got, name)
			}
			if filepath.Clean(s.Build.Context) != filepath.Clean(root) {
				fail("%s: build context %s, want the repository root (go.work)", name, s.Build.Context)
			}
		}
		var names []string
		for k := range s.Environment {
			names = append(names, k)
		}
		if err := unknownEnv(names, known); err != nil {
			fail("%s: %v", name, err)
		}
		env := func(k string) string {
			if v := s.Environment[k]; v != nil {
				return *v
			}
			return ""
		}
		if urls := strings.Split(env("POSTBACK_NATS_URL"), ","); len(urls) != 3 {
			fail("%s: POSTBACK_NATS_URL should list the three NATS nodes, got %d URLs", name, len(urls))
		} else {
			for _, u := range urls {
				if err := natsUserIs(u, name); err != nil {
					fail("%s: POSTBACK_NATS_URL: %v", name, err)
				}
			}
		}
		if jobKey := env("POSTBACK_JOB_KEY") != ""; jobKey != (name == "renderer" || name == "sender") {
			fail("%s: POSTBACK_JOB_KEY set = %v; only the renderer and the sender hold the job key", name, jobKey)
		}
		if env("POSTBACK_STREAM_REPLICAS") != "3" {
			fail("%s: POSTBACK_STREAM_REPLICAS=%q, want 3", name, env("POSTBACK_STREAM_REPLICAS"))
		}
		if env("POSTBACK_SECRET_KEY") == "" {
			fail("%s: POSTBACK_SECRET_KEY is not set", name)
		}
		if env("OTEL_EXPORTER_OTLP_ENDPOINT") == "" {
			fail("%s: OTEL_EXPORTER_OTLP_ENDPOINT is not set", name)
		}
		if !strings.HasPrefix(env("POSTBACK_HTTP_ADDR"), "0.0.0.0:") {
			fail("%s: POSTBACK_HTTP_ADDR must listen on 0.0.0.0 in a container", name)
		}
		if s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) < 2 || s.HealthCheck.Test[0] != "CMD" {
			fail("%s: needs an exec-form (CMD, no shell) health check", name)
		}
		for _, dep := range []string{"nats-1", "nats-2", "nats-3"} {
			if c, ok := s.DependsOn[dep]; !ok || c.Condition != types.ServiceConditionHealthy {
				fail("%s: depends_on %s must wait for service_healthy", name, dep)
			}
		}
	}
	if p.Services["gateway"].Environment["POSTBACK_TOKENS"] == nil {
		fail("gateway: POSTBACK_TOKENS is not set (the gateway refuses to start without API tokens)")
	}
	if s := p.Services["sender"]; s.Deploy == nil || s.Deploy.Replicas == nil || *s.Deploy.Replicas != 2 {
		fail("sender: deploy.replicas must be 2")
	} else if len(s.Ports) > 0 {
		fail("sender: published ports collide between replicas")
	} else if s.Environment["POSTBACK_REDIS_URL"] == nil {
		fail("sender: POSTBACK_REDIS_URL is not set (the replicas must share limits)")
	}
	errs = append(errs, checkComposeHistory(p)...)
	col := p.Services["otel-collector"]
	mounted := false
	for _, v := range col.Volumes {
		if strings.HasSuffix(v.Source, filepath.Join("deploy", "otel-collector.yaml")) {
			mounted = true
		}
	}
	if !mounted {
		fail("otel-collector: deploy/otel-collector.yaml is not mounted")
	}
	for name, s := range p.Services {
		if s.Build == nil && !qualified(s.Image) {
			fail("%s: image %q does not name its registry (e.g. docker.io/library/…)", name, s.Image)
		}
		for _, port := range s.Ports {
			if port.Published != "" && port.HostIP != "127.0.0.1" {
				fail("%s: port %s is published on every interface; bind it to 127.0.0.1", name, port.Published)
			}
		}
		if s.HealthCheck != nil && !s.HealthCheck.Disable && len(s.HealthCheck.Test) > 0 && s.HealthCheck.Test[0] == "CMD-SHELL" &&
			slices.Contains(postbackServices, name) {
			fail("%s: CMD-SHELL health check, but the image has no shell", name)
		}
	}
	return p, errs
}

// checkComposeHistory: PostgreSQL is the history store; the gateway (reads)
// and the historian (writes) get the same postgres:// URL and wait for it.
func checkComposeHistory(p *types.Project) []error {
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	pg := p.Services["postgres"]
	if !strings.HasPrefix(pg.Image, "docker.io/library/postgres:") {
		fail("postgres: image %q is not postgres:<version>", pg.Image)
	}
	if pg.HealthCheck == nil || pg.HealthCheck.Disable || !strings.Contains(strings.Join(pg.HealthCheck.Test, " "), "pg_isready") {
		fail("postgres: needs a pg_isready health check (the gateway and the historian wait for service_healthy)")
	}
	if pg.Environment["POSTGRES_PASSWORD"] == nil || *pg.Environment["POSTGRES_PASSWORD"] == "" {
		fail("postgres: POSTGRES_PASSWORD is not set (the image refuses to initialize without it)")
	}
	persisted := false
	for _, v := range pg.Volumes {
		if v.Type == types.VolumeTypeVolume && strings.HasPrefix(v.Target, "/var/lib/postgresql") {
			persisted = true
		}
	}
	if !persisted {
		fail("postgres: no named volume on /var/lib/postgresql/data (the history would go with the container)")
	}
	urls := map[string]string{}
	for _, name := range historyServices {
		s := p.Services[name]
		u := ""
		if v := s.Environment["POSTBACK_HISTORY_URL"]; v != nil {
			u = *v
		}
		if !strings.HasPrefix(u, "postgres://") && !strings.HasPrefix(u, "postgresql://") {
			fail("%s: POSTBACK_HISTORY_URL must be the postgres:// URL of the postgres service (empty would be a SQLite file per container)", name)
		} else if !strings.Contains(u, "@postgres:") && !strings.Contains(u, "@postgres/") {
			fail("%s: POSTBACK_HISTORY_URL does not point at the postgres service", name)
		}
		urls[name] = u
		if c, ok := s.DependsOn["postgres"]; !ok || c.Condition != types.ServiceConditionHealthy {
			fail("%s: depends_on postgres must wait for service_healthy (migrations run at start)", name)
		}
	}
	if urls["gateway"] != urls["historian"] {
		fail("gateway and historian: POSTBACK_HISTORY_URL differs (the gateway reads the history the historian writes)")
	}
	return errs
}

// historyServices open the delivery history store.
var historyServices = []string{"gateway", "historian"}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }
