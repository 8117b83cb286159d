package main

import (
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/cli/values"
	"helm.sh/helm/v3/pkg/getter"
	"helm.sh/helm/v3/pkg/lint/support"
	"helm.sh/helm/v3/pkg/releaseutil"
	"sigs.k8s.io/yaml"
)

// valueSet is one `-f` file (or none: the chart's defaults), plus `--set`s.
type valueSet struct {
	name  string // for messages
	files []string
	set   []string // --set key=value,...
	// refused: the chart must refuse these values (helm template fails), with
	// an error containing this text; nothing is rendered to check.
	refused string
}

// historyRequired is what the chart says when no history store is configured.
const historyRequired = "history.existingSecret is required"

// valueSets: the defaults (refused: no history store), values-production.yaml,
// ci/*.yaml, and value sets the chart must refuse.
func valueSets(chart string) ([]valueSet, error) {
	sets := []valueSet{{name: "(default values)", refused: historyRequired}}
	prod := filepath.Join(chart, "values-production.yaml")
	if _, err := os.Stat(prod); err != nil {
		return nil, fmt.Errorf("charts/postback/values-production.yaml: %w", err)
	}
	sets = append(sets, valueSet{name: "-f values-production.yaml", files: []string{prod}})
	ci, _ := filepath.Glob(filepath.Join(chart, "ci", "*.yaml"))
	sort.Strings(ci)
	for _, f := range ci {
		sets = append(sets, valueSet{name: "-f ci/" + filepath.Base(f), files: []string{f}})
	}
	for _, r := range []struct{ set, refused string }{
		// The history store's URL carries a password: a Secret only.
		{"history.url=postgres://u:p@db/postback", "at '/history': additional properties 'url' not allowed"},
		{"history.embedded=true,history.existingSecret=pg", "both set"},
		{"history.embedded=true,gateway.replicaCount=2", "one gateway replica"},
		{"history.embedded=true,historian.replicaCount=2", "one historian replica"},
		// NATS: each service its own user, passwords from a Secret only.
		{"history.embedded=true", "nats.auth.existingSecret is required"},
		{"history.embedded=true,nats.auth.existingSecret=u,nats.url=nats://gateway:pw@nats:4222", "nats.url carries credentials"},
		{"history.embedded=true,nats.auth.existingSecret=u,nats.tls.enabled=true", "must be tls://"},
		{"history.embedded=true,nats.auth.existingSecret=u,nats.tls.caSecret=ca", "nats.tls.enabled is false"},
	} {
		sets = append(sets, valueSet{name: "--set " + r.set, set: []string{r.set}, refused: r.refused})
	}
	return sets, nil
}

func (s valueSet) values() (map[string]any, error) {
	opts := values.Options{ValueFiles: s.files, Values: s.set}
	return opts.MergeValues(getter.Providers{})
}

// effectiveValues are set's values over the chart's defaults, as the
// templates see them.
func effectiveValues(chart string, set valueSet) (map[string]any, error) {
	vals, err := set.values()
	if err != nil {
		return nil, err
	}
	ch, err := loader.Load(chart)
	if err != nil {
		return nil, err
	}
	return chartutil.CoalesceValues(ch, vals)
}

// helmRefuses checks that `helm template` fails for set, saying set.refused.
func helmRefuses(chart string, set valueSet) []error {
	docs, _, errs := helmTemplate(chart, set)
	if len(errs) == 0 && docs != nil {
		return []error{fmt.Errorf("rendered %d documents, but the chart must refuse these values (with %q)", len(docs), set.refused)}
	}
	for _, err := range errs {
		if strings.Contains(err.Error(), set.refused) {
			return nil
		}
	}
	return append([]error{fmt.Errorf("refused, but not with %q:", set.refused)}, errs...)
}

// helmLint is `helm lint --strict [-f file] chart`.
func helmLint(chart string, set valueSet, verbose bool) []error {
	vals, err := set.values()
	if err != nil {
		return []error{err}
	}
	lint := action.NewLint()
	lint.Strict = true
	lint.Namespace = "postback"
	lint.KubeVersion = kubeVersion()
	// In lint mode helm's `fail` only logs ("[INFO] Fail: ..." on the standard
	// logger); the template check reports it.
	if !verbose {
		log.SetOutput(io.Discard)
		defer log.SetOutput(os.Stderr)
	}
	res := lint.Run([]string{chart}, vals)
	var errs []error
	for _, m := range res.Messages {
		if m.Severity >= support.WarningSev {
			errs = append(errs, fmt.Errorf("[%s] %s", sev(m.Severity), m.Err))
		} else if verbose {
			fmt.Printf("        [%s] %s\n", sev(m.Severity), m.Err)
		}
	}
	if len(errs) == 0 {
		errs = res.Errors // errors without a message (chart not loadable)
	}
	return errs
}

func sev(s int) string {
	switch s {
	case support.ErrorSev:
		return "ERROR"
	case support.WarningSev:
		return "WARNING"
	case support.InfoSev:
		return "INFO"
	}
	return "UNKNOWN"
}

// kubeVersion is the Kubernetes version the k8s.io/api types compiled in here
// describe (client-go v0.N.x = Kubernetes 1.N), the version the helm CLI
// stamps by ldflags; without it helm assumes v1.20.
func kubeVersion() *chartutil.KubeVersion {
	v := "v1.33.0"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "k8s.io/client-go" {
				parts := strings.Split(strings.TrimPrefix(d.Version, "v"), ".")
				if len(parts) >= 2 && parts[0] == "0" {
					v = "v1." + parts[1] + ".0"
				}
			}
		}
	}
	kv, err := chartutil.ParseKubeVersion(v)
	if err != nil {
		panic(err)
	}
	return kv
}

// document is one rendered manifest.
type document struct {
	source string // template path
	data   []byte
}

// helmTemplate is `helm template postback chart [-f file]`: a client-only
// dry-run install, as the CLI does it.
func helmTemplate(chart string, set valueSet) ([]document, string, []error) {
	vals, err := set.values()
	if err != nil {
		return nil, "", []error{err}
	}
	ch, err := loader.Load(chart)
	if err != nil {
		return nil, "", []error{err}
	}
	cfg := &action.Configuration{Log: func(string, ...any) {}}
	inst := action.NewInstall(cfg)
	inst.DryRun = true
	inst.DryRunOption = "true"
	inst.ClientOnly = true
	inst.Replace = true
	inst.ReleaseName = "postback"
	inst.Namespace = "postback"
	inst.IncludeCRDs = true
	inst.APIVersions = chartutil.VersionSet{"monitoring.coreos.com/v1"}
	inst.KubeVersion = kubeVersion()
	rel, err := inst.Run(ch, vals)
	if err != nil {
		return nil, "", []error{err}
	}
	if strings.TrimSpace(rel.Info.Notes) == "" {
		return nil, "", []error{fmt.Errorf("templates/NOTES.txt rendered empty")}
	}
	var docs []document
	manifests := releaseutil.SplitManifests(rel.Manifest)
	keys := sortedKeys(manifests)
	for _, k := range keys {
		m := manifests[k]
		src := "?"
		if i := strings.Index(m, "# Source: "); i >= 0 {
			src = strings.TrimSpace(strings.SplitN(m[i+len("# Source: "):], "\n", 2)[0])
		}
		var probe map[string]any
		if err := yaml.Unmarshal([]byte(m), &probe); err != nil {
			return nil, "", []error{fmt.Errorf("%s: rendered YAML does not parse: %v", src, err)}
		}
		if len(probe) == 0 {
			continue // a template that rendered only comments
		}
		docs = append(docs, document{source: src, data: []byte(m)})
	}
	for _, h := range rel.Hooks {
		docs = append(docs, document{source: h.Path, data: []byte(h.Manifest)})
	}
	return docs, rel.Info.Notes, nil
}
