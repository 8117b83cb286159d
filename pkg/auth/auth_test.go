package auth

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

const (
	tokA  = "tokenA-0123456789abcdef"
	tokB  = "tokenB-0123456789abcdef"
	tokOp = "tokenOp-0123456789abcdef"
)

func TestParseTokensBindsEachTokenToItsAccount(t *testing.T) {
	ts, err := ParseTokens(" " + tokA + "=acctA , " + tokB + "=acctB," + tokOp + "=*")
	if err != nil {
		t.Fatal(err)
	}
	if ts.Len() != 3 {
		t.Fatalf("Len = %d", ts.Len())
	}
	for tok, want := range map[string]string{tokA: "acctA", tokB: "acctB", tokOp: OperatorAccount} {
		id, ok := ts.Lookup(tok)
		if !ok || id.Account != want || len(id.TokenID) != 8 {
			t.Errorf("Lookup(%s) = %+v, %v; want account %s", tok, id, ok, want)
		}
	}
	if id, _ := ts.Lookup(tokOp); !id.Operator() {
		t.Error("* is not an operator")
	}
	for _, wrong := range []string{"", "x", tokA + "x", tokA[:len(tokA)-1], strings.ToUpper(tokA)} {
		if _, ok := ts.Lookup(wrong); ok {
			t.Errorf("Lookup(%q) matched", wrong)
		}
	}
	if s := fmt.Sprintf("%v %#v %+v", ts, ts, ts); strings.Contains(s, tokA) || strings.Contains(s, "acctA") {
		t.Errorf("formatting Tokens shows them: %s", s)
	}
}

func TestBadTokenListsAreRefusedWithoutQuotingTheToken(t *testing.T) {
	cases := []struct{ name, value, want string }{
		{"no equals", "just-a-long-token-value", "file:"},
		{"short token", "short=acctA", "16 to 256"},
		{"space in token", "token with spaces 123=acctA", "printable ASCII"},
		{"bad account", tokA + "=acct.A", "account"},
		{"empty account", tokA + "=", "account"},
		{"duplicate", tokA + "=acctA," + tokA + "=acctB", "twice"},
		{"empty pair", tokA + "=acctA,,", "want token=account"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := LoadTokens(c.value)
			if !errors.Is(err, ErrBadTokens) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want ErrBadTokens mentioning %q", err, c.want)
			}
			for _, tok := range []string{tokA, "just-a-long-token-value", "token with spaces 123"} {
				if strings.Contains(err.Error(), tok) {
					t.Fatalf("error quotes the token: %v", err)
				}
			}
		})
	}
}

func TestEmptyTokensMeanNoAuthentication(t *testing.T) {
	ts, err := LoadTokens("  ")
	if err != nil || ts.Len() != 0 {
		t.Fatalf("LoadTokens(blank) = %v, %v", ts, err)
	}
	a := New(ts, nil)
	if !a.Open() {
		t.Fatal("no tokens is not open")
	}
	id, err := a.Authenticate(context.Background())
	if err != nil || id != AnonymousOperator {
		t.Fatalf("Authenticate = %+v, %v", id, err)
	}
}

func TestTokenFileHoldsOnePairALine(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tokens")
	body := "# API tokens\n\n" + tokA + "=acctA\r\n  " + tokOp + " = * \n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	ts, err := LoadTokens(FilePrefix + path)
	if err != nil {
		t.Fatal(err)
	}
	if id, ok := ts.Lookup(tokA); !ok || id.Account != "acctA" {
		t.Fatalf("Lookup(tokA) = %+v %v", id, ok)
	}
	if id, ok := ts.Lookup(tokOp); !ok || !id.Operator() {
		t.Fatalf("Lookup(tokOp) = %+v %v", id, ok)
	}

	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte(tokA+"=acctA\nsecret-but-broken-line\n"), 0o600)
	if _, err := LoadTokens(FilePrefix + bad); err == nil || !strings.Contains(err.Error(), "line 2") || strings.Contains(err.Error(), "secret-but-broken") {
		t.Fatalf("bad line: %v", err)
	}
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("# nothing yet\n"), 0o600)
	if _, err := LoadTokens(FilePrefix + empty); err == nil {
		t.Fatal("a file without tokens opened the API")
	}
	if _, err := LoadTokens(FilePrefix + filepath.Join(dir, "missing")); err == nil {
		t.Fatal("a missing file opened the API")
	}
}

func TestAuthenticateReadsTheBearerMetadata(t *testing.T) {
	ts, _ := ParseTokens(tokA + "=acctA," + tokOp + "=*")
	a := New(ts, nil)
	in := func(kv ...string) context.Context {
		return metadata.NewIncomingContext(context.Background(), metadata.Pairs(kv...))
	}
	cases := []struct {
		name    string
		ctx     context.Context
		account string // "" = Unauthenticated
	}{
		{"account token", in("authorization", "Bearer "+tokA), "acctA"},
		{"operator token", in("authorization", "Bearer "+tokOp), "*"},
		{"scheme is case-insensitive", in("authorization", "bearer "+tokA), "acctA"},
		{"no metadata", context.Background(), ""},
		{"no authorization", in("x-other", "1"), ""},
		{"unknown token", in("authorization", "Bearer not-a-configured-token"), ""},
		{"basic scheme", in("authorization", "Basic "+tokA), ""},
		{"bare token", in("authorization", tokA), ""},
		{"twice", in("authorization", "Bearer "+tokA, "authorization", "Bearer "+tokOp), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id, err := a.Authenticate(c.ctx)
			if c.account == "" {
				if status.Code(err) != codes.Unauthenticated {
					t.Fatalf("got %+v, %v; want Unauthenticated", id, err)
				}
				if strings.Contains(err.Error(), tokA) {
					t.Fatalf("error quotes the token: %v", err)
				}
				return
			}
			if err != nil || id.Account != c.account {
				t.Fatalf("got %+v, %v; want %s", id, err, c.account)
			}
		})
	}
}

func TestInterceptorsPutTheIdentityInTheContextAndSkipHealthAndReflection(t *testing.T) {
	ts, _ := ParseTokens(tokA + "=acctA")
	a := New(ts, nil)
	unary := a.UnaryServerInterceptor()
	var seen Identity
	var called bool
	handler := func(ctx context.Context, _ any) (any, error) {
		called = true
		seen, _ = FromContext(ctx)
		return "ok", nil
	}
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+tokA))
	if _, err := unary(ctx, nil, &grpc.UnaryServerInfo{FullMethod: "/postback.v1.EndpointService/GetEndpoint"}, handler); err != nil || seen.Account != "acctA" {
		t.Fatalf("authorized call: %v, identity %+v", err, seen)
	}
	called = false
	if _, err := unary(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/postback.v1.EndpointService/GetEndpoint"}, handler); status.Code(err) != codes.Unauthenticated || called {
		t.Fatalf("call without token: %v, handler called %v", err, called)
	}
	for _, m := range []string{"/grpc.health.v1.Health/Check", "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"} {
		called = false
		if _, err := unary(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: m}, handler); err != nil || !called {
			t.Fatalf("%s without token: %v", m, err)
		}
	}
	stream := a.StreamServerInterceptor()
	err := stream(nil, &fakeStream{ctx: context.Background()}, &grpc.StreamServerInfo{FullMethod: "/postback.v1.X/Y"}, func(any, grpc.ServerStream) error { return nil })
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("stream without token: %v", err)
	}
	err = stream(nil, &fakeStream{ctx: ctx}, &grpc.StreamServerInfo{FullMethod: "/postback.v1.X/Y"}, func(_ any, ss grpc.ServerStream) error {
		seen, _ = FromContext(ss.Context())
		return nil
	})
	if err != nil || seen.Account != "acctA" {
		t.Fatalf("stream with token: %v, identity %+v", err, seen)
	}
}

type fakeStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (f *fakeStream) Context() context.Context { return f.ctx }

func TestTenancyRulesPinAnAccountTokenToItsAccount(t *testing.T) {
	acct := NewContext(context.Background(), Identity{Account: "acctA", TokenID: "abcd1234"})
	op := NewContext(context.Background(), Identity{Account: OperatorAccount, TokenID: "ffff0000"})
	none := context.Background()
	access := []struct {
		name    string
		ctx     context.Context
		account string
		want    bool
	}{
		{"account sees its own", acct, "acctA", true},
		{"account does not see another", acct, "acctB", false},
		{"account does not see the empty account", acct, "", false},
		{"operator sees any", op, "acctB", true},
		{"no identity sees nothing", none, "acctA", false},
	}
	for _, c := range access {
		if got := CanAccess(c.ctx, c.account); got != c.want {
			t.Errorf("%s: CanAccess = %v", c.name, got)
		}
	}
	scope := []struct {
		name, requested, want string
		code                  codes.Code
		ctx                   context.Context
	}{
		{"account, no filter → its own", "", "acctA", codes.OK, acct},
		{"account, its own", "acctA", "acctA", codes.OK, acct},
		{"account, another", "acctB", "", codes.PermissionDenied, acct},
		{"operator, no filter → all", "", "", codes.OK, op},
		{"operator, one account", "acctB", "acctB", codes.OK, op},
		{"no identity", "", "", codes.Unauthenticated, none},
	}
	for _, c := range scope {
		got, err := Scope(c.ctx, c.requested)
		if status.Code(err) != c.code || got != c.want {
			t.Errorf("%s: Scope = %q, %v; want %q, %v", c.name, got, err, c.want, c.code)
		}
	}
}

func TestBearerCredentialsHideTheToken(t *testing.T) {
	b := Bearer{Token: tokA, RequireTLS: true}
	md, _ := b.GetRequestMetadata(context.Background())
	if md["authorization"] != "Bearer "+tokA || !b.RequireTransportSecurity() {
		t.Fatalf("metadata %v", md)
	}
	if s := fmt.Sprintf("%v %+v %#v", b, b, b); strings.Contains(s, tokA) {
		t.Fatalf("formatting shows the token: %s", s)
	}
}

// BenchmarkLookup shows the cost of the constant-time scan (it grows with
// the number of tokens, which is small: one per calling service or account).
func BenchmarkLookup(b *testing.B) {
	var pairs []string
	for i := range 100 {
		pairs = append(pairs, fmt.Sprintf("token-%04d-0123456789=acct%d", i, i))
	}
	ts, err := ParseTokens(strings.Join(pairs, ","))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		ts.Lookup("token-0050-0123456789")
	}
}
