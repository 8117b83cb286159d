// Package auth authenticates API callers and carries who they are (docs/architecture.md,
// decision 13).
//
// Tokens. POSTBACK_TOKENS holds "token=account" pairs separated by commas;
// the account "*" makes the token an operator's, which acts on every
// account. A value that starts with "file:" names a file instead (a
// Kubernetes secret mounted as a volume): one "token=account" pair a line,
// blank lines and lines starting with "#" ignored. A token is 16 to 256
// printable ASCII characters without spaces, commas or "="; an account is an
// account id (1-64 of A-Z a-z 0-9 _ -) or "*".
//
// Comparison. A presented token is hashed (SHA-256) and compared with the
// hash of every configured token with crypto/subtle, without stopping at the
// first match, so neither the time taken nor an early exit tells a caller how
// much of a guess was right or which entry it matched.
//
// Calls. The gRPC interceptors (Authenticator) read "authorization: Bearer
// <token>" metadata on every method but gRPC health and server reflection,
// answer Unauthenticated when it is missing or unknown, and put the caller's
// Identity in the context. CanAccess and Scope are the tenancy rules every
// handler applies: an account token acts only on its own account; an
// operator acts on all. A context without an identity may act on nothing.
//
// Nothing here logs or returns a token: errors name an entry by its line or
// position, and an Identity names its token only by a short fingerprint.
package auth

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/postback-dev/postback/pkg/id"
)

// OperatorAccount is the account of an operator token.
const OperatorAccount = "*"

// FilePrefix marks a POSTBACK_TOKENS value that names a file of pairs.
const FilePrefix = "file:"

// Token length bounds.
const (
	MinTokenLen = 16
	MaxTokenLen = 256
)

// ErrBadTokens is matched (errors.Is) by every parse error of ParseTokens and LoadTokens.
var ErrBadTokens = errors.New("auth: invalid tokens")

// Tokens is a set of API tokens, each bound to an account. The zero value
// and nil hold no token. It is safe for concurrent use (read-only).
type Tokens struct {
	entries []entry
}

type entry struct {
	hash     [sha256.Size]byte
	identity Identity
}

// Len is the number of tokens.
func (t *Tokens) Len() int {
	if t == nil {
		return 0
	}
	return len(t.entries)
}

// String counts tokens without showing any.
func (t *Tokens) String() string {
	ops := 0
	if t != nil {
		for _, e := range t.entries {
			if e.identity.Operator() {
				ops++
			}
		}
	}
	return fmt.Sprintf("auth.Tokens{%d tokens, %d operator}", t.Len(), ops)
}

// GoString is String, so %#v does not print token hashes either.
func (t *Tokens) GoString() string { return t.String() }

// LoadTokens reads a POSTBACK_TOKENS value: comma-separated pairs, or
// "file:<path>" naming a file of pairs one a line. An empty value gives no
// tokens (nil, nil); a file with no pair is an error, so a mount that went
// wrong never opens the API.
func LoadTokens(value string) (*Tokens, error) {
	value = strings.TrimSpace(value)
	if value == "" {
		return nil, nil
	}
	if path, ok := strings.CutPrefix(value, FilePrefix); ok {
		return readTokenFile(strings.TrimSpace(path))
	}
	return ParseTokens(value)
}

// ParseTokens parses comma-separated "token=account" pairs.
func ParseTokens(s string) (*Tokens, error) {
	var b builder
	for i, pair := range strings.Split(s, ",") {
		if err := b.add(pair); err != nil {
			hint := ""
			if i == 0 && !strings.Contains(s, "=") {
				hint = " (to read tokens from a file, write " + FilePrefix + "/path/to/file)"
			}
			return nil, fmt.Errorf("%w: entry %d: %v%s", ErrBadTokens, i+1, err, hint)
		}
	}
	if b.t.Len() == 0 {
		return nil, fmt.Errorf("%w: no token=account pair", ErrBadTokens)
	}
	return b.t, nil
}

func readTokenFile(path string) (*Tokens, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: %s needs a path", ErrBadTokens, FilePrefix)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: token file: %v", ErrBadTokens, err)
	}
	defer f.Close()
	var b builder
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		if err := b.add(text); err != nil {
			return nil, fmt.Errorf("%w: token file %s, line %d: %v", ErrBadTokens, path, line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: token file %s: %v", ErrBadTokens, path, err)
	}
	if b.t.Len() == 0 {
		return nil, fmt.Errorf("%w: token file %s holds no token=account line", ErrBadTokens, path)
	}
	return b.t, nil
}

type builder struct {
	t    *Tokens
	seen map[[sha256.Size]byte]bool
}

// add parses one pair. Its errors never quote the token.
func (b *builder) add(pair string) error {
	if b.t == nil {
		b.t = &Tokens{}
		b.seen = map[[sha256.Size]byte]bool{}
	}
	token, account, ok := strings.Cut(strings.TrimSpace(pair), "=")
	if !ok {
		return errors.New("want token=account")
	}
	token, account = strings.TrimSpace(token), strings.TrimSpace(account)
	if err := checkToken(token); err != nil {
		return err
	}
	if account != OperatorAccount && !id.ValidAccount(account) {
		return fmt.Errorf("account %q: want 1-64 characters of A-Z a-z 0-9 _ -, or * for an operator", account)
	}
	h := sha256.Sum256([]byte(token))
	if b.seen[h] {
		return errors.New("the same token is listed twice")
	}
	b.seen[h] = true
	b.t.entries = append(b.t.entries, entry{hash: h, identity: Identity{Account: account, TokenID: fingerprint(h)}})
	return nil
}

func checkToken(token string) error {
	if len(token) < MinTokenLen || len(token) > MaxTokenLen {
		return fmt.Errorf("a token must be %d to %d characters long, this one has %d", MinTokenLen, MaxTokenLen, len(token))
	}
	for _, c := range []byte(token) {
		if c <= ' ' || c >= 0x7f || c == ',' || c == '=' {
			return errors.New("a token may hold printable ASCII only, without spaces, commas or =")
		}
	}
	return nil
}

// fingerprint names a token in logs: 8 hex characters of its SHA-256, which
// tell tokens apart without helping to guess one.
func fingerprint(h [sha256.Size]byte) string { return hex.EncodeToString(h[:4]) }

// Lookup returns the identity of token. Its time does not depend on which
// entry matches or on how much of a wrong token is right.
func (t *Tokens) Lookup(token string) (Identity, bool) {
	if t == nil || token == "" {
		return Identity{}, false
	}
	h := sha256.Sum256([]byte(token))
	found := 0
	var id Identity
	for i := range t.entries {
		eq := subtle.ConstantTimeCompare(h[:], t.entries[i].hash[:])
		if eq == 1 {
			id = t.entries[i].identity
		}
		found |= eq
	}
	return id, found == 1
}
