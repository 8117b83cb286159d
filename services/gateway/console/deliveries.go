package console

import (
	"net/http"
	"net/url"
	"strconv"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// deliveriesPageSize is how many deliveries a page of the log shows.
const deliveriesPageSize = 50

// responseExcerpt is how much of a response body the log shows.
const responseExcerpt = 1024

// retryStep is one row of the seed's retry schedule.
type retryStep struct {
	Retry int
	Delay string
}

// seedRetrySchedule is the product page's schedule (the default
// POSTBACK_RETRY_SCHEDULE).
var seedRetrySchedule = []retryStep{
	{1, "+15 seconds"}, {2, "+15 seconds"}, {3, "+15 seconds"}, {4, "+3 minutes"}, {5, "+3 minutes"},
	{6, "+15 minutes"}, {7, "+15 minutes"}, {8, "+15 minutes"}, {9, "+2 hours"}, {10, "+2 hours"},
	{11, "+2 hours"}, {12, "+6 hours"}, {13, "+6 hours"}, {14, "+6 hours"}, {15, "+6 hours"},
}

// statusFilters are the statuses the log filters by.
var statusFilters = []string{"PENDING", "IN_FLIGHT", "RETRYING", "SUCCEEDED", "FAILED", "DEAD", "CANCELLED"}

// logFilter is the log's filters, as in the query string.
type logFilter struct {
	Type, Status, From, To string
}

func (f logFilter) query(pageToken string) string {
	q := url.Values{}
	for k, v := range map[string]string{"type": f.Type, "status": f.Status, "from": f.From, "to": f.To, "page": pageToken} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q.Encode()
}

func (c *Console) deliveriesPage(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	q := r.URL.Query()
	f := logFilter{Type: q.Get("type"), Status: q.Get("status"), From: q.Get("from"), To: q.Get("to")}
	types, err := c.eventTypes(ctx, s)
	if err != nil {
		c.apiError(w, r, s, "list the event types", err)
		return
	}
	data := map[string]any{"Title": "Delivery log", "Nav": "deliveries", "Filter": f, "Types": types, "Statuses": statusFilters,
		"Schedule": seedRetrySchedule, "Replayed": q.Get("replayed"), "Retried": q.Get("retried")}
	errs := map[string]string{}
	req := &postbackv1.ListDeliveriesRequest{AccountId: s.account, PageSize: deliveriesPageSize, PageToken: q.Get("page")}
	if req.Status, err = parseStatus(f.Status); err != nil {
		errs["status"] = err.Error()
	}
	if req.StartTime, err = parseTime(f.From); err != nil {
		errs["from"] = err.Error()
	}
	if req.EndTime, err = parseTime(f.To); err != nil {
		errs["to"] = err.Error()
	}
	data["Errors"] = errs
	if !utf8.ValidString(req.PageToken) {
		errs["page"] = "not valid UTF-8"
	}
	noEndpoint := false
	if f.Type != "" {
		ep, err := c.endpointFor(ctx, s, f.Type)
		if err != nil {
			c.apiError(w, r, s, "find the endpoint", err)
			return
		}
		if ep == nil {
			noEndpoint = true
		} else {
			req.EndpointId = ep.Id
		}
	}
	if len(errs) > 0 || noEndpoint {
		c.render(w, r, http.StatusOK, "deliveries", s, data)
		return
	}
	resp, err := c.deliveries.ListDeliveries(s.call(ctx), req)
	if err != nil {
		if vs, ok := violations(err); ok {
			for _, v := range vs {
				errs["list"] = v.Field + ": " + v.Description
			}
			c.render(w, r, http.StatusBadRequest, "deliveries", s, data)
			return
		}
		c.apiError(w, r, s, "list the deliveries", err)
		return
	}
	data["Deliveries"] = resp.Deliveries
	if resp.NextPageToken != "" {
		data["Older"] = "/console/deliveries?" + f.query(resp.NextPageToken)
	}
	if req.PageToken != "" {
		data["Newest"] = "/console/deliveries?" + f.query("")
	}
	c.render(w, r, http.StatusOK, "deliveries", s, data)
}

// attemptView is one attempt as the log shows it.
type attemptView struct {
	A        *postbackv1.Attempt
	Method   string
	Excerpt  string
	Clipped  bool
	Verdict  string
	Schedule string // when the retry after it is due
}

func (c *Console) deliveryPage(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	d, err := c.deliveries.GetDelivery(s.call(ctx), &postbackv1.GetDeliveryRequest{Id: r.PathValue("id")})
	if err != nil {
		c.apiError(w, r, s, "read the delivery", err)
		return
	}
	if d.AccountId != s.account { // an operator's session acts for one account at a time
		c.apiError(w, r, s, "read the delivery", status.Error(codes.NotFound, "no such delivery in this account"))
		return
	}
	attempts, err := c.deliveries.ListAttempts(s.call(ctx), &postbackv1.ListAttemptsRequest{DeliveryId: d.Id})
	if err != nil {
		c.apiError(w, r, s, "list the attempts", err)
		return
	}
	method := ""
	if ep, err := c.endpoints.GetEndpoint(s.call(ctx), &postbackv1.GetEndpointRequest{Id: d.EndpointId}); err == nil {
		method = "GET"
		if ep.Method == postbackv1.HttpMethod_HTTP_METHOD_POST || (ep.Method == postbackv1.HttpMethod_HTTP_METHOD_UNSPECIFIED && ep.BodyTemplate != "") {
			method = "POST"
		}
	}
	views := make([]attemptView, 0, len(attempts.Attempts))
	for _, a := range attempts.Attempts {
		v := attemptView{A: a, Method: method, Excerpt: a.ResponseBody}
		if len(v.Excerpt) > responseExcerpt {
			v.Excerpt, v.Clipped = clipUTF8(v.Excerpt, responseExcerpt), true
		}
		switch {
		case a.Outcome == postbackv1.AttemptOutcome_ATTEMPT_OUTCOME_SUCCESS:
			v.Verdict = "success"
		case a.Retryable:
			v.Verdict = "failure, retryable"
		default:
			v.Verdict = "failure, final"
		}
		views = append(views, v)
	}
	retryable := false
	switch d.Status {
	case postbackv1.DeliveryStatus_DELIVERY_STATUS_RETRYING, postbackv1.DeliveryStatus_DELIVERY_STATUS_FAILED,
		postbackv1.DeliveryStatus_DELIVERY_STATUS_DEAD, postbackv1.DeliveryStatus_DELIVERY_STATUS_CANCELLED:
		retryable = true
	}
	c.render(w, r, http.StatusOK, "delivery", s, map[string]any{"Title": "Delivery " + d.Id, "Nav": "deliveries", "Delivery": d,
		"Attempts": views, "CanRetry": retryable, "Retried": r.URL.Query().Get("retried") == "1", "Schedule": seedRetrySchedule})
}

// clipUTF8 is s cut to at most n bytes on a rune boundary.
func clipUTF8(s string, n int) string {
	for n > 0 && n < len(s) && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func (c *Console) retry(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	id := r.PathValue("id")
	d, err := c.deliveries.GetDelivery(s.call(ctx), &postbackv1.GetDeliveryRequest{Id: id})
	if err == nil && d.AccountId != s.account {
		err = status.Error(codes.NotFound, "no such delivery in this account")
	}
	if err == nil {
		_, err = c.deliveries.RetryDelivery(s.call(ctx), &postbackv1.RetryDeliveryRequest{Id: id})
	}
	if err != nil {
		c.apiError(w, r, s, "retry the delivery", err)
		return
	}
	c.log.InfoContext(ctx, "console: delivery retried", "delivery_id", id, "caller", s.identity)
	http.Redirect(w, r, "/console/deliveries/"+url.PathEscape(id)+"?retried=1", http.StatusSeeOther)
}

// replay re-queues the dead deliveries of an event type's endpoint created
// in a time range.
func (c *Console) replay(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	f := logFilter{Type: r.PostFormValue("type"), From: r.PostFormValue("from"), To: r.PostFormValue("to")}
	start, err1 := parseTime(f.From)
	end, err2 := parseTime(f.To)
	if err1 != nil || err2 != nil || f.Type == "" {
		c.render(w, r, http.StatusBadRequest, "error", s, map[string]any{"Title": "Replay refused", "What": "replay dead deliveries",
			"Message": "Pick an event type and a time range (from and to, UTC)."})
		return
	}
	ep, err := c.endpointFor(ctx, s, f.Type)
	if err == nil && ep == nil {
		err = status.Errorf(codes.NotFound, "no endpoint is configured for %s", f.Type)
	}
	var resp *postbackv1.ReplayDeliveriesResponse
	if err == nil {
		resp, err = c.deliveries.ReplayDeliveries(s.call(ctx), &postbackv1.ReplayDeliveriesRequest{EndpointId: ep.Id, StartTime: start, EndTime: end})
	}
	if err != nil {
		c.apiError(w, r, s, "replay dead deliveries", err)
		return
	}
	c.log.InfoContext(ctx, "console: deliveries replayed", "endpoint_id", ep.Id, "count", resp.Count, "caller", s.identity)
	http.Redirect(w, r, "/console/deliveries?"+f.query("")+"&replayed="+strconv.Itoa(int(resp.Count)), http.StatusSeeOther)
}
