package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// The alert rules and the Grafana dashboard (deploy/prometheus,
// deploy/grafana, the chart's PrometheusRule):
//
//   - deploy/prometheus/postback-alerts.yaml and the chart's copy
//     (charts/postback/files/postback-alerts.yaml, rendered by
//     templates/prometheusrule.yaml) are byte for byte the same;
//   - `promtool check rules` and `promtool test rules` pass (promtool
//     installed by scripts/ensure-promtool.sh when missing; a missing
//     promtool fails the check, it is never skipped);
//   - the dashboard is Grafana JSON whose every panel has PromQL targets that
//     promtool parses (checked as recording rules), and every metric the
//     rules and the dashboard name is in docs/operations.md's metric table.

const (
	alertsFile      = "deploy/prometheus/postback-alerts.yaml"
	alertsTestFile  = "deploy/prometheus/postback-alerts_test.yaml"
	chartAlertsFile = "charts/postback/files/postback-alerts.yaml"
	dashboardFile   = "deploy/grafana/postback.json"
)

// prometheusRule is the subset of the Prometheus Operator's PrometheusRule
// the chart renders, decoded strictly.
type prometheusRule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              ruleFile `json:"spec"`
}

// ruleFile is a Prometheus rule file (and a PrometheusRule's spec).
type ruleFile struct {
	Groups []struct {
		Name     string `json:"name"`
		Interval string `json:"interval,omitempty"`
		Rules    []struct {
			Alert       string            `json:"alert,omitempty"`
			Record      string            `json:"record,omitempty"`
			Expr        string            `json:"expr"`
			For         string            `json:"for,omitempty"`
			Labels      map[string]string `json:"labels,omitempty"`
			Annotations map[string]string `json:"annotations,omitempty"`
		} `json:"rules"`
	} `json:"groups"`
}

// repoRoot is the repository root (main sets it), for checkPrometheusRule.
var repoRoot string

// checkPrometheusRule: the rendered PrometheusRule holds exactly the rules of
// deploy/prometheus/postback-alerts.yaml.
func checkPrometheusRule(source string, pr *prometheusRule) []error {
	b, err := os.ReadFile(filepath.Join(repoRoot, alertsFile))
	if err != nil {
		return []error{err}
	}
	var want ruleFile
	if err := yaml.UnmarshalStrict(b, &want); err != nil {
		return []error{fmt.Errorf("%s: %v", alertsFile, err)}
	}
	if len(want.Groups) == 0 || !reflect.DeepEqual(pr.Spec, want) {
		return []error{fmt.Errorf("%s: the PrometheusRule's groups are not those of %s", source, alertsFile)}
	}
	return nil
}

// checkAlertRules runs promtool on the rule file and its tests, and checks
// the chart's copy and the metric names.
func checkAlertRules(root string) []error {
	var errs []error
	a, err := os.ReadFile(filepath.Join(root, alertsFile))
	if err != nil {
		return []error{err}
	}
	b, err := os.ReadFile(filepath.Join(root, chartAlertsFile))
	if err != nil {
		return []error{err}
	}
	if !bytes.Equal(a, b) {
		errs = append(errs, fmt.Errorf("%s differs from %s: copy it (cp %s %s)", chartAlertsFile, alertsFile, alertsFile, chartAlertsFile))
	}
	promtool, err := findPromtool(root)
	if err != nil {
		return append(errs, err)
	}
	dir := filepath.Join(root, filepath.Dir(alertsFile))
	for _, args := range [][]string{{"check", "rules", filepath.Base(alertsFile)}, {"test", "rules", filepath.Base(alertsTestFile)}} {
		if err := runPromtool(promtool, dir, args...); err != nil {
			errs = append(errs, err)
		}
	}
	var rules ruleFile
	if err := yaml.UnmarshalStrict(a, &rules); err != nil {
		return append(errs, fmt.Errorf("%s: %v", alertsFile, err))
	}
	known, err := documentedMetrics(root)
	if err != nil {
		return append(errs, err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			for _, m := range unknownMetrics(r.Expr, known) {
				errs = append(errs, fmt.Errorf("%s: alert %s uses %s, which docs/operations.md does not list", alertsFile, r.Alert, m))
			}
		}
	}
	return errs
}

// grafanaDashboard is the part of Grafana's dashboard JSON checked here.
type grafanaDashboard struct {
	Title  string `json:"title"`
	UID    string `json:"uid"`
	Panels []struct {
		ID      int    `json:"id"`
		Type    string `json:"type"`
		Title   string `json:"title"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

// grafanaVariables replaces Grafana's interval variables with durations, so
// that promtool can parse the expressions.
var grafanaVariables = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

// checkDashboard: deploy/grafana/postback.json is a dashboard whose every
// panel's expressions parse and name documented metrics.
func checkDashboard(root string) []error {
	b, err := os.ReadFile(filepath.Join(root, dashboardFile))
	if err != nil {
		return []error{err}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var d grafanaDashboard
	if err := dec.Decode(&d); err != nil {
		return []error{fmt.Errorf("%s: not JSON: %v", dashboardFile, err)}
	}
	var errs []error
	if d.Title == "" || d.UID == "" || len(d.Panels) == 0 {
		errs = append(errs, fmt.Errorf("%s: want a title, a uid and panels", dashboardFile))
	}
	known, err := documentedMetrics(root)
	if err != nil {
		return append(errs, err)
	}
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			errs = append(errs, fmt.Errorf("%s: panel id %d used twice", dashboardFile, p.ID))
		}
		ids[p.ID] = true
		if p.Title == "" || p.Type == "" || len(p.Targets) == 0 {
			errs = append(errs, fmt.Errorf("%s: panel %d (%q) needs a title, a type and targets", dashboardFile, p.ID, p.Title))
		}
		for _, t := range p.Targets {
			if strings.TrimSpace(t.Expr) == "" {
				errs = append(errs, fmt.Errorf("%s: panel %q target %s has no expr", dashboardFile, p.Title, t.RefID))
				continue
			}
			expr := grafanaVariables.Replace(t.Expr)
			if strings.Contains(expr, "$") {
				errs = append(errs, fmt.Errorf("%s: panel %q target %s uses a variable promtool cannot parse: %s", dashboardFile, p.Title, t.RefID, t.Expr))
				continue
			}
			q, _ := json.Marshal(expr) // a JSON string is a YAML string
			fmt.Fprintf(&rules, "      - record: panel_%d_%s\n        expr: %s\n", p.ID, t.RefID, q)
			for _, m := range unknownMetrics(expr, known) {
				errs = append(errs, fmt.Errorf("%s: panel %q uses %s, which docs/operations.md does not list", dashboardFile, p.Title, m))
			}
		}
	}
	promtool, err := findPromtool(root)
	if err != nil {
		return append(errs, err)
	}
	dir, err := os.MkdirTemp("", "deploycheck-dashboard-")
	if err != nil {
		return append(errs, err)
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "dashboard-rules.yaml"), []byte(rules.String()), 0o644); err != nil {
		return append(errs, err)
	}
	if err := runPromtool(promtool, dir, "check", "rules", "dashboard-rules.yaml"); err != nil {
		errs = append(errs, fmt.Errorf("%s: the panels' PromQL (as recording rules): %v", dashboardFile, err))
	}
	return errs
}

// findPromtool is promtool's path, installed with scripts/ensure-promtool.sh
// when it is missing.
func findPromtool(root string) (string, error) {
	look := func() (string, error) {
		if p, err := exec.LookPath("promtool"); err == nil {
			return p, nil
		}
		if _, err := os.Stat("/usr/bin/promtool"); err == nil {
			return "/usr/bin/promtool", nil
		}
		return "", errors.New("promtool not found")
	}
	if p, err := look(); err == nil {
		return p, nil
	}
	script := filepath.Join(root, "scripts", "ensure-promtool.sh")
	fmt.Fprintf(os.Stderr, "deploycheck: promtool not found; running %s\n", script)
	out, err := exec.Command("bash", script).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("install promtool with %s: %v\n%s", script, err, tail(out))
	}
	p, err := look()
	if err != nil {
		return "", fmt.Errorf("promtool still missing after %s", script)
	}
	return p, nil
}

func runPromtool(promtool, dir string, args ...string) error {
	cmd := exec.Command(promtool, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("promtool %s (in %s): %v\n%s", strings.Join(args, " "), dir, err, tail(out))
	}
	return nil
}

func tail(b []byte) string {
	if len(b) > 4096 {
		b = b[len(b)-4096:]
	}
	return string(b)
}

var (
	// A metric row of docs/operations.md's table: | `name` | type | …
	docMetricRow = regexp.MustCompile("(?m)^\\| `([a-z_:][a-z0-9_:]*)` \\| (counter|gauge|histogram) \\|")
	labelMatcher = regexp.MustCompile(`\{[^}]*\}`)
	grouping     = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	identifier   = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
)

var promqlKeywords = map[string]bool{"by": true, "without": true, "and": true, "or": true, "unless": true, "on": true,
	"ignoring": true, "group_left": true, "group_right": true, "bool": true, "offset": true, "inf": true, "nan": true}

// documentedMetrics are the Prometheus names of docs/operations.md's metric
// table (a histogram with its _bucket, _count and _sum series), and up.
func documentedMetrics(root string) (map[string]bool, error) {
	b, err := os.ReadFile(filepath.Join(root, "docs", "operations.md"))
	if err != nil {
		return nil, err
	}
	known := map[string]bool{"up": true}
	for _, m := range docMetricRow.FindAllStringSubmatch(string(b), -1) {
		known[m[1]] = true
		if m[2] == "histogram" {
			for _, s := range []string{"_bucket", "_count", "_sum"} {
				known[m[1]+s] = true
			}
		}
	}
	if len(known) < 10 {
		return nil, fmt.Errorf("docs/operations.md: found only %d metrics in its table", len(known))
	}
	return known, nil
}

// unknownMetrics are the metric names of a PromQL expression that known
// does not hold. Names are the identifiers left once label matchers,
// groupings, strings, function calls and keywords are taken out.
func unknownMetrics(expr string, known map[string]bool) []string {
	e := labelMatcher.ReplaceAllString(expr, "{}")
	e = grouping.ReplaceAllString(e, "")
	e = regexp.MustCompile(`"[^"]*"`).ReplaceAllString(e, "")
	e = regexp.MustCompile(`\[[^\]]*\]`).ReplaceAllString(e, "[]")
	seen := map[string]bool{}
	var out []string
	for _, loc := range identifier.FindAllStringIndex(e, -1) {
		name := e[loc[0]:loc[1]]
		if loc[0] > 0 && (e[loc[0]-1] >= '0' && e[loc[0]-1] <= '9' || e[loc[0]-1] == '.') {
			continue // the unit of a number (1e3) or a duration
		}
		rest := strings.TrimLeft(e[loc[1]:], " \t\n")
		if strings.HasPrefix(rest, "(") || promqlKeywords[strings.ToLower(name)] {
			continue // a function or an operator
		}
		if !known[name] && !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}
