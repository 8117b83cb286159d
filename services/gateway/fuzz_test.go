package gateway

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/postback-dev/postback/pkg/auth"
	"github.com/postback-dev/postback/pkg/endpoint"
	"github.com/postback-dev/postback/pkg/event"
	"github.com/postback-dev/postback/pkg/id"
	"github.com/postback-dev/postback/pkg/secret"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// fuzzServer is a Server with no NATS: enough for the validation paths
// (prepare, validateForSave, PreviewEndpoint), which touch no network.
func fuzzServer(t testing.TB, limits Limits) *Server {
	t.Helper()
	k, err := secret.ParseKeyring("k1:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, secret.KeySize)))
	if err != nil {
		t.Fatal(err)
	}
	return &Server{keyring: k, limits: limits.withDefaults(), now: time.Now,
		log: slog.New(slog.NewJSONHandler(io.Discard, nil))}
}

func operator() context.Context {
	return auth.NewContext(context.Background(), auth.Identity{Account: auth.OperatorAccount, TokenID: "fuzz0000"})
}

// allowed reports whether err is a status a caller's bad input may get.
func allowed(err error, codes_ ...codes.Code) bool {
	s, ok := status.FromError(err)
	if !ok {
		return false
	}
	for _, c := range codes_ {
		if s.Code() == c {
			return true
		}
	}
	return false
}

// FuzzPublishValidation feeds Publish's validation (Server.prepare) arbitrary
// accounts, event types, data (as JSON turned into a Struct), idempotency
// keys and event ids. It must never panic; a refusal is InvalidArgument or
// ResourceExhausted; an accepted event is within the size limit, valid JSON,
// and carries the request's account and a well-formed id.
func FuzzPublishValidation(f *testing.F) {
	types := event.Types()
	for i, typ := range types {
		sample, _ := json.Marshal(typ.Sample())
		f.Add("brand-1", uint8(i), sample, "", "")
		f.Add("brand-1", uint8(i), sample, "idem-1", "evt-1.2_3")
	}
	f.Add("brand 1", uint8(0), []byte(`{"ActionId":"A"}`), "", "")
	f.Add("", uint8(200), []byte(`{}`), "", "bad id!")
	f.Add("b", uint8(0), []byte(`{"items":[{},{},{},{},{},{},{}]}`), "", "")
	f.Add("b", uint8(0), []byte(`{"items":"not a list","Bogus":1}`), "", "")
	f.Add("b", uint8(0), []byte(`{"ActionId":"`+strings.Repeat("x", 5000)+`"}`), strings.Repeat("k", 300), "")
	f.Add("b", uint8(0), []byte(`{"Amount":1e400,"ActionId":null}`), "", "")
	f.Add("b", uint8(0), []byte(`not json`), "", "")

	// Small limits, so the fuzzer reaches them.
	s := fuzzServer(f, Limits{MaxEventBytes: 4096, MaxItems: 5})
	f.Fuzz(func(t *testing.T, account string, typ uint8, data []byte, idem, eventID string) {
		req := &postbackv1.PublishRequest{AccountId: account, IdempotencyKey: idem, EventId: eventID}
		if int(typ) < len(types) {
			req.EventType = types[typ].Name
		} else {
			req.EventType = string([]byte{typ})
		}
		var m map[string]any
		if json.Unmarshal(data, &m) == nil {
			if st, err := structpb.NewStruct(m); err == nil {
				req.Data = st
			}
		}
		p, err := s.prepare("", req)
		if err != nil {
			if !allowed(err, codes.InvalidArgument, codes.ResourceExhausted) {
				t.Fatalf("prepare refused with %v, want InvalidArgument or ResourceExhausted", err)
			}
			return
		}
		if len(p.body) > s.limits.MaxEventBytes {
			t.Fatalf("accepted an event of %d bytes over the %d limit", len(p.body), s.limits.MaxEventBytes)
		}
		if !json.Valid(p.body) || p.event.AccountID != account || !id.ValidAccount(account) {
			t.Fatalf("accepted a bad event: account %q body %s", account, p.body)
		}
		if !strings.HasPrefix(p.event.ID, id.Event) && p.event.ID != eventID {
			t.Fatalf("event id %q", p.event.ID)
		}
	})
}

// FuzzEndpointSave feeds an endpoint's saving checks (validateForSave, as
// CreateEndpoint and UpdateEndpoint run them, then Seal and Masked) and
// PreviewEndpoint arbitrary URLs, templates, headers, secrets and rules. It
// must never panic; a refusal is InvalidArgument or ResourceExhausted (never
// Internal: every fault names a field); no refusal quotes the secret header
// value or the signing secret; an accepted endpoint stores neither in clear
// and the API shows at most their last 4 characters.
func FuzzEndpointSave(f *testing.F) {
	whsec := "whsec_" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 24))
	f.Add("https://brand.example/pb?a={ActionId}", "", "Authorization", "Bearer s3cr3t-token-value", true, "", "", "", uint8(0), uint8(0), uint8(0))
	f.Add("https://brand.example/pb", `{"id":"{ActionId}","items":[{join(items, i, "\{\"sku\":\"{i.sku}\"\}")}]}`, "X-Key", "abc{Def}ghijklmnop", true, whsec, "200", "ERROR", uint8(2), uint8(1), uint8(0))
	f.Add("http://127.0.0.1:9/x", "<a>{ActionId}</a>", "X-Sig", "{Unknown} very secret value", true, "whsec_short", "2xx", "", uint8(2), uint8(3), uint8(1))
	f.Add("/relative", "", "Bad Name", "v", false, "", "", "", uint8(1), uint8(0), uint8(2))
	f.Add("https://h/"+strings.Repeat("a", 300), strings.Repeat("b", 1100), strings.Repeat("n", 70), strings.Repeat("v", 300), true, "", strings.Repeat("s", 200), "", uint8(9), uint8(9), uint8(200))
	f.Add("https://h/", "", "X-A", "enc:v1:k1:AAAA", true, "enc:v1:k1:BBBB", "", "", uint8(0), uint8(0), uint8(3))
	f.Add("https://h/{join(items, i, \"{i.sku}\")}", "", "X", "{", false, "", "999", "abc", uint8(1), uint8(4), uint8(4))

	// Small limits, so the fuzzer reaches them with small inputs.
	s := fuzzServer(f, Limits{MaxURLBytes: 256, MaxBodyTemplateBytes: 1024, MaxHeaderNameBytes: 64,
		MaxHeaderValueBytes: 256, MaxResponseRuleBytes: 128})
	types := event.Types()
	f.Fuzz(func(t *testing.T, url, body, hname, hvalue string, hsecret bool, signing, success, failure string, method, format, typ uint8) {
		e := &postbackv1.Endpoint{
			AccountId: "brand-1", Url: url, BodyTemplate: body,
			Method: postbackv1.HttpMethod(method % 4), BodyFormat: postbackv1.BodyFormat(format % 6),
			SuccessResponse: success, ErrorResponse: failure, SigningSecret: signing,
		}
		if int(typ) < len(types) {
			e.EventType = types[typ].Name
		}
		if hname != "" || hvalue != "" {
			e.Headers = []*postbackv1.Header{{Name: hname, Value: hvalue, Secret: hsecret}}
		}
		others := url + "\x00" + body + "\x00" + hname + "\x00" + success + "\x00" + failure
		// A secret is only checked for when it cannot also be in the message
		// through another field or by being short.
		checkable := func(v string) bool {
			return len(v) >= 16 && utf8.ValidString(v) && !strings.Contains(others, v)
		}
		noLeak := func(where, msg string) {
			if hsecret && checkable(hvalue) && strings.Contains(msg, hvalue) {
				t.Fatalf("%s quotes the secret header value: %s", where, msg)
			}
			if checkable(signing) && strings.Contains(msg, signing) {
				t.Fatalf("%s quotes the signing secret: %s", where, msg)
			}
		}

		if err := refuseSealed(e.Headers, e.SigningSecret); err != nil {
			if !allowed(err, codes.InvalidArgument) {
				t.Fatalf("refuseSealed: %v", err)
			}
			noLeak("refuseSealed", err.Error())
		} else {
			saved := proto.Clone(e).(*postbackv1.Endpoint)
			err := s.validateForSave(saved)
			if err != nil {
				if !allowed(err, codes.InvalidArgument, codes.ResourceExhausted) {
					t.Fatalf("validateForSave refused with %v, want InvalidArgument or ResourceExhausted", err)
				}
				noLeak("validateForSave", err.Error())
			} else {
				if err := endpoint.Seal(saved, nil, s.keyring); err != nil {
					t.Fatalf("Seal: %v", err)
				}
				stored, _ := proto.Marshal(saved)
				if hsecret && hvalue != "" && checkable(hvalue) && bytes.Contains(stored, []byte(hvalue)) {
					t.Fatalf("stored endpoint holds the secret header value in clear")
				}
				if checkable(signing) && bytes.Contains(stored, []byte(signing)) {
					t.Fatalf("stored endpoint holds the signing secret in clear")
				}
				shown := endpoint.Masked(saved, s.keyring)
				if hsecret && shown.Headers[0].Value != secret.Mask(hvalue) {
					t.Fatalf("masked header %q, want %q", shown.Headers[0].Value, secret.Mask(hvalue))
				}
				if shown.SigningSecret != secret.Mask(signing) {
					t.Fatalf("masked signing secret %q", shown.SigningSecret)
				}
				opened, err := endpoint.Open(saved, s.keyring)
				if err != nil || !proto.Equal(opened, e) {
					t.Fatalf("Open does not give back the endpoint: %v", err)
				}
			}
		}

		out, err := s.PreviewEndpoint(operator(), &postbackv1.PreviewEndpointRequest{Endpoint: e})
		if err != nil {
			if !allowed(err, codes.InvalidArgument, codes.ResourceExhausted) {
				t.Fatalf("PreviewEndpoint refused with %v", err)
			}
			noLeak("PreviewEndpoint", err.Error())
			return
		}
		for _, h := range out.Headers {
			if h.Secret && len([]rune(strings.TrimPrefix(h.Value, "••••"))) > 4 {
				t.Fatalf("preview shows a secret header: %q", h.Value)
			}
		}
	})
}
