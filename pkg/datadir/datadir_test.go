package datadir

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary be the other process: with
// DATADIR_TEST_HOLD set it locks that dir, says so, and waits to be killed.
func TestMain(m *testing.M) {
	if dir := os.Getenv("DATADIR_TEST_HOLD"); dir != "" {
		if _, err := Lock(dir); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Stdout.WriteString("locked\n")
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// holder starts another process that owns dir, and returns it.
func holder(t *testing.T, dir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "DATADIR_TEST_HOLD="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	buf := make([]byte, len("locked\n"))
	if _, err := out.Read(buf); err != nil || string(buf) != "locked\n" {
		t.Fatalf("the other process did not lock %s: %q, %v", dir, buf, err)
	}
	return cmd
}

func TestASecondOwnerIsRefusedNamingTheFirst(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	other := holder(t, dir)
	_, err := Lock(dir)
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("second lock: %v, want ErrInUse", err)
	}
	if pid := strconv.Itoa(other.Process.Pid); !strings.Contains(err.Error(), "process "+pid) || !strings.Contains(err.Error(), "POSTBACK_DATA_DIR") {
		t.Errorf("error %q does not name the holder's PID %s and the setting", err, pid)
	}
}

func TestALockLeftByAKilledProcessDoesNotBlockARestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	other := holder(t, dir)
	if err := other.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = other.Wait()
	release, err := Lock(dir)
	if err != nil {
		t.Fatalf("lock after the owner was killed: %v", err)
	}
	defer release()
	b, err := os.ReadFile(filepath.Join(dir, LockFile))
	if err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		t.Errorf("the lock file holds %q (%v), want this process's PID %d", b, err, os.Getpid())
	}
}

func TestAReleasedDirCanBeLockedAgain(t *testing.T) {
	dir := t.TempDir()
	release, err := Lock(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Lock(dir); !errors.Is(err, ErrInUse) {
		t.Fatalf("a second lock in the same process: %v, want ErrInUse", err)
	}
	release()
	release2, err := Lock(dir)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	release2()
}
