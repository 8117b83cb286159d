package pgtest

import "syscall"

// procAttr makes initdb and postgres run as as (when not nil) and die with
// the test binary: the parent-death signal kills postgres if the test binary
// dies without running its cleanups (a panic, a timeout, SIGKILL), so no
// server is orphaned. The credentials are set by the child itself before it
// sets the parent-death signal (which a change of credentials would clear),
// so the signal reaches postgres, not a runuser in between.
func procAttr(as *runAs) (*syscall.SysProcAttr, error) {
	attr := &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if as != nil {
		attr.Credential = &syscall.Credential{Uid: uint32(as.uid), Gid: uint32(as.gid), Groups: []uint32{}}
	}
	return attr, nil
}
