package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// checkChartReadme: every leaf of values.yaml (a scalar, a list, or an empty
// or free-form map) is named in README.md as `path`.
func checkChartReadme(chart string) []error {
	b, err := os.ReadFile(filepath.Join(chart, "values.yaml"))
	if err != nil {
		return []error{err}
	}
	var vals map[string]any
	if err := yaml.Unmarshal(b, &vals); err != nil {
		return []error{err}
	}
	readme, err := os.ReadFile(filepath.Join(chart, "README.md"))
	if err != nil {
		return []error{err}
	}
	var missing []string
	for _, p := range leaves("", vals) {
		if !strings.Contains(string(readme), "`"+p+"`") {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return []error{fmt.Errorf("charts/postback/README.md does not list: %s", strings.Join(missing, ", "))}
	}
	return nil
}

// freeForm maps are documented as one value (their keys are the user's).
var freeForm = map[string]bool{"resources": true, "podSecurityContext": true, "securityContext": true}

func leaves(prefix string, m map[string]any) []string {
	var out []string
	for k, v := range m {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		if sub, ok := v.(map[string]any); ok && len(sub) > 0 && !freeForm[k] {
			out = append(out, leaves(p, sub)...)
			continue
		}
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}
