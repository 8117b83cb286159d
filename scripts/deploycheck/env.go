package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

var envName = regexp.MustCompile(`"(POSTBACK_[A-Z0-9_]+)"`)

// knownEnv is every POSTBACK_* variable pkg/config reads (read from its
// source, so a variable renamed there fails here until deploy/ follows).
func knownEnv(root string) (map[string]bool, error) {
	src, err := os.ReadFile(filepath.Join(root, "pkg", "config", "config.go"))
	if err != nil {
		return nil, err
	}
	known := map[string]bool{}
	for _, m := range envName.FindAllStringSubmatch(string(src), -1) {
		known[m[1]] = true
	}
	if len(known) < 5 {
		return nil, fmt.Errorf("found only %d POSTBACK_* names in pkg/config/config.go", len(known))
	}
	return known, nil
}

// chartOnlyEnv are variables the chart defines for its own use (building
// another variable), not read by Postback.
var chartOnlyEnv = map[string]bool{"POSTBACK_REDIS_PASSWORD": true}

// unknownEnv returns the POSTBACK_* names in names that Postback does not read.
func unknownEnv(names []string, known map[string]bool) error {
	var bad []string
	for _, n := range names {
		if strings.HasPrefix(n, "POSTBACK_") && !known[n] && !chartOnlyEnv[n] {
			bad = append(bad, n)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	sort.Strings(bad)
	return fmt.Errorf("unknown variable(s) %s (pkg/config reads: %s)", strings.Join(bad, ", "), strings.Join(sortedKeys(known), " "))
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
