// Package dispatch sends one postback request and judges it: it builds the
// HTTP request from a rendered delivery.Job and the endpoint's current configuration,
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
	"crypto/tls"
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

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/net/http/httpguts"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/postback-dev/postback/pkg/delivery"
	"github.com/postback-dev/postback/pkg/endpoint"
	"github.com/postback-dev/postback/pkg/guard"
	"github.com/postback-dev/postback/pkg/outcome"
	"github.com/postback-dev/postback/pkg/signature"
	"github.com/postback-dev/postback/pkg/telemetry"
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
	transport *transport
	userAgent string
	now       func() time.Time
	tracer    trace.Tracer
}

// Options configure a Dispatcher.
type Options struct {
	// Allow opens destinations past the network guard (POSTBACK_ALLOW_CIDRS).
	Allow []netip.Prefix
	// Version goes into the User-Agent.
	Version string
	// Resolver resolves destination names (nil = the system resolver).
	Resolver *net.Resolver
	// TracerProvider traces each request as an HTTP client span (nil: the
	// global provider).
	TracerProvider trace.TracerProvider
	// TLS is the client TLS configuration for https endpoints (nil: the
	// system's roots, TLS 1.2 and up); tests give their own roots.
	TLS *tls.Config
}

// New returns a dispatcher whose connections may reach only what the network
// guard allows (plus the allow-list).
func New(o Options) *Dispatcher {
	version := o.Version
	dialer := guard.Dialer(o.Allow, 10*time.Second)
	dialer.Resolver = o.Resolver
	if version == "" {
		version = "dev"
	}
	tp := o.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return &Dispatcher{
		tracer: tp.Tracer(telemetry.Scope),
		// Every connection is dialled through the guard; no proxy (it would
		// hide the destination from the guard); redirects are not followed
		// (conns.go).
		transport: newTransport(dialer.DialContext, o.TLS),
		userAgent: "Postback/" + version,
		now:       time.Now,
	}
}

// CloseIdle closes the connections kept for reuse.
func (d *Dispatcher) CloseIdle() { d.transport.CloseIdle() }

// Result is a sent (or refused) attempt and its verdict.
type Result struct {
	Attempt *postbackv1.Attempt
	// Success: the endpoint's rules accepted the response.
	Success bool
	// Final: a failure that must not be retried.
	Final bool
	// Reason explains a failure to a person.
	Reason string
	// RetryAfter is the Retry-After of a failed 429 or 503 answer (0:
	// none), unbounded (retryafter.go); the sender paces the endpoint by it.
	RetryAfter time.Duration
	// errorType classes a failure for the span's error.type.
	errorType string
}

// Send sends job to ep (secrets opened) now and judges the answer, inside
// an HTTP client span (OpenTelemetry HTTP semantic conventions: named after
// the method; http.request.method, url.full with any userinfo password
// redacted, server.address and .port, http.response.status_code, error.type)
// that also carries the postback ids and attempt number. The span never
// holds a header value or a body; the request does not carry the trace
// context (a brand's receiver has no use for Postback's trace ids).
func (d *Dispatcher) Send(ctx context.Context, ep *postbackv1.Endpoint, job *delivery.Job) Result {
	ctx, span := d.tracer.Start(ctx, spanName(job.Method), trace.WithSpanKind(trace.SpanKindClient))
	res := d.send(ctx, ep, job)
	if span.IsRecording() {
		annotate(span, job, res)
	}
	span.End()
	return res
}

// spanName is the HTTP client span's name: the method, as the conventions
// want (a URL template would be better; the rendered URL is per event).
func spanName(method string) string {
	switch method {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodHead, http.MethodOptions:
		return method
	}
	return "HTTP"
}

func annotate(span trace.Span, job *delivery.Job, res Result) {
	method := spanName(job.Method)
	if method == "HTTP" {
		method = "_OTHER"
	}
	at := res.Attempt
	span.SetAttributes(
		semconv.HTTPRequestMethodKey.String(method),
		semconv.URLFull(at.Url), // redacted at the attempt's creation
		telemetry.DeliveryID.String(job.DeliveryID),
		telemetry.EndpointID.String(job.EndpointID),
		telemetry.AccountID.String(job.AccountID),
		telemetry.EventType.String(job.EventType),
		telemetry.Attempt.Int(job.Attempt),
	)
	if u, err := url.Parse(at.Url); err == nil && u.Hostname() != "" {
		span.SetAttributes(semconv.ServerAddress(u.Hostname()))
		port := u.Port()
		switch {
		case port != "":
		case u.Scheme == "https":
			port = "443"
		default:
			port = "80"
		}
		if n, err := strconv.Atoi(port); err == nil {
			span.SetAttributes(semconv.ServerPort(n))
		}
	}
	if at.StatusCode != 0 {
		span.SetAttributes(semconv.HTTPResponseStatusCode(int(at.StatusCode)))
	}
	if res.Success {
		return
	}
	errType := res.errorType
	if errType == "" && at.StatusCode != 0 {
		errType = strconv.Itoa(int(at.StatusCode))
	}
	if errType == "" {
		errType = "_OTHER"
	}
	span.SetAttributes(semconv.ErrorTypeKey.String(errType))
	span.SetStatus(codes.Error, res.Reason)
}

func (d *Dispatcher) send(ctx context.Context, ep *postbackv1.Endpoint, job *delivery.Job) Result {
	start := d.now()
	u, err := url.Parse(job.URL) // once: the attempt's redacted URL and the request's
	at := &postbackv1.Attempt{
		DeliveryId: job.DeliveryID,
		Number:     int32(job.Attempt),
		StartTime:  timestamppb.New(start),
	}
	if err == nil {
		at.Url = u.Redacted()
	}
	errorType := ""
	fail := func(final bool, reason string) Result {
		at.Duration = durationpb.New(d.now().Sub(start))
		at.Outcome = postbackv1.AttemptOutcome_ATTEMPT_OUTCOME_FAILURE
		at.Retryable = !final
		at.Error = reason
		return Result{Attempt: at, Final: final, Reason: reason, errorType: errorType}
	}
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		errorType = "malformed_url"
		return fail(true, "the rendered URL is malformed or not http(s)")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			errorType = "malformed_url"
			return fail(true, fmt.Sprintf("the rendered URL has an invalid port %q", p))
		}
	}
	ctx, cancel := context.WithTimeout(ctx, endpoint.Timeout(ep))
	defer cancel()
	var body io.Reader
	if len(job.Body) > 0 {
		body = bytes.NewReader(job.Body)
	}
	req, err := http.NewRequestWithContext(ctx, job.Method, "", body)
	if err != nil { // only an invalid method is left to refuse
		errorType = "malformed_request"
		return fail(true, "the request cannot be made: "+err.Error())
	}
	// The URL parsed above, as NewRequest would have set it from job.URL
	// (an empty port dropped); the Host header as it goes on the wire.
	u.Host = strings.TrimSuffix(u.Host, ":")
	req.URL, req.Host = u, wireHost(u)
	d.setHeaders(req, ep, job, start)
	resp, err := d.transport.RoundTrip(req)
	if err != nil {
		var blocked *guard.BlockedError
		switch {
		case errors.As(err, &blocked):
			errorType = "blocked"
			return fail(true, blocked.Error())
		case guard.IsNotFound(err):
			errorType = "nxdomain"
			return fail(true, fmt.Sprintf("host %q does not resolve (NXDOMAIN)", u.Hostname()))
		case errors.Is(err, context.DeadlineExceeded):
			errorType = "timeout"
			return fail(false, fmt.Sprintf("no response within %s", endpoint.Timeout(ep)))
		}
		errorType = "transport"
		return fail(false, "request failed: "+transportReason(err))
	}
	// The answer is judged on its first outcome.MaxBody bytes (or all of
	// it), which must arrive within the timeout like the head did. Closing
	// drains the rest within what is left of the timeout, so the attempt's
	// duration is the time the request held this worker.
	respBody, readErr := io.ReadAll(io.LimitReader(resp.Body, outcome.MaxBody))
	_ = resp.Body.Close()
	at.StatusCode = int32(resp.StatusCode)
	at.ResponseBody = storedBody(respBody)
	at.Duration = durationpb.New(d.now().Sub(start))
	if readErr != nil {
		if errors.Is(withContext(ctx, readErr), context.DeadlineExceeded) {
			errorType = "timeout"
			return fail(false, fmt.Sprintf("the response (status %d) did not finish within %s: %d bytes of its body arrived",
				resp.StatusCode, endpoint.Timeout(ep), len(respBody)))
		}
		errorType = "transport"
		return fail(false, fmt.Sprintf("reading the response (status %d) failed after %d bytes of its body: %s",
			resp.StatusCode, len(respBody), transportReason(readErr)))
	}
	success, _ := outcome.ParseRule(ep.SuccessResponse)
	failure, _ := outcome.ParseRule(ep.ErrorResponse)
	verdict := outcome.Classify(resp.StatusCode, respBody, success, failure)
	if !verdict.Success {
		errorType = "rejected" // by the endpoint's rules; error.type is the status when it is >= 400
		if resp.StatusCode >= 400 {
			errorType = strconv.Itoa(resp.StatusCode)
		}
		r := fail(false, verdict.Reason)
		r.Attempt.Duration = at.Duration
		r.RetryAfter = retryAfterOf(resp, d.now())
		return r
	}
	at.Outcome = postbackv1.AttemptOutcome_ATTEMPT_OUTCOME_SUCCESS
	return Result{Attempt: at, Success: true}
}

// setHeaders sets the endpoint's headers (secret ones opened; templated ones
// as the renderer rendered them), the Postback headers and, with a signing
// secret, the Standard Webhooks headers: one v1 signature for each secret
// that signs at now (endpoint.SigningSecrets: the signing secret, and the
// previous one while a rotation lasts), space-separated, over
// signature.Payload (a GET's method and full URL, another method's body).
func (d *Dispatcher) setHeaders(req *http.Request, ep *postbackv1.Endpoint, job *delivery.Job, now time.Time) {
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
	secrets := endpoint.SigningSecrets(ep, now)
	if len(secrets) == 0 {
		return
	}
	payload := signature.Payload(req.Method, SignedURL(req), job.Body)
	sigs := make([]string, 0, len(secrets))
	for _, secret := range secrets {
		if s, err := signature.NewSigner(secret); err == nil {
			sigs = append(sigs, s.Sign(job.DeliveryID, now, payload))
		}
	}
	if len(sigs) > 0 {
		for k, v := range signature.Headers(job.DeliveryID, now, strings.Join(sigs, " ")) {
			req.Header.Set(k, v)
		}
	}
}

// SignedURL is a request's full URL as a GET's signature covers it, and as
// its receiver can rebuild it: the scheme, "://", the Host header as sent,
// and the request target exactly as on the request line (the path and
// query, percent-encoding as sent; no fragment, no user or password).
func SignedURL(req *http.Request) string {
	return req.URL.Scheme + "://" + req.Host + req.URL.RequestURI()
}

// wireHost is the Host header of a request to u, as net/http writes it (an
// international name in punycode, an IPv6 zone left out), in lower case and
// without a default port (:80 for http, :443 for https), so that a GET's
// signed URL holds the Host header the receiver gets, and a receiver that
// builds it from its public base URL finds the same text.
func wireHost(u *url.URL) string {
	host := strings.ToLower(u.Host)
	if h, err := httpguts.PunycodeHostPort(host); err == nil {
		host = h
	}
	if strings.HasPrefix(host, "[") {
		if zone, end := strings.Index(host, "%"), strings.Index(host, "]"); zone > 0 && end > zone {
			host = host[:zone] + host[end:]
		}
	}
	switch {
	case u.Scheme == "http" && strings.HasSuffix(host, ":80"):
		host = strings.TrimSuffix(host, ":80")
	case u.Scheme == "https" && strings.HasSuffix(host, ":443"):
		host = strings.TrimSuffix(host, ":443")
	}
	return host
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

func storedBody(b []byte) string {
	if len(b) > MaxStoredBody {
		b = b[:MaxStoredBody]
	}
	if !utf8.Valid(b) {
		return strings.ToValidUTF8(string(b), "\uFFFD")
	}
	return string(b)
}
