// Package datadir makes one process the owner of a data dir.
//
// Two standalones on one POSTBACK_DATA_DIR would share one embedded
// JetStream store and one history file behind each other's backs: both
// consume the same work, and a delivery's record can vanish between them.
// Lock takes an exclusive flock(2) on <dir>/LOCK and writes the owner's
// PID into it. The kernel releases the lock when the process ends, however
// it ends, so a lock left by a killed process never blocks a restart; the
// file stays, and the next owner writes its own PID over the dead one's.
package datadir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// LockFile is the lock's file name in the data dir.
const LockFile = "LOCK"

// ErrInUse is returned (wrapped) when another process owns the data dir.
var ErrInUse = errors.New("data dir in use")

// Lock makes the calling process the data dir's only owner until release
// (or until it ends). It creates dir (0700) when missing. Another owner
// alive makes it fail with ErrInUse, naming that process's PID.
func Lock(dir string) (release func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir %s: %w", dir, err)
	}
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data dir %s: open its lock: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			holder := "another process"
			if b, rerr := os.ReadFile(path); rerr == nil {
				if pid := strings.TrimSpace(string(b)); pid != "" {
					holder = "process " + pid
				}
			}
			return nil, fmt.Errorf("%w: %s is held by %s (lock %s); give each process its own POSTBACK_DATA_DIR",
				ErrInUse, dir, holder, path)
		}
		return nil, fmt.Errorf("data dir %s: lock %s: %w", dir, path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() { _ = f.Close() }, nil
}
