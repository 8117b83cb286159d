package redistest

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal kills redis-server if the test binary dies without
// running its cleanups (a panic, a timeout, SIGKILL), so no server is orphaned.
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
