// Package dispatch sends one postback request and judges it: it builds the
// HTTP request from a rendered Job and the endpoint's current configuration,
// signs it (Standard Webhooks) when the endpoint has a signing secret, sends
// it through the network guard with the endpoint's timeout and without
// following redirects, and classifies the response by the brand's Success and
// Error Response rules.
//
// Failure policy: a malformed or non-http(s) URL, a host that does not
// resolve (NXDOMAIN) and a destination blocked by the guard are final (no
// retry: retrying gives the same answer); every other failure, transport
// errors included, is retryable.
package dispatch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/postback-dev/postback/pkg/endpoint"
	"github.com/postback-dev/postback/pkg/guard"
	"github.com/postback-dev/postback/pkg/outcome"
	"github.com/postback-dev/postback/pkg/signature"
	"github.com/postback-dev/postback/pkg/stream"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// Headers set on every postback request.
const (
	HeaderDeliveryID = "Postback-Delivery-Id"
	HeaderAttempt    = "Postback-Attempt"
	HeaderEventType  = "Postback-Event-Type"
	// MaxStoredBody is how much of a response an Attempt keeps.
	MaxStoredBody = 4 << 10
)

// Dispatcher sends postbacks. It is safe for concurrent use; its connections
// are pooled and reused across deliveries.
type Dispatcher struct {
	client    *http.Client
	userAgent string
	now       func() time.Time
}

// Options configure a Dispatcher.
type Options struct {
	// Allow opens destinations past the network guard (POSTBACK_ALLOW_CIDRS).
	Allow []netip.Prefix
	// Version goes into the User-Agent.
	Version string
	// Resolver resolves destination names (nil = the system resolver).
	Resolver *net.Resolver
}

// New returns a dispatcher whose connections may reach only what the network
// guard allows (plus the allow-list).
func New(o Options) *Dispatcher {
	version := o.Version
	dialer := guard.Dialer(o.Allow, 10*time.Second)
	dialer.Resolver = o.Resolver
	transport := &http.Transport{
		Proxy:                 nil, // a proxy would bypass the guard's view of the destination
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	if version == "" {
		version = "dev"
	}
	return &Dispatcher{
		client: &http.Client{
			Transport: transport,
			// Redirects are not followed: the brand's answer is the first response.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		userAgent: "Postback/" + version,
		now:       time.Now,
	}
}

// Result is a sent (or refused) attempt and its verdict.
type Result struct {
	Attempt *postbackv1.Attempt
	// Success: the endpoint's rules accepted the response.
	Success bool
	// Final: a failure that must not be retried.
	Final bool
	// Reason explains a failure to a person.
	Reason string
}

// Send sends job to ep (secrets opened) now and judges the answer.
func (d *Dispatcher) Send(ctx context.Context, ep *postbackv1.Endpoint, job *stream.Job) Result {
	start := d.now()
	at := &postbackv1.Attempt{
		DeliveryId: job.DeliveryID,
		Number:     int32(job.Attempt),
		StartTime:  timestamppb.New(start),
		Url:        redactURL(job.URL),
	}
	fail := func(final bool, reason string) Result {
		at.Duration = durationpb.New(d.now().Sub(start))
		at.Outcome = postbackv1.AttemptOutcome_ATTEMPT_OUTCOME_FAILURE
		at.Retryable = !final
		at.Error = reason
		return Result{Attempt: at, Final: final, Reason: reason}
	}
	u, err := url.Parse(job.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return fail(true, "the rendered URL is malformed or not http(s)")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fail(true, fmt.Sprintf("the rendered URL has an invalid port %q", p))
		}
	}
	ctx, cancel := context.WithTimeout(ctx, endpoint.Timeout(ep))
	defer cancel()
	var body io.Reader
	if len(job.Body) > 0 {
		body = bytes.NewReader(job.Body)
	}
	req, err := http.NewRequestWithContext(ctx, job.Method, job.URL, body)
	if err != nil {
		return fail(true, "the rendered URL is malformed: "+err.Error())
	}
	d.setHeaders(req, ep, job, start)
	resp, err := d.client.Do(req)
	if err != nil {
		var blocked *guard.BlockedError
		switch {
		case errors.As(err, &blocked):
			return fail(true, blocked.Error())
		case guard.IsNotFound(err):
			return fail(true, fmt.Sprintf("host %q does not resolve (NXDOMAIN)", u.Hostname()))
		case errors.Is(err, context.DeadlineExceeded):
			return fail(false, fmt.Sprintf("no response within %s", endpoint.Timeout(ep)))
		}
		return fail(false, "request failed: "+transportReason(err))
	}
	defer resp.Body.Close()
	respBody, readErr := io.ReadAll(io.LimitReader(resp.Body, outcome.MaxBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // let the connection be reused
	at.StatusCode = int32(resp.StatusCode)
	at.ResponseBody = storedBody(respBody)
	at.Duration = durationpb.New(d.now().Sub(start))
	if readErr != nil && len(respBody) == 0 {
		return fail(false, "reading the response failed: "+transportReason(readErr))
	}
	success, _ := outcome.ParseRule(ep.SuccessResponse)
	failure, _ := outcome.ParseRule(ep.ErrorResponse)
	verdict := outcome.Classify(resp.StatusCode, respBody, success, failure)
	if !verdict.Success {
		r := fail(false, verdict.Reason)
		r.Attempt.Duration = at.Duration
		return r
	}
	at.Outcome = postbackv1.AttemptOutcome_ATTEMPT_OUTCOME_SUCCESS
	return Result{Attempt: at, Success: true}
}

// setHeaders sets the endpoint's headers (secret ones opened; templated ones
// as the renderer rendered them), the Postback headers and, with a signing
// secret, the Standard Webhooks headers.
func (d *Dispatcher) setHeaders(req *http.Request, ep *postbackv1.Endpoint, job *stream.Job, now time.Time) {
	for _, h := range ep.Headers {
		v := h.Value
		for _, r := range job.Headers {
			if strings.EqualFold(r.Name, h.Name) {
				v = r.Value
			}
		}
		req.Header.Set(h.Name, v)
	}
	if job.ContentType != "" {
		req.Header.Set("Content-Type", job.ContentType)
	}
	req.Header.Set("User-Agent", d.userAgent)
	req.Header.Set(HeaderDeliveryID, job.DeliveryID)
	req.Header.Set(HeaderAttempt, strconv.Itoa(job.Attempt))
	req.Header.Set(HeaderEventType, job.EventType)
	if ep.SigningSecret != "" {
		if s, err := signature.NewSigner(ep.SigningSecret); err == nil {
			for k, v := range signature.Headers(job.DeliveryID, now, s.Sign(job.DeliveryID, now, job.Body)) {
				req.Header.Set(k, v)
			}
		}
	}
}

// transportReason is a transport error without the URL (which may carry
// data points) that net/http wraps around it.
func transportReason(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Op + ": " + op.Err.Error()
	}
	return err.Error()
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return ""
	}
	return u.Redacted()
}

func storedBody(b []byte) string {
	if len(b) > MaxStoredBody {
		b = b[:MaxStoredBody]
	}
	if !utf8.Valid(b) {
		return strings.ToValidUTF8(string(b), "\uFFFD")
	}
	return string(b)
}
