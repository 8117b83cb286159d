package signature

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The Standard Webhooks test vector, from the specification's reference Go library
// (standard-webhooks/standard-webhooks, libraries/go/webhook_test.go, TestWebhookSign;
// the same values appear in its other libraries' tests). Cross-checked independently:
// HMAC-SHA256 over "msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{"test": 2432232314}" with
// the 24-byte key base64-decoded from the secret gives this signature.
const (
	vectorSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorMsgID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTimestamp = 1614265330
	vectorPayload   = `{"test": 2432232314}`
	vectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	// A well-formed v1 signature that matches nothing here (same library's tests).
	unrelatedSignature = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
)

var vectorTime = time.Unix(vectorTimestamp, 0)

func TestSignMatchesTheStandardWebhooksVector(t *testing.T) {
	for _, secret := range []string{vectorSecret, strings.TrimPrefix(vectorSecret, SecretPrefix)} {
		s, err := NewSigner(secret)
		if err != nil {
			t.Fatalf("NewSigner: %v", err)
		}
		if got := s.Sign(vectorMsgID, vectorTime, []byte(vectorPayload)); got != vectorSignature {
			t.Errorf("secret %q: Sign = %s, want %s", secret, got, vectorSignature)
		}
	}
	// Sub-second parts of the timestamp are not signed: the header carries seconds.
	s, _ := NewSigner(vectorSecret)
	if got := s.Sign(vectorMsgID, vectorTime.Add(999*time.Millisecond), []byte(vectorPayload)); got != vectorSignature {
		t.Errorf("sub-second timestamp changed the signature: %s", got)
	}
}

func TestVerifyAcceptsTheVector(t *testing.T) {
	h := header(Headers(vectorMsgID, vectorTime, vectorSignature))
	if err := Verify(vectorSecret, h, []byte(vectorPayload), vectorTime.Add(10*time.Second), time.Minute); err != nil {
		t.Fatalf("Verify rejected the specification's vector: %v", err)
	}
}

func TestHeaders(t *testing.T) {
	got := Headers(vectorMsgID, vectorTime, vectorSignature)
	want := map[string]string{
		"webhook-id":        vectorMsgID,
		"webhook-timestamp": "1614265330",
		"webhook-signature": vectorSignature,
	}
	if len(got) != len(want) {
		t.Fatalf("Headers = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

func TestVerify(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	body := []byte(`{"ActionId":"ACT-778899","Payout":10.50}`)
	const msgID = "dlv_01HXYZ"
	secret, err := GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := GenerateSecret()
	signer, _ := NewSigner(secret)
	good := signer.Sign(msgID, now, body)

	tests := []struct {
		name    string
		secret  string
		headers map[string]string
		body    []byte
		tol     time.Duration
		wantErr error // nil = valid
	}{
		{name: "valid", secret: secret, headers: Headers(msgID, now, good), body: body},
		{name: "valid with a bare base64 secret", secret: strings.TrimPrefix(secret, SecretPrefix), headers: Headers(msgID, now, good), body: body},
		{name: "tampered body", secret: secret, headers: Headers(msgID, now, good), body: []byte(`{"ActionId":"ACT-778899","Payout":99.50}`), wantErr: ErrNoMatch},
		{name: "one byte appended to the body", secret: secret, headers: Headers(msgID, now, good), body: []byte(string(body) + " "), wantErr: ErrNoMatch},
		{name: "wrong secret", secret: other, headers: Headers(msgID, now, good), body: body, wantErr: ErrNoMatch},
		{name: "different webhook-id", secret: secret, headers: Headers("dlv_other", now, good), body: body, wantErr: ErrNoMatch},
		{name: "timestamp header changed after signing", secret: secret, headers: Headers(msgID, now.Add(-time.Second), good), body: body, wantErr: ErrNoMatch},
		{name: "old timestamp", secret: secret, headers: Headers(msgID, now.Add(-6*time.Minute), signer.Sign(msgID, now.Add(-6*time.Minute), body)), body: body, wantErr: ErrTimestampTooOld},
		{name: "future timestamp", secret: secret, headers: Headers(msgID, now.Add(6*time.Minute), signer.Sign(msgID, now.Add(6*time.Minute), body)), body: body, wantErr: ErrTimestampTooNew},
		{name: "at the edge of the tolerance", secret: secret, headers: Headers(msgID, now.Add(-5*time.Minute), signer.Sign(msgID, now.Add(-5*time.Minute), body)), body: body},
		{name: "a custom tolerance", secret: secret, headers: Headers(msgID, now.Add(-2*time.Second), signer.Sign(msgID, now.Add(-2*time.Second), body)), body: body, tol: time.Second, wantErr: ErrTimestampTooOld},
		{name: "rotation: any space-separated v1 entry may match", secret: secret, headers: Headers(msgID, now, strings.Join([]string{unrelatedSignature, "v1a,AAAA", good, "v2," + strings.TrimPrefix(good, "v1,")}, " ")), body: body},
		{name: "a matching MAC under another version is not accepted", secret: secret, headers: Headers(msgID, now, "v2,"+strings.TrimPrefix(good, "v1,")), body: body, wantErr: ErrNoMatch},
		{name: "garbage signature entries", secret: secret, headers: Headers(msgID, now, "v1 v1, v1,!!! ,"), body: body, wantErr: ErrNoMatch},
		{name: "missing webhook-id", secret: secret, headers: without(Headers(msgID, now, good), HeaderID), body: body, wantErr: ErrMissingHeader},
		{name: "missing webhook-timestamp", secret: secret, headers: without(Headers(msgID, now, good), HeaderTimestamp), body: body, wantErr: ErrMissingHeader},
		{name: "missing webhook-signature", secret: secret, headers: without(Headers(msgID, now, good), HeaderSignature), body: body, wantErr: ErrMissingHeader},
		{name: "timestamp not a number", secret: secret, headers: with(Headers(msgID, now, good), HeaderTimestamp, "yesterday"), body: body, wantErr: ErrInvalidTimestamp},
		{name: "timestamp in milliseconds is out of tolerance", secret: secret, headers: with(Headers(msgID, now, good), HeaderTimestamp, fmt.Sprint(now.UnixMilli())), body: body, wantErr: ErrTimestampTooNew},
		{name: "invalid secret", secret: "whsec_???", headers: Headers(msgID, now, good), body: body, wantErr: ErrInvalidSecret},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Verify(tc.secret, header(tc.headers), tc.body, now, tc.tol)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Verify: %v, want valid", err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Verify: %v, want %v", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), strings.TrimPrefix(tc.secret, SecretPrefix)) {
				t.Errorf("error %q contains the secret", err)
			}
		})
	}
}

func TestNewSignerRejects(t *testing.T) {
	b64 := func(n int) string { return SecretPrefix + base64.StdEncoding.EncodeToString(make([]byte, n)) }
	tests := []struct {
		name, secret string
	}{
		{"empty", ""},
		{"prefix only", SecretPrefix},
		{"not base64", "whsec_not base64!"},
		{"shorter than 24 bytes", b64(23)},
		{"longer than 64 bytes", b64(65)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewSigner(tc.secret)
			if !errors.Is(err, ErrInvalidSecret) {
				t.Fatalf("NewSigner(%q): %v, want ErrInvalidSecret", tc.secret, err)
			}
			if body := strings.TrimPrefix(tc.secret, SecretPrefix); body != "" && strings.Contains(err.Error(), body) {
				t.Errorf("error %q echoes the secret", err)
			}
		})
	}
	for _, n := range []int{24, 32, 64} {
		if _, err := NewSigner(b64(n)); err != nil {
			t.Errorf("%d-byte key: %v", n, err)
		}
	}
	// Unpadded base64 is accepted as well.
	if _, err := NewSigner(strings.TrimRight(b64(32), "=")); err != nil {
		t.Errorf("unpadded secret: %v", err)
	}
}

func TestGenerateSecret(t *testing.T) {
	a, err := GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := GenerateSecret()
	if a == b {
		t.Fatal("two generated secrets are equal")
	}
	if !strings.HasPrefix(a, SecretPrefix) {
		t.Fatalf("%q lacks the whsec_ prefix", a)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(a, SecretPrefix))
	if err != nil || len(key) != 24 {
		t.Fatalf("generated secret decodes to %d bytes (%v), want 24", len(key), err)
	}
	if _, err := NewSigner(a); err != nil {
		t.Fatalf("a generated secret is not usable: %v", err)
	}
}

func TestSignerDoesNotPrintItsKey(t *testing.T) {
	s, _ := NewSigner(vectorSecret)
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(vectorSecret, SecretPrefix))
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(format, s)
		if strings.Contains(out, fmt.Sprint(key)) || strings.Contains(out, fmt.Sprintf("%#v", key)) || strings.Contains(out, "MfKQ9r8G") {
			t.Errorf("%s prints the key: %s", format, out)
		}
	}
}

func header(m map[string]string) http.Header {
	h := http.Header{}
	for k, v := range m {
		h.Set(k, v)
	}
	return h
}

func without(m map[string]string, name string) map[string]string {
	delete(m, name)
	return m
}

func with(m map[string]string, name, value string) map[string]string {
	m[name] = value
	return m
}

func TestPayloadIsTheBodyOrForAGetTheMethodAndFullURL(t *testing.T) {
	body := []byte(`{"a":1}`)
	if got := Payload(http.MethodPost, "https://brand.example/pb?x=1", body); string(got) != string(body) {
		t.Errorf("POST payload = %q, want the body", got)
	}
	const u = "https://brand.example/pb?ActionId=ACT-1&Payout=10.50"
	if got := Payload(http.MethodGet, u, nil); string(got) != "GET "+u {
		t.Errorf("GET payload = %q", got)
	}
	// A GET signed this way verifies against its URL only: another query
	// string is refused.
	now := time.Unix(1_700_000_000, 0)
	secret, _ := GenerateSecret()
	s, _ := NewSigner(secret)
	h := header(Headers("dlv_1", now, s.Sign("dlv_1", now, Payload(http.MethodGet, u, nil))))
	if err := Verify(secret, h, Payload(http.MethodGet, u, nil), now, 0); err != nil {
		t.Fatalf("Verify of the GET's own URL: %v", err)
	}
	for _, other := range []string{
		"https://brand.example/pb?ActionId=ACT-1&Payout=99.50",
		"https://brand.example/pb?ActionId=ACT-1",
		"https://other.example/pb?ActionId=ACT-1&Payout=10.50",
		"http://brand.example/pb?ActionId=ACT-1&Payout=10.50",
	} {
		if err := Verify(secret, h, Payload(http.MethodGet, other, nil), now, 0); !errors.Is(err, ErrNoMatch) {
			t.Errorf("Verify of %s: %v, want ErrNoMatch", other, err)
		}
	}
	// And the empty body, what a GET used to be signed over, no longer verifies.
	if err := Verify(secret, h, nil, now, 0); !errors.Is(err, ErrNoMatch) {
		t.Errorf("Verify over the empty body: %v, want ErrNoMatch", err)
	}
}
