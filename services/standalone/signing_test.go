package standalone

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/postback-dev/postback/pkg/endpoints"
	"github.com/postback-dev/postback/pkg/signature"
	"github.com/postback-dev/postback/pkg/stream"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// TestSignedPostbacksVerifyAtTheReceiverThroughARotation publishes to a
// signed GET endpoint and a signed POST endpoint, end to end (gateway,
// renderer, sender): the GET verifies over "GET " and the full URL the
// receiver got, the POST over its body. Then it rotates both secrets
// through UpdateEndpoint, keeping the replaced ones for an hour: each
// postback verifies with either secret, and the KV value holds the previous
// secret sealed. Ended early, only the new secret verifies.
func TestSignedPostbacksVerifyAtTheReceiverThroughARotation(t *testing.T) {
	h := start(t, "", nil)
	rc := newReceiver(t)
	ctx := context.Background()
	oldSecret, _ := signature.GenerateSecret()
	newSecret, _ := signature.GenerateSecret()
	get, err := h.endpoints.CreateEndpoint(ctx, &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{
		AccountId: "brand-1", EventType: "action_clearing", Method: postbackv1.HttpMethod_HTTP_METHOD_GET,
		Url: rc.URL + "/get/{CampaignId}?ids={ActionIds}&note=a%20b", SigningSecret: oldSecret}})
	if err != nil {
		t.Fatal(err)
	}
	post, err := h.endpoints.CreateEndpoint(ctx, &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{
		AccountId: "brand-1", EventType: "action_clearing", Method: postbackv1.HttpMethod_HTTP_METHOD_POST,
		Url: rc.URL + "/post", BodyFormat: postbackv1.BodyFormat_BODY_FORMAT_FORM, BodyTemplate: "ids={ActionIds}",
		SigningSecret: oldSecret}})
	if err != nil {
		t.Fatal(err)
	}

	// publish sends one event and returns the two requests, GET first.
	publish := func() (received, received) {
		t.Helper()
		if _, err := h.events.Publish(ctx, &postbackv1.PublishRequest{AccountId: "brand-1", EventType: "action_clearing",
			Data: sampleData(t, "action_clearing")}); err != nil {
			t.Fatal(err)
		}
		a, b := rc.next(t, 10*time.Second), rc.next(t, 10*time.Second)
		if a.Method != "GET" {
			a, b = b, a
		}
		if a.Method != "GET" || b.Method != "POST" {
			t.Fatalf("got a %s and a %s", a.Method, b.Method)
		}
		return a, b
	}
	verify := func(what, secret string, r received) error {
		payload := r.Body
		if r.Method == "GET" {
			payload = signature.Payload("GET", "http://"+r.Host+r.Target, nil)
		}
		return signature.Verify(secret, r.Header, payload, time.Now(), 0)
	}

	g, p := publish()
	if g.Target != "/get/9876?ids=ACT-101%2CACT-102&note=a%20b" || len(g.Body) != 0 {
		t.Fatalf("the GET's target is %q", g.Target)
	}
	for _, r := range []received{g, p} {
		if err := verify(r.Method, oldSecret, r); err != nil {
			t.Fatalf("%s: %v", r.Method, err)
		}
	}
	if err := signature.Verify(oldSecret, g.Header, nil, time.Now(), 0); err == nil {
		t.Fatal("the GET verifies over an empty body: its URL is not signed")
	}

	// Rotate both, the old secret kept for an hour.
	for _, ep := range []*postbackv1.Endpoint{get, post} {
		got, err := h.endpoints.UpdateEndpoint(ctx, &postbackv1.UpdateEndpointRequest{
			Endpoint:   &postbackv1.Endpoint{Id: ep.Id, SigningSecret: newSecret, PreviousSigningSecretExpireTime: timestamppb.New(time.Now().Add(time.Hour))},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"signing_secret", "previous_signing_secret_expire_time"}}})
		if err != nil {
			t.Fatal(err)
		}
		if got.PreviousSigningSecret != "••••"+oldSecret[len(oldSecret)-4:] || got.PreviousSigningSecretExpireTime == nil {
			t.Fatalf("the API shows the previous secret as %q until %v", got.PreviousSigningSecret, got.PreviousSigningSecretExpireTime)
		}
	}
	js := h.jetStream(t)
	kv, err := js.KeyValue(ctx, stream.EndpointsBucket)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := kv.Get(ctx, endpoints.KeyOf("brand-1", "action_clearing", get.Id))
	if err != nil {
		t.Fatal(err)
	}
	stored := &postbackv1.Endpoint{}
	if err := proto.Unmarshal(entry.Value(), stored); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(stored.PreviousSigningSecret, "enc:v2:") || strings.Contains(string(entry.Value()), strings.TrimPrefix(oldSecret, "whsec_")) {
		t.Fatalf("the previous secret is not sealed at rest")
	}
	// The sender sees the change as soon as its endpoint cache does.
	eventually(t, 10*time.Second, "postbacks signed with both secrets", func() bool {
		g, p := publish()
		for _, r := range []received{g, p} {
			if len(strings.Fields(r.Header.Get(signature.HeaderSignature))) != 2 {
				return false
			}
			for _, secret := range []string{oldSecret, newSecret} {
				if err := verify(r.Method, secret, r); err != nil {
					t.Fatalf("%s during the rotation: %v", r.Method, err)
				}
			}
		}
		return true
	})

	// End the overlap now: only the new secret signs.
	for _, ep := range []*postbackv1.Endpoint{get, post} {
		if _, err := h.endpoints.UpdateEndpoint(ctx, &postbackv1.UpdateEndpointRequest{Endpoint: &postbackv1.Endpoint{Id: ep.Id},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"previous_signing_secret_expire_time"}}}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "postbacks signed with the new secret alone", func() bool {
		g, p := publish()
		for _, r := range []received{g, p} {
			if verify(r.Method, oldSecret, r) == nil {
				return false
			}
			if err := verify(r.Method, newSecret, r); err != nil {
				t.Fatalf("%s after the rotation: %v", r.Method, err)
			}
		}
		return true
	})
}
