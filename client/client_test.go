package client

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"testing"
	"time"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

func TestTokenIsSentAsBearerMetadataOnEveryCall(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  []Option
		want  []string
		calls int
	}{
		{"with a token", []Option{WithToken("s3cret")}, []string{"Bearer s3cret"}, 3},
		{"without a token", nil, nil, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, c, _ := newFake(t, tc.opts...)
			ctx := context.Background()
			if _, err := c.Publish(ctx, clearing("")); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Events().Publish(ctx, clearing("")); err != nil {
				t.Fatal(err)
			}
			p := c.NewPublisher(PublisherOptions{})
			p.Publish(ctx, clearing(""))
			if err := p.Close(ctx); err != nil {
				t.Fatal(err)
			}
			calls := f.snapshot()
			if len(calls) != tc.calls {
				t.Fatalf("%d calls, want %d", len(calls), tc.calls)
			}
			for _, cl := range calls {
				if got := cl.md.Get("authorization"); fmt.Sprint(got) != fmt.Sprint(tc.want) {
					t.Errorf("%s: authorization %q, want %q", cl.method, got, tc.want)
				}
			}
		})
	}
}

func TestTokenWithALineBreakIsRefused(t *testing.T) {
	if _, err := New(context.Background(), "127.0.0.1:1", WithToken("a\r\nx-evil: 1")); err == nil {
		t.Error("New accepted a token with a line break")
	}
}

// The caller's span context (and baggage) reach the server in the call's
// metadata, where the gateway's propagator (W3C trace context) reads them.
func TestTraceContextReachesTheServer(t *testing.T) {
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})
	member, _ := baggage.NewMember("tenant", "brand-1")
	bag, _ := baggage.New(member)
	ctx := baggage.ContextWithBaggage(trace.ContextWithSpanContext(context.Background(), sc), bag)
	ctx = metadata.AppendToOutgoingContext(ctx, "x-request-id", "r-1") // the caller's own metadata stays

	f, c, _ := newFake(t, WithToken("t"))
	if _, err := c.Publish(ctx, clearing("")); err != nil {
		t.Fatal(err)
	}
	p := c.NewPublisher(PublisherOptions{})
	p.Publish(ctx, clearing(""))
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(context.Background(), clearing("")); err != nil { // no span: nothing injected
		t.Fatal(err)
	}
	calls := f.snapshot()
	if len(calls) != 3 {
		t.Fatalf("%d calls, want 3", len(calls))
	}
	server := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	for _, cl := range calls[:2] {
		got := server.Extract(context.Background(), propagation.HeaderCarrier(mdHeader(cl.md)))
		if rsc := trace.SpanContextFromContext(got); rsc.TraceID() != tid || rsc.SpanID() != sid || !rsc.IsSampled() || !rsc.IsRemote() {
			t.Errorf("%s: server extracted %v, want trace %s span %s sampled", cl.method, rsc, tid, sid)
		}
		if v := baggage.FromContext(got).Member("tenant").Value(); v != "brand-1" {
			t.Errorf("%s: baggage tenant %q, want brand-1", cl.method, v)
		}
		if v := cl.md.Get("x-request-id"); len(v) != 1 || v[0] != "r-1" {
			t.Errorf("%s: the caller's metadata x-request-id = %q, want r-1", cl.method, v)
		}
		if v := cl.md.Get("authorization"); len(v) != 1 {
			t.Errorf("%s: authorization %q, want one", cl.method, v)
		}
	}
	if v := calls[2].md.Get("traceparent"); len(v) != 0 {
		t.Errorf("a call without a span sent traceparent %q", v)
	}
}

// mdHeader turns metadata into an http.Header-like map for HeaderCarrier.
func mdHeader(md metadata.MD) map[string][]string {
	h := map[string][]string{}
	for k, v := range md {
		h[canonical(k)] = v
	}
	return h
}

func canonical(k string) string {
	b := []byte(k)
	up := true
	for i, c := range b {
		if up && c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
		up = c == '-'
	}
	return string(b)
}

func TestDefaultTransportIsPlaintextOnlyForLoopback(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:7070", true},
		{"127.3.2.1:7070", true},
		{"localhost:7070", true},
		{"LOCALHOST:7070", true},
		{"[::1]:7070", true},
		{"dns:///localhost:7070", true},
		{"passthrough:///127.0.0.1:7070", true},
		{"unix:///run/postback.sock", true},
		{"127.0.0.1", true},
		{"postback.example.com:443", false},
		{"dns:///postback.example.com:443", false},
		{"10.0.0.7:7070", false},
		{"[2001:db8::1]:7070", false},
		{"localhost.example.com:7070", false},
	} {
		if got := isLoopback(tc.addr); got != tc.want {
			t.Errorf("isLoopback(%q) = %v, want %v", tc.addr, got, tc.want)
		}
	}
}

// selfSigned is a certificate for 127.0.0.1 and the pool that trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "postback test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

func TestTLSOption(t *testing.T) {
	cert, pool := selfSigned(t)
	f := &fakeEvents{}
	addr := serve(t, func(s *grpc.Server) { postbackv1.RegisterEventServiceServer(s, f) },
		grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}})))
	for _, tc := range []struct {
		name string
		opts []Option
		code codes.Code
	}{
		{"TLS trusting the server's certificate", []Option{WithTLS(&tls.Config{RootCAs: pool})}, codes.OK},
		{"TLS with the system roots only", []Option{WithTLS(nil)}, codes.Unavailable},
		{"plaintext by default on loopback", nil, codes.Unavailable},
		{"plaintext by WithInsecure", []Option{WithInsecure()}, codes.Unavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(context.Background(), addr, append(tc.opts, WithToken("t"), WithRetry(1, 0, 0))...)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, err = c.Publish(context.Background(), clearing(""))
			if status.Code(err) != tc.code {
				t.Errorf("Publish: %v, want %s", err, tc.code)
			}
		})
	}
}

// fakeDeliveries pages through 7 deliveries, 3 a page.
type fakeDeliveries struct {
	postbackv1.UnimplementedDeliveryServiceServer
	postbackv1.UnimplementedEndpointServiceServer
	tokens []string // the page tokens asked for
	fail   int      // answer Unavailable this many times first
}

func (f *fakeDeliveries) ListDeliveries(_ context.Context, req *postbackv1.ListDeliveriesRequest) (*postbackv1.ListDeliveriesResponse, error) {
	if f.fail > 0 {
		f.fail--
		return nil, unavailable()
	}
	f.tokens = append(f.tokens, req.PageToken)
	start := 0
	if req.PageToken != "" {
		fmt.Sscanf(req.PageToken, "p%d", &start)
	}
	resp := &postbackv1.ListDeliveriesResponse{}
	for i := start; i < min(start+3, 7); i++ {
		resp.Deliveries = append(resp.Deliveries, &postbackv1.Delivery{Id: fmt.Sprint("dlv_", i), EndpointId: req.EndpointId})
	}
	if start+3 < 7 {
		resp.NextPageToken = fmt.Sprint("p", start+3)
	}
	return resp, nil
}

func (f *fakeDeliveries) ListEndpoints(_ context.Context, req *postbackv1.ListEndpointsRequest) (*postbackv1.ListEndpointsResponse, error) {
	if req.PageToken == "" {
		return &postbackv1.ListEndpointsResponse{Endpoints: []*postbackv1.Endpoint{{Id: "ep_1"}}, NextPageToken: "next"}, nil
	}
	return &postbackv1.ListEndpointsResponse{Endpoints: []*postbackv1.Endpoint{{Id: "ep_2"}}}, nil
}

func TestEachDeliveryWalksEveryPage(t *testing.T) {
	f := &fakeDeliveries{fail: 1}
	addr := serve(t, func(s *grpc.Server) {
		postbackv1.RegisterDeliveryServiceServer(s, f)
		postbackv1.RegisterEndpointServiceServer(s, f)
	})
	c, err := New(context.Background(), addr, WithRetry(3, time.Millisecond, time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := &postbackv1.ListDeliveriesRequest{EndpointId: "ep_1", PageSize: 3}
	var got []string
	err = c.EachDelivery(context.Background(), req, func(d *postbackv1.Delivery) error {
		got = append(got, d.Id)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[dlv_0 dlv_1 dlv_2 dlv_3 dlv_4 dlv_5 dlv_6]" || fmt.Sprint(f.tokens) != "[ p3 p6]" {
		t.Errorf("got %v over pages %q", got, f.tokens)
	}
	if req.PageToken != "" {
		t.Errorf("EachDelivery changed the caller's request: page_token %q", req.PageToken)
	}

	stop := errors.New("enough")
	n := 0
	err = c.EachDelivery(context.Background(), nil, func(*postbackv1.Delivery) error {
		if n++; n == 4 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 4 {
		t.Errorf("EachDelivery after fn's error: %v after %d, want fn's error after 4", err, n)
	}

	var eps []string
	if err := c.EachEndpoint(context.Background(), &postbackv1.ListEndpointsRequest{}, func(e *postbackv1.Endpoint) error {
		eps = append(eps, e.Id)
		return nil
	}); err != nil || fmt.Sprint(eps) != "[ep_1 ep_2]" {
		t.Errorf("EachEndpoint: %v %v", eps, err)
	}
}
