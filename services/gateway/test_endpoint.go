package gateway

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/postback-dev/postback/pkg/delivery"
	"github.com/postback-dev/postback/pkg/endpoint"
	"github.com/postback-dev/postback/pkg/id"
	"github.com/postback-dev/postback/pkg/render"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// TestEndpoint renders the event type's sample event for a saved endpoint
// and sends it once now, returning the attempt. It is a one-off check: it is
// not recorded as a delivery, not retried, and does not wait for the
// endpoint's limits.
func (s *Server) TestEndpoint(ctx context.Context, req *postbackv1.TestEndpointRequest) (*postbackv1.Attempt, error) {
	if s.dispatcher == nil {
		return nil, status.Error(codes.Unavailable, "this gateway has no dispatcher configured")
	}
	ep, err := s.load(ctx, "id", req.Id)
	if err != nil {
		return nil, err
	}
	opened, err := endpoint.Open(ep, s.keyring)
	if err != nil {
		return nil, status.Error(codes.FailedPrecondition, "the endpoint's secrets cannot be opened with the current keyring")
	}
	compiled, err := render.Compile(endpoint.Spec(opened))
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "the endpoint no longer renders: %v", redactSecretFault(opened, err))
	}
	r, err := compiled.RenderWithin(compiled.EventType().Sample(), s.renderLimits())
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "the sample event does not render: %v", err)
	}
	now := s.now()
	job := &delivery.Job{
		DeliveryID: id.New(id.Delivery, now), AccountID: ep.AccountId, EndpointID: ep.Id,
		EventID: "evt_test", EventType: ep.EventType, Created: now, Published: now,
		Method: r.Method, URL: r.URL, Body: r.Body, ContentType: r.ContentType,
	}
	for _, h := range r.Headers {
		job.Headers = append(job.Headers, delivery.Header{Name: h.Name, Value: h.Value})
	}
	res := s.dispatcher.Send(ctx, opened, job)
	s.log.Info("endpoint tested", "endpoint_id", ep.Id, "account_id", ep.AccountId, "outcome", res.Attempt.Outcome.String(), "status_code", res.Attempt.StatusCode)
	return res.Attempt, nil
}
