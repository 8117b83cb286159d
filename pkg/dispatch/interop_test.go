package dispatch

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/postback-dev/postback/pkg/delivery"
	"github.com/postback-dev/postback/pkg/endpoint"
	"github.com/postback-dev/postback/pkg/signature"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// The official Standard Webhooks libraries, as a brand's receiver uses them.
const (
	// The Go library's module: its zip holds the Python library's source too
	// (libraries/python), which the Python check runs from the module cache.
	standardWebhooksModule = "github.com/standard-webhooks/standard-webhooks/libraries"
	// The npm package and its lock: testdata/standardwebhooks.
	interopDir = "testdata/standardwebhooks"
)

// interopCase is one request as the receiver got it, in the form the
// verifier scripts read (testdata/standardwebhooks/verify.js, verify.py).
type interopCase struct {
	Name    string            `json:"name"`
	Method  string            `json:"method"`
	Scheme  string            `json:"scheme"`
	Host    string            `json:"host"`
	Target  string            `json:"target"`
	Body    string            `json:"body"` // base64
	Headers map[string]string `json:"headers"`
	Secrets []string          `json:"secrets"`
	want    []bool            // per secret: the library accepts the request
}

type interopResult struct {
	Name   string `json:"name"`
	Secret int    `json:"secret"`
	OK     bool   `json:"ok"`
	Error  string `json:"error"`
}

// TestTheOfficialStandardWebhooksLibrariesVerifyWhatTheSenderSends renders
// JSON, form, text, XML and GET postbacks from endpoints as they are saved
// (endpoint.Validate, the renderer's templates), sends each through the
// dispatcher to a receiver on 127.0.0.1, and has the official Standard
// Webhooks libraries verify what arrived, as a brand's receiver would: the
// Go library in process, the npm package under node, and the Python
// library under python3. Each verifies a POST over its raw body and a GET
// over "GET " and its full URL (signature.Payload), during a rotation with
// either secret, and refuses a tampered request, an expired previous
// secret and an unrelated secret.
//
// It needs node and npm (npm ci installs the pinned package from the npm
// registry into a temporary folder) and python3; without one it fails.
func TestTheOfficialStandardWebhooksLibrariesVerifyWhatTheSenderSends(t *testing.T) {
	tools := map[string]string{}
	for _, tool := range []string{"node", "npm", "python3"} {
		path, err := exec.LookPath(tool)
		if err != nil {
			t.Fatalf("%s is needed to verify postbacks with the official Standard Webhooks libraries (Node.js 18 or later with npm, and Python 3.10 or later): %v", tool, err)
		}
		tools[tool] = path
	}

	current, _ := signature.GenerateSecret()
	previous, _ := signature.GenerateSecret()
	unrelated, _ := signature.GenerateSecret()
	srv, got := capture(t)
	d := loopbackDispatcher()
	defer d.CloseIdle()

	// The sample event, with values that need escaping in every format.
	base := func(method postbackv1.HttpMethod, format postbackv1.BodyFormat, url, body string) *postbackv1.Endpoint {
		return &postbackv1.Endpoint{Id: "ep_interop", AccountId: "brand-1", EventType: "action_lifecycle",
			Method: method, BodyFormat: format, Url: url, BodyTemplate: body, SigningSecret: current,
			Headers: []*postbackv1.Header{{Name: "X-Brand", Value: "b-{CampaignId}"}}}
	}
	post := postbackv1.HttpMethod_HTTP_METHOD_POST
	get := postbackv1.HttpMethod_HTTP_METHOD_GET
	rotating := func(e *postbackv1.Endpoint, expire time.Time) *postbackv1.Endpoint {
		e.PreviousSigningSecret = previous
		e.PreviousSigningSecretExpireTime = timestamppb.New(expire)
		return e
	}
	now := time.Now()
	getURL := srv.URL + "/pb/{ActionId}?note={Note}&payout={Payout}&text={Text1}&mail={CustomerEmail}"
	cases := []struct {
		name    string
		ep      *postbackv1.Endpoint
		secrets []string
		want    []bool
		tamper  bool
	}{
		{"json", base(post, postbackv1.BodyFormat_BODY_FORMAT_JSON, srv.URL+"/json",
			`{"action":"{ActionId}","note":"{Note}","payout":{Payout},"items":[{join(items, i, "\{\"sku\":\"{i.sku}\"\}", ",")}]}`),
			[]string{current, unrelated}, []bool{true, false}, false},
		{"json, the whole event", base(post, postbackv1.BodyFormat_BODY_FORMAT_JSON, srv.URL+"/event", ""),
			[]string{current}, []bool{true}, false},
		{"form", base(post, postbackv1.BodyFormat_BODY_FORMAT_FORM, srv.URL+"/form",
			`action={ActionId}&note={Note}&payout={Payout}&text={Text1}`),
			[]string{current, unrelated}, []bool{true, false}, false},
		{"text", base(post, postbackv1.BodyFormat_BODY_FORMAT_TEXT, srv.URL+"/text",
			"action {ActionId}: {Note}\npayout {Payout} {Currency}\n"),
			[]string{current, unrelated}, []bool{true, false}, false},
		{"xml", base(post, postbackv1.BodyFormat_BODY_FORMAT_XML, srv.URL+"/xml",
			`<postback><action>{ActionId}</action><note>{Note}</note></postback>`),
			[]string{current}, []bool{true}, false},
		{"get", base(get, 0, getURL, ""), []string{current, unrelated}, []bool{true, false}, false},
		{"json, tampered", base(post, postbackv1.BodyFormat_BODY_FORMAT_JSON, srv.URL+"/json", `{"payout":{Payout}}`),
			[]string{current}, []bool{false}, true},
		{"form, tampered", base(post, postbackv1.BodyFormat_BODY_FORMAT_FORM, srv.URL+"/form", `payout={Payout}`),
			[]string{current}, []bool{false}, true},
		{"get, tampered", base(get, 0, getURL, ""), []string{current}, []bool{false}, true},
		{"rotation, json", rotating(base(post, postbackv1.BodyFormat_BODY_FORMAT_JSON, srv.URL+"/json", `{"payout":{Payout}}`), now.Add(time.Hour)),
			[]string{current, previous, unrelated}, []bool{true, true, false}, false},
		{"rotation, get", rotating(base(get, 0, getURL, ""), now.Add(time.Hour)),
			[]string{current, previous, unrelated}, []bool{true, true, false}, false},
		{"rotation over, form", rotating(base(post, postbackv1.BodyFormat_BODY_FORMAT_FORM, srv.URL+"/form", `payout={Payout}`), now.Add(-time.Second)),
			[]string{current, previous}, []bool{true, false}, false},
	}

	data := func(t *testing.T) map[string]any {
		ep := base(post, 0, srv.URL, "")
		compiled, err := endpoint.Validate(ep)
		if err != nil {
			t.Fatal(err)
		}
		m := compiled.EventType().Sample()
		m["Note"] = `Café “déjà vu” & <b>50%</b> off, "quoted" \ back/slash ✓`
		m["Text1"] = "a b+c/d?e=f&g#h"
		return m
	}(t)

	var all []interopCase
	for i, tc := range cases {
		compiled, err := endpoint.Validate(tc.ep)
		if err != nil {
			t.Fatalf("%s: the endpoint is refused: %v", tc.name, err)
		}
		r, err := compiled.Render(data)
		if err != nil {
			t.Fatalf("%s: render: %v", tc.name, err)
		}
		job := &delivery.Job{DeliveryID: fmt.Sprintf("dlv_interop%02d", i), AccountID: "brand-1", EndpointID: tc.ep.Id,
			EventID: "evt_interop", EventType: tc.ep.EventType, Method: r.Method, URL: r.URL, Body: r.Body, ContentType: r.ContentType}
		for _, h := range r.Headers {
			job.Headers = append(job.Headers, delivery.Header{Name: h.Name, Value: h.Value})
		}
		if res := d.Send(context.Background(), tc.ep, job); !res.Success {
			t.Fatalf("%s: send: %s", tc.name, res.Reason)
		}
		var req captured
		select {
		case req = <-got:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: nothing arrived", tc.name)
		}
		if req.method != r.Method || (r.Method == http.MethodGet) != (len(req.body) == 0) {
			t.Fatalf("%s: the receiver got a %s with %d body bytes", tc.name, req.method, len(req.body))
		}
		if tc.tamper {
			if len(req.body) > 0 {
				req.body = bytes.Replace(req.body, []byte("10.5"), []byte("99.5"), 1)
			} else {
				req.target = strings.Replace(req.target, "payout=10.5", "payout=99.5", 1)
			}
		}
		c := interopCase{Name: tc.name, Method: req.method, Scheme: "http", Host: req.host, Target: req.target,
			Body: base64.StdEncoding.EncodeToString(req.body), Headers: map[string]string{}, Secrets: tc.secrets, want: tc.want}
		for k := range req.header {
			c.Headers[k] = req.header.Get(k)
		}
		all = append(all, c)
	}
	for _, c := range all {
		t.Logf("%s: %s %s://%s%s, %d body bytes, webhook-signature with %d entries",
			c.Name, c.Method, c.Scheme, c.Host, c.Target, len(c.Body)*3/4, len(strings.Fields(c.Headers["Webhook-Signature"])))
	}

	t.Run("go", func(t *testing.T) {
		var results []interopResult
		for _, c := range all {
			h := http.Header{}
			for k, v := range c.Headers {
				h.Set(k, v)
			}
			for i, secret := range c.Secrets {
				wh, err := standardwebhooks.NewWebhook(secret)
				if err != nil {
					t.Fatal(err)
				}
				err = wh.Verify(c.payload(), h)
				r := interopResult{Name: c.Name, Secret: i, OK: err == nil}
				if err != nil {
					r.Error = err.Error()
				}
				results = append(results, r)
			}
		}
		check(t, "the Go library", all, results)
	})

	casesFile := filepath.Join(t.TempDir(), "cases.json")
	b, err := json.Marshal(all)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(casesFile, b, 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("npm", func(t *testing.T) {
		dir := t.TempDir()
		for _, f := range []string{"package.json", "package-lock.json", "verify.js"} {
			copyFile(t, filepath.Join(interopDir, f), filepath.Join(dir, f))
		}
		run(t, dir, nil, tools["npm"], "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--prefer-offline")
		out := run(t, dir, nil, tools["node"], "verify.js", casesFile)
		var results []interopResult
		if err := json.Unmarshal(out, &results); err != nil {
			t.Fatalf("verify.js printed %q: %v", out, err)
		}
		check(t, "the npm library", all, results)
	})

	t.Run("python", func(t *testing.T) {
		modDir := strings.TrimSpace(string(run(t, ".", nil, "go", "list", "-m", "-f", "{{.Dir}}", standardWebhooksModule)))
		src := filepath.Join(modDir, "python")
		if _, err := os.Stat(filepath.Join(src, "standardwebhooks", "webhooks.py")); err != nil {
			t.Fatalf("the Python library's source is not in the module %s: %v", modDir, err)
		}
		env := []string{"PYTHONPATH=" + src, "PYTHONDONTWRITEBYTECODE=1"}
		out := run(t, ".", env, tools["python3"], filepath.Join(interopDir, "verify.py"), casesFile)
		var results []interopResult
		if err := json.Unmarshal(out, &results); err != nil {
			t.Fatalf("verify.py printed %q: %v", out, err)
		}
		check(t, "the Python library", all, results)
	})
}

// payload is what the receiver hands its library: a GET's method and full
// URL as it rebuilds them from the request, another request's raw body.
func (c interopCase) payload() []byte {
	if c.Method == http.MethodGet {
		return signature.Payload(c.Method, c.Scheme+"://"+c.Host+c.Target, nil)
	}
	body, _ := base64.StdEncoding.DecodeString(c.Body)
	return body
}

// check compares a library's verdicts with what each case wants.
func check(t *testing.T, library string, cases []interopCase, results []interopResult) {
	t.Helper()
	verdicts := map[string]interopResult{}
	for _, r := range results {
		verdicts[fmt.Sprintf("%s/%d", r.Name, r.Secret)] = r
	}
	n := 0
	for _, c := range cases {
		for i, want := range c.want {
			r, ok := verdicts[fmt.Sprintf("%s/%d", c.Name, i)]
			switch {
			case !ok:
				t.Errorf("%s gave no verdict on %s with secret %d", library, c.Name, i)
			case r.OK != want:
				t.Errorf("%s: %s with secret %d: accepted %v (%s), want %v", library, c.Name, i, r.OK, r.Error, want)
			}
			n++
		}
	}
	if len(results) != n {
		t.Errorf("%s gave %d verdicts, want %d", library, len(results), n)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// run runs a command in dir and returns its standard output; it fails the
// test, showing standard error, when the command fails.
func run(t *testing.T, dir string, env []string, name string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return out
}
