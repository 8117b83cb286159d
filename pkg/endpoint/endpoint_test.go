package endpoint

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/postback-dev/postback/pkg/secret"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

func valid() *postbackv1.Endpoint {
	return &postbackv1.Endpoint{AccountId: "brand-1", EventType: "action_lifecycle", Url: "https://brand.example/pb?a={ActionId}"}
}

func TestHeadersTheSenderCannotHonourAreRefused(t *testing.T) {
	for _, name := range []string{
		"Host", "host", "Content-Length", "Transfer-Encoding", "transfer-encoding", "Trailer",
		"Connection", "Keep-Alive", "Proxy-Connection", "TE", "Upgrade", "Proxy-Authorization", "Expect",
		"Accept-Encoding", "Content-Type", "User-Agent",
		"webhook-id", "Webhook-Timestamp", "WEBHOOK-SIGNATURE",
		"Postback-Delivery-Id", "Postback-Attempt", "postback-event-type", "Postback-Anything",
	} {
		e := valid()
		e.Headers = []*postbackv1.Header{{Name: "X-Ok", Value: "1"}, {Name: name, Value: "v"}}
		_, err := Validate(e)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "headers[1].name" || !strings.Contains(fe.Message, `"`+name+`" cannot be configured: `) {
			t.Errorf("%s: Validate = %v, want a refusal of headers[1].name", name, err)
		}
	}
	for _, name := range []string{"Authorization", "X-Api-Key", "Accept", "Cookie", "Webhook-Token", "X-Postback-Id", "Date", "Hosts"} {
		e := valid()
		e.Headers = []*postbackv1.Header{{Name: name, Value: "v"}}
		if _, err := Validate(e); err != nil {
			t.Errorf("%s: refused: %v", name, err)
		}
	}
	// A template fault elsewhere is told first (it is the likelier mistake).
	e := valid()
	e.Url = "https://brand.example/{Nope}"
	e.Headers = []*postbackv1.Header{{Name: "Host", Value: "v"}}
	if _, err := Validate(e); err == nil || !strings.Contains(err.Error(), "url") {
		t.Errorf("Validate = %v, want the url's fault first", err)
	}
}

func testKeyring(t *testing.T) *secret.Keyring {
	t.Helper()
	k, err := secret.ParseKeyring("k1:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, secret.KeySize)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestThePreviousSigningSecretIsSealedOpenedAndMaskedLikeTheSigningSecret(t *testing.T) {
	const current, previous = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB"
	k := testKeyring(t)
	e := valid()
	e.SigningSecret, e.PreviousSigningSecret = current, previous
	e.PreviousSigningSecretExpireTime = timestamppb.New(time.Unix(1_700_000_000, 0))
	clear := proto.Clone(e).(*postbackv1.Endpoint)
	if err := Seal(e, nil, k); err != nil {
		t.Fatal(err)
	}
	if !secret.IsSealed(e.SigningSecret) || !secret.IsSealed(e.PreviousSigningSecret) {
		t.Fatalf("not sealed: %q, %q", e.SigningSecret, e.PreviousSigningSecret)
	}
	stored, _ := proto.Marshal(e)
	if bytes.Contains(stored, []byte(previous[6:])) || bytes.Contains(stored, []byte(current[6:])) {
		t.Fatal("the stored endpoint holds a signing secret in clear")
	}
	opened, err := Open(e, k)
	if err != nil || !proto.Equal(opened, clear) {
		t.Fatalf("Open = %v, %v; want the secrets back", opened, err)
	}
	shown := Masked(e, k)
	if shown.PreviousSigningSecret != "••••AAAB" || shown.SigningSecret != "••••LaSw" {
		t.Fatalf("masked %q and %q", shown.SigningSecret, shown.PreviousSigningSecret)
	}
	// A sealed value another keyring cannot open.
	other, _ := secret.ParseKeyring("k2:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{8}, secret.KeySize)))
	if _, err := Open(e, other); !errors.Is(err, ErrSealed) || strings.Contains(err.Error(), "AAAB") {
		t.Fatalf("Open with another keyring: %v", err)
	}
}

func TestSigningSecretsDuringAndAfterARotation(t *testing.T) {
	expire := time.Unix(1_700_000_000, 0)
	e := valid()
	if got := SigningSecrets(e, expire); got != nil {
		t.Fatalf("no signing secret: %v", got)
	}
	e.SigningSecret = "new"
	if got := SigningSecrets(e, expire); len(got) != 1 || got[0] != "new" {
		t.Fatalf("one secret: %v", got)
	}
	e.PreviousSigningSecret = "old"
	if got := SigningSecrets(e, expire.Add(-time.Hour)); len(got) != 1 {
		t.Fatalf("a previous secret without an expire time signs: %v", got)
	}
	e.PreviousSigningSecretExpireTime = timestamppb.New(expire)
	for _, tc := range []struct {
		at   time.Time
		want string
	}{
		{expire.Add(-time.Hour), "new old"},
		{expire.Add(-time.Nanosecond), "new old"},
		{expire, "new"},
		{expire.Add(time.Hour), "new"},
	} {
		if got := strings.Join(SigningSecrets(e, tc.at), " "); got != tc.want {
			t.Errorf("at expire%+v: %q, want %q", tc.at.Sub(expire), got, tc.want)
		}
	}
	// Without a current secret nothing signs, whatever the previous one.
	e.SigningSecret = ""
	if got := SigningSecrets(e, expire.Add(-time.Hour)); got != nil {
		t.Fatalf("the previous secret alone signs: %v", got)
	}
}

// Secrets are bound to the endpoint's account, id and URL: someone who
// rewrites the stored URL without the key gets secrets that no longer open
// (the sender fails the delivery), while the gateway's own update seals
// them again for the new URL.
func TestSealedSecretsOpenOnlyForTheEndpointTheyWereSealedFor(t *testing.T) {
	k := testKeyring(t)
	e := valid()
	e.Id, e.AccountId = "ep_1", "brand-a"
	e.Headers = []*postbackv1.Header{{Name: "Authorization", Value: "Bearer s3cr3t", Secret: true}}
	e.SigningSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	if err := Seal(e, nil, k); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		alter func(*postbackv1.Endpoint)
	}{
		{"the URL rewritten in storage", func(x *postbackv1.Endpoint) { x.Url = "https://attacker.example/steal" }},
		{"moved to another endpoint", func(x *postbackv1.Endpoint) { x.Id = "ep_2" }},
		{"moved to another account", func(x *postbackv1.Endpoint) { x.AccountId = "brand-b" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tampered := proto.Clone(e).(*postbackv1.Endpoint)
			tc.alter(tampered)
			if _, err := Open(tampered, k); !errors.Is(err, ErrSealed) {
				t.Fatalf("Open = %v, want ErrSealed", err)
			}
		})
	}
	t.Run("the gateway's update seals them again for the new URL", func(t *testing.T) {
		updated := proto.Clone(e).(*postbackv1.Endpoint)
		updated.Url = "https://brand.example/new-hook"
		if err := Seal(updated, e, k); err != nil {
			t.Fatal(err)
		}
		opened, err := Open(updated, k)
		if err != nil || opened.Headers[0].Value != "Bearer s3cr3t" || opened.SigningSecret != "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" {
			t.Fatalf("Open after the update = %v, %v", opened, err)
		}
	})
}
