package datadir

// Private files: the keys and passwords standalone generates into the data
// dir (secret.key, job.key, nats-credentials) are written 0600 and refused
// when group or others may read or write them, until the operator runs
// chmod 600: a key another user could read is no key.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// ReadPrivate reads path, which must be a regular file that neither group
// nor others may read or write; what names it in errors ("keyring file").
// A missing file is an error matching fs.ErrNotExist.
func ReadPrivate(path, what string) ([]byte, error) {
	info, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%s %s is not a regular file", what, path)
	}
	if perm := info.Mode().Perm(); runtime.GOOS != "windows" && perm&0o077 != 0 {
		return nil, fmt.Errorf("%s %s has mode %04o, more open than 0600; run chmod 600 on it", what, path, perm)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the %s: %w", what, err)
	}
	return b, nil
}

// WritePrivate writes data to path with mode 0600 (whatever the umask) and
// syncs it and, best effort, its directory entry. With exclusive it only
// creates the file: one that exists is an error matching fs.ErrExist, so two
// processes starting together never overwrite each other's key. Without it
// an existing file is replaced. A missing directory is created (0700). On a
// failed write the file is removed.
func WritePrivate(path string, data []byte, exclusive bool) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating the directory of %s: %w", path, err)
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if exclusive {
		flags = os.O_WRONLY | os.O_CREATE | os.O_EXCL
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	if werr == nil && runtime.GOOS != "windows" {
		werr = f.Chmod(0o600) // exact mode whatever the umask
	}
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(path)
		return fmt.Errorf("writing %s: %w", path, werr)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync() // best effort: make a new directory entry durable
		d.Close()
	}
	return nil
}
