package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The JSON documents postbackctl prints, by the API's field names.
type (
	endpointJSON struct {
		ID        string `json:"id"`
		AccountID string `json:"account_id"`
		EventType string `json:"event_type"`
		URL       string `json:"url"`
		Method    string `json:"method"`
		Headers   []struct {
			Name   string `json:"name"`
			Value  string `json:"value"`
			Secret bool   `json:"secret"`
		} `json:"headers"`
		BodyFormat           string  `json:"body_format"`
		BodyTemplate         string  `json:"body_template"`
		MaxRequestsPerSecond float64 `json:"max_requests_per_second"`
		Timeout              *string `json:"timeout"`
		Enabled              *bool   `json:"enabled"`
		SigningSecret        string  `json:"signing_secret"`
		PreviousSecret       string  `json:"previous_signing_secret"`
		PreviousSecretExpire string  `json:"previous_signing_secret_expire_time"`
	}
	deliveryJSON struct {
		ID           string `json:"id"`
		AccountID    string `json:"account_id"`
		EndpointID   string `json:"endpoint_id"`
		EventID      string `json:"event_id"`
		EventType    string `json:"event_type"`
		Status       string `json:"status"`
		AttemptCount int    `json:"attempt_count"`
		CreateTime   string `json:"create_time"`
	}
	deliveriesJSON struct {
		Deliveries    []deliveryJSON `json:"deliveries"`
		NextPageToken string         `json:"next_page_token"`
	}
	attemptJSON struct {
		DeliveryID string `json:"delivery_id"`
		Number     int    `json:"number"`
		URL        string `json:"url"`
		StatusCode int    `json:"status_code"`
		Outcome    string `json:"outcome"`
	}
	publishResultJSON struct {
		EventID   string `json:"event_id"`
		Duplicate bool   `json:"duplicate"`
		Error     *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
)

func TestEventTypes(t *testing.T) {
	var res struct {
		EventTypes []struct {
			Name       string `json:"name"`
			DataPoints []struct {
				Name string `json:"name"`
				Type string `json:"type"`
			} `json:"data_points"`
		} `json:"event_types"`
	}
	okJSON(t, &res, "event-types", "list")
	var names []string
	for _, et := range res.EventTypes {
		names = append(names, et.Name)
	}
	want := "action_lifecycle action_inquiry action_clearing tracking_value_request job_completed publisher_application operational_event"
	if got := strings.Join(names, " "); got != want {
		t.Fatalf("event types %q, want %q", got, want)
	}
	table := ok(t, "event-types", "list").stdout
	if !strings.HasPrefix(table, "NAME") || !strings.Contains(table, "action_clearing") {
		t.Errorf("table:\n%s", table)
	}
	yml := ok(t, "event-types", "get", "action_clearing", "-o", "yaml").stdout
	if !strings.Contains(yml, "name: action_clearing") || !strings.Contains(yml, "- name: CampaignId") ||
		!strings.Contains(yml, "type: DATA_POINT_TYPE_INTEGER") {
		t.Errorf("yaml:\n%s", yml)
	}
	if r := ctl(t, "event-types", "get", "nope"); r.code != exitNotFound || !strings.Contains(r.stderr, `"nope"`) {
		t.Errorf("want exit 3 naming the type, got %s", r)
	}
}

func TestEndpointsLifecycle(t *testing.T) {
	dir := t.TempDir()
	const headerSecret = "Bearer s3cr3t-header-value"
	const signingSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

	// Create with flags; secrets come back masked.
	var ep endpointJSON
	r := okJSON(t, &ep, "endpoints", "create", "--account", "brand-a", "--event-type", "action_clearing",
		"--url", env.rc.URL+"/ep-test?campaign={CampaignId}", "--method", "post",
		"--header", "X-Brand: a", "--secret-header", "Authorization: "+headerSecret,
		"--signing-secret", signingSecret, "--timeout", "5s", "--max-rps", "20")
	if !strings.HasPrefix(ep.ID, "ep_") || ep.AccountID != "brand-a" || ep.Method != "HTTP_METHOD_POST" ||
		ep.MaxRequestsPerSecond != 20 || ep.Timeout == nil || *ep.Timeout != "5s" {
		t.Fatalf("created %+v", ep)
	}
	if strings.Contains(r.stdout, headerSecret) || strings.Contains(r.stdout, signingSecret) || ep.SigningSecret == "" {
		t.Fatalf("a secret is printed in clear (or not at all):\n%s", r.stdout)
	}
	if len(ep.Headers) != 2 || !ep.Headers[1].Secret || ep.Headers[1].Value == headerSecret {
		t.Fatalf("headers %+v", ep.Headers)
	}

	// Create from a YAML file, with short enum names.
	file := filepath.Join(dir, "endpoint.yaml")
	writeFile(t, file, fmt.Sprintf(`account_id: brand-a
event_type: action_clearing
url: %s/ep-test-yaml
method: POST
body_format: form
body_template: "campaign={CampaignId}"
timeout: 3s
`, env.rc.URL))
	var fromFile endpointJSON
	okJSON(t, &fromFile, "endpoints", "create", "-f", file)
	if fromFile.BodyFormat != "BODY_FORMAT_FORM" || fromFile.BodyTemplate != "campaign={CampaignId}" || fromFile.Method != "HTTP_METHOD_POST" {
		t.Fatalf("created from YAML: %+v", fromFile)
	}

	// Get and list.
	var got endpointJSON
	okJSON(t, &got, "endpoints", "get", ep.ID)
	if got.ID != ep.ID || got.URL != ep.URL || got.SigningSecret != ep.SigningSecret {
		t.Fatalf("get %+v, want %+v", got, ep)
	}
	var list struct {
		Endpoints []endpointJSON `json:"endpoints"`
	}
	okJSON(t, &list, "endpoints", "list", "--account", "brand-a", "--event-type", "action_clearing", "--all")
	if !hasEndpoint(list.Endpoints, ep.ID) || !hasEndpoint(list.Endpoints, fromFile.ID) {
		t.Fatalf("list lacks %s or %s: %+v", ep.ID, fromFile.ID, list.Endpoints)
	}
	if table := ok(t, "endpoints", "list", "--account", "brand-a").stdout; !strings.Contains(table, ep.ID) || !strings.HasPrefix(table, "ID") {
		t.Errorf("table:\n%s", table)
	}

	// Update with flags: only those fields change.
	var upd endpointJSON
	okJSON(t, &upd, "endpoints", "update", ep.ID, "--max-rps", "7", "--enabled=false")
	if upd.MaxRequestsPerSecond != 7 || upd.Enabled == nil || *upd.Enabled || upd.URL != ep.URL || len(upd.Headers) != 2 {
		t.Fatalf("updated %+v", upd)
	}

	// Update from the saved YAML, edited: the masked secrets keep the stored ones.
	saved := ok(t, "endpoints", "get", ep.ID, "-o", "yaml").stdout
	edited := strings.Replace(saved, "/ep-test?", "/ep-test-2?", 1)
	edited = strings.Replace(edited, "enabled: false", "enabled: true", 1)
	if edited == saved {
		t.Fatalf("saved YAML has no url/enabled to edit:\n%s", saved)
	}
	writeFile(t, file, edited)
	okJSON(t, &upd, "endpoints", "update", "-f", file)
	if !strings.Contains(upd.URL, "/ep-test-2?") || upd.Enabled == nil || !*upd.Enabled || upd.SigningSecret != ep.SigningSecret ||
		len(upd.Headers) != 2 || upd.Headers[1].Value != ep.Headers[1].Value {
		t.Fatalf("updated from YAML: %+v", upd)
	}

	// Rotate the signing secret: the replaced one keeps signing for a day;
	// then end that at once.
	const nextSecret = "whsec_MDEyMzQ1Njc4OWFiY2RlZmdoaWprbG1u"
	r = okJSON(t, &upd, "endpoints", "update", ep.ID, "--signing-secret", nextSecret, "--keep-previous-secret", "24h")
	if upd.SigningSecret != "••••bG1u" || upd.PreviousSecret != ep.SigningSecret || upd.PreviousSecretExpire == "" || strings.Contains(r.stdout, nextSecret) {
		t.Fatalf("rotated: %+v", upd)
	}
	if table := ok(t, "endpoints", "get", ep.ID).stdout; !strings.Contains(table, "Previous signing secret") {
		t.Errorf("the table does not show the rotation:\n%s", table)
	}
	var ended endpointJSON
	okJSON(t, &ended, "endpoints", "update", ep.ID, "--keep-previous-secret", "0")
	if ended.PreviousSecret != "" || ended.PreviousSecretExpire != "" || ended.SigningSecret != "••••bG1u" {
		t.Fatalf("rotation ended: %+v", ended)
	}

	// Preview: the stored endpoint with given data; and an unsaved one.
	var pv struct {
		Method  string `json:"method"`
		URL     string `json:"url"`
		Headers []struct {
			Name, Value string
		} `json:"headers"`
		Body string `json:"body"`
	}
	okJSON(t, &pv, "endpoints", "preview", ep.ID, "--data", `{"CampaignId": 4242}`)
	if pv.Method != "POST" || !strings.HasSuffix(pv.URL, "/ep-test-2?campaign=4242") {
		t.Fatalf("preview %+v", pv)
	}
	for _, h := range pv.Headers {
		if strings.Contains(h.Value, "s3cr3t") {
			t.Fatalf("preview shows a secret header: %+v", pv.Headers)
		}
	}
	okJSON(t, &pv, "endpoints", "preview", "--event-type", "action_clearing", "--url", "http://brand.example/x?c={CampaignId}")
	if pv.Method != "GET" || pv.URL != "http://brand.example/x?c=9876" {
		t.Fatalf("preview of an unsaved endpoint: %+v", pv)
	}

	// Test: sends the sample once now.
	before := len(env.rc.requests("/ep-test-2"))
	var at attemptJSON
	okJSON(t, &at, "endpoints", "test", ep.ID)
	if at.Outcome != "ATTEMPT_OUTCOME_SUCCESS" || at.StatusCode != 200 {
		t.Fatalf("test attempt %+v", at)
	}
	reqs := env.rc.requests("/ep-test-2")
	if len(reqs) != before+1 || reqs[len(reqs)-1].Get("Authorization") != headerSecret || reqs[len(reqs)-1].Get("Webhook-Signature") == "" {
		t.Fatalf("receiver got %d requests (want %d), last %v", len(reqs), before+1, reqs)
	}
	// A test that fails exits 1 after printing the attempt.
	var failing endpointJSON
	okJSON(t, &failing, "endpoints", "create", "--account", "brand-a", "--event-type", "action_clearing", "--url", env.rc.URL+"/flaky")
	env.rc.setDown(true)
	r = ctl(t, "endpoints", "test", failing.ID)
	env.rc.setDown(false)
	if r.code != exitError || !strings.Contains(r.stderr, "HTTP 503") || !strings.Contains(r.stdout, "FAILURE") {
		t.Fatalf("want exit 1 with the failed attempt, got %s", r)
	}

	// Delete: then get answers not found (exit 3).
	for _, id := range []string{ep.ID, fromFile.ID, failing.ID} {
		if r := ok(t, "endpoints", "delete", id); !strings.Contains(r.stdout, "deleted "+id) {
			t.Errorf("delete: %s", r)
		}
	}
	if r := ctl(t, "endpoints", "get", ep.ID); r.code != exitNotFound || !strings.Contains(r.stderr, "postbackctl: not found: ") {
		t.Fatalf("get after delete: %s", r)
	}
}

func hasEndpoint(eps []endpointJSON, id string) bool {
	for _, e := range eps {
		if e.ID == id {
			return true
		}
	}
	return false
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// listDeliveries lists an endpoint's deliveries (-o json).
func listDeliveries(t *testing.T, args ...string) deliveriesJSON {
	t.Helper()
	var l deliveriesJSON
	okJSON(t, &l, append([]string{"deliveries", "list"}, args...)...)
	return l
}

func allIn(ds []deliveryJSON, n int, status string) bool {
	if len(ds) != n {
		return false
	}
	for _, d := range ds {
		if d.Status != status {
			return false
		}
	}
	return true
}

func TestPublishListRetryReplay(t *testing.T) {
	var ep endpointJSON
	okJSON(t, &ep, "endpoints", "create", "--account", "brand-a", "--event-type", "action_clearing",
		"--url", env.rc.URL+"/dlv?campaign={CampaignId}")
	t.Cleanup(func() { ctl(t, "endpoints", "delete", ep.ID) })

	// One event from flags, one from standard input.
	var pub struct {
		EventID   string `json:"event_id"`
		Duplicate bool   `json:"duplicate"`
	}
	okJSON(t, &pub, "events", "publish", "--account", "brand-a", "--type", "action_clearing", "--data", `{"CampaignId": 1}`)
	if !strings.HasPrefix(pub.EventID, "evt_") || pub.Duplicate {
		t.Fatalf("publish: %+v", pub)
	}
	events := []string{pub.EventID}
	r := cli{args: []string{"events", "publish", "-", "-o", "json"},
		stdin: `{"account_id": "brand-a", "event_type": "action_clearing", "data": {"CampaignId": 2}, "event_id": "evt-cli-stdin-1"}`}.exec(t)
	if r.code != 0 || !strings.Contains(r.stdout, `"event_id": "evt-cli-stdin-1"`) {
		t.Fatalf("publish from stdin: %s", r)
	}
	events = append(events, "evt-cli-stdin-1")

	// A batch of JSON lines with one bad line: the good ones are published,
	// the bad one is named by its line, and the exit code is 2.
	batch := strings.Join([]string{
		`{"event_type": "action_clearing", "data": {"CampaignId": 3}}`,
		`{"event_type": "action_clearing", "data": {"CampaignId": "not a number"}}`,
		``,
		`{"event_type": "action_clearing", "data": {"CampaignId": 4}}`,
		`{"event_type": "action_clearing", "data": {"CampaignId": 5}`,
	}, "\n") + "\n"
	r = cli{args: []string{"events", "publish", "--batch", "--account", "brand-a", "-o", "json"}, stdin: batch}.exec(t)
	if r.code != exitUsage || !strings.Contains(r.stderr, "line 2: data.CampaignId") || !strings.Contains(r.stderr, "line 5: invalid JSON") ||
		!strings.Contains(r.stderr, "2 of 4 events refused") {
		t.Fatalf("want exit 2 naming lines 2 and 5, got %s", r)
	}
	var br struct {
		Results []publishResultJSON `json:"results"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &br); err != nil {
		t.Fatalf("batch output: %v\n%s", err, r)
	}
	if len(br.Results) != 4 || br.Results[0].EventID == "" || br.Results[1].Error == nil || br.Results[1].Error.Code != 3 ||
		br.Results[2].EventID == "" || br.Results[3].Error == nil || !strings.HasPrefix(br.Results[3].Error.Message, "line 5: ") {
		t.Fatalf("batch results: %s", r.stdout)
	}
	events = append(events, br.Results[0].EventID, br.Results[2].EventID)
	// The table form: one row a line.
	r = cli{args: []string{"events", "publish", "--batch", "--account", "brand-a", "-f", "-"},
		stdin: `{"event_type": "action_clearing", "data": {"CampaignId": 6}}` + "\n"}.exec(t)
	if r.code != 0 || !strings.Contains(r.stdout, "LINE") || !strings.Contains(r.stdout, "evt_") {
		t.Fatalf("batch table: %s", r)
	}
	n := len(events) + 1

	// Deliveries list -o json: all SUCCEEDED, one per event.
	var l deliveriesJSON
	eventually(t, 30*time.Second, fmt.Sprintf("%d deliveries SUCCEEDED", n), func() bool {
		l = listDeliveries(t, "--endpoint", ep.ID, "--page-size", "500")
		return allIn(l.Deliveries, n, "DELIVERY_STATUS_SUCCEEDED")
	})
	for _, e := range events {
		found := false
		for _, d := range l.Deliveries {
			found = found || d.EventID == e
		}
		if !found {
			t.Errorf("no delivery of event %s in %+v", e, l.Deliveries)
		}
	}
	d := l.Deliveries[0]
	if d.AccountID != "brand-a" || d.EventType != "action_clearing" || !strings.HasPrefix(d.ID, "dlv_") || d.AttemptCount != 1 {
		t.Fatalf("delivery %+v", d)
	}
	// Filters: by event, by status, and paging.
	if got := listDeliveries(t, "--event", events[1]).Deliveries; len(got) != 1 || got[0].EventID != events[1] {
		t.Errorf("--event %s: %+v", events[1], got)
	}
	if got := listDeliveries(t, "--endpoint", ep.ID, "--status", "dead").Deliveries; len(got) != 0 {
		t.Errorf("--status dead: %+v", got)
	}
	if got := listDeliveries(t, "--endpoint", ep.ID, "--since", "2000-01-01", "--until", "2000-01-02").Deliveries; len(got) != 0 {
		t.Errorf("--since/--until in 2000: %+v", got)
	}
	if page := listDeliveries(t, "--endpoint", ep.ID, "--page-size", "2"); len(page.Deliveries) != 2 || page.NextPageToken == "" {
		t.Errorf("--page-size 2: %+v", page)
	}
	if all := listDeliveries(t, "--endpoint", ep.ID, "--page-size", "2", "--all", "--since", "1h"); len(all.Deliveries) != n || all.NextPageToken != "" {
		t.Errorf("--all: %d deliveries, want %d", len(all.Deliveries), n)
	}

	// Get, attempts, retry.
	var got deliveryJSON
	okJSON(t, &got, "deliveries", "get", d.ID)
	if got.ID != d.ID || got.Status != "DELIVERY_STATUS_SUCCEEDED" || got.EndpointID != ep.ID {
		t.Fatalf("get %+v", got)
	}
	var atts struct {
		Attempts []attemptJSON `json:"attempts"`
	}
	okJSON(t, &atts, "deliveries", "attempts", d.ID)
	if len(atts.Attempts) != 1 || atts.Attempts[0].Number != 0 || atts.Attempts[0].Outcome != "ATTEMPT_OUTCOME_SUCCESS" || atts.Attempts[0].DeliveryID != d.ID {
		t.Fatalf("attempts %+v", atts)
	}
	okJSON(t, &got, "deliveries", "retry", d.ID)
	if got.ID != d.ID {
		t.Fatalf("retry answered %+v", got)
	}
	eventually(t, 30*time.Second, "the retry's attempt", func() bool {
		okJSON(t, &atts, "deliveries", "attempts", d.ID)
		return len(atts.Attempts) == 2 && atts.Attempts[1].Outcome == "ATTEMPT_OUTCOME_SUCCESS"
	})
	if table := ok(t, "deliveries", "attempts", d.ID).stdout; !strings.HasPrefix(table, "NUMBER") || strings.Count(table, "SUCCESS") != 2 {
		t.Errorf("attempts table:\n%s", table)
	}

	// Replay: deliveries to a failing receiver go DEAD; replayed once it
	// recovers, they succeed.
	var flaky endpointJSON
	okJSON(t, &flaky, "endpoints", "create", "--account", "brand-a", "--event-type", "action_clearing", "--url", env.rc.URL+"/flaky")
	t.Cleanup(func() { ctl(t, "endpoints", "delete", flaky.ID) })
	env.rc.setDown(true)
	t.Cleanup(func() { env.rc.setDown(false) })
	ok(t, "events", "publish", "--account", "brand-a", "--type", "action_clearing", "--data", `{"CampaignId": 7}`)
	// (the ep endpoint gets this event too: a delivery more for it)
	var dead deliveriesJSON
	eventually(t, 30*time.Second, "the flaky endpoint's delivery DEAD", func() bool {
		dead = listDeliveries(t, "--endpoint", flaky.ID)
		return allIn(dead.Deliveries, 1, "DELIVERY_STATUS_DEAD")
	})
	if got := listDeliveries(t, "--endpoint", flaky.ID, "--status", "DEAD").Deliveries; len(got) != 1 {
		t.Errorf("--status DEAD: %+v", got)
	}
	env.rc.setDown(false)
	var rep struct {
		Count int `json:"count"`
	}
	okJSON(t, &rep, "deliveries", "replay", "--endpoint", flaky.ID, "--since", "1h")
	if rep.Count != 1 {
		t.Fatalf("replay count %d, want 1", rep.Count)
	}
	eventually(t, 30*time.Second, "the replayed delivery SUCCEEDED", func() bool {
		return allIn(listDeliveries(t, "--endpoint", flaky.ID).Deliveries, 1, "DELIVERY_STATUS_SUCCEEDED")
	})
	if r := ok(t, "deliveries", "replay", "--endpoint", flaky.ID); strings.TrimSpace(r.stdout) != "re-queued 0 deliveries" {
		t.Errorf("second replay: %s", r)
	}
}

// TestBatchChunks: a batch over the server's 1,000 events is sent in
// chunks; a refused line in the second chunk is named by its line number.
func TestBatchChunks(t *testing.T) {
	const n, bad = 1203, 1102
	var b strings.Builder
	for i := 1; i <= n; i++ {
		v := fmt.Sprint(i)
		if i == bad {
			v = `"not a number"`
		}
		fmt.Fprintf(&b, `{"event_type": "action_clearing", "data": {"CampaignId": %s}}`+"\n", v)
	}
	// brand-z has no endpoint: the events are accepted and deliver nowhere.
	r := cli{args: []string{"events", "publish", "--batch", "--account", "brand-z", "-o", "json"}, stdin: b.String()}.exec(t)
	if r.code != exitUsage || !strings.Contains(r.stderr, fmt.Sprintf("postbackctl: line %d: data.CampaignId", bad)) ||
		!strings.Contains(r.stderr, fmt.Sprintf("1 of %d events refused", n)) {
		t.Fatalf("want exit 2 naming line %d, got exit %d, stderr:\n%s", bad, r.code, r.stderr)
	}
	var res struct {
		Results []publishResultJSON `json:"results"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Results) != n {
		t.Fatalf("%d results, want %d", len(res.Results), n)
	}
	seen := map[string]bool{}
	for i, pr := range res.Results {
		switch {
		case i+1 == bad:
			if pr.Error == nil || pr.Error.Code != 3 || pr.EventID != "" {
				t.Errorf("line %d: %+v", i+1, pr)
			}
		case pr.Error != nil || pr.EventID == "" || seen[pr.EventID]:
			t.Errorf("line %d: %+v", i+1, pr)
		}
		seen[pr.EventID] = true
	}
}

// TestBadInput: bad flags, arguments and documents exit non-zero with a
// message naming the flag, field or line; nothing reaches the server when
// the CLI can tell.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	badYAML := filepath.Join(dir, "bad.yaml")
	writeFile(t, badYAML, "account_id: brand-a\nevent_type: action_clearing\nurl: http://127.0.0.1/x\nmethod: PUT\n")
	unknownField := filepath.Join(dir, "unknown.yaml")
	writeFile(t, unknownField, "account_id: brand-a\nevent_type: action_clearing\nurll: http://127.0.0.1/x\n")
	badConfig := filepath.Join(dir, "config.yaml")
	writeFile(t, badConfig, "addr: 127.0.0.1:1\ntimeout: 3s\n")

	cases := []struct {
		name  string
		run   cli
		code  int
		wants []string
	}{
		{"missing account", cli{args: []string{"events", "publish", "--type", "action_clearing", "--data", "{}"}}, exitUsage, []string{"--account is required"}},
		{"missing type", cli{args: []string{"events", "publish", "--account", "brand-a"}}, exitUsage, []string{"--type is required"}},
		{"bad JSON data", cli{args: []string{"events", "publish", "--account", "brand-a", "--type", "action_clearing", "--data", `{"CampaignId": `}}, exitUsage, []string{"--data: invalid JSON"}},
		{"data not an object", cli{args: []string{"events", "publish", "--account", "brand-a", "--type", "action_clearing", "--data", `[1]`}}, exitUsage, []string{"--data: want a JSON object"}},
		{"bad JSON on stdin", cli{args: []string{"events", "publish", "-"}, stdin: `{"account_id": "brand-a",`}, exitUsage, []string{"standard input: invalid JSON"}},
		{"JSON syntax error on stdin", cli{args: []string{"events", "publish", "-"}, stdin: "{\n  \"account_id\": \"brand-a\",,\n}"}, exitUsage, []string{"standard input: invalid JSON at line 2, column"}},
		{"unknown field on stdin", cli{args: []string{"events", "publish", "-"}, stdin: `{"acount_id": "brand-a"}`}, exitUsage, []string{`unknown field "acount_id"`}},
		{"unknown data point", cli{args: []string{"events", "publish", "--account", "brand-a", "--type", "action_clearing", "--data", `{"Bogus": 1}`}}, exitUsage, []string{"postbackctl: invalid argument: data.Bogus"}},
		{"wrong type of data point", cli{args: []string{"events", "publish", "--account", "brand-a", "--type", "action_clearing", "--data", `{"CampaignId": "x"}`}}, exitUsage, []string{"data.CampaignId"}},
		{"unknown event type", cli{args: []string{"events", "publish", "--account", "brand-a", "--type", "nope", "--data", `{}`}}, exitUsage, []string{"event_type"}},
		{"batch with data flag", cli{args: []string{"events", "publish", "--batch", "--data", "{}"}}, exitUsage, []string{"--data does not go with --batch"}},
		{"empty batch", cli{args: []string{"events", "publish", "--batch"}}, exitUsage, []string{"no event line"}},
		{"unknown output format", cli{args: []string{"event-types", "list", "-o", "xml"}}, exitUsage, []string{"--output", `"xml"`}},
		{"unknown output format from env", cli{args: []string{"event-types", "list"}, env: []string{"POSTBACK_OUTPUT=csv"}}, exitUsage, []string{"POSTBACK_OUTPUT", `"csv"`}},
		{"server names the field", cli{args: []string{"endpoints", "create", "--account", "brand-a", "--event-type", "action_clearing", "--url", "http://127.0.0.1/{Nope}"}}, exitUsage, []string{"endpoint.url", `"Nope"`}},
		{"endpoint without account", cli{args: []string{"endpoints", "create", "--event-type", "action_clearing", "--url", "http://x"}}, exitUsage, []string{"--account is required"}},
		{"bad method flag", cli{args: []string{"endpoints", "create", "--account", "a", "--event-type", "action_clearing", "--url", "http://x", "--method", "PUT"}}, exitUsage, []string{"--method", "GET or POST"}},
		{"bad header flag", cli{args: []string{"endpoints", "create", "--account", "a", "--event-type", "action_clearing", "--url", "http://x", "--header", "novalue"}}, exitUsage, []string{"--header", "Name: value"}},
		{"bad enum in file", cli{args: []string{"endpoints", "create", "-f", badYAML}}, exitUsage, []string{badYAML, "method", `"PUT"`}},
		{"unknown field in file", cli{args: []string{"endpoints", "create", "-f", unknownField}}, exitUsage, []string{`unknown field "urll"`}},
		{"missing file", cli{args: []string{"endpoints", "create", "-f", filepath.Join(dir, "none.yaml")}}, exitUsage, []string{"--file", "none.yaml"}},
		{"nothing to update", cli{args: []string{"endpoints", "update", "ep_01M96N92K8NJT1R33NECRC1PC6"}}, exitUsage, []string{"nothing to update"}},
		{"bad status", cli{args: []string{"deliveries", "list", "--status", "lost"}}, exitUsage, []string{"--status", `"lost"`}},
		{"bad time", cli{args: []string{"deliveries", "list", "--since", "yesterday"}}, exitUsage, []string{"--since", `"yesterday"`}},
		{"bad page size", cli{args: []string{"deliveries", "list", "--page-size", "many"}}, exitUsage, []string{"--page-size"}},
		{"replay without endpoint", cli{args: []string{"deliveries", "replay"}}, exitUsage, []string{"--endpoint is required"}},
		{"replay of an unknown endpoint", cli{args: []string{"deliveries", "replay", "--endpoint", "ep_01M96N92K8NJT1R33NECRC1PC6"}}, exitNotFound, []string{"not found"}},
		{"missing argument", cli{args: []string{"endpoints", "get"}}, exitUsage, []string{"an endpoint ID"}},
		{"unknown flag", cli{args: []string{"endpoints", "list", "--bogus"}}, exitUsage, []string{"--bogus"}},
		{"unknown command", cli{args: []string{"endpoints", "frobnicate"}}, exitUsage, []string{"frobnicate"}},
		{"malformed id", cli{args: []string{"deliveries", "get", "nope"}}, exitUsage, []string{"invalid argument: id"}},
		{"delivery not found", cli{args: []string{"deliveries", "get", "dlv_01M96N9VJVFTCQ4APB1Y1Y06AA"}}, exitNotFound, []string{"not found"}},
		{"unknown config setting", cli{args: []string{"event-types", "list", "--config", badConfig}}, exitUsage, []string{badConfig, "line 2", `"timeout"`}},
		{"missing config file", cli{args: []string{"event-types", "list"}, env: []string{"POSTBACK_CONFIG=" + filepath.Join(dir, "none.yaml")}}, exitUsage, []string{"POSTBACK_CONFIG", "none.yaml"}},
		{"insecure and tls", cli{args: []string{"event-types", "list", "--insecure", "--tls"}}, exitUsage, []string{"--insecure"}},
		{"tls CA not PEM", cli{args: []string{"event-types", "list", "--tls-ca", badYAML}}, exitUsage, []string{"--tls-ca", "no PEM certificate"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := c.run.exec(t)
			if r.code != c.code {
				t.Fatalf("want exit %d, got %s", c.code, r)
			}
			if !strings.HasPrefix(r.stderr, "postbackctl: ") {
				t.Errorf("stderr does not start with \"postbackctl: \": %s", r)
			}
			for _, w := range c.wants {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q: %s", w, r)
				}
			}
		})
	}
}

// TestSettingsPrecedenceAndAuth: flag > environment > config file; the
// token is never printed; auth failures exit 4.
func TestSettingsPrecedenceAndAuth(t *testing.T) {
	const deadAddr = "127.0.0.1:1" // nothing listens there
	dir := t.TempDir()
	other := filepath.Join(dir, "other.yaml")
	writeFile(t, other, fmt.Sprintf("addr: %s\ntoken: %s\noutput: json\n", env.addr, brandToken))

	list := []string{"deliveries", "list", "--account", "brand-b", "--page-size", "1"}
	cases := []struct {
		name string
		run  cli
		code int
		want string // in stdout (exit 0) or stderr
	}{
		{"config file (default path)", cli{args: []string{"event-types", "list"}}, 0, "action_clearing"},
		{"env addr over config file", cli{args: []string{"event-types", "list"}, env: []string{"POSTBACK_ADDR=" + deadAddr}}, exitError, "unavailable"},
		{"flag addr over env", cli{args: []string{"event-types", "list", "--addr", env.addr}, env: []string{"POSTBACK_ADDR=" + deadAddr}}, 0, "action_clearing"},
		{"--config over the default", cli{args: []string{"event-types", "list", "--config", other}}, 0, `"event_types"`},
		{"POSTBACK_CONFIG", cli{args: []string{"event-types", "list"}, env: []string{"POSTBACK_CONFIG=" + other}}, 0, `"event_types"`},
		{"output flag over config file", cli{args: []string{"event-types", "list", "--config", other, "-o", "yaml"}}, 0, "event_types:\n"},
		{"operator token from config: other accounts", cli{args: list}, 0, "ID"},
		{"env token over config file", cli{args: list, env: []string{"POSTBACK_TOKEN=" + brandToken}}, exitDenied, "permission denied"},
		{"flag token over env", cli{args: append(list, "--token", operatorToken), env: []string{"POSTBACK_TOKEN=" + brandToken}}, 0, "ID"},
		{"no token", cli{args: append(list, "--token", "")}, exitDenied, "unauthenticated"},
		{"unknown token", cli{args: append(list, "--token", "wrong-token-0123456789")}, exitDenied, "unknown token"},
		{"account token, own account", cli{args: []string{"deliveries", "list", "--account", "brand-a", "--page-size", "1"}, env: []string{"POSTBACK_TOKEN=" + brandToken}}, 0, "ID"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := c.run.exec(t)
			if r.code != c.code {
				t.Fatalf("want exit %d, got %s", c.code, r)
			}
			out := r.stdout
			if c.code != 0 {
				out = r.stderr
			}
			if !strings.Contains(out, c.want) {
				t.Errorf("want %q in the output: %s", c.want, r)
			}
			for _, tok := range []string{operatorToken, brandToken, "wrong-token-0123456789"} {
				if strings.Contains(r.stdout+r.stderr, tok) {
					t.Errorf("a token is printed: %s", r)
				}
			}
		})
	}
}

func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		r := ok(t, "completion", shell)
		if !strings.Contains(r.stdout, "postbackctl") {
			t.Errorf("%s completion: %.200s", shell, r.stdout)
		}
	}
	// Flag values complete from fixed lists.
	r := ok(t, "__complete", "deliveries", "list", "--status", "")
	if !strings.Contains(r.stdout, "dead") || !strings.Contains(r.stdout, "succeeded") {
		t.Errorf("--status completion: %s", r.stdout)
	}
	// Event types complete from the server.
	r = ok(t, "__complete", "events", "publish", "--type", "action_c")
	if !strings.Contains(r.stdout, "action_clearing") {
		t.Errorf("--type completion: %s", r.stdout)
	}
	if r := ctl(t, "completion", "tcsh"); r.code != exitUsage {
		t.Errorf("completion tcsh: %s", r)
	}
}
