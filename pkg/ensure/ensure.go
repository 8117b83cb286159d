// Package ensure finds the server binaries tests start (redis-server,
// PostgreSQL's initdb and postgres) and, when they are missing, installs
// them with the repository's scripts/ensure-*.sh, which install Debian's
// packages under a file lock and never start a system service. A test
// that needs a server fails when it cannot be had: it is never skipped.
package ensure

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// Script is the path of scripts/<name> in this checkout.
func Script(name string) (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("locate the ensure package's source to find scripts/" + name)
	}
	p := filepath.Join(filepath.Dir(file), "..", "..", "scripts", name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("find install script: %w", err)
	}
	return p, nil
}

// Installed returns what look finds; when it finds nothing, it runs
// scripts/<script> (saying so on stderr, as who) and looks again.
func Installed(who, what, script string, look func() (string, error)) (string, error) {
	if p, err := look(); err == nil {
		return p, nil
	}
	path, err := Script(script)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(os.Stderr, "%s: %s not found; running %s\n", who, what, path)
	cmd := exec.Command("bash", path)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("install %s with %s: %w; output:\n%s", what, path, err, Tail(out.Bytes()))
	}
	p, err := look()
	if err != nil {
		return "", fmt.Errorf("%s still missing after %s: %w", what, path, err)
	}
	return p, nil
}

// Tail is the last 4 KiB of a server's output, for an error message.
func Tail(b []byte) string {
	if len(b) > 4096 {
		b = b[len(b)-4096:]
	}
	return string(bytes.TrimSpace(b))
}
