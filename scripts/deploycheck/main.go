// Command deploycheck is `make deploy-check`: it validates everything under
// deploy/, charts/ and docker-compose.yml without a network, a cluster or a
// Docker engine.
//
//   - helm: `helm lint --strict` and `helm template` (helm's own Go packages,
//     the same code as the CLI) of charts/postback with values-production.yaml
//     and every ci/*.yaml; the default values (no history store configured)
//     and a few --set combinations must be refused by `helm template`;
//   - kubernetes: every rendered document decoded strictly into its typed
//     k8s.io/api object (client-go's scheme; unknown fields, duplicate fields
//     and wrong types fail), plus cross-references and the chart's policy
//     (probes, non-root, read-only root, no capabilities, selectors that match,
//     Secret keys that exist, one history store for the gateway and the
//     historian, its URL only from a Secret; each service its own NATS user
//     with a password from a Secret, the NATS CA mounted with nats.tls, the
//     job key for the renderer and the sender only: chartnats.go); the
//     ServiceMonitor and the PrometheusRule against typed subsets;
//   - nats: deploy/nats includes the users; charts/nats-values.yaml (the
//     official nats chart's values) has auth.conf's users and permissions,
//     each password variable from the users' Secret (nats.go);
//   - compose: docker-compose.yml loaded by compose-go with the compose-spec
//     schema, plus the shape the issue asks for;
//   - images: deploy/Dockerfile (one for every service, ARG SERVICE) is
//     multi-stage, static, nonroot, version-stamped, names its base images in
//     full and copies every go.work module; its build stage, run here for
//     every SERVICE and the health check, yields static Linux executables;
//     the collector config's pipelines name defined components;
//   - services: every services/<name>/cmd/postback-<name> is in standalone's
//     target table, the Makefile, the chart, run-cluster.sh and compose, and
//     none of them names another;
//   - alerts and dashboard: deploy/prometheus/postback-alerts.yaml passes
//     `promtool check rules` and its `promtool test rules` tests, the chart's
//     copy is the same file, deploy/grafana/postback.json is a dashboard whose
//     PromQL parses; both name only the metrics docs/operations.md lists
//     (prometheus.go);
//   - docs: every value of values.yaml is in the chart README.
//
// It exits non-zero when any check fails and prints every failure.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// report collects failures per check.
type report struct {
	failures int
	verbose  bool
}

func (r *report) run(name string, f func() []error) {
	start := time.Now()
	errs := f()
	if len(errs) == 0 {
		fmt.Printf("ok    %-58s %s\n", name, time.Since(start).Round(time.Millisecond))
		return
	}
	r.failures += len(errs)
	fmt.Printf("FAIL  %s\n", name)
	for _, err := range errs {
		for _, line := range strings.Split(strings.TrimRight(err.Error(), "\n"), "\n") {
			fmt.Printf("        %s\n", line)
		}
	}
}

func main() {
	root := flag.String("root", ".", "repository root")
	verbose := flag.Bool("v", false, "print lint notes and the rendered documents' kinds")
	out := flag.String("o", "", "also write each value set's rendered manifests (and NOTES) to this directory")
	printComposeModel := flag.Bool("compose-config", false, "print docker-compose.yml as compose-go resolves it (like `docker compose config`) and exit")
	flag.Parse()
	abs, err := filepath.Abs(*root)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if *printComposeModel {
		if err := printCompose(abs); err != nil {
			fmt.Fprintln(os.Stderr, "deploycheck:", err)
			os.Exit(1)
		}
		return
	}
	repoRoot = abs
	r := &report{verbose: *verbose}
	known, err := knownEnv(abs)
	if err != nil {
		fmt.Fprintln(os.Stderr, "deploycheck:", err)
		os.Exit(2)
	}
	chart := filepath.Join(abs, "charts", "postback")
	sets, err := valueSets(chart)
	if err != nil {
		fmt.Fprintln(os.Stderr, "deploycheck:", err)
		os.Exit(2)
	}
	for _, set := range sets {
		if len(set.set) == 0 {
			r.run("helm lint --strict "+set.name, func() []error { return helmLint(chart, set, r.verbose) })
		}
		if set.refused != "" {
			r.run("helm template "+set.name+" is refused", func() []error { return helmRefuses(chart, set) })
			continue
		}
		var docs []document
		r.run("helm template "+set.name, func() []error {
			var errs []error
			var notes string
			docs, notes, errs = helmTemplate(chart, set)
			if *out != "" && docs != nil {
				errs = append(errs, writeRendered(*out, set, docs, notes)...)
			}
			return errs
		})
		if docs != nil {
			r.run("kubernetes schemas and policy "+set.name, func() []error {
				vals, err := effectiveValues(chart, set)
				if err != nil {
					return []error{err}
				}
				return checkManifests(docs, vals, known, r.verbose)
			})
		}
	}
	r.run("chart README lists every value", func() []error { return checkChartReadme(chart) })
	r.run("docker-compose.yml (compose-go, compose-spec schema)", func() []error { return checkCompose(abs, known) })
	r.run("deploy/nats (the node configuration includes the users)", func() []error { return checkNATSConfs(abs) })
	r.run("charts/nats-values.yaml (auth.conf's users, passwords from a Secret)", func() []error { return checkNATSChartValues(abs) })
	r.run("deploy/Dockerfile", func() []error { return checkDockerfile(abs) })
	r.run("deploy/Dockerfile's builds, static, for every SERVICE", func() []error { return checkImageBuilds(abs) })
	r.run("every service in every deployment file", func() []error { return checkTargets(abs) })
	r.run("deploy/otel-collector.yaml", func() []error { return checkCollector(filepath.Join(abs, "deploy", "otel-collector.yaml")) })
	r.run("alert rules: promtool check rules, promtool test rules, chart copy", func() []error { return checkAlertRules(abs) })
	r.run("deploy/grafana/postback.json (PromQL parsed by promtool)", func() []error { return checkDashboard(abs) })
	if r.failures > 0 {
		fmt.Printf("deploy-check: %d problem(s)\n", r.failures)
		os.Exit(1)
	}
	fmt.Println("deploy-check: all checks passed")
}

// writeRendered writes one value set's documents to dir/<set>.yaml and its
// notes to dir/<set>.NOTES.txt.
func writeRendered(dir string, set valueSet, docs []document, notes string) []error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return []error{err}
	}
	name := "default"
	if len(set.files) > 0 {
		name = strings.TrimSuffix(filepath.Base(set.files[0]), ".yaml")
	}
	var b strings.Builder
	for _, d := range docs {
		b.WriteString("---\n")
		b.Write(d.data)
		b.WriteString("\n")
	}
	if err := os.WriteFile(filepath.Join(dir, name+".yaml"), []byte(b.String()), 0o644); err != nil {
		return []error{err}
	}
	if err := os.WriteFile(filepath.Join(dir, name+".NOTES.txt"), []byte(notes), 0o644); err != nil {
		return []error{err}
	}
	return nil
}
