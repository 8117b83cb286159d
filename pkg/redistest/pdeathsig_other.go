//go:build !linux

package redistest

import "os/exec"

// setParentDeathSignal is Linux-only; elsewhere tb.Cleanup is the only stop.
func setParentDeathSignal(*exec.Cmd) {}
