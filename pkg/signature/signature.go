// Package signature signs postbacks the Standard Webhooks way (docs/architecture.md, decision 8),
// so a brand can verify them with any of that specification's libraries.
//
// Scheme (standard-webhooks spec, "Signature scheme" and "Webhook headers"):
//
//   - The secret is "whsec_" + base64(key bytes); the key is 24 to 64 random bytes.
//     The prefix only identifies the format; a bare base64 secret is accepted too.
//   - The signed content is "<msg id>.<timestamp>.<body>": the webhook-id, the attempt's
//     unix time in seconds, and the exact body bytes sent, joined by full stops.
//   - The signature is "v1," + base64(HMAC-SHA256(key, content)).
//   - Three headers carry it: webhook-id, webhook-timestamp, webhook-signature. The
//     signature header is a space-separated list (several entries during a key
//     rotation); a receiver accepts the request if any v1 entry matches.
//
// What is signed in place of "<body>" is Payload's: the body for a request that has one
// (a POST), and for a GET, which has none, "GET " followed by the full URL as sent. So a
// GET's data points, which travel in its query string, are signed too; a receiver rebuilds
// that text from the request it got and hands it to its library as the payload.
//
// The msg id stays the same across retries (a receiver deduplicates on it) while the
// timestamp is each attempt's own, so a retry is signed afresh. The msg id must not
// contain a full stop: the id and timestamp are Postback's, never a brand's input.
//
// Verify is for tests and receivers (the demo receiver, end-to-end tests): it checks
// the timestamp against a tolerance to refuse replays and compares in constant time.
package signature

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names, as the specification spells them.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix marks a Standard Webhooks symmetric signing secret.
const SecretPrefix = "whsec_"

// DefaultTolerance is the timestamp tolerance Verify uses when given zero or less.
const DefaultTolerance = 5 * time.Minute

// Key sizes from the specification: at least 24 bytes (192 bits), at most 64 (512 bits).
const (
	minKeyBytes      = 24
	maxKeyBytes      = 64
	generatedKeySize = 24
)

// Errors returned by NewSigner and Verify. They never include the secret.
var (
	ErrInvalidSecret    = errors.New("signature: invalid signing secret")
	ErrMissingHeader    = errors.New("signature: missing webhook header")
	ErrInvalidTimestamp = errors.New("signature: invalid webhook-timestamp")
	ErrTimestampTooOld  = errors.New("signature: webhook-timestamp too old")
	ErrTimestampTooNew  = errors.New("signature: webhook-timestamp too far in the future")
	ErrNoMatch          = errors.New("signature: no matching v1 signature")
)

// Signer signs postbacks with one endpoint's secret. It is safe for concurrent use.
// Its String and GoString never show the key, so a Signer that ends up in a log
// line or error message does not leak it.
type Signer struct {
	key []byte
}

// NewSigner parses a signing secret: "whsec_" + standard base64 of the key, or the
// bare base64. The decoded key must be 24 to 64 bytes long.
func NewSigner(secret string) (*Signer, error) {
	key, err := decodeSecret(secret)
	if err != nil {
		return nil, err
	}
	return &Signer{key: key}, nil
}

func decodeSecret(secret string) ([]byte, error) {
	b64 := strings.TrimPrefix(strings.TrimSpace(secret), SecretPrefix)
	if b64 == "" {
		return nil, fmt.Errorf("%w: empty", ErrInvalidSecret)
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		// Accept unpadded base64 too; never echo the input or the decoder's detail.
		key, err = base64.RawStdEncoding.DecodeString(b64)
		if err != nil {
			return nil, fmt.Errorf("%w: not %s followed by base64", ErrInvalidSecret, SecretPrefix)
		}
	}
	if len(key) < minKeyBytes || len(key) > maxKeyBytes {
		return nil, fmt.Errorf("%w: key is %d bytes, want %d to %d", ErrInvalidSecret, len(key), minKeyBytes, maxKeyBytes)
	}
	return key, nil
}

// Sign returns the webhook-signature value for one attempt: "v1," followed by the
// base64 HMAC-SHA256 of "msgID.<ts unix seconds>.body".
func (s *Signer) Sign(msgID string, ts time.Time, body []byte) string {
	return "v1," + base64.StdEncoding.EncodeToString(mac(s.key, msgID, ts.Unix(), body))
}

// Payload is what a postback's signature covers after "<msg id>.<timestamp>.": for a GET,
// "GET " and its full URL as sent (scheme, "://", the Host header, then the request
// target: the path and query exactly as on the request line); for any other method, the
// body bytes. A GET carries its data in the URL and has no body, so signing the body
// would leave the data unprotected.
func Payload(method, fullURL string, body []byte) []byte {
	if method == http.MethodGet {
		return []byte(http.MethodGet + " " + fullURL)
	}
	return body
}

// String describes the Signer without its key.
func (s *Signer) String() string { return "signature.Signer{key: redacted}" }

// GoString describes the Signer without its key (for %#v).
func (s *Signer) GoString() string { return s.String() }

func mac(key []byte, msgID string, unix int64, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msgID))
	h.Write([]byte{'.'})
	h.Write(strconv.AppendInt(nil, unix, 10))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// Headers returns the three Standard Webhooks headers for an attempt: webhook-id,
// webhook-timestamp (unix seconds) and webhook-signature. ts must be the time
// passed to Sign.
func Headers(msgID string, ts time.Time, signature string) map[string]string {
	return map[string]string{
		HeaderID:        msgID,
		HeaderTimestamp: strconv.FormatInt(ts.Unix(), 10),
		HeaderSignature: signature,
	}
}

// Verify checks a received postback the way a Standard Webhooks receiver does:
// the three headers are present, webhook-timestamp is within tolerance of now
// (either direction; tolerance <= 0 means DefaultTolerance), and at least one
// space-separated "v1,<base64>" entry of webhook-signature matches the body under
// secret (compared in constant time). Entries of other versions (e.g. v1a) are
// skipped. It returns nil when the postback is authentic. For a GET, pass
// Payload("GET", the full URL, nil) as body.
func Verify(secret string, headers http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	key, err := decodeSecret(secret)
	if err != nil {
		return err
	}
	for _, name := range []string{HeaderID, HeaderTimestamp, HeaderSignature} {
		if headers.Get(name) == "" {
			return fmt.Errorf("%w: %s", ErrMissingHeader, name)
		}
	}
	msgID, tsText, sigs := headers.Get(HeaderID), headers.Get(HeaderTimestamp), headers.Get(HeaderSignature)
	unix, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: not unix seconds", ErrInvalidTimestamp)
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	ts := time.Unix(unix, 0)
	switch {
	case now.Sub(ts) > tolerance:
		return ErrTimestampTooOld
	case ts.Sub(now) > tolerance:
		return ErrTimestampTooNew
	}
	want := mac(key, msgID, unix, body)
	for _, entry := range strings.Fields(sigs) {
		version, b64, found := strings.Cut(entry, ",")
		if !found || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			continue
		}
		if hmac.Equal(got, want) {
			return nil
		}
	}
	return ErrNoMatch
}

// GenerateSecret returns a new signing secret: "whsec_" + base64 of 24 random bytes.
func GenerateSecret() (string, error) {
	key := make([]byte, generatedKeySize)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("signature: generating a secret: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(key), nil
}
