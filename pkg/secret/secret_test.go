package secret

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// keyOf returns a deterministic 32-byte key, base64-encoded, distinct per seed.
func keyOf(seed byte) string {
	b := make([]byte, KeySize)
	for i := range b {
		b[i] = seed + byte(i)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func mustKeyring(t *testing.T, s string) *Keyring {
	t.Helper()
	k, err := ParseKeyring(s)
	if err != nil {
		t.Fatalf("ParseKeyring: %v", err)
	}
	return k
}

func TestSealOpenRoundTrip(t *testing.T) {
	k := mustKeyring(t, "k1:"+keyOf(1))
	for _, plain := range []string{"", "Bearer s3cr3t-token", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "ünïcödé ✓", strings.Repeat("x", 10000), "enc:v1:k1:looks-sealed"} {
		sealed, err := k.Seal(plain)
		if err != nil {
			t.Fatalf("Seal: %v", err)
		}
		if !strings.HasPrefix(sealed, "enc:v1:k1:") || !IsSealed(sealed) {
			t.Fatalf("sealed form %q", sealed)
		}
		if len(plain) >= 4 && strings.Contains(sealed, plain) {
			t.Fatalf("sealed text contains the plaintext")
		}
		got, err := k.Open(sealed)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if got != plain {
			t.Fatalf("round trip gave %q, want %q", got, plain)
		}
	}
	a, _ := k.Seal("same")
	b, _ := k.Seal("same")
	if a == b {
		t.Fatal("sealing twice gave the same text: the nonce is not random")
	}
}

func TestSealedTextHidesThePlaintext(t *testing.T) {
	k := mustKeyring(t, "k1:"+keyOf(1))
	const plain = "Bearer super-secret-token-123"
	sealed, _ := k.Seal(plain)
	raw, err := base64.StdEncoding.DecodeString(sealed[strings.LastIndex(sealed, ":")+1:])
	if err != nil {
		t.Fatal(err)
	}
	for _, hay := range []string{sealed, string(raw)} {
		if strings.Contains(hay, plain) || strings.Contains(hay, "super-secret") {
			t.Fatal("sealed value carries the plaintext")
		}
	}
	if len(raw) != 12+len(plain)+16 {
		t.Fatalf("payload is %d bytes, want nonce(12)+ciphertext(%d)+tag(16)", len(raw), len(plain))
	}
}

func TestRotation(t *testing.T) {
	old := mustKeyring(t, "k1:"+keyOf(1))
	sealedOld, _ := old.Seal("old value")

	// The operator makes k2 active and keeps k1 for decryption.
	rotated := mustKeyring(t, "k2:"+keyOf(2)+",k1:"+keyOf(1))
	if rotated.ActiveKID() != "k2" {
		t.Fatalf("active kid %q, want k2 (the first)", rotated.ActiveKID())
	}
	if got, err := rotated.Open(sealedOld); err != nil || got != "old value" {
		t.Fatalf("Open(old) after rotation = %q, %v", got, err)
	}
	sealedNew, _ := rotated.Seal("new value")
	if !strings.HasPrefix(sealedNew, "enc:v1:k2:") {
		t.Fatalf("new values must be sealed with the active key: %q", sealedNew)
	}
	// Once k1 is dropped, its values no longer open, and the error says which kid.
	dropped := mustKeyring(t, "k2:"+keyOf(2))
	_, err := dropped.Open(sealedOld)
	if !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), `"k1"`) {
		t.Fatalf("Open with k1 dropped: %v, want ErrUnknownKey naming k1", err)
	}
	if got, err := dropped.Open(sealedNew); err != nil || got != "new value" {
		t.Fatalf("Open(new) = %q, %v", got, err)
	}
}

func TestOpenFailures(t *testing.T) {
	k := mustKeyring(t, "k1:"+keyOf(1))
	const plain = "Bearer the-plaintext-token"
	sealed, _ := k.Seal(plain)
	kid, b64, _ := split(sealed)
	raw, _ := base64.StdEncoding.DecodeString(b64)
	flip := func(i int) string {
		c := append([]byte(nil), raw...)
		c[i] ^= 0x01
		return sealedPrefix + kid + ":" + base64.StdEncoding.EncodeToString(c)
	}
	// The same kid under another key: GCM refuses it.
	sameKIDOtherKey := mustKeyring(t, "k1:"+keyOf(9))

	tests := []struct {
		name   string
		ring   *Keyring
		sealed string
		want   error
	}{
		{"unknown kid", mustKeyring(t, "k9:"+keyOf(1)), sealed, ErrUnknownKey},
		{"flipped ciphertext byte", k, flip(len(raw) - 20), ErrTampered},
		{"flipped nonce byte", k, flip(0), ErrTampered},
		{"flipped tag byte", k, flip(len(raw) - 1), ErrTampered},
		{"truncated", k, sealed[:len(sealed)-8], ErrTampered},
		{"too short for a nonce and tag", k, sealedPrefix + "k1:" + base64.StdEncoding.EncodeToString(raw[:20]), ErrTampered},
		{"payload not base64", k, sealedPrefix + "k1:!!!notbase64!!!", ErrTampered},
		{"kid relabelled (authenticated as additional data)", mustKeyring(t, "k2:"+keyOf(1)), strings.Replace(sealed, ":k1:", ":k2:", 1), ErrTampered},
		{"right kid, wrong key", sameKIDOtherKey, sealed, ErrTampered},
		{"kid with odd characters", k, sealedPrefix + "k1 ☃:" + b64, ErrTampered},
		{"plaintext given to Open", k, plain, ErrNotSealed},
		{"other version", k, "enc:v9:k1:" + b64, ErrNotSealed},
		{"empty", k, "", ErrNotSealed},
		{"no payload", k, "enc:v1:k1:", ErrNotSealed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.ring.Open(tc.sealed)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Open = %q, %v; want %v", got, err, tc.want)
			}
			if got != "" {
				t.Errorf("Open returned %q with an error", got)
			}
			msg := err.Error()
			if strings.Contains(msg, plain) || strings.Contains(msg, b64[:16]) || strings.Contains(msg, keyOf(1)) || strings.Contains(msg, keyOf(9)) {
				t.Errorf("error %q leaks the value or a key", msg)
			}
		})
	}
}

func TestIsSealed(t *testing.T) {
	tests := map[string]bool{
		"enc:v1:k1:AAAA":      true,
		"enc:v1:rotated-2:QQ": true,
		"enc:v1:k1:":          false,
		"enc:v1::AAAA":        false,
		"enc:v1:k1":           false,
		"enc:v9:k1:AAAA":      false,
		"Bearer abc":          false,
		"":                    false,
	}
	for in, want := range tests {
		if got := IsSealed(in); got != want {
			t.Errorf("IsSealed(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestParseKeyring(t *testing.T) {
	k1, k2 := keyOf(1), keyOf(2)
	tests := []struct {
		name       string
		in         string
		wantActive string
		wantKIDs   []string
	}{
		{"one entry", "k1:" + k1, "k1", []string{"k1"}},
		{"a bare key is k1", k1, "k1", []string{"k1"}},
		{"a bare key with a trailing newline (as read from a file)", k1 + "\n", "k1", []string{"k1"}},
		{"first is active", "k2:" + k2 + ",k1:" + k1, "k2", []string{"k2", "k1"}},
		{"space and newlines between entries", " 2026-04:" + k2 + " ,\n k1:" + k1 + "\n", "2026-04", []string{"2026-04", "k1"}},
		{"unpadded base64", "k1:" + strings.TrimRight(k1, "="), "k1", []string{"k1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := mustKeyring(t, tc.in)
			if k.ActiveKID() != tc.wantActive {
				t.Errorf("active %q, want %q", k.ActiveKID(), tc.wantActive)
			}
			if strings.Join(k.kids, ",") != strings.Join(tc.wantKIDs, ",") {
				t.Errorf("kids %v, want %v", k.kids, tc.wantKIDs)
			}
		})
	}
}

func TestParseKeyringErrorsNeverShowKeys(t *testing.T) {
	short := base64.StdEncoding.EncodeToString([]byte("only-sixteen-byt"))
	long := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("L", 48)))
	k1 := keyOf(1)
	rawK1 := strings.TrimRight(k1, "=")
	tests := []struct {
		name     string
		in       string
		wantText []string
		secrets  []string // must not appear in the error
	}{
		{"empty", "", []string{"no key"}, nil},
		{"only separators", " , \n", []string{"no key"}, nil},
		{"key too short", "k1:" + short, []string{"entry 1", `"k1"`, "16 bytes", "32"}, []string{short, "only-sixteen"}},
		{"key too long", "k1:" + k1 + ",k2:" + long, []string{"entry 2", `"k2"`, "48 bytes"}, []string{long, k1}},
		{"bare key too short", short, []string{"16 bytes"}, []string{short}},
		{"not base64", "k1:" + k1[:20] + "!!" + k1[22:], []string{"entry 1", "base64"}, []string{k1[:20]}},
		{"bare key among several", "k1:" + k1 + "," + keyOf(2), []string{"entry 2", "no kid"}, []string{k1, keyOf(2)}},
		{"duplicate kid", "k1:" + k1 + ",k1:" + keyOf(2), []string{"entry 2", "twice"}, []string{k1, keyOf(2)}},
		{"empty kid", ":" + k1, []string{"entry 1", "empty kid"}, []string{k1}},
		{"bad kid characters", "k 1/x:" + k1, []string{"entry 1", "kid may hold only"}, []string{k1}},
		{"key and kid swapped (unpadded key as kid)", rawK1 + ":k1", []string{"entry 1", "longer than"}, []string{rawK1}},
		{"key and kid swapped (padded key as kid)", k1 + ":k1", []string{"entry 1"}, []string{k1, rawK1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseKeyring(tc.in)
			if !errors.Is(err, ErrBadKeyring) {
				t.Fatalf("ParseKeyring: %v, want ErrBadKeyring", err)
			}
			for _, want := range tc.wantText {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			for _, s := range tc.secrets {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q contains key material", err)
				}
			}
		})
	}
}

func TestGenerateKey(t *testing.T) {
	a, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := GenerateKey()
	if a == b {
		t.Fatal("two generated keys are equal")
	}
	kid, b64, ok := strings.Cut(a, ":")
	if !ok || kid != "k1" {
		t.Fatalf("GenerateKey = kid %q, want k1", kid)
	}
	if key, err := base64.StdEncoding.DecodeString(b64); err != nil || len(key) != 32 {
		t.Fatalf("generated key decodes to %d bytes (%v)", len(key), err)
	}
	k := mustKeyring(t, a)
	sealed, _ := k.Seal("x")
	if got, err := k.Open(sealed); err != nil || got != "x" {
		t.Fatalf("generated key does not round-trip: %q, %v", got, err)
	}
}

func TestLoadOrCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "nested")
	path := filepath.Join(dir, "secret.key")

	first, err := LoadOrCreate(path)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		if perm := info.Mode().Perm(); perm != 0o600 {
			t.Errorf("created file mode %04o, want 0600", perm)
		}
		if d, _ := os.Stat(dir); d.Mode().Perm() != 0o700 {
			t.Errorf("created dir mode %04o, want 0700", d.Mode().Perm())
		}
	}
	sealed, _ := first.Seal("kept across restarts")

	second, err := LoadOrCreate(path)
	if err != nil {
		t.Fatalf("reload: %v", err)
	}
	if got, err := second.Open(sealed); err != nil || got != "kept across restarts" {
		t.Fatalf("second call did not reuse the key: %q, %v", got, err)
	}
	data, _ := os.ReadFile(path)
	if k := mustKeyring(t, string(data)); k.ActiveKID() != "k1" {
		t.Errorf("file holds kid %q", k.ActiveKID())
	}
}

func TestLoadOrCreateRefusesOpenModes(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("POSIX modes")
	}
	path := filepath.Join(t.TempDir(), "secret.key")
	entry := "k1:" + keyOf(1)
	if err := os.WriteFile(path, []byte(entry+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644, 0o660} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := LoadOrCreate(path)
		if err == nil {
			t.Fatalf("mode %04o accepted", mode)
		}
		if !strings.Contains(err.Error(), fmt.Sprintf("%04o", mode)) {
			t.Errorf("error %q does not name mode %04o", err, mode)
		}
		if strings.Contains(err.Error(), keyOf(1)) {
			t.Errorf("error leaks the key")
		}
	}
	for _, mode := range []os.FileMode{0o600, 0o400} {
		os.Chmod(path, mode)
		if _, err := LoadOrCreate(path); err != nil {
			t.Errorf("mode %04o refused: %v", mode, err)
		}
	}
}

func TestLoadOrCreateBadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret.key")
	short := base64.StdEncoding.EncodeToString([]byte("too-short"))
	os.WriteFile(path, []byte("k1:"+short), 0o600)
	_, err := LoadOrCreate(path)
	if !errors.Is(err, ErrBadKeyring) || !strings.Contains(err.Error(), path) || strings.Contains(err.Error(), short) {
		t.Fatalf("bad file: %v", err)
	}
	// A directory where the file should be is an error, not a new key.
	dirPath := filepath.Join(t.TempDir(), "secret.key")
	os.Mkdir(dirPath, 0o700)
	if _, err := LoadOrCreate(dirPath); err == nil || errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("directory as keyring file: %v", err)
	}
}

func TestMask(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"a", "••••"},
		{"abcd", "••••"},
		{"12345678", "••••"},
		{"123456789", "••••9"},
		{"1234567890", "••••90"},
		{"12345678901", "••••901"},
		{"123456789012", "••••9012"},
		{"Bearer s3cr3t-token-XYZW", "••••XYZW"},
		{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "••••LaSw"},
		{"пароль-очень-длинный", "••••нный"},
	}
	for _, tc := range tests {
		got := Mask(tc.in)
		if got != tc.want {
			t.Errorf("Mask(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if tc.in != "" && strings.Contains(got, tc.in) {
			t.Errorf("Mask(%q) shows the whole secret", tc.in)
		}
	}
}

func TestKeyringDoesNotPrintKeys(t *testing.T) {
	k := mustKeyring(t, "k2:"+keyOf(2)+",k1:"+keyOf(1))
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(format, k)
		if strings.Contains(out, keyOf(1)) || strings.Contains(out, keyOf(2)) || strings.Contains(out, "aead") || !strings.Contains(out, "k2") {
			t.Errorf("%s: %s", format, out)
		}
	}
}

func TestNilAndZeroKeyring(t *testing.T) {
	var k *Keyring
	if _, err := k.Seal("x"); !errors.Is(err, ErrBadKeyring) {
		t.Errorf("nil Seal: %v", err)
	}
	if _, err := k.Open("enc:v1:k1:AAAA"); !errors.Is(err, ErrBadKeyring) {
		t.Errorf("nil Open: %v", err)
	}
	var z Keyring
	if _, err := z.Seal("x"); !errors.Is(err, ErrBadKeyring) {
		t.Errorf("zero Seal: %v", err)
	}
}

func TestABoundValueOpensOnlyWithItsBinding(t *testing.T) {
	k := mustKeyring(t, "k1:"+keyOf(1))
	sealed, err := k.SealBound("Bearer s3cr3t", "acct\x00ep_1\x00https://brand.example/hook")
	if err != nil {
		t.Fatal(err)
	}
	if !IsSealed(sealed) || !strings.HasPrefix(sealed, "enc:v2:") {
		t.Fatalf("sealed form %q", sealed)
	}
	if got, err := k.OpenBound(sealed, "acct\x00ep_1\x00https://brand.example/hook"); err != nil || got != "Bearer s3cr3t" {
		t.Fatalf("OpenBound with its binding = %q, %v", got, err)
	}
	for _, tc := range []struct{ name, binding string }{
		{"another URL", "acct\x00ep_1\x00https://attacker.example/hook"},
		{"another endpoint", "acct\x00ep_2\x00https://brand.example/hook"},
		{"another account", "other\x00ep_1\x00https://brand.example/hook"},
		{"no binding", ""},
	} {
		if _, err := k.OpenBound(sealed, tc.binding); !errors.Is(err, ErrTampered) {
			t.Errorf("%s: err = %v, want ErrTampered", tc.name, err)
		}
	}
	if _, err := k.Open(sealed); !errors.Is(err, ErrTampered) {
		t.Errorf("Open of a bound value: err = %v, want ErrTampered", err)
	}
	// A value sealed before bindings still opens, whatever the binding.
	old, err := k.Seal("legacy")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := k.OpenBound(old, "anything"); err != nil || got != "legacy" {
		t.Fatalf("OpenBound of an unbound value = %q, %v", got, err)
	}
}
