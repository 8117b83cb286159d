package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"sigs.k8s.io/yaml"
)

var imageServices = []string{"gateway", "renderer", "sender", "retry", "historian", "standalone"}

// workModules are the `use` directories of go.work.
func workModules(root string) ([]string, error) {
	f, err := os.Open(filepath.Join(root, "go.work"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var mods []string
	inBlock := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(strings.SplitN(sc.Text(), "//", 2)[0])
		switch {
		case line == "use (":
			inBlock = true
		case inBlock && line == ")":
			inBlock = false
		case inBlock && line != "":
			mods = append(mods, filepath.Clean(strings.Trim(line, `"`)))
		case strings.HasPrefix(line, "use "):
			mods = append(mods, filepath.Clean(strings.Trim(strings.TrimSpace(strings.TrimPrefix(line, "use ")), `"`)))
		}
	}
	return mods, sc.Err()
}

type instruction struct {
	line int
	cmd  string // upper case
	args string
}

// parseDockerfile splits a Dockerfile into instructions (continuations joined).
func parseDockerfile(path string) ([]instruction, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []instruction
	var cur strings.Builder
	start := 0
	for i, raw := range strings.Split(string(b), "\n") {
		t := strings.TrimSpace(raw)
		if cur.Len() == 0 && (t == "" || strings.HasPrefix(t, "#")) {
			continue
		}
		if cur.Len() == 0 {
			start = i + 1
		} else if strings.HasPrefix(t, "#") {
			continue
		}
		if strings.HasSuffix(t, "\\") {
			cur.WriteString(strings.TrimSuffix(t, "\\") + " ")
			continue
		}
		cur.WriteString(t)
		full := cur.String()
		cur.Reset()
		cmd, args, _ := strings.Cut(full, " ")
		out = append(out, instruction{line: start, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)})
	}
	return out, nil
}

var knownInstructions = map[string]bool{"FROM": true, "RUN": true, "CMD": true, "LABEL": true, "EXPOSE": true, "ENV": true,
	"ADD": true, "COPY": true, "ENTRYPOINT": true, "VOLUME": true, "USER": true, "WORKDIR": true, "ARG": true,
	"ONBUILD": true, "STOPSIGNAL": true, "HEALTHCHECK": true, "SHELL": true}

func checkDockerfiles(root string) []error {
	var errs []error
	mods, err := workModules(root)
	if err != nil {
		return []error{err}
	}
	for _, svc := range imageServices {
		rel := filepath.Join("deploy", svc+".Dockerfile")
		fail := func(format string, a ...any) {
			errs = append(errs, fmt.Errorf("%s: %s", rel, fmt.Sprintf(format, a...)))
		}
		ins, err := parseDockerfile(filepath.Join(root, rel))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if _, err := os.Stat(filepath.Join(root, rel+".dockerignore")); err != nil {
			fail("no %s.dockerignore beside it", filepath.Base(rel))
		}
		var froms []instruction
		lastFrom := -1
		for i, in := range ins {
			if !knownInstructions[in.cmd] {
				fail("line %d: unknown instruction %s", in.line, in.cmd)
			}
			if in.cmd == "FROM" {
				froms = append(froms, in)
				lastFrom = i
			}
		}
		if len(froms) < 2 {
			fail("must be multi-stage (a builder and a final stage)")
			continue
		}
		if !regexp.MustCompile(`(^|\s)golang:1\.26(\S*)?\s+AS\s+\w+`).MatchString(strings.ReplaceAll(froms[0].args, " as ", " AS ")) {
			fail("the first stage must be golang:1.26 AS <name>, got %q", froms[0].args)
		}
		final := strings.Fields(froms[len(froms)-1].args)[0]
		distroless := strings.HasPrefix(final, "gcr.io/distroless/static") && strings.HasSuffix(final, ":nonroot")
		if !distroless && final != "scratch" {
			fail("the final stage must be distroless static :nonroot or scratch, got %q", final)
		}
		var user, entry string
		var all strings.Builder
		copies := map[string]bool{}
		for i, in := range ins {
			all.WriteString(in.cmd + " " + in.args + "\n")
			if i > lastFrom {
				switch in.cmd {
				case "USER":
					user = in.args
				case "ENTRYPOINT":
					entry = in.args
				case "RUN", "SHELL":
					fail("line %d: %s in the final stage (there is no shell)", in.line, in.cmd)
				}
			}
			if in.cmd == "COPY" && !strings.Contains(in.args, "--from=") {
				fields := strings.Fields(in.args)
				var srcs []string
				for _, f := range fields[:len(fields)-1] {
					if !strings.HasPrefix(f, "--") {
						srcs = append(srcs, f)
					}
				}
				for _, src := range srcs {
					copies[filepath.Clean(src)] = true
					if _, err := os.Stat(filepath.Join(root, src)); err != nil {
						fail("line %d: COPY source %s does not exist in the repository", in.line, src)
					}
				}
			}
		}
		if user == "" || user == "root" || strings.HasPrefix(user, "0:") || user == "0" {
			fail("the final stage must set a non-root USER, got %q", user)
		}
		if !strings.HasPrefix(entry, "[") {
			fail("ENTRYPOINT must be exec form (no shell), got %q", entry)
		}
		text := all.String()
		for _, want := range []string{
			"CGO_ENABLED=0",
			"-X main.version=${VERSION}",
			"ARG VERSION",
			"./services/" + svc + "/cmd/postback-" + svc,
			`ENTRYPOINT ["/postback-` + svc + `"]`,
			"/healthcheck",
		} {
			if !strings.Contains(text, want) {
				fail("does not contain %q", want)
			}
		}
		if !copies["go.work"] {
			fail("does not COPY go.work")
		}
		for _, m := range mods {
			if !copies[filepath.Join(m, "go.mod")] && !copies[m] {
				fail("go.work uses %s but its go.mod is not copied (the workspace build would fail)", m)
			}
		}
	}
	return errs
}

// checkCollector: the pipelines of the collector configuration name
// receivers, processors and exporters it defines.
func checkCollector(path string) []error {
	b, err := os.ReadFile(path)
	if err != nil {
		return []error{err}
	}
	var cfg struct {
		Extensions map[string]any `json:"extensions"`
		Receivers  map[string]any `json:"receivers"`
		Processors map[string]any `json:"processors"`
		Exporters  map[string]any `json:"exporters"`
		Connectors map[string]any `json:"connectors"`
		Service    struct {
			Extensions []string `json:"extensions"`
			Telemetry  any      `json:"telemetry"`
			Pipelines  map[string]struct {
				Receivers  []string `json:"receivers"`
				Processors []string `json:"processors"`
				Exporters  []string `json:"exporters"`
			} `json:"pipelines"`
		} `json:"service"`
	}
	if err := yaml.UnmarshalStrict(b, &cfg); err != nil {
		return []error{err}
	}
	var errs []error
	need := func(kind string, defined map[string]any, names []string, where string) {
		for _, n := range names {
			_, a := defined[n]
			_, c := cfg.Connectors[n]
			if !a && !c {
				errs = append(errs, fmt.Errorf("%s names %s %q, which is not defined", where, kind, n))
			}
		}
	}
	need("extension", cfg.Extensions, cfg.Service.Extensions, "service.extensions")
	if len(cfg.Service.Pipelines) == 0 {
		errs = append(errs, fmt.Errorf("no pipelines"))
	}
	for name, p := range cfg.Service.Pipelines {
		typ, _, _ := strings.Cut(name, "/")
		if typ != "traces" && typ != "metrics" && typ != "logs" {
			errs = append(errs, fmt.Errorf("pipeline %q: type must be traces, metrics or logs", name))
		}
		if len(p.Receivers) == 0 || len(p.Exporters) == 0 {
			errs = append(errs, fmt.Errorf("pipeline %q needs receivers and exporters", name))
		}
		need("receiver", cfg.Receivers, p.Receivers, "pipeline "+name)
		need("processor", cfg.Processors, p.Processors, "pipeline "+name)
		need("exporter", cfg.Exporters, p.Exporters, "pipeline "+name)
	}
	return errs
}
