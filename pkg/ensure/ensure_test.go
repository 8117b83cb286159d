package ensure

import (
	"errors"
	"strings"
	"testing"
)

func TestAnInstalledBinaryIsFoundWithoutRunningTheScript(t *testing.T) {
	p, err := Installed("test", "x", "no-such-script.sh", func() (string, error) { return "/usr/bin/x", nil })
	if err != nil || p != "/usr/bin/x" {
		t.Fatalf("Installed = %q, %v; want what look found", p, err)
	}
}

func TestAMissingBinaryWithoutItsScriptIsAnError(t *testing.T) {
	_, err := Installed("test", "x", "no-such-script.sh", func() (string, error) { return "", errors.New("not here") })
	if err == nil || !strings.Contains(err.Error(), "install script") {
		t.Fatalf("Installed = %v, want the missing script named", err)
	}
}

func TestTheInstallScriptsAreFound(t *testing.T) {
	for _, name := range []string{"ensure-redis.sh", "ensure-postgres.sh"} {
		if p, err := Script(name); err != nil || !strings.HasSuffix(p, "scripts/"+name) {
			t.Errorf("Script(%s) = %q, %v", name, p, err)
		}
	}
}

func TestTailKeepsTheLastFourKilobytes(t *testing.T) {
	got := Tail([]byte(strings.Repeat("a", 5000) + "end\n"))
	if len(got) != 4095 || !strings.HasSuffix(got, "end") {
		t.Fatalf("Tail: %d bytes ending %q", len(got), got[len(got)-3:])
	}
}
