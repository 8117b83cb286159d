package console

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// pageNames are the pages, each templates/<name>.html with templates/layout.html.
var pageNames = []string{"sign-in", "pick-account", "notifications", "edit", "deliveries", "delivery", "error"}

var funcs = template.FuncMap{
	"when":     formatTime,
	"duration": formatDuration,
	"status":   statusName,
	"statusClass": func(s postbackv1.DeliveryStatus) string {
		return strings.ToLower(statusName(s))
	},
	"add":  func(a, b int) int { return a + b },
	"list": func(v ...string) []string { return v },
	"hasItems": func(t *postbackv1.EventType) bool {
		for _, p := range t.DataPoints {
			if p.Item {
				return true
			}
		}
		return false
	},
	"macro": func(p *postbackv1.DataPoint) string {
		if p.Item {
			return "{i." + p.Name + "}"
		}
		return "{" + p.Name + "}"
	},
	"dptype": func(t postbackv1.DataPointType) string {
		return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(t.String(), "DATA_POINT_TYPE_")), "_", " ")
	},
	"fieldLabel": fieldLabel,
}

// fieldLabel names a form field as its label does.
func fieldLabel(id string) string {
	if m := rowField.FindStringSubmatch(id); m != nil {
		n, _ := strconv.Atoi(m[1])
		return fmt.Sprintf("Header %d %s", n+1, m[2])
	}
	switch id {
	case "url":
		return "URL"
	case "method":
		return "HTTP Method"
	case "headers":
		return "HTTP Headers"
	case "min_delay_seconds":
		return "Minimum Delay"
	case "max_requests_per_second":
		return "Maximum Requests"
	case "success_response":
		return "Success Response"
	case "error_response":
		return "Error Response"
	case "body_format":
		return "Body format"
	case "body_template":
		return "Body template"
	}
	return id
}

var rowField = regexp.MustCompile(`^h(\d+)_(name|value)$`)

func parsePages() (map[string]*template.Template, error) {
	pages := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFiles, "templates/layout.html", "templates/partials.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: parse page %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// sessionView is what the layout shows of a session (never the token).
type sessionView struct {
	Account  string
	Caller   string
	Operator bool
	CSRF     string
}

// render writes page with data (a map the page reads; Title, Session and
// CSRF are added).
func (c *Console) render(w http.ResponseWriter, r *http.Request, code int, page string, s *session, data map[string]any) {
	c.renderTemplate(w, r, code, page, "layout", s, data)
}

// renderTemplate executes one named template of page's set.
func (c *Console) renderTemplate(w http.ResponseWriter, r *http.Request, code int, page, name string, s *session, data map[string]any) {
	if data == nil {
		data = map[string]any{}
	}
	if s != nil {
		data["Session"] = sessionView{Account: s.account, Caller: s.identity.String(), Operator: s.identity.Operator(), CSRF: s.csrf}
		data["CSRF"] = s.csrf
	}
	var buf bytes.Buffer
	if err := c.pages[page].ExecuteTemplate(&buf, name, data); err != nil {
		c.log.ErrorContext(r.Context(), "console: render page", "page", page, "template", name, "error", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// apiError answers an API error as a page: signed out for Unauthenticated,
// the API's message otherwise (messages never quote a secret).
func (c *Console) apiError(w http.ResponseWriter, r *http.Request, s *session, what string, err error) {
	st := status.Convert(err)
	code := http.StatusBadGateway
	switch st.Code() {
	case codes.Unauthenticated:
		c.mu.Lock()
		delete(c.sessions, s.id)
		c.mu.Unlock()
		c.setCookie(w, r, "", -1)
		http.Redirect(w, r, "/console/sign-in", http.StatusSeeOther)
		return
	case codes.NotFound:
		code = http.StatusNotFound
	case codes.PermissionDenied:
		code = http.StatusForbidden
	case codes.InvalidArgument, codes.FailedPrecondition:
		code = http.StatusBadRequest
	case codes.Unavailable:
		code = http.StatusServiceUnavailable
	}
	if code == http.StatusBadGateway {
		c.log.WarnContext(r.Context(), "console: API call failed", "what", what, "code", st.Code().String(), "caller", s.identity)
	}
	c.render(w, r, code, "error", s, map[string]any{"Title": "Something went wrong", "What": what, "Message": st.Message(), "Code": st.Code().String()})
}

// violations are an InvalidArgument's field violations (BadRequest), or
// the message as one violation without a field.
func violations(err error) ([]*errdetails.BadRequest_FieldViolation, bool) {
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument && st.Code() != codes.ResourceExhausted {
		return nil, false
	}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.FieldViolations) > 0 {
			return br.FieldViolations, true
		}
	}
	field, desc, found := strings.Cut(st.Message(), ": ")
	if !found || strings.ContainsAny(field, " ;") {
		field, desc = "", st.Message()
	}
	return []*errdetails.BadRequest_FieldViolation{{Field: field, Description: desc}}, true
}

func formatTime(t *timestamppb.Timestamp) string {
	if t == nil || (t.Seconds == 0 && t.Nanos == 0) {
		return "—"
	}
	return t.AsTime().UTC().Format("2006-01-02 15:04:05 UTC")
}

func formatDuration(d *durationpb.Duration) string {
	if d == nil {
		return "—"
	}
	if v := d.AsDuration(); v < time.Millisecond {
		return v.Round(time.Microsecond).String()
	}
	return d.AsDuration().Round(time.Millisecond).String()
}

func statusName(s postbackv1.DeliveryStatus) string {
	return strings.TrimPrefix(s.String(), "DELIVERY_STATUS_")
}

// parseStatus reads a status filter ("" = any).
func parseStatus(s string) (postbackv1.DeliveryStatus, error) {
	if s == "" {
		return postbackv1.DeliveryStatus_DELIVERY_STATUS_UNSPECIFIED, nil
	}
	v, ok := postbackv1.DeliveryStatus_value["DELIVERY_STATUS_"+s]
	if !ok || v == 0 {
		return 0, fmt.Errorf("unknown status %q", s)
	}
	return postbackv1.DeliveryStatus(v), nil
}

// localTime is how a datetime-local input sends a time; the console reads it as UTC.
const localTime = "2006-01-02T15:04"

// parseTime reads a time filter ("" = none).
func parseTime(s string) (*timestamppb.Timestamp, error) {
	if s == "" {
		return nil, nil
	}
	for _, layout := range []string{localTime, "2006-01-02T15:04:05", time.RFC3339} {
		if t, err := time.Parse(layout, s); err == nil {
			return timestamppb.New(t), nil
		}
	}
	return nil, errors.New("want a date and time, e.g. 2026-04-08T09:00 (UTC)")
}

// apiHeaderField maps an API field path to the form's input id:
// "endpoint.url" -> "url", "endpoint.headers[2].value" -> "h<row>_value"
// (rows maps the API's header index to the form row).
var headerField = regexp.MustCompile(`^endpoint\.headers\[(\d+)\]\.(name|value)$`)

func formField(apiField string, rows []int) string {
	if m := headerField.FindStringSubmatch(apiField); m != nil {
		i, _ := strconv.Atoi(m[1])
		if i < len(rows) {
			return fmt.Sprintf("h%d_%s", rows[i], m[2])
		}
		return "headers"
	}
	f := strings.TrimPrefix(apiField, "endpoint.")
	switch f {
	case "url", "method", "body_format", "body_template", "min_delay_seconds", "max_requests_per_second",
		"success_response", "error_response", "headers", "enabled":
		return f
	}
	return ""
}
