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

// services are Postback's separate services, found as
// services/<name>/cmd/postback-<name> (every one but standalone, which runs
// them all): the list every deployment file must follow (checkTargets).
func services(root string) ([]string, error) {
	mains, err := filepath.Glob(filepath.Join(root, "services", "*", "cmd", "postback-*"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range mains {
		name := filepath.Base(filepath.Dir(filepath.Dir(m)))
		if filepath.Base(m) == "postback-"+name && name != "standalone" {
			out = append(out, name)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no services/<name>/cmd/postback-<name> under %s", root)
	}
	return out, nil
}

// qualified reports whether an image reference names its registry
// (docker.io/library/golang:1.26, not golang:1.26): a builder or runtime
// with another default registry, or none, pulls the same image.
func qualified(ref string) bool {
	first, _, ok := strings.Cut(ref, "/")
	return ok && (strings.ContainsAny(first, ".:") || first == "localhost")
}

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

// checkDockerfile: deploy/Dockerfile builds every service's image (ARG
// SERVICE): multi-stage, static, nonroot, version-stamped, fully qualified
// base images, every go.work module copied.
func checkDockerfile(root string) []error {
	var errs []error
	mods, err := workModules(root)
	if err != nil {
		return []error{err}
	}
	rel := filepath.Join("deploy", "Dockerfile")
	fail := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", rel, fmt.Sprintf(format, a...)))
	}
	ins, err := parseDockerfile(filepath.Join(root, rel))
	if err != nil {
		return []error{err}
	}
	if _, err := os.Stat(filepath.Join(root, rel+".dockerignore")); err != nil {
		fail("no Dockerfile.dockerignore beside it")
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
			var image string
			for _, f := range strings.Fields(in.args) {
				if !strings.HasPrefix(f, "--") {
					image = f
					break
				}
			}
			if !qualified(image) {
				fail("line %d: base image %q does not name its registry (e.g. docker.io/library/…)", in.line, image)
			}
		}
	}
	if len(froms) < 2 {
		return append(errs, fmt.Errorf("%s: must be multi-stage (a builder and a final stage)", rel))
	}
	if !regexp.MustCompile(`(^|\s)docker\.io/library/golang:1\.26(\S*)?\s+AS\s+\w+`).MatchString(strings.ReplaceAll(froms[0].args, " as ", " AS ")) {
		fail("the first stage must be docker.io/library/golang:1.26 AS <name>, got %q", froms[0].args)
	}
	final := strings.Fields(froms[len(froms)-1].args)[0]
	distroless := strings.HasPrefix(final, "gcr.io/distroless/static") && strings.HasSuffix(final, ":nonroot")
	if !distroless && final != "scratch" {
		fail("the final stage must be distroless static :nonroot or scratch, got %q", final)
	}
	var user, entry string
	var all strings.Builder
	copies := map[string]bool{}
	serviceArgs := 0
	for i, in := range ins {
		all.WriteString(in.cmd + " " + in.args + "\n")
		if in.cmd == "ARG" && strings.HasPrefix(in.args, "SERVICE") {
			serviceArgs++
		}
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
			for _, src := range fields[:len(fields)-1] {
				if strings.HasPrefix(src, "--") {
					continue
				}
				copies[filepath.Clean(src)] = true
				if _, err := os.Stat(filepath.Join(root, src)); err != nil {
					fail("line %d: COPY source %s does not exist in the repository", in.line, src)
				}
			}
		}
	}
	if serviceArgs < 2 {
		fail("ARG SERVICE must be declared in the build stage and the final stage (it names the binary and the image title)")
	}
	if user == "" || user == "root" || strings.HasPrefix(user, "0:") || user == "0" {
		fail("the final stage must set a non-root USER, got %q", user)
	}
	if entry != `["/postback"]` {
		fail(`ENTRYPOINT must be ["/postback"] (exec form, no shell), got %q`, entry)
	}
	text := all.String()
	for _, want := range []string{
		"CGO_ENABLED=0",
		"-X main.version=${VERSION}",
		"ARG VERSION",
		"./services/${SERVICE}/cmd/postback-${SERVICE}",
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
