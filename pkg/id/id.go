// Package id makes Postback's identifiers: a type prefix ("evt_", "ep_",
// "dlv_") and a 26-character ULID-style body (48-bit millisecond time, 80
// random bits, Crockford base32), so ids sort by creation time and say what
// they name. Derived ids (Derive) are the same prefix and length, computed
// from their inputs so that a redelivered message produces the same id again.
package id

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"strings"
	"time"
)

// Prefixes of the ids Postback hands out.
const (
	Event    = "evt_"
	Endpoint = "ep_"
	Delivery = "dlv_"
)

const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// New returns prefix followed by a time-ordered random body.
func New(prefix string, now time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli())<<16)
	if _, err := rand.Read(b[6:]); err != nil {
		panic("id: crypto/rand failed: " + err.Error())
	}
	return prefix + encode(b)
}

// Derive returns prefix followed by a body computed from the parts: the same
// parts always give the same id. The first 48 bits still carry the time, so
// derived ids sort with random ones.
func Derive(prefix string, now time.Time, parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	var b [16]byte
	copy(b[6:], h.Sum(nil)[:10])
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli())<<16|uint64(binary.BigEndian.Uint16(b[6:8])))
	return prefix + encode(b)
}

// Valid reports whether s looks like an id with the given prefix.
func Valid(prefix, s string) bool {
	if len(s) != len(prefix)+26 || s[:len(prefix)] != prefix {
		return false
	}
	for i := len(prefix); i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// Time is the time an id of any prefix carries (to the millisecond): when
// it was made, or for a derived id the time it was derived with. ok is
// false when s does not end in a well-formed body.
func Time(s string) (t time.Time, ok bool) {
	if len(s) < 26 {
		return time.Time{}, false
	}
	body := s[len(s)-26:]
	var ms int64
	for i := range 10 { // 3 + 9·5 = 48 bits of milliseconds
		v := strings.IndexByte(alphabet, body[i])
		if v < 0 || i == 0 && v > 7 {
			return time.Time{}, false
		}
		ms = ms<<5 | int64(v)
	}
	return time.UnixMilli(ms).UTC(), true
}

// encode writes 128 bits as 26 Crockford base32 characters (the first
// character carries the top 3 bits).
func encode(b [16]byte) string {
	hi := binary.BigEndian.Uint64(b[:8])
	lo := binary.BigEndian.Uint64(b[8:])
	var out [26]byte
	for i := 25; i >= 0; i-- {
		out[i] = alphabet[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}

// ValidToken reports whether s fits one token of a subject or key, as
// every id in a subject must: 1-64 of A-Z a-z 0-9 _ - (no dots, spaces,
// wildcards or control characters). A loop, not a regexp: the history
// writer checks four ids of every change it stores.
func ValidToken(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ValidAccount reports whether s is a well-formed account id. Accounts
// are the brands' own ids, not made here; they only have to fit a subject.
func ValidAccount(s string) bool { return ValidToken(s) }
