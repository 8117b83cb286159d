package standalone

// Security and tenancy, end to end (issue 9): authentication on every RPC,
// an account token confined to its account, secrets that appear nowhere but
// at the receiver, TLS and mutual TLS on the gRPC listener, and input limits.

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/postback-dev/postback/pkg/auth"
	"github.com/postback-dev/postback/pkg/auth/authtest"
	"github.com/postback-dev/postback/pkg/endpoints"
	"github.com/postback-dev/postback/pkg/signature"
	"github.com/postback-dev/postback/pkg/stream"
	"github.com/postback-dev/postback/pkg/stream/streamtest"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// The three tokens of the tenancy tests: two accounts and an operator.
const (
	tokenA  = "tA-0123456789abcdef-account-a"
	tokenB  = "tB-0123456789abcdef-account-b"
	tokenOp = "tOp-0123456789abcdef-operator"
	acctA   = "acctA"
	acctB   = "acctB"
)

// withTokens configures the three tokens through a token file (the
// Kubernetes-secret form of POSTBACK_TOKENS).
func withTokens(t *testing.T) func(*Config) {
	path := filepath.Join(t.TempDir(), "tokens")
	body := "# tenancy tests\n" + tokenA + "=" + acctA + "\n" + tokenB + "=" + acctB + "\n" + tokenOp + "=*\n"
	if err := os.WriteFile(path, []byte(body), 0o400); err != nil {
		t.Fatal(err)
	}
	return func(c *Config) { c.Tokens = auth.FilePrefix + path }
}

// as is a context that calls with token ("" = no authorization metadata).
func as(t *testing.T, token string) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	if token == "" {
		return ctx
	}
	return auth.WithBearer(ctx, token)
}

// logBuffer collects a standalone's log lines (JSON, debug level).
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func withLogs(b *logBuffer) func(*Config) {
	return func(c *Config) {
		c.Logger = slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
}

func edits(fs ...func(*Config)) func(*Config) {
	return func(c *Config) {
		for _, f := range fs {
			f(c)
		}
	}
}

// accountData is one account's endpoint and delivered event.
type accountData struct {
	endpoint *postbackv1.Endpoint
	eventID  string
	delivery string
}

// deliverOne creates an endpoint for account to rc and publishes one event,
// both with token, and waits until the delivery has SUCCEEDED.
func deliverOne(t *testing.T, h *harness, rc *receiver, token, account string) accountData {
	t.Helper()
	ctx := as(t, token)
	ep, err := h.endpoints.CreateEndpoint(ctx, &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{
		AccountId: account, EventType: "action_clearing", Url: rc.URL + "/" + account,
		Method: postbackv1.HttpMethod_HTTP_METHOD_POST}})
	if err != nil {
		t.Fatalf("CreateEndpoint as %s: %v", account, err)
	}
	pub, err := h.events.Publish(ctx, &postbackv1.PublishRequest{AccountId: account, EventType: "action_clearing", Data: sampleData(t, "action_clearing")})
	if err != nil {
		t.Fatalf("Publish as %s: %v", account, err)
	}
	got := rc.next(t, 10*time.Second)
	d := accountData{endpoint: ep, eventID: pub.EventId, delivery: got.Header.Get("Postback-Delivery-Id")}
	eventually(t, 10*time.Second, account+"'s delivery SUCCEEDED", func() bool {
		r, err := h.deliveries.GetDelivery(ctx, &postbackv1.GetDeliveryRequest{Id: d.delivery})
		return err == nil && r.Status == postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED
	})
	return d
}

// rpc is one call of the API, made with the context's token.
type rpc struct {
	name string
	call func(ctx context.Context) (proto.Message, error)
	// other is what a token of another account gets: a code, or OK for a
	// call whose answer is scoped to the caller's own account.
	other codes.Code
}

// everyRPC is every method of the four postback.v1 services, aimed at
// account A's resources.
func everyRPC(h *harness, a accountData) []rpc {
	data := &structpb.Struct{Fields: map[string]*structpb.Value{"CampaignId": structpb.NewNumberValue(1)}}
	return []rpc{
		{"EventService.Publish", func(ctx context.Context) (proto.Message, error) {
			return h.events.Publish(ctx, &postbackv1.PublishRequest{AccountId: acctA, EventType: "action_clearing", Data: data})
		}, codes.PermissionDenied},
		{"EventService.PublishBatch", func(ctx context.Context) (proto.Message, error) {
			// A batch answers OK with one result per event: the event into
			// another account fails alone (checked in the test).
			return h.events.PublishBatch(ctx, &postbackv1.PublishBatchRequest{Events: []*postbackv1.PublishRequest{
				{AccountId: acctA, EventType: "action_clearing", Data: data}}})
		}, codes.OK},
		{"EventTypeService.ListEventTypes", func(ctx context.Context) (proto.Message, error) {
			return h.types.ListEventTypes(ctx, &postbackv1.ListEventTypesRequest{})
		}, codes.OK},
		{"EndpointService.CreateEndpoint", func(ctx context.Context) (proto.Message, error) {
			return h.endpoints.CreateEndpoint(ctx, &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{
				AccountId: acctA, EventType: "action_clearing", Url: "http://127.0.0.1:1/x"}})
		}, codes.PermissionDenied},
		{"EndpointService.GetEndpoint", func(ctx context.Context) (proto.Message, error) {
			return h.endpoints.GetEndpoint(ctx, &postbackv1.GetEndpointRequest{Id: a.endpoint.Id})
		}, codes.NotFound},
		{"EndpointService.ListEndpoints of A", func(ctx context.Context) (proto.Message, error) {
			return h.endpoints.ListEndpoints(ctx, &postbackv1.ListEndpointsRequest{AccountId: acctA})
		}, codes.PermissionDenied},
		{"EndpointService.ListEndpoints unfiltered", func(ctx context.Context) (proto.Message, error) {
			return h.endpoints.ListEndpoints(ctx, &postbackv1.ListEndpointsRequest{})
		}, codes.OK},
		{"EndpointService.UpdateEndpoint", func(ctx context.Context) (proto.Message, error) {
			return h.endpoints.UpdateEndpoint(ctx, &postbackv1.UpdateEndpointRequest{
				Endpoint:   &postbackv1.Endpoint{Id: a.endpoint.Id, Url: "http://127.0.0.1:1/stolen"},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"url"}}})
		}, codes.NotFound},
		{"EndpointService.DeleteEndpoint", func(ctx context.Context) (proto.Message, error) {
			return h.endpoints.DeleteEndpoint(ctx, &postbackv1.DeleteEndpointRequest{Id: a.endpoint.Id})
		}, codes.NotFound},
		{"EndpointService.PreviewEndpoint", func(ctx context.Context) (proto.Message, error) {
			return h.endpoints.PreviewEndpoint(ctx, &postbackv1.PreviewEndpointRequest{Endpoint: &postbackv1.Endpoint{
				AccountId: acctA, EventType: "action_clearing", Url: "https://brand.example/pb"}})
		}, codes.PermissionDenied},
		{"EndpointService.TestEndpoint", func(ctx context.Context) (proto.Message, error) {
			return h.endpoints.TestEndpoint(ctx, &postbackv1.TestEndpointRequest{Id: a.endpoint.Id})
		}, codes.NotFound},
		{"DeliveryService.GetDelivery", func(ctx context.Context) (proto.Message, error) {
			return h.deliveries.GetDelivery(ctx, &postbackv1.GetDeliveryRequest{Id: a.delivery})
		}, codes.NotFound},
		{"DeliveryService.ListDeliveries of A", func(ctx context.Context) (proto.Message, error) {
			return h.deliveries.ListDeliveries(ctx, &postbackv1.ListDeliveriesRequest{AccountId: acctA})
		}, codes.PermissionDenied},
		{"DeliveryService.ListDeliveries of A's endpoint", func(ctx context.Context) (proto.Message, error) {
			return h.deliveries.ListDeliveries(ctx, &postbackv1.ListDeliveriesRequest{EndpointId: a.endpoint.Id})
		}, codes.OK},
		{"DeliveryService.ListDeliveries of A's event", func(ctx context.Context) (proto.Message, error) {
			return h.deliveries.ListDeliveries(ctx, &postbackv1.ListDeliveriesRequest{EventId: a.eventID})
		}, codes.OK},
		{"DeliveryService.ListAttempts", func(ctx context.Context) (proto.Message, error) {
			return h.deliveries.ListAttempts(ctx, &postbackv1.ListAttemptsRequest{DeliveryId: a.delivery})
		}, codes.NotFound},
		{"DeliveryService.RetryDelivery", func(ctx context.Context) (proto.Message, error) {
			return h.deliveries.RetryDelivery(ctx, &postbackv1.RetryDeliveryRequest{Id: a.delivery})
		}, codes.NotFound},
		{"DeliveryService.ReplayDeliveries", func(ctx context.Context) (proto.Message, error) {
			return h.deliveries.ReplayDeliveries(ctx, &postbackv1.ReplayDeliveriesRequest{EndpointId: a.endpoint.Id,
				Statuses: []postbackv1.DeliveryStatus{postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED}})
		}, codes.NotFound},
	}
}

// leaks reports which of A's identifiers a response holds.
func leaks(m proto.Message, a accountData) []string {
	if m == nil {
		return nil
	}
	text := protojson.Format(m)
	var found []string
	for _, s := range []string{acctA, a.endpoint.Id, a.eventID, a.delivery, "/" + acctA} {
		if strings.Contains(text, s) {
			found = append(found, s)
		}
	}
	return found
}

func isNil(m proto.Message) bool {
	return m == nil || !m.ProtoReflect().IsValid()
}

func TestAnAccountTokenNeverReachesAnotherAccountsResources(t *testing.T) {
	h := start(t, "", withTokens(t))
	rc := newReceiver(t)
	a := deliverOne(t, h, rc, tokenA, acctA)
	b := deliverOne(t, h, rc, tokenB, acctB)
	before := len(rc.requests())

	for _, c := range everyRPC(h, a) {
		t.Run("B's token: "+c.name, func(t *testing.T) {
			resp, err := c.call(as(t, tokenB))
			if got := status.Code(err); got != c.other {
				t.Fatalf("got %v (%v), want %v", got, err, c.other)
			}
			if err != nil && !isNil(resp) {
				t.Fatalf("an error came with data: %v", resp)
			}
			if err != nil && strings.Contains(err.Error(), acctA) {
				t.Fatalf("the error names account A: %v", err)
			}
			if l := leaks(resp, a); len(l) > 0 {
				t.Fatalf("B's token got A's data %v: %v", l, resp)
			}
			if batch, ok := resp.(*postbackv1.PublishBatchResponse); ok {
				r := batch.Results[0]
				if r.GetError().GetCode() != int32(codes.PermissionDenied) || r.EventId != "" {
					t.Fatalf("the event into account A: %v", r)
				}
			}
		})
	}

	t.Run("A's resources are unchanged and nothing was sent", func(t *testing.T) {
		ep, err := h.endpoints.GetEndpoint(as(t, tokenA), &postbackv1.GetEndpointRequest{Id: a.endpoint.Id})
		if err != nil || ep.Url != a.endpoint.Url {
			t.Fatalf("A's endpoint after B's calls: %v, %v", ep, err)
		}
		time.Sleep(300 * time.Millisecond)
		if n := len(rc.requests()); n != before {
			t.Fatalf("the receiver got %d requests during B's calls", n-before)
		}
		l, err := h.deliveries.ListDeliveries(as(t, tokenOp), &postbackv1.ListDeliveriesRequest{AccountId: acctA})
		if err != nil || len(l.Deliveries) != 1 {
			t.Fatalf("A's deliveries: %v, %v", l, err)
		}
	})

	for _, c := range []struct{ name, token string }{{"no token", ""}, {"unknown token", "tX-0123456789abcdef-unknown"}} {
		for _, r := range everyRPC(h, a) {
			t.Run(c.name+": "+r.name, func(t *testing.T) {
				resp, err := r.call(as(t, c.token))
				if status.Code(err) != codes.Unauthenticated || !isNil(resp) {
					t.Fatalf("got %v, %v; want Unauthenticated", resp, err)
				}
			})
		}
	}

	t.Run("operator sees both accounts", func(t *testing.T) {
		ctx := as(t, tokenOp)
		for _, d := range []accountData{a, b} {
			if _, err := h.endpoints.GetEndpoint(ctx, &postbackv1.GetEndpointRequest{Id: d.endpoint.Id}); err != nil {
				t.Errorf("GetEndpoint %s: %v", d.endpoint.AccountId, err)
			}
			if _, err := h.deliveries.GetDelivery(ctx, &postbackv1.GetDeliveryRequest{Id: d.delivery}); err != nil {
				t.Errorf("GetDelivery %s: %v", d.endpoint.AccountId, err)
			}
			if l, err := h.deliveries.ListAttempts(ctx, &postbackv1.ListAttemptsRequest{DeliveryId: d.delivery}); err != nil || len(l.Attempts) != 1 {
				t.Errorf("ListAttempts %s: %v, %v", d.endpoint.AccountId, l, err)
			}
		}
		eps, err := h.endpoints.ListEndpoints(ctx, &postbackv1.ListEndpointsRequest{})
		if err != nil || len(eps.Endpoints) != 2 {
			t.Errorf("ListEndpoints: %v, %v", eps, err)
		}
		dls, err := h.deliveries.ListDeliveries(ctx, &postbackv1.ListDeliveriesRequest{})
		if err != nil || len(dls.Deliveries) != 2 {
			t.Errorf("ListDeliveries: %v, %v", dls, err)
		}
		if _, err := h.endpoints.CreateEndpoint(ctx, &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{
			AccountId: "acctC", EventType: "action_clearing", Url: "http://127.0.0.1:1/x"}}); err != nil {
			t.Errorf("operator CreateEndpoint in a third account: %v", err)
		}
	})

	t.Run("an account token lists only its own account", func(t *testing.T) {
		eps, err := h.endpoints.ListEndpoints(as(t, tokenB), &postbackv1.ListEndpointsRequest{})
		if err != nil || len(eps.Endpoints) != 1 || eps.Endpoints[0].Id != b.endpoint.Id {
			t.Fatalf("B's ListEndpoints: %v, %v", eps, err)
		}
		dls, err := h.deliveries.ListDeliveries(as(t, tokenB), &postbackv1.ListDeliveriesRequest{})
		if err != nil || len(dls.Deliveries) != 1 || dls.Deliveries[0].Id != b.delivery {
			t.Fatalf("B's ListDeliveries: %v, %v", dls, err)
		}
	})
}

func TestHealthAndReflectionNeedNoToken(t *testing.T) {
	h := start(t, "", withTokens(t))
	ctx := as(t, "")
	if r, err := healthpb.NewHealthClient(h.conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v, %v", r, err)
	}
	st, err := reflectionpb.NewServerReflectionClient(h.conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	r, err := st.Recv()
	if err != nil || len(r.GetListServicesResponse().GetService()) == 0 {
		t.Fatalf("reflection: %v, %v", r, err)
	}
}

func TestStandaloneWithoutTokensAcceptsEveryCallAndWarnsOnce(t *testing.T) {
	logs := &logBuffer{}
	h := start(t, "", withLogs(logs))
	if _, err := h.endpoints.ListEndpoints(as(t, ""), &postbackv1.ListEndpointsRequest{}); err != nil {
		t.Fatalf("call without token: %v", err)
	}
	if n := strings.Count(logs.String(), "NO API TOKENS CONFIGURED"); n != 1 {
		t.Fatalf("the warning was logged %d times:\n%s", n, logs.String())
	}
}

func TestSecretsAppearNowhereButAtTheReceiver(t *testing.T) {
	const headerSecret = "Bearer s3cr3t-token-value-XYZ"
	signing, err := signature.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	// What must not appear: the header value, its distinctive part, the
	// signing secret and its key part, and the API tokens.
	secrets := []string{headerSecret, "s3cr3t-token-value", signing, strings.TrimPrefix(signing, signature.SecretPrefix), tokenA, tokenOp}

	logs := &logBuffer{}
	dir := t.TempDir()
	h := start(t, dir, edits(withTokens(t), withLogs(logs)))
	rc := newReceiver(t)
	ctx := as(t, tokenA)
	var responses []proto.Message
	var refusals []error
	keep := func(m proto.Message, err error) proto.Message {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		responses = append(responses, m)
		return m
	}

	ep := keep(h.endpoints.CreateEndpoint(ctx, &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{
		AccountId: acctA, EventType: "action_clearing", Url: rc.URL + "/hook", Method: postbackv1.HttpMethod_HTTP_METHOD_POST,
		Headers:       []*postbackv1.Header{{Name: "Authorization", Value: headerSecret, Secret: true}, {Name: "X-Brand", Value: "b-{CampaignId}"}},
		SigningSecret: signing,
	}})).(*postbackv1.Endpoint)
	if got := ep.Headers[0].Value; got != "••••-XYZ" {
		t.Errorf("created endpoint shows the secret header as %q, want ••••-XYZ", got)
	}
	if got := ep.SigningSecret; got != "••••"+signing[len(signing)-4:] {
		t.Errorf("created endpoint shows the signing secret as %q", got)
	}

	// The receiver gets the secret in clear, and a valid signature.
	pub := keep(h.events.Publish(ctx, &postbackv1.PublishRequest{AccountId: acctA, EventType: "action_clearing", Data: sampleData(t, "action_clearing")})).(*postbackv1.PublishResponse)
	got := rc.next(t, 10*time.Second)
	if got.Header.Get("Authorization") != headerSecret {
		t.Fatalf("the receiver got Authorization %q", got.Header.Get("Authorization"))
	}
	if err := signature.Verify(signing, got.Header, got.Body, time.Now(), 0); err != nil {
		t.Fatalf("signature: %v", err)
	}
	dlv := got.Header.Get("Postback-Delivery-Id")
	eventually(t, 10*time.Second, "delivery SUCCEEDED", func() bool {
		d, err := h.deliveries.GetDelivery(ctx, &postbackv1.GetDeliveryRequest{Id: dlv})
		return err == nil && d.Status == postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED
	})

	// Every read of the API.
	keep(h.endpoints.GetEndpoint(ctx, &postbackv1.GetEndpointRequest{Id: ep.Id}))
	keep(h.endpoints.ListEndpoints(ctx, &postbackv1.ListEndpointsRequest{}))
	keep(h.endpoints.ListEndpoints(as(t, tokenOp), &postbackv1.ListEndpointsRequest{}))
	keep(h.deliveries.GetDelivery(ctx, &postbackv1.GetDeliveryRequest{Id: dlv}))
	keep(h.deliveries.ListDeliveries(ctx, &postbackv1.ListDeliveriesRequest{EventId: pub.EventId}))
	keep(h.deliveries.ListAttempts(ctx, &postbackv1.ListAttemptsRequest{DeliveryId: dlv}))
	preview := keep(h.endpoints.PreviewEndpoint(ctx, &postbackv1.PreviewEndpointRequest{Endpoint: &postbackv1.Endpoint{
		AccountId: acctA, EventType: "action_clearing", Url: rc.URL + "/hook",
		Headers: []*postbackv1.Header{{Name: "Authorization", Value: headerSecret, Secret: true}}, SigningSecret: signing,
	}})).(*postbackv1.PreviewEndpointResponse)
	if preview.Headers[0].Value != "••••-XYZ" {
		t.Errorf("preview shows the secret header as %q", preview.Headers[0].Value)
	}
	// Sending back what Get returned keeps the secret; the test send uses it.
	keep(h.endpoints.UpdateEndpoint(ctx, &postbackv1.UpdateEndpointRequest{Endpoint: ep}))
	attempt := keep(h.endpoints.TestEndpoint(ctx, &postbackv1.TestEndpointRequest{Id: ep.Id})).(*postbackv1.Attempt)
	tested := rc.next(t, 10*time.Second)
	if tested.Header.Get("Authorization") != headerSecret || attempt.StatusCode != 200 {
		t.Fatalf("test send after update: Authorization %q, attempt %v", tested.Header.Get("Authorization"), attempt)
	}
	if err := signature.Verify(signing, tested.Header, tested.Body, time.Now(), 0); err != nil {
		t.Fatalf("signature after update: %v", err)
	}

	// Refusals that involve the secrets.
	_, err = h.endpoints.CreateEndpoint(ctx, &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{
		AccountId: acctA, EventType: "action_clearing", Url: rc.URL,
		Headers: []*postbackv1.Header{{Name: "Authorization", Value: headerSecret + "{Unknown}", Secret: true}}}})
	refusals = append(refusals, err)
	_, err = h.endpoints.UpdateEndpoint(ctx, &postbackv1.UpdateEndpointRequest{
		Endpoint: &postbackv1.Endpoint{Id: ep.Id, SigningSecret: "whsec_" + headerSecret}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"signing_secret"}}})
	refusals = append(refusals, err)
	_, err = h.endpoints.CreateEndpoint(as(t, tokenB), &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{
		AccountId: acctA, EventType: "action_clearing", Url: rc.URL,
		Headers: []*postbackv1.Header{{Name: "Authorization", Value: headerSecret, Secret: true}}}})
	refusals = append(refusals, err)
	_, err = h.endpoints.ListEndpoints(as(t, tokenA+"-wrong"), &postbackv1.ListEndpointsRequest{})
	refusals = append(refusals, err)

	for i, err := range refusals {
		if err == nil {
			t.Fatalf("refusal %d was accepted", i)
		}
		for _, s := range secrets {
			if strings.Contains(err.Error(), s) {
				t.Errorf("refusal %d quotes a secret: %v", i, err)
			}
		}
	}
	for i, m := range responses {
		text := protojson.Format(m)
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("response %d (%T) holds a secret: %s", i, m, text)
			}
		}
	}
	if !strings.Contains(logs.String(), "endpoint created") {
		t.Fatal("no log lines captured")
	}
	for _, s := range secrets {
		if strings.Contains(logs.String(), s) {
			t.Errorf("the logs hold a secret %q", s)
		}
	}

	// At rest: the endpoint as stored in its KV bucket, every message of
	// every stream, and every file under the data dir.
	js := h.jetStream(t)
	sctx := as(t, "")
	kv, err := js.KeyValue(sctx, stream.EndpointsBucket)
	if err != nil {
		t.Fatal(err)
	}
	key := endpoints.KeyOf(acctA, "action_clearing", ep.Id)
	entry, err := kv.Get(sctx, key)
	if err != nil {
		t.Fatalf("the endpoint is not stored under %s: %v", key, err)
	}
	stored := &postbackv1.Endpoint{}
	if err := proto.Unmarshal(entry.Value(), stored); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(stored.Headers[0].Value, "enc:v2:") || !strings.HasPrefix(stored.SigningSecret, "enc:v2:") {
		t.Errorf("stored secrets are not sealed: header %q, signing %q", stored.Headers[0].Value, stored.SigningSecret)
	}
	if stored.Headers[1].Value != "b-{CampaignId}" {
		t.Errorf("a header that is not secret is stored as %q", stored.Headers[1].Value)
	}
	sealedSeen := map[string]bool{} // proof that a scan reads the stored bytes
	containsSecret := func(where string, b []byte) {
		if bytes.Contains(b, []byte("enc:v2:")) {
			sealedSeen[strings.Fields(where)[0]] = true
		}
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds a secret %q", where, s)
			}
		}
	}
	containsSecret("the endpoint's KV value", entry.Value())
	names := js.StreamNames(sctx)
	scanned := 0
	for name := range names.Name() {
		s, err := js.Stream(sctx, name)
		if err != nil {
			t.Fatal(err)
		}
		info := s.CachedInfo()
		for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
			m, err := s.GetMsg(sctx, seq)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue
			}
			if err != nil {
				t.Fatalf("%s #%d: %v", name, seq, err)
			}
			scanned++
			containsSecret(name+" message "+m.Subject, m.Data)
			for k, vs := range m.Header {
				containsSecret(name+" header "+k, []byte(strings.Join(vs, " ")))
			}
		}
	}
	// At least the endpoint. The delivery, sent once and succeeded, has no
	// hot record: its history entry is in HISTORY or, once the writer has
	// it, in the store, whose file is scanned below. (Work queues are empty
	// by now.)
	if scanned < 1 {
		t.Fatalf("scanned only %d stream messages", scanned)
	}
	h.stop() // flush the store before reading its files
	files := 0
	err = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		containsSecret("file "+strings.TrimPrefix(path, dir), b)
		return nil
	})
	if err != nil || files == 0 {
		t.Fatalf("walking the data dir: %d files, %v", files, err)
	}
	if !sealedSeen["KV_"+stream.EndpointsBucket] || !sealedSeen["file"] {
		t.Fatalf("the scans never met the sealed endpoint (%v): they did not read what is stored", sealedSeen)
	}
}

func TestTLSAndMutualTLSOnTheGRPCListener(t *testing.T) {
	ca := authtest.NewCA(t, "postback")
	server := ca.Server(t, "gateway")
	client := ca.Client(t, "internal-caller")
	rogue := authtest.NewCA(t, "rogue")
	rogueClient := rogue.Client(t, "rogue-caller")

	dial := func(t *testing.T, h *harness, creds credentials.TransportCredentials, opts ...grpc.DialOption) error {
		t.Helper()
		conn, err := grpc.NewClient(h.addrs.GRPC.String(), append(opts, grpc.WithTransportCredentials(creds))...)
		if err != nil {
			return err
		}
		defer conn.Close()
		ctx := context.Background()
		if len(opts) == 0 { // the token goes as call metadata unless per-RPC credentials send it
			ctx = auth.WithBearer(ctx, tokenA)
		}
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err = postbackv1.NewEndpointServiceClient(conn).ListEndpoints(ctx, &postbackv1.ListEndpointsRequest{})
		return err
	}
	tlsCreds := func(certs ...tls.Certificate) credentials.TransportCredentials {
		return credentials.NewTLS(&tls.Config{RootCAs: ca.Pool(), Certificates: certs, MinVersion: tls.VersionTLS12})
	}

	t.Run("TLS", func(t *testing.T) {
		h := start(t, "", edits(withTokens(t), func(c *Config) { c.TLSCert, c.TLSKey = server.CertFile, server.KeyFile }))
		cases := []struct {
			name  string
			creds credentials.TransportCredentials
			opts  []grpc.DialOption
			ok    bool
		}{
			{"client trusting the CA", tlsCreds(), nil, true},
			{"token that demands TLS", tlsCreds(), []grpc.DialOption{grpc.WithPerRPCCredentials(auth.Bearer{Token: tokenA, RequireTLS: true})}, true},
			{"plaintext client", insecure.NewCredentials(), nil, false},
			{"client trusting another CA", credentials.NewTLS(&tls.Config{RootCAs: rogue.Pool()}), nil, false},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				err := dial(t, h, c.creds, c.opts...)
				if c.ok != (err == nil) {
					t.Fatalf("err = %v, want ok=%v", err, c.ok)
				}
				if !c.ok && status.Code(err) != codes.Unavailable {
					t.Fatalf("refused with %v, want Unavailable (no connection)", err)
				}
			})
		}
	})

	t.Run("mutual TLS", func(t *testing.T) {
		h := start(t, "", edits(withTokens(t), func(c *Config) {
			c.TLSCert, c.TLSKey, c.TLSClientCA = server.CertFile, server.KeyFile, ca.File
		}))
		cases := []struct {
			name  string
			creds credentials.TransportCredentials
			ok    bool
		}{
			{"client certificate from the client CA", tlsCreds(client.TLS(t)), true},
			{"no client certificate", tlsCreds(), false},
			{"client certificate from another CA", tlsCreds(rogueClient.TLS(t)), false},
			{"plaintext client", insecure.NewCredentials(), false},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				if err := dial(t, h, c.creds); c.ok != (err == nil) {
					t.Fatalf("err = %v, want ok=%v", err, c.ok)
				}
			})
		}
	})

	t.Run("a bad certificate stops the start", func(t *testing.T) {
		cfg := Config{}
		cfg.Config.TLSCert, cfg.Config.TLSKey = server.CertFile, client.KeyFile
		if _, err := cfg.ServerTLS(); err == nil {
			t.Fatal("a key of another certificate was accepted")
		}
	})
}

func TestInputOverALimitIsRefusedAndNothingIsStoredOrPublished(t *testing.T) {
	h := start(t, "", nil)
	ctx := as(t, "")
	rc := newReceiver(t)
	if _, err := h.endpoints.CreateEndpoint(ctx, &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{
		AccountId: "brand-1", EventType: "action_lifecycle", Url: rc.URL}}); err != nil {
		t.Fatal(err)
	}
	big := func(n int) *structpb.Struct {
		return &structpb.Struct{Fields: map[string]*structpb.Value{"ActionId": structpb.NewStringValue(strings.Repeat("x", n))}}
	}
	items := &structpb.ListValue{}
	for range 1001 {
		items.Values = append(items.Values, structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"sku": structpb.NewStringValue("S")}}))
	}
	tooManyItems := &structpb.Struct{Fields: map[string]*structpb.Value{"ActionId": structpb.NewStringValue("A"), "items": structpb.NewListValue(items)}}
	batch := make([]*postbackv1.PublishRequest, 1001)
	for i := range batch {
		batch[i] = &postbackv1.PublishRequest{AccountId: "brand-1", EventType: "action_lifecycle", Data: big(1)}
	}
	headers := make([]*postbackv1.Header, 33)
	for i := range headers {
		headers[i] = &postbackv1.Header{Name: "X-H", Value: "v"}
	}
	newEndpoint := func(edit func(*postbackv1.Endpoint)) *postbackv1.Endpoint {
		e := &postbackv1.Endpoint{AccountId: "brand-1", EventType: "action_lifecycle", Url: rc.URL}
		edit(e)
		return e
	}
	cases := []struct {
		name  string
		call  func() error
		code  codes.Code
		names []string // the field, and the limit
	}{
		{"event payload", func() error {
			_, err := h.events.Publish(ctx, &postbackv1.PublishRequest{AccountId: "brand-1", EventType: "action_lifecycle", Data: big(300 << 10)})
			return err
		}, codes.ResourceExhausted, []string{"data: ", "over the limit of 256 KiB"}},
		{"items", func() error {
			_, err := h.events.Publish(ctx, &postbackv1.PublishRequest{AccountId: "brand-1", EventType: "action_lifecycle", Data: tooManyItems})
			return err
		}, codes.ResourceExhausted, []string{"data.items: 1001 items, over the limit of 1000 items"}},
		{"batch size", func() error {
			_, err := h.events.PublishBatch(ctx, &postbackv1.PublishBatchRequest{Events: batch})
			return err
		}, codes.ResourceExhausted, []string{"events: at most 1000"}},
		{"gRPC message size", func() error {
			_, err := h.events.Publish(ctx, &postbackv1.PublishRequest{AccountId: "brand-1", EventType: "action_lifecycle", Data: big(9 << 20)})
			return err
		}, codes.ResourceExhausted, []string{"larger than max", "8388608"}},
		{"URL", func() error {
			_, err := h.endpoints.CreateEndpoint(ctx, &postbackv1.CreateEndpointRequest{Endpoint: newEndpoint(func(e *postbackv1.Endpoint) {
				e.Url += "/" + strings.Repeat("u", 8<<10)
			})})
			return err
		}, codes.ResourceExhausted, []string{"endpoint.url: ", "over the limit of 8 KiB"}},
		{"body template", func() error {
			_, err := h.endpoints.CreateEndpoint(ctx, &postbackv1.CreateEndpointRequest{Endpoint: newEndpoint(func(e *postbackv1.Endpoint) {
				e.BodyFormat, e.BodyTemplate = postbackv1.BodyFormat_BODY_FORMAT_TEXT, strings.Repeat("b", 64<<10+1)
			})})
			return err
		}, codes.ResourceExhausted, []string{"endpoint.body_template: 65537 bytes, over the limit of 64 KiB"}},
		{"header count", func() error {
			_, err := h.endpoints.CreateEndpoint(ctx, &postbackv1.CreateEndpointRequest{Endpoint: newEndpoint(func(e *postbackv1.Endpoint) { e.Headers = headers })})
			return err
		}, codes.ResourceExhausted, []string{"endpoint.headers: 33 headers, over the limit of 32 headers"}},
		{"header value", func() error {
			_, err := h.endpoints.CreateEndpoint(ctx, &postbackv1.CreateEndpointRequest{Endpoint: newEndpoint(func(e *postbackv1.Endpoint) {
				e.Headers = []*postbackv1.Header{{Name: "X-Key", Value: strings.Repeat("v", 8<<10+1), Secret: true}}
			})})
			return err
		}, codes.ResourceExhausted, []string{"endpoint.headers[0].value: 8193 bytes, over the limit of 8 KiB"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			if status.Code(err) != c.code {
				t.Fatalf("got %v, want %v", err, c.code)
			}
			for _, want := range c.names {
				if !strings.Contains(status.Convert(err).Message(), want) {
					t.Fatalf("message %q does not say %q", status.Convert(err).Message(), want)
				}
			}
		})
	}
	l, err := h.endpoints.ListEndpoints(ctx, &postbackv1.ListEndpointsRequest{})
	if err != nil || len(l.Endpoints) != 1 {
		t.Fatalf("endpoints after the refusals: %v, %v", l, err)
	}
	if n := streamtest.Work(t, h.jetStream(t), stream.EventsStream); n != 0 {
		t.Fatalf("%d events were published", n)
	}
	time.Sleep(200 * time.Millisecond)
	if n := len(rc.requests()); n != 0 {
		t.Fatalf("the receiver got %d requests", n)
	}
}

func TestPostbacksVerifyTheReceiversCertificate(t *testing.T) {
	h := start(t, "", nil)
	ctx := as(t, "")
	untrusted := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("a postback reached a receiver whose certificate is not trusted")
	}))
	defer untrusted.Close()
	ep, err := h.endpoints.CreateEndpoint(ctx, &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{
		AccountId: "brand-1", EventType: "action_clearing", Url: untrusted.URL + "/hook"}})
	if err != nil {
		t.Fatal(err)
	}
	at, err := h.endpoints.TestEndpoint(ctx, &postbackv1.TestEndpointRequest{Id: ep.Id})
	if err != nil {
		t.Fatal(err)
	}
	if at.Outcome != postbackv1.AttemptOutcome_ATTEMPT_OUTCOME_FAILURE || !strings.Contains(at.Error, "certificate") {
		t.Fatalf("attempt = %v, want a failure naming the certificate", at)
	}
}
