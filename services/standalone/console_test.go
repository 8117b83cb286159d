package standalone

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/postback-dev/postback/pkg/auth"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// axe-core 4.14.1 from its npm package (testdata/axe-core/README.md).
//
//go:embed testdata/axe-core/axe.min.js
var axeSource string

const (
	consoleTokenA  = "console-token-account-a-0001"
	consoleTokenB  = "console-token-account-b-0002"
	consoleTokenOp = "console-token-operator-00003"
	// consoleSecret is the Authorization header's value: it must never
	// appear in a page, a script or a response.
	consoleSecret = "Bearer s3cret-VALUE-9f8e7d6c5b4a"
)

// chromiumPath finds Debian's chromium, installing it with
// scripts/ensure-chromium.sh when it is missing.
func chromiumPath(t *testing.T) string {
	t.Helper()
	find := func() string {
		for _, name := range []string{"chromium", "chromium-browser"} {
			if p, err := exec.LookPath(name); err == nil {
				return p
			}
		}
		if _, err := os.Stat("/usr/bin/chromium"); err == nil {
			return "/usr/bin/chromium"
		}
		return ""
	}
	if p := find(); p != "" {
		return p
	}
	out, err := exec.Command("../../scripts/ensure-chromium.sh").CombinedOutput()
	if err != nil {
		t.Fatalf("chromium is missing and scripts/ensure-chromium.sh failed: %v\n%s", err, out)
	}
	if p := find(); p != "" {
		return p
	}
	t.Fatalf("chromium still missing after scripts/ensure-chromium.sh:\n%s", out)
	return ""
}

// browser is one headless Chromium tab on the console.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string   // "http://127.0.0.1:port"
	seen []string // every page's HTML, checked for secrets at the end
}

func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1280, 900))
	// Every browser step is bounded: the whole walk stops by itself.
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	tabCtx, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancelTab(); cancelAlloc(); cancel() })
	b := &browser{t: t, ctx: tabCtx, base: base}
	b.run(chromedp.EmulateViewport(1280, 900))
	return b
}

func (b *browser) run(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.t.Fatalf("browser: %v", err)
	}
}

// get runs one action that answers a value.
func get[T any](b *browser, a chromedp.Action[T]) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, a)
	if err != nil {
		b.t.Fatalf("browser: %v", err)
	}
	return v
}

// cookies are the browser's cookies for the current page.
func (b *browser) cookies() []*network.Cookie {
	b.t.Helper()
	res, err := chromedp.Call(b.ctx, network.GetCookies, network.GetCookiesParams{})
	if err != nil {
		b.t.Fatalf("browser: cookies: %v", err)
	}
	return res.Cookies
}

// open navigates to a console path and waits for its main element.
func (b *browser) open(path string) {
	b.t.Helper()
	b.run(chromedp.Navigate(b.base + path))
	b.waitFor("main#main")
	b.keep()
}

// keep records the page's HTML.
func (b *browser) keep() {
	b.t.Helper()
	b.seen = append(b.seen, get(b, chromedp.Evaluate[string](`document.documentElement.outerHTML`)))
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	return get(b, chromedp.Evaluate[string](textOf(sel)))
}

// The page is driven through JavaScript (querySelector, click, focus) and
// real key events: chromedp's DOM queries lose track of a document that a
// form submission replaced.

// textOf is an expression with sel's innerText.
func textOf(sel string) string {
	q := strconv.Quote(sel)
	return `(() => { const e = document.querySelector(` + q + `); return e ? e.innerText : "<no element " + ` + q + ` + ">"; })()`
}

// waitFor waits until the page is loaded and sel is in it.
func (b *browser) waitFor(sel string) {
	b.t.Helper()
	b.poll(`document.readyState === "complete" && document.querySelector(`+strconv.Quote(sel)+`) !== null`, "an element "+sel)
}

// poll evaluates cond until it is true (bounded).
func (b *browser) poll(cond, what string) {
	b.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](cond))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			page, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`location.href + " " + document.readyState + "\n" + document.documentElement.outerHTML.slice(0, 3000)`))
			b.t.Fatalf("waited 20s for %s (last error %v); the page: %s", what, err, page)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// click clicks sel.
func (b *browser) click(sel string) {
	b.t.Helper()
	b.run(chromedp.Evaluate[chromedp.Void](`document.querySelector(` + strconv.Quote(sel) + `).click()`))
}

// typeInto focuses sel and types text with key events.
func (b *browser) typeInto(sel, text string) {
	b.t.Helper()
	b.run(chromedp.Evaluate[chromedp.Void](`document.querySelector(`+strconv.Quote(sel)+`).focus()`), chromedp.KeyEvent(text))
}

// setValue sets sel's value at once and fires an input event.
func (b *browser) setValue(sel, value string) {
	b.t.Helper()
	b.run(chromedp.Evaluate[chromedp.Void](`(() => { const e = document.querySelector(` + strconv.Quote(sel) + `); e.value = ` +
		strconv.Quote(value) + `; e.dispatchEvent(new Event("input", {bubbles: true})); })()`))
}

// waitText polls sel's text until it holds want.
func (b *browser) waitText(sel, want string, within time.Duration) string {
	b.t.Helper()
	deadline := time.Now().Add(within)
	last := ""
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](textOf(sel)))
		cancel()
		if err == nil && strings.Contains(s, want) {
			return s
		}
		last = s
		time.Sleep(100 * time.Millisecond)
	}
	b.t.Fatalf("%s never showed %q within %s; last text:\n%s", sel, want, within, last)
	return ""
}

// submit clicks a button that submits a form and waits for the next page.
func (b *browser) submit(sel, waitFor string) {
	b.t.Helper()
	b.run(chromedp.Evaluate[chromedp.Void](`window.pbOldPage = true`))
	b.click(sel)
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
		loaded, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`!window.pbOldPage && document.readyState === "complete"`))
		cancel()
		if err == nil && loaded {
			break
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("clicking %s loaded no new page within 20s", sel)
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.waitFor(waitFor)
	b.keep()
}

// axe runs axe-core on the page and fails on serious or critical violations.
func (b *browser) axe(page string) {
	b.t.Helper()
	b.run(chromedp.Evaluate[chromedp.Void](axeSource))
	found := get(b, chromedp.Evaluate[string](`axe.run(document, {resultTypes: ["violations"]}).then(r => JSON.stringify(r.violations
			.filter(v => v.impact === "serious" || v.impact === "critical")
			.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(" "))}))))`, chromedp.EvalAwaitPromise))
	var violations []map[string]any
	if err := json.Unmarshal([]byte(found), &violations); err != nil {
		b.t.Fatalf("axe on %s: %v (%s)", page, err, found)
	}
	if len(violations) > 0 {
		b.t.Errorf("axe on %s: %d serious or critical violations: %s", page, len(violations), found)
	}
}

// screenshot writes docs/console/<name>.png when CONSOLE_SCREENSHOTS=1.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	if os.Getenv("CONSOLE_SCREENSHOTS") != "1" {
		return
	}
	png := get(b, chromedp.FullScreenshot(100))
	dir := filepath.Join("..", "..", "docs", "console")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

func (b *browser) signIn(token string) {
	b.t.Helper()
	b.open("/console/sign-in")
	b.typeInto("#token", token)
	b.submit(`form[action="/console/sign-in"] button`, "main#main")
}

func (b *browser) signOut() {
	b.t.Helper()
	b.submit(`form[action="/console/sign-out"] button`, "#token")
}

// TestConsoleInChromium walks a brand through the console in headless
// Chromium against a real standalone: sign-in, configuring
// action_lifecycle, the live preview, a test postback, the delivery log,
// retries and Retry, field errors, and the tenancy and safety rules.
func TestConsoleInChromium(t *testing.T) {
	h := start(t, "", func(c *Config) {
		c.Tokens = consoleTokenA + "=acct-a," + consoleTokenB + "=acct-b," + consoleTokenOp + "=*"
		c.RetrySchedule = "200ms,200ms,1h"
	})
	rc := newReceiver(t)
	base := "http://" + h.addrs.HTTP.String()
	asA := auth.WithBearer(context.Background(), consoleTokenA)
	b := newBrowser(t, base)

	// The safety headers, on every answer.
	resp, err := http.Get(base + "/console/sign-in")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}

	if !t.Run("a wrong token is refused", func(t *testing.T) {
		b.t = t
		b.signIn("not-a-token-of-this-console")
		if got := b.text("main"); !strings.Contains(got, "That token is not valid.") {
			t.Fatalf("sign-in page says %q", got)
		}
		b.axe("sign-in (refused)")
		b.screenshot("sign-in")
	}) {
		return
	}

	if !t.Run("sign in", func(t *testing.T) {
		b.t = t
		b.signIn(consoleTokenA)
		got := b.text("main")
		for _, want := range []string{"action_lifecycle", "action_inquiry", "action_clearing", "tracking_value_request", "job_completed", "publisher_application", "not set"} {
			if !strings.Contains(got, want) {
				t.Errorf("Event Notifications lacks %q:\n%s", want, got)
			}
		}
		cookies := b.cookies()
		if len(cookies) != 1 || !cookies[0].HTTPOnly || cookies[0].SameSite != network.CookieSameSiteStrict || cookies[0].Expires <= 0 {
			t.Fatalf("session cookie: %+v", cookies)
		}
		b.axe("notifications")
	}) {
		return
	}

	var editURL = "/console/notifications/action_lifecycle"
	if !t.Run("configure action_lifecycle with a live preview", func(t *testing.T) {
		b.t = t
		b.submit(`a[href="`+editURL+`"]`, "#endpoint-form")
		b.axe("edit (new)")
		b.click("#method-get")
		b.typeInto("#url", rc.URL+"/pb?action={ActionId}&status=")
		b.click(`button.insert[data-insert="{Status}"]`) // the palette inserts at the cursor
		if got := get(b, chromedp.Evaluate[string](`document.querySelector("#url").value`)); got != rc.URL+"/pb?action={ActionId}&status={Status}" {
			t.Fatalf("URL after the palette's {Status}: %q", got)
		}
		b.typeInto("#h0_name", "Authorization")
		b.click("#h0_secret")
		b.typeInto("#h0_value", consoleSecret)
		b.waitText("#preview", "GET "+rc.URL+"/pb?action=ACT-778899&status=MODIFIED", 20*time.Second)
		preview := b.waitText("#preview", "Authorization: ••••", 20*time.Second)
		if strings.Contains(preview, "s3cret") {
			t.Fatalf("the preview shows the secret: %s", preview)
		}
		b.keep()
		b.screenshot("edit")
		b.submit("#save", "p.ok")
		b.axe("edit (saved)")
		list, err := h.endpoints.ListEndpoints(asA, &postbackv1.ListEndpointsRequest{EventType: "action_lifecycle"})
		if err != nil || len(list.Endpoints) != 1 {
			t.Fatalf("ListEndpoints: %v %v", list, err)
		}
		ep := list.Endpoints[0]
		if ep.Method != postbackv1.HttpMethod_HTTP_METHOD_GET || ep.Url != rc.URL+"/pb?action={ActionId}&status={Status}" || len(ep.Headers) != 1 || !ep.Headers[0].Secret {
			t.Fatalf("saved endpoint: %v", ep)
		}
	}) {
		return
	}

	if !t.Run("send a test postback", func(t *testing.T) {
		b.t = t
		b.submit("#send-test", "#test-result")
		got := b.text("#test-result")
		if !strings.Contains(got, "Counted as a success") || !strings.Contains(got, "200") {
			t.Fatalf("test result: %s", got)
		}
		r := rc.next(t, 10*time.Second)
		if r.Method != http.MethodGet || r.Query != "action=ACT-778899&status=MODIFIED" || r.Header.Get("Authorization") != consoleSecret {
			t.Fatalf("the receiver got %s ?%s Authorization=%q", r.Method, r.Query, r.Header.Get("Authorization"))
		}
		b.axe("edit (tested)")
		b.screenshot("test-postback")
	}) {
		return
	}

	if !t.Run("a bad template shows line:col at its field and saves nothing", func(t *testing.T) {
		b.t = t
		before, err := h.endpoints.ListEndpoints(asA, &postbackv1.ListEndpointsRequest{EventType: "action_lifecycle"})
		if err != nil {
			t.Fatal(err)
		}
		b.open(editURL)
		b.click("#method-post")
		b.setValue("#body_template", "{\"action\": \"{ActionId}\",\n \"oops\": {NoSuchPoint}}")
		b.submit("#save", "#error-summary")
		got := b.text("#body_template-error")
		if !strings.Contains(got, "line 2, column 10") {
			t.Fatalf("body template error = %q", got)
		}
		if invalid := get(b, chromedp.Evaluate[string](`document.querySelector("#body_template").getAttribute("aria-invalid") || ""`)); invalid != "true" {
			t.Errorf("body_template aria-invalid = %q", invalid)
		}
		b.axe("edit (errors)")
		b.screenshot("edit-error")
		after, err := h.endpoints.ListEndpoints(asA, &postbackv1.ListEndpointsRequest{EventType: "action_lifecycle"})
		if err != nil {
			t.Fatal(err)
		}
		if after.Endpoints[0].BodyTemplate != "" || !after.Endpoints[0].UpdateTime.AsTime().Equal(before.Endpoints[0].UpdateTime.AsTime()) {
			t.Fatalf("a bad form changed the endpoint: %v", after.Endpoints[0])
		}
	}) {
		return
	}

	var realEventID string
	if !t.Run("a published event is in the log", func(t *testing.T) {
		b.t = t
		data := sampleData(t, "action_lifecycle")
		data.Fields["ActionId"] = structpb.NewStringValue("ACT-REAL-4242") // not the example event's
		pub, err := h.events.Publish(asA, &postbackv1.PublishRequest{AccountId: "acct-a", EventType: "action_lifecycle", Data: data})
		if err != nil {
			t.Fatal(err)
		}
		realEventID = pub.EventId
		rc.next(t, 10*time.Second)
		deadline := time.Now().Add(20 * time.Second)
		for {
			b.open("/console/deliveries?type=action_lifecycle")
			if strings.Contains(b.text("#deliveries"), "SUCCEEDED") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("event %s never showed as SUCCEEDED in the log:\n%s", pub.EventId, b.text("#deliveries"))
			}
			time.Sleep(200 * time.Millisecond)
		}
		b.axe("deliveries")
		b.open("/console/notifications")
		got := b.text("main")
		if !strings.Contains(got, "enabled") || !strings.Contains(got, "100% (1 of 1)") {
			t.Errorf("Event Notifications after a delivery:\n%s", got)
		}
		b.screenshot("notifications")
	}) {
		return
	}

	if !t.Run("preview with a recent real event", func(t *testing.T) {
		b.t = t
		// The renderer keeps a sample of recent events in the background:
		// once the API lists the event, the page offers it.
		eventually(t, 20*time.Second, "the event in the recent events sample", func() bool {
			list, err := h.events.ListRecentEvents(asA, &postbackv1.ListRecentEventsRequest{EventType: "action_lifecycle"})
			return err == nil && len(list.Events) > 0 && list.Events[0].EventId == realEventID
		})
		b.open(editURL)
		option := `#preview_event option[value=` + strconv.Quote(realEventID) + `]`
		if !get(b, chromedp.Evaluate[bool](`document.querySelector(`+strconv.Quote(option)+`) !== null`)) {
			t.Fatalf("event %s not offered in the preview selector:\n%s", realEventID, b.text("#preview_event"))
		}
		if label := b.text("label[for=preview_event]"); label != "Preview with" {
			t.Errorf("the selector's label = %q", label)
		}
		b.waitText("#preview", "action=ACT-778899", 20*time.Second) // the example event first
		// Choose it as a keyboard does: focus, then a change of value.
		b.run(chromedp.Evaluate[chromedp.Void](`(() => { const e = document.querySelector("#preview_event"); e.focus(); e.value = ` +
			strconv.Quote(realEventID) + `; e.dispatchEvent(new Event("change", {bubbles: true})); })()`))
		b.waitText("#preview", "GET "+rc.URL+"/pb?action=ACT-REAL-4242&status=MODIFIED", 20*time.Second)
		b.axe("edit (recent event)")
		// Without the script: the Preview button posts the choice with the form.
		b.submit("#preview-button", "#preview")
		if got := b.text("#preview"); !strings.Contains(got, "action=ACT-REAL-4242") {
			t.Fatalf("the no-script preview with %s:\n%s", realEventID, got)
		}
		if chosen := get(b, chromedp.Evaluate[string](`document.querySelector("#preview_event").value`)); chosen != realEventID {
			t.Fatalf("the selector after Preview holds %q, want %q", chosen, realEventID)
		}
		b.screenshot("edit-recent-event")
	}) {
		return
	}

	var failedID string
	if !t.Run("a failing receiver: retries with their times, then Retry", func(t *testing.T) {
		b.t = t
		rc.mu.Lock()
		rc.answer = func(int, *http.Request) (int, string) {
			return http.StatusServiceUnavailable, "ERROR: down for maintenance"
		}
		rc.mu.Unlock()
		pub, err := h.events.Publish(asA, &postbackv1.PublishRequest{AccountId: "acct-a", EventType: "action_lifecycle", Data: sampleData(t, "action_lifecycle")})
		if err != nil {
			t.Fatal(err)
		}
		var d *postbackv1.Delivery
		eventually(t, 30*time.Second, "the delivery retrying after two retries", func() bool {
			list, err := h.deliveries.ListDeliveries(asA, &postbackv1.ListDeliveriesRequest{EventId: pub.EventId})
			if err != nil || len(list.Deliveries) == 0 {
				return false
			}
			d, err = h.deliveries.GetDelivery(asA, &postbackv1.GetDeliveryRequest{Id: list.Deliveries[0].Id})
			return err == nil && d.Status == postbackv1.DeliveryStatus_DELIVERY_STATUS_RETRYING && d.AttemptCount == 3
		})
		failedID = d.Id
		b.open("/console/deliveries/" + d.Id)
		if got := b.text("main"); !strings.Contains(got, "Retry 2: 503, failure, retryable") || !strings.Contains(got, "ERROR: down for maintenance") {
			t.Fatalf("delivery page:\n%s", got)
		}
		if next := b.text("#next-retry"); !strings.HasSuffix(next, "UTC") {
			t.Fatalf("next retry = %q", next)
		}
		b.axe("delivery")
		b.screenshot("delivery")
		rc.mu.Lock()
		rc.answer = nil
		rc.mu.Unlock()
		b.submit("#retry", "main#main")
		b.waitText("main", "Sent again now.", 5*time.Second)
		eventually(t, 20*time.Second, "the retried delivery succeeding", func() bool {
			d, err := h.deliveries.GetDelivery(asA, &postbackv1.GetDeliveryRequest{Id: failedID})
			return err == nil && d.Status == postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED
		})
		b.open("/console/deliveries/" + failedID)
		if got := b.text("#delivery-status"); got != "SUCCEEDED" {
			t.Fatalf("status after Retry = %q", got)
		}
		b.open("/console/deliveries?type=action_lifecycle")
		b.screenshot("deliveries")
	}) {
		return
	}

	if !t.Run("CSRF: a state change without the token is refused", func(t *testing.T) {
		b.t = t
		cookies := b.cookies()
		form := url.Values{"action": {"save"}, "url": {"http://127.0.0.1:1/evil"}, "header_count": {"0"}}
		req, _ := http.NewRequest(http.MethodPost, base+editURL, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.AddCookie(&http.Cookie{Name: cookies[0].Name, Value: cookies[0].Value})
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("POST without CSRF token: %d %s", resp.StatusCode, body)
		}
	}) {
		return
	}

	if !t.Run("account B never sees A", func(t *testing.T) {
		b.t = t
		b.signOut()
		b.signIn(consoleTokenB)
		if got := b.text("main"); !strings.Contains(got, "Account acct-b") && !strings.Contains(b.text("header"), "acct-b") {
			t.Fatalf("signed in as B, page:\n%s", got)
		}
		if got := b.text("table"); strings.Contains(got, "enabled") || strings.Contains(got, rc.URL) {
			t.Fatalf("B sees A's endpoint:\n%s", got)
		}
		b.open("/console/deliveries")
		if got := b.text("#deliveries"); !strings.Contains(got, "No deliveries match.") {
			t.Fatalf("B's log:\n%s", got)
		}
		b.open("/console/deliveries/" + failedID)
		if got := b.text("main"); !strings.Contains(got, "NotFound") {
			t.Fatalf("B reading A's delivery:\n%s", got)
		}
		b.axe("error")
		b.open(editURL)
		if urlValue := get(b, chromedp.Evaluate[string](`document.querySelector("#url").value`)); urlValue != "" {
			t.Fatalf("B's form shows %q", urlValue)
		}
		if n := get(b, chromedp.Evaluate[int](`document.querySelectorAll("#preview_event option").length`)); n != 1 {
			t.Fatalf("B's preview selector offers %d events, want the example event alone:\n%s", n, b.text("#preview_event"))
		}
	}) {
		return
	}

	if !t.Run("an operator picks the account", func(t *testing.T) {
		b.t = t
		b.signOut()
		b.signIn(consoleTokenOp)
		b.axe("pick-account")
		b.typeInto("#account", "acct-a")
		b.submit(`main form[action="/console/account"] button`, "main#main")
		if got := b.text("table"); !strings.Contains(got, "enabled") {
			t.Fatalf("operator acting for acct-a:\n%s", got)
		}
	}) {
		return
	}

	if !t.Run("readable at 390 px", func(t *testing.T) {
		b.t = t
		b.run(chromedp.EmulateViewport(390, 844))
		for _, p := range []struct{ path, shot string }{{"/console/notifications", "notifications-390"}, {editURL, "edit-390"}, {"/console/deliveries", "deliveries-390"}} {
			b.open(p.path)
			scrollWidth := get(b, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
			if scrollWidth > 390 {
				wide := get(b, chromedp.Evaluate[string](`[...document.querySelectorAll("body *")].filter(e => e.getBoundingClientRect().right > 392 && !e.closest(".scroll"))
					.slice(0, 8).map(e => e.tagName + "." + e.className + "#" + e.id + " " + Math.round(e.getBoundingClientRect().right)).join("; ")`))
				t.Errorf("%s is %d px wide at a 390 px viewport: %s", p.path, scrollWidth, wide)
			}
			b.axe(p.path + " at 390 px")
			b.screenshot(p.shot)
		}
	}) {
		return
	}

	// No secret value in any page, script or style.
	for _, asset := range []string{"/console/assets/console.js", "/console/assets/console.css"} {
		resp, err := http.Get(base + asset)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		b.seen = append(b.seen, string(body))
	}
	for i, html := range b.seen {
		if strings.Contains(html, "s3cret") {
			t.Errorf("page %d holds the secret header's value", i)
		}
	}
	t.Log(fmt.Sprintf("%d pages checked for secrets", len(b.seen)))
}
