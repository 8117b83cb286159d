// Package endpoint holds the rules of an endpoint's configuration that more
// than one service needs: validation when it is saved, its render spec, its
// limits and timeout, and how its secrets are sealed at rest, opened for
// sending and masked for the API. It knows no broker: where endpoints are
// kept is pkg/endpoints.
package endpoint

import (
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/postback-dev/postback/pkg/event"
	"github.com/postback-dev/postback/pkg/id"
	"github.com/postback-dev/postback/pkg/limiter"
	"github.com/postback-dev/postback/pkg/outcome"
	"github.com/postback-dev/postback/pkg/render"
	"github.com/postback-dev/postback/pkg/secret"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// Timeouts of a request.
const (
	DefaultTimeout = 10 * time.Second
	MaxTimeout     = 60 * time.Second
)

// MaxInFlight bounds an endpoint's max_in_flight setting (a sender holds
// it to half of its workers anyway).
const MaxInFlight = 1000

// FieldError names the field of a refused endpoint.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// Spec is the render spec of an endpoint.
func Spec(e *postbackv1.Endpoint) render.Spec {
	s := render.Spec{EventType: e.EventType, URL: e.Url, BodyTemplate: e.BodyTemplate}
	switch e.Method {
	case postbackv1.HttpMethod_HTTP_METHOD_GET:
		s.Method = render.MethodGet
	case postbackv1.HttpMethod_HTTP_METHOD_POST:
		s.Method = render.MethodPost
	}
	switch e.BodyFormat {
	case postbackv1.BodyFormat_BODY_FORMAT_JSON:
		s.BodyFormat = render.BodyJSON
	case postbackv1.BodyFormat_BODY_FORMAT_FORM:
		s.BodyFormat = render.BodyForm
	case postbackv1.BodyFormat_BODY_FORMAT_XML:
		s.BodyFormat = render.BodyXML
	case postbackv1.BodyFormat_BODY_FORMAT_TEXT:
		s.BodyFormat = render.BodyText
	}
	for _, h := range e.Headers {
		s.Headers = append(s.Headers, render.Header{Name: h.Name, Value: h.Value, Secret: h.Secret})
	}
	return s
}

// Validate checks an endpoint as it is about to be saved (secrets still in
// clear) and returns its compiled form. Errors are *FieldError or
// *render.FieldError, each naming the field.
func Validate(e *postbackv1.Endpoint) (*render.Endpoint, error) {
	if !id.ValidAccount(e.AccountId) {
		return nil, &FieldError{"account_id", fmt.Sprintf("want 1-64 characters of A-Z a-z 0-9 _ -, got %q", e.AccountId)}
	}
	if _, ok := event.Lookup(e.EventType); !ok {
		return nil, &FieldError{"event_type", fmt.Sprintf("unknown event type %q", e.EventType)}
	}
	if e.Url == "" {
		return nil, &FieldError{"url", "required"}
	}
	if _, ok := postbackv1.HttpMethod_name[int32(e.Method)]; !ok {
		return nil, &FieldError{"method", fmt.Sprintf("unknown method %d", e.Method)}
	}
	if _, ok := postbackv1.BodyFormat_name[int32(e.BodyFormat)]; !ok {
		return nil, &FieldError{"body_format", fmt.Sprintf("unknown body format %d", e.BodyFormat)}
	}
	if e.MinDelaySeconds < 0 || e.MinDelaySeconds != e.MinDelaySeconds {
		return nil, &FieldError{"min_delay_seconds", fmt.Sprintf("must be 0 or more, got %v", e.MinDelaySeconds)}
	}
	if e.MinDelaySeconds > 86400 {
		return nil, &FieldError{"min_delay_seconds", "must be at most 86400 (one day)"}
	}
	if e.MaxRequestsPerSecond < 0 || e.MaxRequestsPerSecond != e.MaxRequestsPerSecond {
		return nil, &FieldError{"max_requests_per_second", fmt.Sprintf("must be 0 or more, got %v", e.MaxRequestsPerSecond)}
	}
	if e.MaxInFlight < 0 || e.MaxInFlight > MaxInFlight {
		return nil, &FieldError{"max_in_flight", fmt.Sprintf("must be between 0 and %d, got %d", MaxInFlight, e.MaxInFlight)}
	}
	if _, err := outcome.ParseRule(e.SuccessResponse); err != nil {
		return nil, &FieldError{"success_response", err.Error()}
	}
	if _, err := outcome.ParseRule(e.ErrorResponse); err != nil {
		return nil, &FieldError{"error_response", err.Error()}
	}
	if t := e.GetTimeout(); t != nil {
		if err := t.CheckValid(); err != nil || t.AsDuration() < 0 || t.AsDuration() > MaxTimeout {
			return nil, &FieldError{"timeout", fmt.Sprintf("must be between 0 and %s", MaxTimeout)}
		}
	}
	for i, h := range e.Headers {
		if h.Name == "" {
			return nil, &FieldError{fmt.Sprintf("headers[%d].name", i), "required"}
		}
	}
	compiled, err := render.Compile(Spec(e))
	if err != nil {
		return nil, err
	}
	for i, h := range e.Headers {
		if why := ReservedHeader(h.Name); why != "" {
			return nil, &FieldError{fmt.Sprintf("headers[%d].name", i), ReservedHeaderMessage(h.Name, why)}
		}
	}
	return compiled, nil
}

// Limits are the endpoint's Minimum Delay and Maximum Requests, and whether
// it opted out of adaptive pacing (limiter/pacing.go).
func Limits(e *postbackv1.Endpoint) limiter.Limits {
	return limiter.Limits{
		MinDelay: time.Duration(e.MinDelaySeconds * float64(time.Second)),
		Rate:     e.MaxRequestsPerSecond,
		Unpaced:  e.AdaptivePacingDisabled,
	}
}

// Timeout is the endpoint's request timeout.
func Timeout(e *postbackv1.Endpoint) time.Duration {
	if t := e.GetTimeout(); t != nil && t.AsDuration() > 0 {
		return min(t.AsDuration(), MaxTimeout)
	}
	return DefaultTimeout
}

// Why a delivery is CANCELLED: the same words whichever service notices
// first (the gateway when the endpoint changes, or the sender or the retry
// service when a postback's time comes).
const (
	ReasonDisabled = "the endpoint was disabled"
	ReasonDeleted  = "the endpoint was deleted"
)

// Enabled reports whether the endpoint receives postbacks (unset = enabled).
func Enabled(e *postbackv1.Endpoint) bool { return e.Enabled == nil || *e.Enabled }

// Version identifies an endpoint's configuration: its update time in Unix
// nanoseconds, which every change sets (0 when never set).
func Version(e *postbackv1.Endpoint) int64 {
	if e.GetUpdateTime() == nil {
		return 0
	}
	return e.GetUpdateTime().AsTime().UnixNano()
}

// Binding is what an endpoint's sealed secrets are bound to: its account, id
// and URL template. A secret sealed for an endpoint opens only while these
// are unchanged, so someone who can write the stored configuration without
// the key (a stolen broker password) cannot point the URL elsewhere and
// have the sender send the secrets there: they no longer open, and the
// delivery fails instead. The gateway, which holds the key, seals them again
// whenever it saves a change.
func Binding(e *postbackv1.Endpoint) string {
	return e.GetAccountId() + "\x00" + e.GetId() + "\x00" + e.GetUrl()
}

// Seal encrypts secret header values and the signing secrets in place, bound
// to e (Binding), so the stored endpoint holds no secret in clear. A value
// already sealed (kept from the stored endpoint old, nil on create) is opened
// with old's binding, or e's, and sealed again for e.
func Seal(e, old *postbackv1.Endpoint, k *secret.Keyring) error {
	bind := Binding(e)
	seal := func(v, field string) (string, error) {
		if v == "" {
			return "", nil
		}
		if secret.IsSealed(v) {
			clear, err := OpenValue(e, v, k)
			if err != nil && old != nil {
				clear, err = OpenValue(old, v, k)
			}
			if err != nil {
				return "", fmt.Errorf("seal %s: the stored value does not open: %w", field, err)
			}
			v = clear
		}
		sealed, err := k.SealBound(v, bind)
		if err != nil {
			return "", fmt.Errorf("seal %s: %w", field, err)
		}
		return sealed, nil
	}
	for i, h := range e.Headers {
		if !h.Secret {
			continue
		}
		v, err := seal(h.Value, fmt.Sprintf("headers[%d]", i))
		if err != nil {
			return err
		}
		h.Value = v
	}
	var err error
	if e.SigningSecret, err = seal(e.SigningSecret, "signing_secret"); err != nil {
		return err
	}
	if e.PreviousSigningSecret, err = seal(e.PreviousSigningSecret, "previous_signing_secret"); err != nil {
		return err
	}
	return nil
}

// OpenValue opens one of e's sealed values with e's binding (a value sealed
// before bindings opens whatever the binding).
func OpenValue(e *postbackv1.Endpoint, sealed string, k *secret.Keyring) (string, error) {
	return k.OpenBound(sealed, Binding(e))
}

// ErrSealed is returned by Open when a sealed value cannot be opened (an
// unknown key id, a tampered value, or an endpoint whose account, id or URL
// changed since its secrets were sealed).
var ErrSealed = errors.New("cannot open sealed secret")

// Open returns a copy of a stored endpoint with its secrets in clear, for
// sending only: never log it or return it from the API.
func Open(e *postbackv1.Endpoint, k *secret.Keyring) (*postbackv1.Endpoint, error) {
	out := cloneEndpoint(e)
	for i, h := range out.Headers {
		if !secret.IsSealed(h.Value) {
			continue
		}
		v, err := OpenValue(e, h.Value, k)
		if err != nil {
			return nil, fmt.Errorf("headers[%d] of endpoint %s: %w: %v", i, e.Id, ErrSealed, err)
		}
		h.Value = v
	}
	if secret.IsSealed(out.SigningSecret) {
		v, err := OpenValue(e, out.SigningSecret, k)
		if err != nil {
			return nil, fmt.Errorf("signing_secret of endpoint %s: %w: %v", e.Id, ErrSealed, err)
		}
		out.SigningSecret = v
	}
	if secret.IsSealed(out.PreviousSigningSecret) {
		v, err := OpenValue(e, out.PreviousSigningSecret, k)
		if err != nil {
			return nil, fmt.Errorf("previous_signing_secret of endpoint %s: %w: %v", e.Id, ErrSealed, err)
		}
		out.PreviousSigningSecret = v
	}
	return out, nil
}

// Masked returns a copy fit for an API response: secret header values and the
// signing secrets show at most their last 4 characters (of the clear value
// when the keyring can open it, otherwise a fixed mask).
func Masked(e *postbackv1.Endpoint, k *secret.Keyring) *postbackv1.Endpoint {
	out := cloneEndpoint(e)
	mask := func(v string) string {
		if v == "" {
			return ""
		}
		if secret.IsSealed(v) && k != nil {
			if clear, err := OpenValue(e, v, k); err == nil {
				return secret.Mask(clear)
			}
			return "••••••••"
		}
		return secret.Mask(v)
	}
	for _, h := range out.Headers {
		if h.Secret {
			h.Value = mask(h.Value)
		}
	}
	out.SigningSecret = mask(out.SigningSecret)
	out.PreviousSigningSecret = mask(out.PreviousSigningSecret)
	return out
}

func cloneEndpoint(e *postbackv1.Endpoint) *postbackv1.Endpoint {
	return proto.Clone(e).(*postbackv1.Endpoint)
}
