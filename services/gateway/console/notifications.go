package console

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/postback-dev/postback/pkg/outcome"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// rateWindowPages bounds how many pages of 500 deliveries the 24 h success
// rate reads; past that it is told as "at least".
const rateWindowPages = 20

// notificationRow is one event type on the Event Notifications page.
type notificationRow struct {
	Type         *postbackv1.EventType
	Endpoint     *postbackv1.Endpoint
	State        string // "not set", "enabled", "disabled"
	Last         *postbackv1.Delivery
	Rate         string // "97% (35 of 36)" or "no deliveries"
	RateComplete bool
}

// eventTypes is the catalogue, through the API.
func (c *Console) eventTypes(ctx context.Context, s *session) ([]*postbackv1.EventType, error) {
	resp, err := c.types.ListEventTypes(s.call(ctx), &postbackv1.ListEventTypesRequest{})
	if err != nil {
		return nil, err
	}
	return resp.EventTypes, nil
}

// endpointFor is the account's endpoint of an event type, or nil.
func (c *Console) endpointFor(ctx context.Context, s *session, eventType string) (*postbackv1.Endpoint, error) {
	resp, err := c.endpoints.ListEndpoints(s.call(ctx), &postbackv1.ListEndpointsRequest{AccountId: s.account, EventType: eventType, PageSize: 1})
	if err != nil {
		return nil, err
	}
	if len(resp.Endpoints) == 0 {
		return nil, nil
	}
	return resp.Endpoints[0], nil
}

func (c *Console) notificationsPage(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	types, err := c.eventTypes(ctx, s)
	if err != nil {
		c.apiError(w, r, s, "list the event types", err)
		return
	}
	rows := make([]notificationRow, 0, len(types))
	for _, t := range types {
		row := notificationRow{Type: t, State: "not set"}
		ep, err := c.endpointFor(ctx, s, t.Name)
		if err != nil {
			c.apiError(w, r, s, "list the endpoints", err)
			return
		}
		if ep != nil {
			row.Endpoint = ep
			row.State = "enabled"
			if !ep.GetEnabled() {
				row.State = "disabled"
			}
			last, err := c.deliveries.ListDeliveries(s.call(ctx), &postbackv1.ListDeliveriesRequest{AccountId: s.account, EndpointId: ep.Id, PageSize: 1})
			if err != nil {
				c.apiError(w, r, s, "list the deliveries", err)
				return
			}
			if len(last.Deliveries) > 0 {
				row.Last = last.Deliveries[0]
			}
			if row.Rate, err = c.successRate(ctx, s, ep); err != nil {
				c.apiError(w, r, s, "list the deliveries", err)
				return
			}
		}
		rows = append(rows, row)
	}
	c.render(w, r, http.StatusOK, "notifications", s, map[string]any{"Title": "Event Notifications", "Nav": "notifications", "Rows": rows})
}

// successRate is the share of the endpoint's deliveries created in the last
// 24 h that succeeded: from the endpoint's health counts when the API gives
// them (succeeded, and failed: retrying, failed or dead), else counted from
// ListDeliveries among those that are done (succeeded, failed, dead).
func (c *Console) successRate(ctx context.Context, s *session, ep *postbackv1.Endpoint) (string, error) {
	if day := ep.GetHealth().GetLastDay(); day != nil {
		done := day.Succeeded + day.Failed
		if done == 0 {
			return "no finished deliveries", nil
		}
		return fmt.Sprintf("%d%% (%d of %d)", day.Succeeded*100/done, day.Succeeded, done), nil
	}
	endpointID := ep.Id
	now := c.now()
	req := &postbackv1.ListDeliveriesRequest{AccountId: s.account, EndpointId: endpointID, PageSize: 500,
		StartTime: timestamppb.New(now.Add(-24 * time.Hour)), EndTime: timestamppb.New(now.Add(time.Minute))}
	succeeded, done, capped := 0, 0, false
	for page := 0; ; page++ {
		if page == rateWindowPages {
			capped = true
			break
		}
		resp, err := c.deliveries.ListDeliveries(s.call(ctx), req)
		if err != nil {
			return "", err
		}
		for _, d := range resp.Deliveries {
			switch d.Status {
			case postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED:
				succeeded++
				done++
			case postbackv1.DeliveryStatus_DELIVERY_STATUS_FAILED, postbackv1.DeliveryStatus_DELIVERY_STATUS_DEAD:
				done++
			}
		}
		if resp.NextPageToken == "" {
			break
		}
		req.PageToken = resp.NextPageToken
	}
	if done == 0 {
		return "no finished deliveries", nil
	}
	out := fmt.Sprintf("%d%% (%d of %d)", succeeded*100/done, succeeded, done)
	if capped {
		out += ", newest " + strconv.Itoa(rateWindowPages*500) + " only"
	}
	return out, nil
}

// headerRow is one HTTP header row of the form. A stored secret's value is
// never put in the page: Stored marks a row whose empty value means "keep".
type headerRow struct {
	Index  int
	Name   string
	Value  string
	Secret bool
	Stored bool
}

// endpointForm is the edit form's values, as typed.
type endpointForm struct {
	URL, Method, BodyFormat, BodyTemplate string
	MinDelay, MaxRequests                 string
	SuccessResponse, ErrorResponse        string
	Enabled                               bool
	Headers                               []headerRow
}

func formFromEndpoint(ep *postbackv1.Endpoint) endpointForm {
	if ep == nil {
		return endpointForm{Enabled: true, Headers: []headerRow{{Index: 0}}}
	}
	f := endpointForm{URL: ep.Url, BodyTemplate: ep.BodyTemplate, SuccessResponse: ep.SuccessResponse, ErrorResponse: ep.ErrorResponse,
		Enabled: ep.GetEnabled()}
	switch ep.Method {
	case postbackv1.HttpMethod_HTTP_METHOD_GET:
		f.Method = "GET"
	case postbackv1.HttpMethod_HTTP_METHOD_POST:
		f.Method = "POST"
	}
	if ep.BodyFormat != postbackv1.BodyFormat_BODY_FORMAT_UNSPECIFIED {
		f.BodyFormat = strings.TrimPrefix(ep.BodyFormat.String(), "BODY_FORMAT_")
	}
	if ep.MinDelaySeconds != 0 {
		f.MinDelay = strconv.FormatFloat(ep.MinDelaySeconds, 'f', -1, 64)
	}
	if ep.MaxRequestsPerSecond != 0 {
		f.MaxRequests = strconv.FormatFloat(ep.MaxRequestsPerSecond, 'f', -1, 64)
	}
	for i, h := range ep.Headers {
		row := headerRow{Index: i, Name: h.Name, Secret: h.Secret}
		if h.Secret {
			row.Stored = true // the value stays on the server
		} else {
			row.Value = h.Value
		}
		f.Headers = append(f.Headers, row)
	}
	f.Headers = append(f.Headers, headerRow{Index: len(ep.Headers)})
	return f
}

// maxHeaderRows bounds the rows a form post may carry (the API allows 32 headers).
const maxHeaderRows = 64

// readForm reads the posted form; errs gets what the console itself can
// tell (numbers, UTF-8) by form field.
func readForm(r *http.Request, errs map[string]string) endpointForm {
	v := func(name string) string {
		s := r.PostFormValue(name)
		if !utf8.ValidString(s) {
			errs[name] = "not valid UTF-8 text"
			return ""
		}
		return s
	}
	f := endpointForm{URL: strings.TrimSpace(v("url")), Method: v("method"), BodyFormat: v("body_format"), BodyTemplate: v("body_template"),
		MinDelay: strings.TrimSpace(v("min_delay_seconds")), MaxRequests: strings.TrimSpace(v("max_requests_per_second")),
		SuccessResponse: v("success_response"), ErrorResponse: v("error_response"), Enabled: r.PostFormValue("enabled") == "on"}
	n, _ := strconv.Atoi(r.PostFormValue("header_count"))
	n = min(max(n, 0), maxHeaderRows)
	for i := range n {
		p := "h" + strconv.Itoa(i) + "_"
		if r.PostFormValue(p+"remove") == "on" {
			continue
		}
		row := headerRow{Index: len(f.Headers), Name: strings.TrimSpace(v(p + "name")), Value: v(p + "value"),
			Secret: r.PostFormValue(p+"secret") == "on", Stored: r.PostFormValue(p+"stored") == "1"}
		if row.Name == "" && row.Value == "" && !row.Stored {
			continue
		}
		if k := p + "name"; errs[k] != "" { // keep the message at the row's new place
			errs["h"+strconv.Itoa(row.Index)+"_name"] = errs[k]
		}
		f.Headers = append(f.Headers, row)
	}
	return f
}

// numberField parses a non-negative number field ("" = 0).
func numberField(s, field, unit string, errs map[string]string) float64 {
	if s == "" {
		return 0
	}
	x, err := strconv.ParseFloat(s, 64)
	if err != nil || x < 0 {
		errs[field] = "a number of " + unit + ", 0 or more (e.g. 0.5)"
		return 0
	}
	return x
}

// endpointOf builds the API endpoint from the form. stored is the saved
// endpoint (nil when not set): a secret row left empty sends back the
// stored value's masked form, which the API keeps as it is. rows maps the
// API's header index to the form row.
func endpointOf(f endpointForm, account, eventType string, stored *postbackv1.Endpoint, errs map[string]string) (*postbackv1.Endpoint, []int) {
	ep := &postbackv1.Endpoint{AccountId: account, EventType: eventType, Url: f.URL, BodyTemplate: f.BodyTemplate,
		SuccessResponse: f.SuccessResponse, ErrorResponse: f.ErrorResponse, Enabled: proto.Bool(f.Enabled)}
	switch f.Method {
	case "GET":
		ep.Method = postbackv1.HttpMethod_HTTP_METHOD_GET
	case "POST":
		ep.Method = postbackv1.HttpMethod_HTTP_METHOD_POST
	case "":
	default:
		errs["method"] = "GET or POST"
	}
	if f.BodyFormat != "" {
		v, ok := postbackv1.BodyFormat_value["BODY_FORMAT_"+f.BodyFormat]
		if !ok {
			errs["body_format"] = "JSON, FORM, XML or TEXT"
		}
		ep.BodyFormat = postbackv1.BodyFormat(v)
	}
	ep.MinDelaySeconds = numberField(f.MinDelay, "min_delay_seconds", "seconds", errs)
	ep.MaxRequestsPerSecond = numberField(f.MaxRequests, "max_requests_per_second", "requests per second", errs)
	var rows []int
	for _, h := range f.Headers {
		value := h.Value
		if h.Secret && h.Stored && value == "" {
			value = storedMask(stored, h.Name)
			if value == "" {
				errs[fmt.Sprintf("h%d_value", h.Index)] = "enter the secret value (no stored secret has this name)"
			}
		}
		ep.Headers = append(ep.Headers, &postbackv1.Header{Name: h.Name, Value: value, Secret: h.Secret})
		rows = append(rows, h.Index)
	}
	return ep, rows
}

// storedMask is the masked value (as the API returns it) of the stored
// secret header named name, or "".
func storedMask(stored *postbackv1.Endpoint, name string) string {
	for _, h := range stored.GetHeaders() {
		if h.Secret && strings.EqualFold(h.Name, name) {
			return h.Value
		}
	}
	return ""
}

// editData is what the edit page shows.
type editData struct {
	Type     *postbackv1.EventType
	Endpoint *postbackv1.Endpoint
	Form     endpointForm
	Errors   map[string]string
	Other    []string // violations that belong to no field
	Preview  *postbackv1.PreviewEndpointResponse
	Test     *testResult
	Saved    bool
	// Recent are the account's recent events of the type the preview may
	// use instead of the example event (EventService.ListRecentEvents);
	// PreviewEvent is the chosen one's id ("" = the example event), and
	// PreviewNote says when it is no longer among them.
	Recent       []recentEvent
	PreviewEvent string
	PreviewNote  string
}

// recentEvent is one choice of the preview's event selector.
type recentEvent struct {
	ID, Label string
	Data      *structpb.Struct
}

// maxPreviewEvent bounds the selector's value read from a form.
const maxPreviewEvent = 128

// loadRecent reads the account's recent events of d's type for the
// preview's selector, and the chosen one's id from the form (r nil: none).
// A failed read leaves the selector with the example event only.
func (c *Console) loadRecent(ctx context.Context, r *http.Request, s *session, d *editData) {
	if r != nil {
		if v := r.PostFormValue("preview_event"); len(v) <= maxPreviewEvent && utf8.ValidString(v) {
			d.PreviewEvent = v
		}
	}
	resp, err := c.events.ListRecentEvents(s.call(ctx), &postbackv1.ListRecentEventsRequest{AccountId: s.account, EventType: d.Type.Name})
	if err != nil {
		c.log.DebugContext(ctx, "console: recent events not read", "event_type", d.Type.Name, "error", err)
		return
	}
	for _, e := range resp.Events {
		d.Recent = append(d.Recent, recentEvent{ID: e.EventId, Data: e.Data,
			Label: e.EventId + ", " + e.CreateTime.AsTime().UTC().Format("2006-01-02 15:04:05 UTC")})
	}
}

// testResult is a test postback's answer and the verdict of the brand's rules.
type testResult struct {
	Attempt *postbackv1.Attempt
	Success bool
	Why     string
}

func (c *Console) eventType(ctx context.Context, s *session, name string) (*postbackv1.EventType, error) {
	types, err := c.eventTypes(ctx, s)
	if err != nil {
		return nil, err
	}
	for _, t := range types {
		if t.Name == name {
			return t, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "no event type %q", name)
}

func (c *Console) editPage(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	typ, err := c.eventType(ctx, s, r.PathValue("type"))
	if err != nil {
		c.apiError(w, r, s, "find the event type", err)
		return
	}
	ep, err := c.endpointFor(ctx, s, typ.Name)
	if err != nil {
		c.apiError(w, r, s, "read the endpoint", err)
		return
	}
	d := &editData{Type: typ, Endpoint: ep, Form: formFromEndpoint(ep), Errors: map[string]string{}, Saved: r.URL.Query().Get("saved") == "1"}
	c.loadRecent(ctx, nil, s, d)
	if ep != nil {
		d.Preview, _ = c.preview(ctx, s, ep, d)
	}
	c.renderEdit(w, r, http.StatusOK, s, d)
}

func (c *Console) renderEdit(w http.ResponseWriter, r *http.Request, code int, s *session, d *editData) {
	c.render(w, r, code, "edit", s, map[string]any{"Title": "Edit " + d.Type.Name, "Nav": "notifications", "D": d})
}

// preview asks the API to render ep for the seed's example event, or for
// the recent event chosen in d (d.PreviewEvent, among d.Recent); field
// errors go to d.
func (c *Console) preview(ctx context.Context, s *session, ep *postbackv1.Endpoint, d *editData) (*postbackv1.PreviewEndpointResponse, error) {
	p := proto.Clone(ep).(*postbackv1.Endpoint)
	p.Id, p.CreateTime, p.UpdateTime = "", nil, nil
	req := &postbackv1.PreviewEndpointRequest{Endpoint: p}
	if d.PreviewEvent != "" {
		for _, e := range d.Recent {
			if e.ID == d.PreviewEvent {
				req.Data = e.Data
			}
		}
		if req.Data == nil {
			d.PreviewNote = "Event " + d.PreviewEvent + " is no longer among the recent events: this is the example event."
			d.PreviewEvent = ""
		}
	}
	resp, err := c.endpoints.PreviewEndpoint(s.call(ctx), req)
	return resp, err
}

// placeViolations puts an API error's violations at their fields; it
// reports false for an error of another kind.
func placeViolations(err error, rows []int, d *editData) bool {
	vs, ok := violations(err)
	if !ok {
		return false
	}
	for _, v := range vs {
		if f := formField(v.Field, rows); f != "" {
			if d.Errors[f] != "" {
				d.Errors[f] += "; " + v.Description
			} else {
				d.Errors[f] = v.Description
			}
			continue
		}
		if v.Field != "" {
			d.Other = append(d.Other, v.Field+": "+v.Description)
		} else {
			d.Other = append(d.Other, v.Description)
		}
	}
	return true
}

// editSubmit saves the form (action "save"), or re-renders it with a blank
// header row added ("add-header") or with a preview ("preview") for
// browsers without scripts. Nothing is saved unless the whole form is valid:
// the console's own checks first, then the API's, which checks every field
// in one call.
func (c *Console) editSubmit(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	typ, err := c.eventType(ctx, s, r.PathValue("type"))
	if err != nil {
		c.apiError(w, r, s, "find the event type", err)
		return
	}
	stored, err := c.endpointFor(ctx, s, typ.Name)
	if err != nil {
		c.apiError(w, r, s, "read the endpoint", err)
		return
	}
	if r.PostFormValue("action") == "test" {
		c.test(w, r, s, typ, stored)
		return
	}
	d := &editData{Type: typ, Endpoint: stored, Errors: map[string]string{}}
	d.Form = readForm(r, d.Errors)
	ep, rows := endpointOf(d.Form, s.account, typ.Name, stored, d.Errors)
	action := r.PostFormValue("action")
	c.loadRecent(ctx, r, s, d) // for the preview's event selector

	switch {
	case action == "add-header":
		d.Form.Headers = append(d.Form.Headers, headerRow{Index: len(d.Form.Headers)})
	case len(d.Errors) > 0:
	case action == "preview":
		resp, err := c.preview(ctx, s, ep, d)
		if err != nil && !placeViolations(err, rows, d) {
			c.apiError(w, r, s, "preview the postback", err)
			return
		}
		d.Preview = resp
	default: // save
		var saved *postbackv1.Endpoint
		if stored == nil {
			saved, err = c.endpoints.CreateEndpoint(s.call(ctx), &postbackv1.CreateEndpointRequest{Endpoint: ep})
		} else {
			ep.Id = stored.Id
			saved, err = c.endpoints.UpdateEndpoint(s.call(ctx), &postbackv1.UpdateEndpointRequest{Endpoint: ep,
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"url", "method", "headers", "body_format", "body_template",
					"min_delay_seconds", "max_requests_per_second", "success_response", "error_response", "enabled"}}})
		}
		if err == nil {
			c.log.InfoContext(ctx, "console: endpoint saved", "endpoint_id", saved.Id, "event_type", typ.Name, "caller", s.identity)
			http.Redirect(w, r, "/console/notifications/"+typ.Name+"?saved=1", http.StatusSeeOther)
			return
		}
		if !placeViolations(err, rows, d) {
			c.apiError(w, r, s, "save the endpoint", err)
			return
		}
	}
	// A secret typed into the form is not sent back to the browser.
	for i, h := range d.Form.Headers {
		if h.Secret && h.Value != "" {
			d.Form.Headers[i].Value = ""
			if len(d.Errors) > 0 || len(d.Other) > 0 {
				k := fmt.Sprintf("h%d_value", h.Index)
				if d.Errors[k] == "" {
					d.Errors[k] = "secret values are not sent back to the browser: enter it again"
				}
			}
		}
	}
	d.Form.Headers = ensureBlankRow(d.Form.Headers)
	code := http.StatusOK
	if len(d.Errors) > 0 || len(d.Other) > 0 {
		code = http.StatusUnprocessableEntity
	}
	c.renderEdit(w, r, code, s, d)
}

func ensureBlankRow(rows []headerRow) []headerRow {
	if n := len(rows); n == 0 || rows[n-1].Name != "" || rows[n-1].Stored {
		rows = append(rows, headerRow{Index: n})
	}
	return rows
}

// previewFragment answers the script's live preview: the preview panel
// for the form as typed, errors at their fields listed in it.
func (c *Console) previewFragment(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	typ, err := c.eventType(ctx, s, r.PathValue("type"))
	if err != nil {
		http.Error(w, status.Convert(err).Message(), http.StatusNotFound)
		return
	}
	stored, err := c.endpointFor(ctx, s, typ.Name)
	if err != nil {
		http.Error(w, status.Convert(err).Message(), http.StatusBadGateway)
		return
	}
	d := &editData{Type: typ, Endpoint: stored, Errors: map[string]string{}}
	d.Form = readForm(r, d.Errors)
	ep, rows := endpointOf(d.Form, s.account, typ.Name, stored, d.Errors)
	c.loadRecent(ctx, r, s, d)
	if len(d.Errors) == 0 {
		resp, err := c.preview(ctx, s, ep, d)
		if err != nil && !placeViolations(err, rows, d) {
			d.Other = append(d.Other, status.Convert(err).Message())
		}
		d.Preview = resp
	}
	c.renderTemplate(w, r, http.StatusOK, "edit", "preview", s, map[string]any{"D": d})
}

// test sends the saved configuration once now, with the seed's example
// event, and tells whether the brand's rules counted it a success.
func (c *Console) test(w http.ResponseWriter, r *http.Request, s *session, typ *postbackv1.EventType, stored *postbackv1.Endpoint) {
	ctx := r.Context()
	d := &editData{Type: typ, Endpoint: stored, Form: formFromEndpoint(stored), Errors: map[string]string{}}
	c.loadRecent(ctx, nil, s, d)
	if stored == nil {
		d.Other = append(d.Other, "Save the configuration before sending a test postback.")
		c.renderEdit(w, r, http.StatusUnprocessableEntity, s, d)
		return
	}
	a, err := c.endpoints.TestEndpoint(s.call(ctx), &postbackv1.TestEndpointRequest{Id: stored.Id})
	if err != nil {
		if !placeViolations(err, nil, d) {
			d.Other = append(d.Other, "The test postback was not sent: "+status.Convert(err).Message())
		}
		c.renderEdit(w, r, http.StatusOK, s, d)
		return
	}
	d.Test = judge(a, stored)
	d.Preview, _ = c.preview(ctx, s, stored, d)
	c.renderEdit(w, r, http.StatusOK, s, d)
}

// judge explains an attempt's outcome with the endpoint's Success and
// Error Response rules (pkg/outcome, the sender's own rules).
func judge(a *postbackv1.Attempt, ep *postbackv1.Endpoint) *testResult {
	t := &testResult{Attempt: a, Success: a.Outcome == postbackv1.AttemptOutcome_ATTEMPT_OUTCOME_SUCCESS}
	if a.StatusCode == 0 {
		t.Why = "No HTTP response: " + a.Error
		return t
	}
	success, errS := outcome.ParseRule(ep.SuccessResponse)
	failure, errF := outcome.ParseRule(ep.ErrorResponse)
	if errS == nil && errF == nil {
		res := outcome.Classify(int(a.StatusCode), []byte(a.ResponseBody), success, failure)
		t.Why = res.Reason
	}
	if t.Why == "" {
		t.Why = a.Error
	}
	return t
}
