package gateway

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/postback-dev/postback/pkg/endpoint"
	"github.com/postback-dev/postback/pkg/endpoints"
	"github.com/postback-dev/postback/pkg/event"
	"github.com/postback-dev/postback/pkg/id"
	"github.com/postback-dev/postback/pkg/render"
	"github.com/postback-dev/postback/pkg/secret"
	"github.com/postback-dev/postback/pkg/signature"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// Page sizes of list calls.
const (
	DefaultPageSize = 50
	MaxPageSize     = 500
)

// validationViolation records a validation error in bad, naming the field
// (and, for templates, the line and column); an error of another kind is
// Internal.
func validationViolation(bad *badRequest, prefix string, err error) error {
	var fe *endpoint.FieldError
	var re *render.FieldError
	switch {
	case errors.As(err, &fe):
		bad.add(prefix+fe.Field, fe.Message)
	case errors.As(err, &re):
		bad.add(prefix+re.Field, strings.TrimPrefix(re.Error(), re.Field+": "))
	default:
		return status.Errorf(codes.Internal, "validate endpoint: %v", err)
	}
	return nil
}

// validateForSave checks an endpoint about to be stored: its secrets are
// opened (values kept from the stored endpoint on update are sealed), then
// the size limits, the signing secret, endpoint.Validate and the worst case
// of its templates (checkWorstCase) apply to the clear values. No error
// quotes a secret value.
func (s *Server) validateForSave(e *postbackv1.Endpoint) error {
	opened, err := endpoint.Open(e, s.keyring)
	if err != nil {
		return status.Errorf(codes.FailedPrecondition, "endpoint secrets cannot be opened with the current keyring")
	}
	if err := s.limits.checkEndpoint("endpoint.", opened); err != nil {
		return err
	}
	// endpoint.Validate stops at its first fault; the signing secret is
	// checked apart, and both are told.
	bad := &badRequest{}
	if compiled, err := endpoint.Validate(opened); err != nil {
		if err := validationViolation(bad, "endpoint.", redactSecretFault(opened, err)); err != nil {
			return err
		}
	} else {
		s.checkWorstCase(bad, "endpoint.", compiled)
	}
	refuseReservedHeaders(bad, opened.Headers) // every one (Validate tells the first)
	if opened.SigningSecret != "" {
		if _, err := signature.NewSigner(opened.SigningSecret); err != nil {
			// signature's errors never carry the secret.
			bad.addf("endpoint.signing_secret", "%v (want %s followed by the base64 of 24 to 64 random bytes)",
				strings.TrimPrefix(err.Error(), "signature: "), signature.SecretPrefix)
		}
	}
	return bad.err()
}

// redactSecretFault keeps a template fault in a secret header's value from
// quoting the value: only its position is told.
func redactSecretFault(e *postbackv1.Endpoint, err error) error {
	var re *render.FieldError
	if !errors.As(err, &re) {
		return err
	}
	for i, h := range e.Headers {
		if h.Secret && re.Field == fmt.Sprintf("headers[%d].value", i) {
			return &render.FieldError{Field: re.Field, Line: re.Line, Column: re.Column,
				Message: `a secret header value is a template too and this one does not parse (write a literal "{" before a letter as "\{"); the value is not shown`}
		}
	}
	return err
}

// refuseSealed refuses a secret given in the sealed form: only the gateway
// seals, and a sealed value copied from elsewhere would be opened and sent
// to this endpoint.
func refuseSealed(headers []*postbackv1.Header, signingSecret string) error {
	const sealed = "a value in the sealed form (enc:v1:…) is reserved; send the secret in clear"
	bad := &badRequest{}
	for i, h := range headers {
		if secret.IsSealed(h.GetValue()) {
			bad.add(fmt.Sprintf("endpoint.headers[%d].value", i), sealed)
		}
	}
	if secret.IsSealed(signingSecret) {
		bad.add("endpoint.signing_secret", sealed)
	}
	return bad.err()
}

// CreateEndpoint validates and stores a new endpoint.
func (s *Server) CreateEndpoint(ctx context.Context, req *postbackv1.CreateEndpointRequest) (*postbackv1.Endpoint, error) {
	if req.Endpoint == nil {
		return nil, invalid("endpoint", "required")
	}
	if !visible(ctx, req.Endpoint.AccountId) {
		return nil, errOtherAccount
	}
	if err := refuseSealed(req.Endpoint.Headers, req.Endpoint.SigningSecret); err != nil {
		return nil, err
	}
	e := proto.Clone(req.Endpoint).(*postbackv1.Endpoint)
	clearPreviousSecret(e) // output only: only a rotation sets it
	clearOutputOnly(e)
	ad := &badRequest{}
	checkAutoDisable(ad, "endpoint.auto_disable.", e.AutoDisable)
	if err := ad.err(); err != nil {
		return nil, err
	}
	if err := s.validateForSave(e); err != nil {
		return nil, err
	}
	now := s.now()
	e.Id = id.New(id.Endpoint, now)
	e.CreateTime = timestamppb.New(now)
	e.UpdateTime = e.CreateTime
	if e.Enabled == nil {
		e.Enabled = proto.Bool(true)
	}
	if err := endpoint.Seal(e, nil, s.keyring); err != nil {
		return nil, status.Errorf(codes.Internal, "seal secrets: %v", err)
	}
	if err := s.endpoints.Put(ctx, e); err != nil {
		return nil, status.Errorf(codes.Unavailable, "%v", err)
	}
	s.log.Info("endpoint created", "endpoint_id", e.Id, "account_id", e.AccountId, "event_type", e.EventType, "caller", caller(ctx))
	return s.withHealth(ctx, endpoint.Masked(e, s.keyring)), nil
}

// load reads an endpoint the caller may see or answers NotFound: another
// account's endpoint is answered exactly as one that does not exist.
func (s *Server) load(ctx context.Context, field, epID string) (*postbackv1.Endpoint, error) {
	if !id.Valid(id.Endpoint, epID) {
		return nil, invalid(field, "want an endpoint id (ep_…), got %q", epID)
	}
	e, err := s.endpoints.Get(ctx, epID)
	if errors.Is(err, endpoints.ErrNotFound) || (err == nil && !visible(ctx, e.AccountId)) {
		return nil, status.Errorf(codes.NotFound, "endpoint %s not found", epID)
	}
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "%v", err)
	}
	return e, nil
}

// GetEndpoint returns one endpoint, secrets masked.
func (s *Server) GetEndpoint(ctx context.Context, req *postbackv1.GetEndpointRequest) (*postbackv1.Endpoint, error) {
	e, err := s.load(ctx, "id", req.Id)
	if err != nil {
		return nil, err
	}
	return s.withHealth(ctx, endpoint.Masked(e, s.keyring)), nil
}

// ListEndpoints returns a page of endpoints ordered by id.
func (s *Server) ListEndpoints(ctx context.Context, req *postbackv1.ListEndpointsRequest) (*postbackv1.ListEndpointsResponse, error) {
	bad := &badRequest{}
	if req.AccountId != "" && !id.ValidAccount(req.AccountId) {
		bad.addf("account_id", "want 1-64 characters of A-Z a-z 0-9 _ -, got %q", req.AccountId)
	}
	if req.EventType != "" {
		if _, ok := event.Lookup(req.EventType); !ok {
			bad.addf("event_type", "unknown event type %q", req.EventType)
		}
	}
	size, err := pageSize(req.PageSize)
	bad.addErr(err)
	if err := bad.err(); err != nil {
		return nil, err
	}
	account, err := listScope(ctx, req.AccountId)
	if err != nil {
		return nil, err
	}
	all, err := s.endpoints.List(ctx, account, req.EventType)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "%v", err)
	}
	start := sort.Search(len(all), func(i int) bool { return all[i].Id > req.PageToken })
	out := &postbackv1.ListEndpointsResponse{}
	for _, e := range all[start:] {
		if len(out.Endpoints) == size {
			out.NextPageToken = out.Endpoints[size-1].Id
			break
		}
		out.Endpoints = append(out.Endpoints, endpoint.Masked(e, s.keyring))
	}
	s.withHealthAll(ctx, out.Endpoints)
	return out, nil
}

func pageSize(n int32) (int, error) {
	switch {
	case n < 0:
		return 0, invalid("page_size", "must be 0 or more, got %d", n)
	case n == 0:
		return DefaultPageSize, nil
	case n > MaxPageSize:
		return MaxPageSize, nil
	}
	return int(n), nil
}

// updatable are the fields an update mask may name.
var updatable = map[string]bool{
	"event_type": true, "url": true, "method": true, "headers": true, "body_format": true,
	"body_template": true, "min_delay_seconds": true, "max_requests_per_second": true,
	"success_response": true, "error_response": true, "timeout": true, "enabled": true,
	"signing_secret": true, "max_in_flight": true, "previous_signing_secret_expire_time": true,
	"adaptive_pacing_disabled": true,
	"auto_disable":             true,
}

// UpdateEndpoint changes the fields named in update_mask (all writable fields
// when empty). Secret header values sent back masked keep their stored value.
func (s *Server) UpdateEndpoint(ctx context.Context, req *postbackv1.UpdateEndpointRequest) (*postbackv1.Endpoint, error) {
	if req.Endpoint == nil {
		return nil, invalid("endpoint", "required")
	}
	old, err := s.load(ctx, "endpoint.id", req.Endpoint.Id)
	if err != nil {
		return nil, err
	}
	bad := &badRequest{}
	if req.Endpoint.AccountId != "" && req.Endpoint.AccountId != old.AccountId {
		bad.add("endpoint.account_id", "cannot change")
	}
	bad.addErr(refuseSealed(req.Endpoint.Headers, req.Endpoint.SigningSecret))
	checkReason(bad, req.Reason)
	paths := req.GetUpdateMask().GetPaths()
	for i, p := range paths {
		if !updatable[p] {
			bad.addf(fmt.Sprintf("update_mask.paths[%d]", i), "unknown or read-only field %q", p)
		}
	}
	if err := bad.err(); err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		for p := range updatable {
			paths = append(paths, p)
		}
	}
	e := proto.Clone(old).(*postbackv1.Endpoint)
	in := req.Endpoint
	for _, p := range paths {
		switch p {
		case "event_type":
			e.EventType = in.EventType
		case "url":
			e.Url = in.Url
		case "method":
			e.Method = in.Method
		case "headers":
			e.Headers = keepMaskedSecrets(in.Headers, old, s.keyring)
		case "body_format":
			e.BodyFormat = in.BodyFormat
		case "body_template":
			e.BodyTemplate = in.BodyTemplate
		case "min_delay_seconds":
			e.MinDelaySeconds = in.MinDelaySeconds
		case "max_requests_per_second":
			e.MaxRequestsPerSecond = in.MaxRequestsPerSecond
		case "success_response":
			e.SuccessResponse = in.SuccessResponse
		case "error_response":
			e.ErrorResponse = in.ErrorResponse
		case "timeout":
			e.Timeout = in.Timeout
		case "max_in_flight":
			e.MaxInFlight = in.MaxInFlight
		case "auto_disable":
			e.AutoDisable = in.AutoDisable
			checkAutoDisable(bad, "endpoint.auto_disable.", in.AutoDisable)
		case "adaptive_pacing_disabled":
			e.AdaptivePacingDisabled = in.AdaptivePacingDisabled
		case "enabled":
			e.Enabled = in.Enabled
			if e.Enabled == nil {
				e.Enabled = proto.Bool(true)
			}
		case "signing_secret":
			if in.SigningSecret != endpoint.Masked(old, s.keyring).SigningSecret {
				e.SigningSecret = in.SigningSecret
			}
		}
	}
	if err := bad.err(); err != nil {
		return nil, err
	}
	s.recordEnabled(ctx, old, e, req.Reason)
	if err := s.rotateSigningSecret(e, old, in, paths, s.now()); err != nil {
		return nil, err
	}
	// Sealed first: values kept from the stored endpoint are bound to it
	// (its URL may be changing), and are sealed again for e.
	if err := endpoint.Seal(e, old, s.keyring); err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "endpoint secrets cannot be opened with the current keyring")
	}
	if err := s.validateForSave(e); err != nil {
		return nil, err
	}
	e.UpdateTime = timestamppb.New(s.now())
	if err := s.endpoints.Put(ctx, e); err != nil {
		return nil, status.Errorf(codes.Unavailable, "%v", err)
	}
	if endpoints.Key(e) != endpoints.Key(old) {
		if err := s.endpoints.Delete(ctx, endpoints.Key(old)); err != nil {
			return nil, status.Errorf(codes.Unavailable, "%v", err)
		}
	}
	if endpoint.Enabled(old) && !endpoint.Enabled(e) {
		if n, err := s.cancelPending(ctx, e, endpoint.ReasonDisabled); err != nil {
			return nil, status.Errorf(codes.Unavailable, "endpoint disabled, but cancelling its pending deliveries failed after %d: %v", n, err)
		}
	}
	if !endpoint.Enabled(old) && endpoint.Enabled(e) {
		if err := s.finishEnable(ctx, old, e); err != nil {
			return nil, err
		}
	}
	s.log.Info("endpoint updated", "endpoint_id", e.Id, "account_id", e.AccountId, "fields", strings.Join(paths, ","), "caller", caller(ctx))
	return s.withHealth(ctx, endpoint.Masked(e, s.keyring)), nil
}

// keepMaskedSecrets keeps the stored (sealed) value of a secret header whose
// new value is exactly its masked form, so a client can send back what Get
// returned without re-entering the secret.
func keepMaskedSecrets(in []*postbackv1.Header, oldEp *postbackv1.Endpoint, k *secret.Keyring) []*postbackv1.Header {
	old := oldEp.GetHeaders()
	out := make([]*postbackv1.Header, 0, len(in))
	for _, h := range in {
		h = proto.Clone(h).(*postbackv1.Header)
		if h.Secret {
			for _, o := range old {
				if o.Secret && strings.EqualFold(o.Name, h.Name) {
					if clear, err := endpoint.OpenValue(oldEp, o.Value, k); err == nil && secret.Mask(clear) == h.Value {
						h.Value = o.Value
					}
				}
			}
		}
		out = append(out, h)
	}
	return out
}

// DeleteEndpoint removes an endpoint and cancels its pending deliveries.
func (s *Server) DeleteEndpoint(ctx context.Context, req *postbackv1.DeleteEndpointRequest) (*emptypb.Empty, error) {
	e, err := s.load(ctx, "id", req.Id)
	if err != nil {
		return nil, err
	}
	if err := s.endpoints.Delete(ctx, endpoints.Key(e)); err != nil {
		return nil, status.Errorf(codes.Unavailable, "%v", err)
	}
	if n, err := s.cancelPending(ctx, e, endpoint.ReasonDeleted); err != nil {
		return nil, status.Errorf(codes.Unavailable, "endpoint deleted, but cancelling its pending deliveries failed after %d: %v", n, err)
	}
	hctx, cancel := context.WithTimeout(ctx, healthReadTimeout)
	defer cancel()
	if err := s.health.Delete(hctx, e.Id); err != nil {
		s.log.Warn("endpoint health not dropped", "endpoint_id", e.Id, "error", err)
	}
	s.log.Info("endpoint deleted", "endpoint_id", e.Id, "account_id", e.AccountId, "caller", caller(ctx))
	return &emptypb.Empty{}, nil
}

// PreviewEndpoint renders the request for given or sample data; sends nothing.
// It checks the endpoint as a save does (the worst case of its templates
// included), and renders within the limits of a rendered request: data that
// passes one is ResourceExhausted naming the field, the render stopped there.
func (s *Server) PreviewEndpoint(ctx context.Context, req *postbackv1.PreviewEndpointRequest) (*postbackv1.PreviewEndpointResponse, error) {
	if req.Endpoint == nil {
		return nil, invalid("endpoint", "required")
	}
	e := req.Endpoint
	if e.AccountId != "" && !visible(ctx, e.AccountId) {
		return nil, errOtherAccount
	}
	if e.AccountId == "" {
		e = proto.Clone(e).(*postbackv1.Endpoint)
		e.AccountId = "preview"
	}
	if err := s.limits.checkEndpoint("endpoint.", e); err != nil {
		return nil, err
	}
	compiled, err := endpoint.Validate(e)
	if err != nil {
		bad := &badRequest{}
		if err := validationViolation(bad, "endpoint.", redactSecretFault(e, err)); err != nil {
			return nil, err
		}
		return nil, bad
	}
	bad := &badRequest{}
	if s.checkWorstCase(bad, "endpoint.", compiled); !bad.empty() {
		return nil, bad
	}
	typ := compiled.EventType()
	data := typ.Sample()
	if req.Data != nil && len(req.Data.Fields) > 0 {
		// The same checks and limits as Publish.
		p, err := s.prepare("", &postbackv1.PublishRequest{AccountId: e.AccountId, EventType: typ.Name, Data: req.Data})
		if err != nil {
			return nil, err
		}
		data = p.event.Data
	}
	r, err := compiled.RenderWithin(data, s.renderLimits())
	if err != nil {
		return nil, renderError("endpoint.", err)
	}
	out := &postbackv1.PreviewEndpointResponse{Method: r.Method, Url: r.URL, Body: string(r.Body)}
	for _, h := range r.Headers {
		v := h.Value
		if h.Secret {
			v = secret.Mask(v)
		}
		out.Headers = append(out.Headers, &postbackv1.Header{Name: h.Name, Value: v, Secret: h.Secret})
	}
	if r.ContentType != "" {
		out.Headers = append(out.Headers, &postbackv1.Header{Name: "Content-Type", Value: r.ContentType})
	}
	return out, nil
}
