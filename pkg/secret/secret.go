// Package secret keeps secrets at rest encrypted (docs/architecture.md, decision 12): header values
// marked secret and endpoint signing secrets are sealed before they are stored, opened
// only where a request is sent, and shown to API callers only masked.
//
// Keys. POSTBACK_SECRET_KEY holds a keyring: "kid:base64key[,kid:base64key…]". The
// first key is active and seals everything new; the others only open values sealed
// earlier, which is how a key is rotated: put the new key first, keep the old one
// after it until every stored value has been re-sealed, then drop it. Each key is
// exactly 32 bytes (AES-256). A single bare base64 key is accepted as kid "k1". In
// standalone mode LoadOrCreate keeps the keyring in a 0600 file in the data dir.
//
// Sealed form. "enc:v1:<kid>:<base64(nonce|ciphertext)>": AES-256-GCM with a random
// 12-byte nonce; the GCM tag authenticates the ciphertext and, as additional data, the
// "enc:v1:<kid>" prefix, so neither the value nor its key id can be altered unnoticed.
// "enc:v2:…" (SealBound) also authenticates a binding, the context the value belongs to
// (for an endpoint's secrets: its account, id and URL): it opens only with that same
// binding (OpenBound), so a sealed value moved elsewhere, or left in place while its
// context was changed by someone without the key, does not open. v1 values still open.
// The kid in the clear tells Open which key to use. A random nonce is safe for far
// more values than one key will ever seal (the GCM limit is about 2^32 per key).
//
// Nothing here logs, and no error carries key bytes, plaintext or a sealed value.
// Keyring's String and GoString name key ids only.
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/postback-dev/postback/pkg/datadir"
)

const (
	// KeySize is the size of every key in bytes (AES-256).
	KeySize = 32
	// sealedPrefix starts every unbound sealed value, boundPrefix every bound one;
	// the version names the format above.
	sealedPrefix = "enc:v1:"
	boundPrefix  = "enc:v2:"
	// defaultKID names a bare key and a generated one.
	defaultKID = "k1"
	nonceSize  = 12
	maxKIDLen  = 32 // shorter than a base64 key, so a key pasted as a kid is refused, not echoed
)

// Errors returned by Open and the keyring parsers. Match them with errors.Is.
var (
	ErrNotSealed  = errors.New("secret: value is not sealed")
	ErrUnknownKey = errors.New("secret: sealed with a key that is not in the keyring")
	ErrTampered   = errors.New("secret: sealed value is corrupt or was altered")
	ErrBadKeyring = errors.New("secret: invalid keyring")
)

// Keyring holds one active key, which seals, and older keys, which only open. It is
// safe for concurrent use.
type Keyring struct {
	active string                 // kid of the sealing key
	kids   []string               // every kid, active first, in configuration order
	aeads  map[string]cipher.AEAD // kid → AES-256-GCM
	macs   map[string][]byte      // kid → HMAC-SHA256 key derived from the kid's key (mac.go)
}

// ParseKeyring reads a POSTBACK_SECRET_KEY value: "kid:base64key[,kid:base64key…]",
// the first being active, or a single bare base64 key (kid "k1"). Entries may also
// be separated by newlines, and space around them is ignored, so a keyring file may
// list one key per line. A kid is 1–32 letters, digits, '_', '-' or '.'. Each key
// must decode (standard base64, padded or not) to exactly 32 bytes. Errors name the
// entry's position and kid, never the key.
func ParseKeyring(s string) (*Keyring, error) {
	entries := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' })
	var parts []string
	for _, e := range entries {
		if e = strings.TrimSpace(e); e != "" {
			parts = append(parts, e)
		}
	}
	if len(parts) == 0 {
		return nil, fmt.Errorf("%w: no key (want kid:base64key)", ErrBadKeyring)
	}
	k := &Keyring{aeads: make(map[string]cipher.AEAD, len(parts)), macs: make(map[string][]byte, len(parts))}
	for i, p := range parts {
		kid, b64, found := strings.Cut(p, ":")
		if !found {
			if len(parts) > 1 {
				return nil, fmt.Errorf("%w: entry %d has no kid (want kid:base64key)", ErrBadKeyring, i+1)
			}
			kid, b64 = defaultKID, p
		}
		kid, b64 = strings.TrimSpace(kid), strings.TrimSpace(b64)
		if err := checkKID(kid); err != nil {
			return nil, fmt.Errorf("%w: entry %d: %v", ErrBadKeyring, i+1, err)
		}
		if _, dup := k.aeads[kid]; dup {
			return nil, fmt.Errorf("%w: entry %d: kid %q appears twice", ErrBadKeyring, i+1, kid)
		}
		key, err := decodeKey(b64)
		if err != nil {
			return nil, fmt.Errorf("%w: entry %d (kid %q): %v", ErrBadKeyring, i+1, kid, err)
		}
		aead, err := newAEAD(key)
		if err != nil {
			return nil, fmt.Errorf("%w: entry %d (kid %q): %v", ErrBadKeyring, i+1, kid, err)
		}
		k.aeads[kid] = aead
		k.macs[kid] = deriveMACKey(key)
		k.kids = append(k.kids, kid)
	}
	k.active = k.kids[0]
	return k, nil
}

func checkKID(kid string) error {
	if kid == "" {
		return errors.New("empty kid")
	}
	if len(kid) > maxKIDLen {
		return fmt.Errorf("kid longer than %d characters", maxKIDLen)
	}
	for _, r := range kid {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.'
		if !ok {
			return errors.New("kid may hold only letters, digits, '_', '-' and '.'")
		}
	}
	return nil
}

// decodeKey decodes a key; its errors say what is wrong without quoting the input.
func decodeKey(b64 string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		if key, err = base64.RawStdEncoding.DecodeString(b64); err != nil {
			return nil, errors.New("key is not valid base64")
		}
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("key is %d bytes, want exactly %d (AES-256)", len(key), KeySize)
	}
	return key, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, errors.New("cannot use key for AES")
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, errors.New("cannot use key for AES-GCM")
	}
	return aead, nil
}

// GenerateKey returns a new keyring entry, "k1:<base64 of 32 random bytes>", ready to
// be written to a file or to POSTBACK_SECRET_KEY. To rotate, give the new entry
// another kid and put it first.
func GenerateKey() (string, error) {
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("secret: generating a key: %w", err)
	}
	return defaultKID + ":" + base64.StdEncoding.EncodeToString(key), nil
}

// LoadOrCreate returns the keyring kept in the file at path, for standalone mode.
// If the file does not exist it is created (exclusively, so two processes starting
// together never overwrite each other's key) holding one new key, with mode 0600;
// a missing directory is created with mode 0700. An existing file that group or
// others may read or write (mode more open than 0600) is refused, with an error
// naming its mode, until the operator runs chmod 600 on it.
func LoadOrCreate(path string) (*Keyring, error) {
	k, err := load(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	entry, err := GenerateKey()
	if err != nil {
		return nil, err
	}
	err = datadir.WritePrivate(path, []byte(entry+"\n"), true)
	if errors.Is(err, fs.ErrExist) {
		return load(path) // another process created it first: use its key
	}
	if err != nil {
		return nil, fmt.Errorf("secret: creating the keyring file: %w", err)
	}
	return ParseKeyring(entry)
}

// load reads and parses an existing keyring file, refusing one more open than 0600.
// A missing file yields an error matching fs.ErrNotExist.
func load(path string) (*Keyring, error) {
	data, err := datadir.ReadPrivate(path, "keyring file")
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("secret: %w", err)
	}
	k, err := ParseKeyring(string(data))
	if err != nil {
		return nil, fmt.Errorf("%w (in keyring file %s)", err, path)
	}
	return k, nil
}

// Seal encrypts plaintext with the active key: "enc:v1:<kid>:<base64(nonce|ciphertext)>".
// Sealing the same plaintext twice gives different results.
func (k *Keyring) Seal(plaintext string) (string, error) {
	if k == nil || k.active == "" {
		return "", fmt.Errorf("%w: no keyring", ErrBadKeyring)
	}
	nonce := make([]byte, nonceSize, nonceSize+len(plaintext)+16)
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("secret: generating a nonce: %w", err)
	}
	header := sealedPrefix + k.active
	out := k.aeads[k.active].Seal(nonce, nonce, []byte(plaintext), []byte(header))
	return header + ":" + base64.StdEncoding.EncodeToString(out), nil
}

// SealBound encrypts plaintext with the active key, bound to binding:
// "enc:v2:<kid>:<base64(nonce|ciphertext)>", opened only by OpenBound with the
// same binding.
func (k *Keyring) SealBound(plaintext, binding string) (string, error) {
	if k == nil || k.active == "" {
		return "", fmt.Errorf("%w: no keyring", ErrBadKeyring)
	}
	nonce := make([]byte, nonceSize, nonceSize+len(plaintext)+16)
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("secret: generating a nonce: %w", err)
	}
	header := boundPrefix + k.active
	out := k.aeads[k.active].Seal(nonce, nonce, []byte(plaintext), []byte(header+"\x00"+binding))
	return header + ":" + base64.StdEncoding.EncodeToString(out), nil
}

// OpenBound decrypts a value made by SealBound with the same binding, or by Seal
// (unbound, written before bindings: binding is not checked). The errors are
// Open's; a value opened with another binding is ErrTampered.
func (k *Keyring) OpenBound(sealed, binding string) (string, error) {
	if strings.HasPrefix(sealed, boundPrefix) {
		return k.open(sealed, boundPrefix, "\x00"+binding)
	}
	return k.Open(sealed)
}

// Open decrypts a value made by Seal with any key of the keyring. It fails with
// ErrNotSealed for a value not in the sealed form, ErrUnknownKey when the kid is not
// in the keyring, and ErrTampered when the value does not authenticate. The errors
// never include the value. A bound value (SealBound) opens only with OpenBound.
func (k *Keyring) Open(sealed string) (string, error) {
	if strings.HasPrefix(sealed, boundPrefix) {
		return "", fmt.Errorf("%w: the value is bound to its context: open it with OpenBound", ErrTampered)
	}
	return k.open(sealed, sealedPrefix, "")
}

func (k *Keyring) open(sealed, prefix, binding string) (string, error) {
	if k == nil {
		return "", fmt.Errorf("%w: no keyring", ErrBadKeyring)
	}
	kid, b64, ok := splitPrefix(sealed, prefix)
	if !ok {
		return "", ErrNotSealed
	}
	aead, known := k.aeads[kid]
	if !known {
		if checkKID(kid) != nil {
			return "", ErrTampered // do not echo something that is not a kid
		}
		return "", fmt.Errorf("%w: kid %q (keyring has %s)", ErrUnknownKey, kid, strings.Join(k.kids, ", "))
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(raw) < nonceSize+aead.Overhead() {
		return "", ErrTampered
	}
	plain, err := aead.Open(nil, raw[:nonceSize], raw[nonceSize:], []byte(prefix+kid+binding))
	if err != nil {
		return "", ErrTampered
	}
	return string(plain), nil
}

// split takes a sealed value (either form) apart into its kid and base64 payload.
func split(s string) (kid, b64 string, ok bool) {
	if strings.HasPrefix(s, boundPrefix) {
		return splitPrefix(s, boundPrefix)
	}
	return splitPrefix(s, sealedPrefix)
}

func splitPrefix(s, prefix string) (kid, b64 string, ok bool) {
	rest, found := strings.CutPrefix(s, prefix)
	if !found {
		return "", "", false
	}
	kid, b64, found = strings.Cut(rest, ":")
	if !found || kid == "" || b64 == "" {
		return "", "", false
	}
	return kid, b64, true
}

// IsSealed reports whether s has a sealed form ("enc:v1:" or "enc:v2:<kid>:<payload>"). It
// says what a stored value is; it does not prove the value opens. Do not use it to
// decide whether user input needs sealing: seal every secret value unconditionally.
func IsSealed(s string) bool {
	_, _, ok := split(s)
	return ok
}

// ActiveKID returns the kid of the key that seals ("" for a nil keyring).
func (k *Keyring) ActiveKID() string {
	if k == nil {
		return ""
	}
	return k.active
}

// String names the keyring's kids, never its keys.
func (k *Keyring) String() string {
	if k == nil {
		return "secret.Keyring(nil)"
	}
	return fmt.Sprintf("secret.Keyring{active: %s, kids: [%s]}", k.active, strings.Join(k.kids, " "))
}

// GoString is String, so %#v does not print key material either.
func (k *Keyring) GoString() string { return k.String() }

// maskDots replaces whatever part of a secret Mask hides.
const maskDots = "••••"

// Mask renders a secret for API responses: "••••" followed by at most its last
// four characters. It always hides at least eight characters, so a secret of up to
// eight characters shows none, and one of nine to eleven shows one to three. An
// empty secret stays empty, so a caller can tell "not set" from "set". Mask the
// plaintext (after Open), not the sealed value. Characters are runes.
func Mask(secret string) string {
	if secret == "" {
		return ""
	}
	r := []rune(secret)
	show := min(4, len(r)-8)
	if show <= 0 {
		return maskDots
	}
	return maskDots + string(r[len(r)-show:])
}
