package client

import (
	"context"

	"google.golang.org/protobuf/proto"

	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// EachDelivery calls fn with every delivery ListDeliveries answers for req
// (its filters; newest first), page after page, until the last page, an
// error of fn (returned as is) or of a call. req is not changed; its
// page_token, when set, is where the listing starts. A page call answered
// Unavailable or ResourceExhausted is retried as Publish is.
func (c *Client) EachDelivery(ctx context.Context, req *postbackv1.ListDeliveriesRequest, fn func(*postbackv1.Delivery) error) error {
	req = cloneOr(req, &postbackv1.ListDeliveriesRequest{})
	for {
		var resp *postbackv1.ListDeliveriesResponse
		err := c.retry.do(ctx, func(ctx context.Context) error {
			var err error
			resp, err = c.deliveries.ListDeliveries(ctx, req)
			return err
		})
		if err != nil {
			return err
		}
		for _, d := range resp.Deliveries {
			if err := fn(d); err != nil {
				return err
			}
		}
		if resp.NextPageToken == "" || resp.NextPageToken == req.PageToken {
			return nil
		}
		req.PageToken = resp.NextPageToken
	}
}

// EachEndpoint calls fn with every endpoint ListEndpoints answers for req,
// page after page, as EachDelivery does.
func (c *Client) EachEndpoint(ctx context.Context, req *postbackv1.ListEndpointsRequest, fn func(*postbackv1.Endpoint) error) error {
	req = cloneOr(req, &postbackv1.ListEndpointsRequest{})
	for {
		var resp *postbackv1.ListEndpointsResponse
		err := c.retry.do(ctx, func(ctx context.Context) error {
			var err error
			resp, err = c.endpoints.ListEndpoints(ctx, req)
			return err
		})
		if err != nil {
			return err
		}
		for _, e := range resp.Endpoints {
			if err := fn(e); err != nil {
				return err
			}
		}
		if resp.NextPageToken == "" || resp.NextPageToken == req.PageToken {
			return nil
		}
		req.PageToken = resp.NextPageToken
	}
}

// cloneOr is a copy of req, or empty when req is nil.
func cloneOr[T proto.Message](req, empty T) T {
	if !req.ProtoReflect().IsValid() {
		return empty
	}
	return proto.Clone(req).(T)
}
