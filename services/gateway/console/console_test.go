package console

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/postback-dev/postback/pkg/auth"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// refusingConn answers every call Unavailable: these tests never reach the API.
type refusingConn struct{}

func (refusingConn) Invoke(context.Context, string, any, any, ...grpc.CallOption) error {
	return status.Error(codes.Unavailable, "no API in this test")
}

func (refusingConn) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, status.Error(codes.Unavailable, "no API in this test")
}

const testToken = "console-unit-test-token-01"

func newTestConsole(t *testing.T) *Console {
	t.Helper()
	tokens, err := auth.ParseTokens(testToken + "=acct-1")
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Options{Conn: refusingConn{}, Auth: auth.New(tokens, nil)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func post(c *Console, path string, form url.Values, cookie *http.Cookie) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if cookie != nil {
		r.AddCookie(cookie)
	}
	w := httptest.NewRecorder()
	c.ServeHTTP(w, r)
	return w
}

func TestSignInSetsAStrictHttpOnlyCookieAndStateChangesNeedTheCSRFToken(t *testing.T) {
	c := newTestConsole(t)
	if w := post(c, "/console/sign-in", url.Values{"token": {"wrong-token-wrong-token"}}, nil); w.Code != http.StatusUnauthorized || len(w.Result().Cookies()) != 0 {
		t.Fatalf("a wrong token: %d, cookies %v", w.Code, w.Result().Cookies())
	}
	w := post(c, "/console/sign-in", url.Values{"token": {testToken}}, nil)
	if w.Code != http.StatusSeeOther {
		t.Fatalf("sign-in: %d %s", w.Code, w.Body)
	}
	cookies := w.Result().Cookies()
	if len(cookies) != 1 || !cookies[0].HttpOnly || cookies[0].SameSite != http.SameSiteStrictMode || cookies[0].MaxAge <= 0 || cookies[0].Secure {
		t.Fatalf("session cookie: %+v", cookies)
	}
	if strings.Contains(cookies[0].Value, testToken) {
		t.Fatal("the cookie carries the token")
	}
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Fatalf("CSP %q", csp)
	}
	// Without the CSRF token a state change is refused, before any API call.
	if w := post(c, "/console/sign-out", nil, cookies[0]); w.Code != http.StatusForbidden {
		t.Fatalf("sign-out without CSRF: %d", w.Code)
	}
	var csrf string
	for _, s := range c.sessions {
		csrf = s.csrf
	}
	if w := post(c, "/console/sign-out", url.Values{"csrf": {csrf}}, cookies[0]); w.Code != http.StatusSeeOther {
		t.Fatalf("sign-out with CSRF: %d", w.Code)
	}
	if len(c.sessions) != 0 {
		t.Fatal("the session outlived its sign-out")
	}
}

func TestACrossOriginSignInIsRefused(t *testing.T) {
	c := newTestConsole(t)
	r := httptest.NewRequest(http.MethodPost, "http://console.example/console/sign-in", strings.NewReader("token="+testToken))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Origin", "https://evil.example")
	w := httptest.NewRecorder()
	c.ServeHTTP(w, r)
	if w.Code != http.StatusForbidden {
		t.Fatalf("cross-origin sign-in: %d", w.Code)
	}
}

func TestAnUntouchedSecretIsSentBackMaskedSoTheAPIKeepsIt(t *testing.T) {
	stored := &postbackv1.Endpoint{Headers: []*postbackv1.Header{{Name: "Authorization", Value: "••••5b4a", Secret: true}}}
	f := formFromEndpoint(stored)
	if f.Headers[0].Value != "" || !f.Headers[0].Stored {
		t.Fatalf("a stored secret in the form: %+v", f.Headers[0])
	}
	errs := map[string]string{}
	ep, rows := endpointOf(f, "acct-1", "action_lifecycle", stored, errs)
	if len(errs) != 0 || len(ep.Headers) != 2 || ep.Headers[0].Value != "••••5b4a" || rows[0] != 0 {
		t.Fatalf("endpoint %v, rows %v, errors %v", ep, rows, errs)
	}
}

func TestAPIViolationsLandAtTheirFormFields(t *testing.T) {
	st, _ := status.New(codes.InvalidArgument, "x").WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
		{Field: "endpoint.body_template", Description: "line 2, column 10: unknown data point"},
		{Field: "endpoint.headers[0].name", Description: "reserved"},
		{Field: "endpoint.signing_secret", Description: "bad"},
	}})
	d := &editData{Errors: map[string]string{}}
	if !placeViolations(st.Err(), []int{3}, d) {
		t.Fatal("not placed")
	}
	if d.Errors["body_template"] != "line 2, column 10: unknown data point" || d.Errors["h3_name"] != "reserved" || len(d.Other) != 1 {
		t.Fatalf("errors %v, other %v", d.Errors, d.Other)
	}
}

func TestJudgeExplainsWithTheBrandsRules(t *testing.T) {
	ep := &postbackv1.Endpoint{SuccessResponse: "OK", ErrorResponse: "ERROR"}
	a := &postbackv1.Attempt{StatusCode: 200, ResponseBody: "ERROR: nope", Outcome: postbackv1.AttemptOutcome_ATTEMPT_OUTCOME_FAILURE}
	if r := judge(a, ep); r.Success || !strings.Contains(r.Why, "Error Response") {
		t.Fatalf("judge: %+v", r)
	}
}
