package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// checkTargets: a service is added in the code (its services/<name>/cmd
// main and its entry in standalone's target table) and then only named in
// each deployment file; this check finds a service some file lacks, or one
// it names that does not exist: standalone's targets, the Makefile's
// SERVICES, the chart's components, run-cluster.sh's SERVICES (senders
// may be numbered, sender-1) and docker-compose.yml (built from
// deploy/Dockerfile with SERVICE=<name>: checkCompose).
func checkTargets(root string) []error {
	svcs, err := services(root)
	if err != nil {
		return []error{err}
	}
	var errs []error
	same := func(where string, got []string, extra ...string) {
		want := append(slices.Clone(svcs), extra...)
		slices.Sort(want)
		got = slices.Clone(got)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			errs = append(errs, fmt.Errorf("%s names %v; the services (services/*/cmd/postback-*) are %v", where, got, want))
		}
	}
	read := func(rel string) string {
		b, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			errs = append(errs, err)
		}
		return string(b)
	}
	pick := func(rel, text, pattern string) []string {
		m := regexp.MustCompile(pattern).FindStringSubmatch(text)
		if m == nil {
			errs = append(errs, fmt.Errorf("%s: no match for %s", rel, pattern))
			return nil
		}
		return strings.Fields(m[1])
	}

	// standalone's target table: {"<name>", func(...
	table := read("services/standalone/standalone.go")
	if body := pick("services/standalone/standalone.go", table, `(?s)var targets = \[\]target\{(.*?)\n\}`); body != nil {
		var names []string
		for _, m := range regexp.MustCompile(`\{"([a-z]+)", func`).FindAllStringSubmatch(strings.Join(body, " "), -1) {
			names = append(names, m[1])
		}
		same("services/standalone/standalone.go's targets", names)
	}
	same("the Makefile's SERVICES", pick("Makefile", read("Makefile"), `(?m)^SERVICES := (.*)$`), "standalone")
	same("the chart's postback.components", pick("charts/postback/templates/_helpers.tpl", read("charts/postback/templates/_helpers.tpl"),
		`(?s)define "postback.components" -\}\}\s*(.*?)\s*\{\{-? end`))
	var cluster []string
	for _, name := range pick("scripts/run-cluster.sh", read("scripts/run-cluster.sh"), `(?m)^SERVICES="([^"]*)"`) {
		name = regexp.MustCompile(`-\d+$`).ReplaceAllString(name, "")
		if !slices.Contains(cluster, name) {
			cluster = append(cluster, name)
		}
	}
	same("scripts/run-cluster.sh's SERVICES", cluster)
	return errs
}
