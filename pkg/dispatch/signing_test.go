package dispatch

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/postback-dev/postback/pkg/delivery"
	"github.com/postback-dev/postback/pkg/signature"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// captured is one request as a receiver got it.
type captured struct {
	method, host, target string
	header               http.Header
	body                 []byte
}

// capture starts a receiver on 127.0.0.1 that answers 200 and hands over
// every request it gets.
func capture(t *testing.T) (*httptest.Server, <-chan captured) {
	t.Helper()
	got := make(chan captured, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- captured{method: r.Method, host: r.Host, target: r.RequestURI, header: r.Header.Clone(), body: b}
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func loopbackDispatcher() *Dispatcher {
	return New(Options{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
}

func TestARotationSignsWithBothSecretsUntilThePreviousOneExpires(t *testing.T) {
	newSecret, _ := signature.GenerateSecret()
	oldSecret, _ := signature.GenerateSecret()
	srv, got := capture(t)
	expire := time.Now().Truncate(time.Second).Add(time.Hour)
	ep := &postbackv1.Endpoint{Id: "ep_1", SigningSecret: newSecret, PreviousSigningSecret: oldSecret,
		PreviousSigningSecretExpireTime: timestamppb.New(expire)}
	d := loopbackDispatcher()
	defer d.CloseIdle()
	body := []byte(`{"ActionId":"ACT-1"}`)
	job := &delivery.Job{DeliveryID: "dlv_1", EventType: "action_lifecycle", Method: http.MethodPost, URL: srv.URL + "/pb",
		Body: body, ContentType: "application/json"}

	for _, tc := range []struct {
		name    string
		at      time.Time
		entries int
		oldOK   bool
	}{
		{"an hour before the expire time", expire.Add(-time.Hour), 2, true},
		{"a second before", expire.Add(-time.Second), 2, true},
		{"at the expire time", expire, 1, false},
		{"a day after", expire.Add(24 * time.Hour), 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d.now = func() time.Time { return tc.at }
			if res := d.Send(context.Background(), ep, job); !res.Success {
				t.Fatalf("send: %s", res.Reason)
			}
			r := <-got
			sigs := strings.Fields(r.header.Get(signature.HeaderSignature))
			if len(sigs) != tc.entries {
				t.Fatalf("webhook-signature %q: %d entries, want %d", r.header.Get(signature.HeaderSignature), len(sigs), tc.entries)
			}
			if err := signature.Verify(newSecret, r.header, r.body, tc.at, 0); err != nil {
				t.Errorf("the new secret: %v", err)
			}
			err := signature.Verify(oldSecret, r.header, r.body, tc.at, 0)
			if tc.oldOK && err != nil {
				t.Errorf("the previous secret, before it expires: %v", err)
			}
			if !tc.oldOK && err == nil {
				t.Errorf("the previous secret still verifies after it expired")
			}
			// The new secret's signature comes first, each signs the same id
			// and timestamp, and each is a v1 entry.
			newOnly := r.header.Clone()
			newOnly.Set(signature.HeaderSignature, sigs[0])
			if err := signature.Verify(newSecret, newOnly, r.body, tc.at, 0); err != nil {
				t.Errorf("the first entry is not the new secret's: %v", err)
			}
		})
	}
}

func TestAGetIsSignedOverItsMethodAndFullURLAndAPostOverItsBody(t *testing.T) {
	key, _ := signature.GenerateSecret()
	srv, got := capture(t)
	port := strings.TrimPrefix(srv.URL, "http://127.0.0.1:")
	d := loopbackDispatcher()
	defer d.CloseIdle()
	ep := &postbackv1.Endpoint{Id: "ep_1", SigningSecret: key}

	// What the receiver rebuilds: its scheme, the Host header, the request
	// target as it came (percent-encoding untouched; no fragment).
	const target = "/pb/a%2Fb?ActionId=ACT%201&Payout=10.50&Note=caf%C3%A9&Empty="
	job := &delivery.Job{DeliveryID: "dlv_2", EventType: "action_lifecycle", Method: http.MethodGet,
		URL: "http://LocalHost:" + port + target + "#frag"}
	if res := d.Send(context.Background(), ep, job); !res.Success {
		t.Fatalf("send: %s", res.Reason)
	}
	r := <-got
	if r.host != "localhost:"+port || r.target != target || len(r.body) != 0 {
		t.Fatalf("the receiver got Host %q, target %q, body %q", r.host, r.target, r.body)
	}
	rebuilt := "http://" + r.host + r.target
	if err := signature.Verify(key, r.header, signature.Payload(http.MethodGet, rebuilt, nil), time.Now(), 0); err != nil {
		t.Fatalf("the GET does not verify over %q: %v", "GET "+rebuilt, err)
	}
	for _, tampered := range []string{
		strings.Replace(rebuilt, "10.50", "99.50", 1),
		strings.Replace(rebuilt, "/pb/", "/other/", 1),
		strings.Replace(rebuilt, "localhost", "127.0.0.1", 1),
	} {
		if signature.Verify(key, r.header, signature.Payload(http.MethodGet, tampered, nil), time.Now(), 0) == nil {
			t.Errorf("the GET verifies over another URL: %s", tampered)
		}
	}
	if signature.Verify(key, r.header, nil, time.Now(), 0) == nil {
		t.Error("the GET verifies over the empty body")
	}

	// A POST: the body, as before; its URL is not signed.
	job = &delivery.Job{DeliveryID: "dlv_3", EventType: "action_lifecycle", Method: http.MethodPost,
		URL: srv.URL + "/pb?x=1", Body: []byte("a=1&b=2"), ContentType: "application/x-www-form-urlencoded"}
	if res := d.Send(context.Background(), ep, job); !res.Success {
		t.Fatalf("send: %s", res.Reason)
	}
	r = <-got
	if err := signature.Verify(key, r.header, r.body, time.Now(), 0); err != nil {
		t.Fatalf("the POST does not verify over its body: %v", err)
	}
}

func TestWireHostIsTheHostHeaderAsSent(t *testing.T) {
	for in, want := range map[string]string{
		"http://brand.example/x":          "brand.example",
		"http://Brand.EXAMPLE:8080/x":     "brand.example:8080",
		"http://brand.example:80/x":       "brand.example",
		"https://brand.example:443/x":     "brand.example",
		"http://brand.example:443/x":      "brand.example:443",
		"https://brand.example:80/x":      "brand.example:80",
		"https://bücher.example/x":        "xn--bcher-kva.example",
		"https://BÜCHER.example:8443/x":   "xn--bcher-kva.example:8443",
		"http://[2001:DB8::1]:8080/x":     "[2001:db8::1]:8080",
		"http://[fe80::1%25eth0]:8080/x":  "[fe80::1]:8080",
		"https://[2001:db8::1]:443/x?q=1": "[2001:db8::1]",
	} {
		u, err := url.Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := wireHost(u); got != want {
			t.Errorf("wireHost(%s) = %q, want %q", in, got, want)
		}
		// And net/http writes that Host header unchanged.
		req := &http.Request{Method: http.MethodGet, URL: u, Host: wireHost(u), Header: http.Header{}}
		var b strings.Builder
		if err := req.Write(&b); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if !strings.Contains(b.String(), "\r\nHost: "+want+"\r\n") {
			t.Errorf("%s: the request says\n%s", in, b.String())
		}
	}
}
