package secret

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"sync"
)

// Message authentication with a keyring.
//
// A keyring's keys also authenticate messages: Sum makes an HMAC-SHA256 tag
// with the active key, Verify checks one with the key its kid names, so a
// key is rotated as for sealing (the new key first, the old one kept until
// nothing it tagged is still in flight). The HMAC key is derived from the
// keyring key (HMAC-SHA256 of a fixed label under it), so one key is never
// used by two algorithms. Postback keeps the key that authenticates jobs
// (POSTBACK_JOB_KEY) apart from the one that seals secrets at rest: the
// renderer, which tags jobs, never holds a key that opens a secret.

// macLabel names the derived key's purpose and version.
const macLabel = "postback message authentication v1"

// MACSize is the length of a tag.
const MACSize = sha256.Size

// ErrBadMAC: a message's tag is missing, names no key of the keyring, or
// does not verify.
var ErrBadMAC = errors.New("secret: message authentication failed")

func deriveMACKey(key []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(macLabel))
	return m.Sum(nil)
}

// macPools keep reset HMAC states per derived key (keyed by the key's
// string), so a tag costs no key schedule and no allocation of its own:
// every job is tagged once and checked at least once.
var macPools sync.Map // string(derived key) → *sync.Pool of hash.Hash

func macOf(key []byte) (hash.Hash, func()) {
	p, ok := macPools.Load(string(key))
	if !ok {
		k := append([]byte(nil), key...)
		p, _ = macPools.LoadOrStore(string(key), &sync.Pool{New: func() any { return hmac.New(sha256.New, k) }})
	}
	pool := p.(*sync.Pool)
	m := pool.Get().(hash.Hash)
	return m, func() { m.Reset(); pool.Put(m) }
}

// Sum returns the tag of msg under the active key and that key's kid.
func (k *Keyring) Sum(msg []byte) (kid string, tag []byte, err error) {
	if k == nil || k.active == "" {
		return "", nil, fmt.Errorf("%w: no keyring", ErrBadKeyring)
	}
	m, done := macOf(k.macs[k.active])
	defer done()
	m.Write(msg)
	return k.active, m.Sum(nil), nil
}

// Verify checks tag against msg under the key named kid. It fails with
// ErrBadMAC (wrapped, naming the kid when the keyring does not hold it).
func (k *Keyring) Verify(kid string, msg, tag []byte) error {
	if k == nil {
		return fmt.Errorf("%w: no keyring", ErrBadKeyring)
	}
	if kid == "" || len(tag) == 0 {
		return fmt.Errorf("%w: no tag", ErrBadMAC)
	}
	key, ok := k.macs[kid]
	if !ok {
		if checkKID(kid) != nil {
			return fmt.Errorf("%w: malformed key id", ErrBadMAC)
		}
		return fmt.Errorf("%w: kid %q is not in the keyring", ErrBadMAC, kid)
	}
	m, done := macOf(key)
	defer done()
	m.Write(msg)
	var sum [MACSize]byte
	if !hmac.Equal(m.Sum(sum[:0]), tag) {
		return fmt.Errorf("%w: the tag does not match", ErrBadMAC)
	}
	return nil
}
