package gateway

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/postback-dev/postback/pkg/dispatch"
	"github.com/postback-dev/postback/pkg/endpoint"
	"github.com/postback-dev/postback/pkg/secret"
	"github.com/postback-dev/postback/pkg/signature"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

func newSecret(t *testing.T) string {
	t.Helper()
	s, err := signature.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// update sends an UpdateEndpoint of the fields named (with the values in e).
func update(s *Server, e *postbackv1.Endpoint, paths ...string) (*postbackv1.Endpoint, error) {
	var mask *fieldmaskpb.FieldMask
	if len(paths) > 0 {
		mask = &fieldmaskpb.FieldMask{Paths: paths}
	}
	return s.UpdateEndpoint(operator(), &postbackv1.UpdateEndpointRequest{Endpoint: e, UpdateMask: mask})
}

// storedSecrets opens what the endpoint's store holds: its signing secret,
// its previous one and that one's expire time (zero when unset).
func storedSecrets(t *testing.T, s *Server, id string) (current, previous string, expire time.Time) {
	t.Helper()
	e, err := s.endpoints.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{e.SigningSecret, e.PreviousSigningSecret} {
		if v != "" && !secret.IsSealed(v) {
			t.Fatalf("a signing secret is stored in clear")
		}
	}
	opened, err := endpoint.Open(e, s.keyring)
	if err != nil {
		t.Fatal(err)
	}
	if t := e.PreviousSigningSecretExpireTime; t != nil {
		expire = t.AsTime()
	}
	return opened.SigningSecret, opened.PreviousSigningSecret, expire
}

func TestASigningSecretRotationKeepsTheReplacedSecretUntilItsExpireTime(t *testing.T) {
	s, _ := keyedServer(t, time.Hour)
	clock := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return clock }
	const expireField = "endpoint.previous_signing_secret_expire_time"
	a, b, c, d := newSecret(t), newSecret(t), newSecret(t), newSecret(t)

	// On create, the previous secret and its time are output only: ignored.
	ep, err := s.CreateEndpoint(operator(), &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{
		AccountId: "brand-1", EventType: "action_lifecycle", Url: "https://brand.example/pb?a={ActionId}",
		SigningSecret: a, PreviousSigningSecret: d, PreviousSigningSecretExpireTime: timestamppb.New(clock.Add(time.Hour)),
	}})
	if err != nil {
		t.Fatal(err)
	}
	if ep.PreviousSigningSecret != "" || ep.PreviousSigningSecretExpireTime != nil {
		t.Fatalf("create kept a previous secret: %q until %v", ep.PreviousSigningSecret, ep.PreviousSigningSecretExpireTime)
	}
	if cur, prev, _ := storedSecrets(t, s, ep.Id); cur != a || prev != "" {
		t.Fatalf("stored after create: previous set %v", prev != "")
	}

	// Rotate: b signs, and a too for a day.
	day := clock.Add(24 * time.Hour)
	got, err := update(s, &postbackv1.Endpoint{Id: ep.Id, SigningSecret: b, PreviousSigningSecretExpireTime: timestamppb.New(day)},
		"signing_secret", "previous_signing_secret_expire_time")
	if err != nil {
		t.Fatal(err)
	}
	if got.SigningSecret != secret.Mask(b) || got.PreviousSigningSecret != secret.Mask(a) || !got.PreviousSigningSecretExpireTime.AsTime().Equal(day) {
		t.Fatalf("after the rotation the API shows %q, previous %q until %v", got.SigningSecret, got.PreviousSigningSecret, got.PreviousSigningSecretExpireTime)
	}
	if cur, prev, exp := storedSecrets(t, s, ep.Id); cur != b || prev != a || !exp.Equal(day) {
		t.Fatalf("stored after the rotation: new %v, previous %v, until %v", cur == b, prev == a, exp)
	}

	// Sending back what the API returned, every field (an empty mask), changes nothing.
	if _, err := update(s, got); err != nil {
		t.Fatal(err)
	}
	if cur, prev, exp := storedSecrets(t, s, ep.Id); cur != b || prev != a || !exp.Equal(day) {
		t.Fatalf("a round trip changed the rotation: new %v, previous %v, until %v", cur == b, prev == a, exp)
	}
	// Nor does the same secret sent again in clear.
	if _, err := update(s, &postbackv1.Endpoint{Id: ep.Id, SigningSecret: b}, "signing_secret"); err != nil {
		t.Fatal(err)
	}
	if cur, prev, _ := storedSecrets(t, s, ep.Id); cur != b || prev != a {
		t.Fatal("the same secret again ended the rotation")
	}

	// The overlap's end moves; not past 30 days; not to an invalid time.
	twoDays := clock.Add(48 * time.Hour)
	if _, err := update(s, &postbackv1.Endpoint{Id: ep.Id, PreviousSigningSecretExpireTime: timestamppb.New(twoDays)}, "previous_signing_secret_expire_time"); err != nil {
		t.Fatal(err)
	}
	if _, prev, exp := storedSecrets(t, s, ep.Id); prev != a || !exp.Equal(twoDays) {
		t.Fatalf("moving the end: previous %v until %v", prev == a, exp)
	}
	_, err = update(s, &postbackv1.Endpoint{Id: ep.Id, PreviousSigningSecretExpireTime: timestamppb.New(clock.Add(31 * 24 * time.Hour))}, "previous_signing_secret_expire_time")
	checkBadRequest(t, err, expireField)
	_, err = update(s, &postbackv1.Endpoint{Id: ep.Id, SigningSecret: c, PreviousSigningSecretExpireTime: &timestamppb.Timestamp{Seconds: 1, Nanos: -1}},
		"signing_secret", "previous_signing_secret_expire_time")
	checkBadRequest(t, err, expireField)
	// The previous secret is never written directly.
	_, err = update(s, &postbackv1.Endpoint{Id: ep.Id, PreviousSigningSecret: d}, "previous_signing_secret")
	checkBadRequest(t, err, "update_mask.paths[0]")

	// A rotation during a rotation: c signs, and b until its time; a is dropped.
	if _, err := update(s, &postbackv1.Endpoint{Id: ep.Id, SigningSecret: c, PreviousSigningSecretExpireTime: timestamppb.New(day)},
		"signing_secret", "previous_signing_secret_expire_time"); err != nil {
		t.Fatal(err)
	}
	if cur, prev, _ := storedSecrets(t, s, ep.Id); cur != c || prev != b {
		t.Fatalf("a second rotation: new %v, previous is the one it replaced %v", cur == c, prev == b)
	}

	// Ending the overlap now: an unset time.
	if _, err := update(s, &postbackv1.Endpoint{Id: ep.Id}, "previous_signing_secret_expire_time"); err != nil {
		t.Fatal(err)
	}
	if cur, prev, exp := storedSecrets(t, s, ep.Id); cur != c || prev != "" || !exp.IsZero() {
		t.Fatalf("ending the overlap: previous kept %v until %v", prev != "", exp)
	}
	// With no rotation running there is nothing to keep.
	_, err = update(s, &postbackv1.Endpoint{Id: ep.Id, PreviousSigningSecretExpireTime: timestamppb.New(day)}, "previous_signing_secret_expire_time")
	checkBadRequest(t, err, expireField)
	if !strings.Contains(status.Convert(err).Message(), "no previous signing secret to keep") {
		t.Errorf("message %q", status.Convert(err).Message())
	}

	// A new secret without a time (or with a past one) replaces at once, as always.
	if _, err := update(s, &postbackv1.Endpoint{Id: ep.Id, SigningSecret: d}, "signing_secret"); err != nil {
		t.Fatal(err)
	}
	if cur, prev, _ := storedSecrets(t, s, ep.Id); cur != d || prev != "" {
		t.Fatal("a new secret without a time kept the old one")
	}
	if _, err := update(s, &postbackv1.Endpoint{Id: ep.Id, SigningSecret: a, PreviousSigningSecretExpireTime: timestamppb.New(clock.Add(-time.Second))},
		"signing_secret", "previous_signing_secret_expire_time"); err != nil {
		t.Fatal(err)
	}
	if cur, prev, _ := storedSecrets(t, s, ep.Id); cur != a || prev != "" {
		t.Fatal("a new secret with a past time kept the old one")
	}

	// Once its time has passed, the next update drops the previous secret
	// from the store (the sender stopped using it at that time).
	if _, err := update(s, &postbackv1.Endpoint{Id: ep.Id, SigningSecret: b, PreviousSigningSecretExpireTime: timestamppb.New(clock.Add(time.Hour))},
		"signing_secret", "previous_signing_secret_expire_time"); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(2 * time.Hour)
	if _, err := update(s, &postbackv1.Endpoint{Id: ep.Id, Url: "https://brand.example/pb2?a={ActionId}"}, "url"); err != nil {
		t.Fatal(err)
	}
	if cur, prev, exp := storedSecrets(t, s, ep.Id); cur != b || prev != "" || !exp.IsZero() {
		t.Fatalf("an expired previous secret is still stored (%v, until %v)", prev != "", exp)
	}
	// Removing the signing secret removes both.
	if _, err := update(s, &postbackv1.Endpoint{Id: ep.Id, SigningSecret: c, PreviousSigningSecretExpireTime: timestamppb.New(clock.Add(time.Hour))},
		"signing_secret", "previous_signing_secret_expire_time"); err != nil {
		t.Fatal(err)
	}
	if _, err := update(s, &postbackv1.Endpoint{Id: ep.Id, SigningSecret: "", PreviousSigningSecretExpireTime: timestamppb.New(clock.Add(time.Hour))},
		"signing_secret", "previous_signing_secret_expire_time"); err != nil {
		t.Fatal(err)
	}
	if cur, prev, _ := storedSecrets(t, s, ep.Id); cur != "" || prev != "" {
		t.Fatal("removing the signing secret kept one")
	}
}

// TestEndpoint goes through the sealed store and the dispatcher: during a
// rotation the receiver gets both signatures, after it one.
func TestATestSendDuringARotationCarriesBothSignatures(t *testing.T) {
	s, _ := keyedServer(t, time.Hour)
	s.dispatcher = dispatch.New(dispatch.Options{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	type request struct {
		header http.Header
		body   []byte
	}
	got := make(chan request, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- request{r.Header.Clone(), b}
	}))
	defer srv.Close()
	oldSecret, newSecret := newSecret(t), newSecret(t)
	ep, err := s.CreateEndpoint(operator(), &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{
		AccountId: "brand-1", EventType: "action_lifecycle", Url: srv.URL + "/pb", Method: postbackv1.HttpMethod_HTTP_METHOD_POST,
		SigningSecret: oldSecret}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := update(s, &postbackv1.Endpoint{Id: ep.Id, SigningSecret: newSecret, PreviousSigningSecretExpireTime: timestamppb.New(time.Now().Add(time.Hour))},
		"signing_secret", "previous_signing_secret_expire_time"); err != nil {
		t.Fatal(err)
	}
	send := func() request {
		t.Helper()
		if _, err := s.TestEndpoint(operator(), &postbackv1.TestEndpointRequest{Id: ep.Id}); err != nil {
			t.Fatal(err)
		}
		return <-got
	}
	r := send()
	if n := len(strings.Fields(r.header.Get(signature.HeaderSignature))); n != 2 {
		t.Fatalf("during the rotation webhook-signature has %d entries, want 2", n)
	}
	for _, key := range []string{oldSecret, newSecret} {
		if err := signature.Verify(key, r.header, r.body, time.Now(), 0); err != nil {
			t.Fatalf("during the rotation: %v", err)
		}
	}
	if _, err := update(s, &postbackv1.Endpoint{Id: ep.Id}, "previous_signing_secret_expire_time"); err != nil {
		t.Fatal(err)
	}
	r = send()
	if err := signature.Verify(newSecret, r.header, r.body, time.Now(), 0); err != nil {
		t.Fatalf("after the rotation: %v", err)
	}
	if err := signature.Verify(oldSecret, r.header, r.body, time.Now(), 0); err == nil {
		t.Fatal("after the rotation the old secret still verifies")
	}
}

func TestHeadersTheSenderCannotHonourAreRefusedAtSave(t *testing.T) {
	s := fuzzServer(t, Limits{})
	e := &postbackv1.Endpoint{AccountId: "brand-1", EventType: "action_lifecycle", Url: "https://brand.example/pb",
		Headers: []*postbackv1.Header{
			{Name: "Host", Value: "other.example"},
			{Name: "Authorization", Value: "Bearer x", Secret: true},
			{Name: "Content-Length", Value: "10"},
			{Name: "transfer-encoding", Value: "chunked"},
			{Name: "X-Campaign", Value: "{CampaignId}"},
			{Name: "Connection", Value: "close"},
			{Name: "webhook-signature", Value: "v1,AAAA"},
			{Name: "Postback-Attempt", Value: "7"},
			{Name: "User-Agent", Value: "mine"},
		}}
	want := []string{"endpoint.headers[0].name", "endpoint.headers[2].name", "endpoint.headers[3].name",
		"endpoint.headers[5].name", "endpoint.headers[6].name", "endpoint.headers[7].name", "endpoint.headers[8].name"}
	err := s.validateForSave(e)
	checkBadRequest(t, err, want...)
	msg := status.Convert(err).Message()
	for _, part := range []string{
		`endpoint.headers[0].name: "Host" cannot be configured: the sender sets it from the URL`,
		`endpoint.headers[3].name: "transfer-encoding" cannot be configured: `,
		`"Connection" cannot be configured: a hop-by-hop header`,
	} {
		if !strings.Contains(msg, part) {
			t.Errorf("message %q lacks %q", msg, part)
		}
	}
	// CreateEndpoint and PreviewEndpoint refuse them too.
	if _, err := s.CreateEndpoint(operator(), &postbackv1.CreateEndpointRequest{Endpoint: e}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("CreateEndpoint: %v", err)
	}
	if _, err := s.PreviewEndpoint(operator(), &postbackv1.PreviewEndpointRequest{Endpoint: e}); status.Code(err) != codes.InvalidArgument ||
		!strings.Contains(err.Error(), "endpoint.headers[0].name") {
		t.Errorf("PreviewEndpoint: %v", err)
	}
}
