package main

import (
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// checkImageBuilds does what deploy/Dockerfile's build stage does, here and
// without a container engine: CGO_ENABLED=0, -trimpath, the version stamp,
// for every SERVICE (each service and standalone) and the health check, and
// checks that each result is a static Linux executable (no ELF interpreter:
// it runs on distroless static, which has no libc). With checkDockerfile
// (the final stage copies exactly these to /postback and /healthcheck, as a
// non-root user) this is the image's build and layout short of the layers.
func checkImageBuilds(root string) []error {
	svcs, err := services(root)
	if err != nil {
		return []error{err}
	}
	svcs = append(svcs, "standalone")
	out, err := os.MkdirTemp("", "deploycheck-images-")
	if err != nil {
		return []error{err}
	}
	defer os.RemoveAll(out)
	env := append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOFLAGS=-buildvcs=false")
	build := func(dir string, extraEnv []string, args ...string) error {
		cmd := exec.Command("go", append([]string{"build", "-trimpath"}, args...)...)
		cmd.Dir, cmd.Env = dir, append(env, extraEnv...)
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", strings.Join(args, " "), err, b)
		}
		return nil
	}
	args := []string{"-ldflags", "-s -w -X main.version=deploycheck", "-o", out + string(filepath.Separator)}
	for _, s := range svcs {
		args = append(args, "./services/"+s+"/cmd/postback-"+s)
	}
	if err := build(root, nil, args...); err != nil {
		return []error{err}
	}
	if err := build(filepath.Join(root, "deploy", "healthcheck"), []string{"GOWORK=off"}, "-ldflags", "-s -w", "-o", filepath.Join(out, "healthcheck"), "."); err != nil {
		return []error{err}
	}
	var errs []error
	for _, name := range append(svcs, "healthcheck") {
		bin := name
		if name != "healthcheck" {
			bin = "postback-" + name
		}
		if err := static(filepath.Join(out, bin)); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", bin, err))
		}
	}
	return errs
}

// static says why path is not a static Linux executable.
func static(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("ELF type %s, want an executable", f.Type)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("dynamically linked (it needs an ELF interpreter, which distroless static lacks)")
		}
	}
	return nil
}
