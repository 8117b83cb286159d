//go:build !linux

package pgtest

import (
	"errors"
	"syscall"
)

// procAttr is Linux-only in full; elsewhere tb.Cleanup is the only stop, and
// running the server as another user (needed as root) is not supported.
func procAttr(as *runAs) (*syscall.SysProcAttr, error) {
	if as != nil {
		return nil, errors.New("pgtest: running the tests as root is supported on Linux only (PostgreSQL refuses root)")
	}
	return nil, nil
}
