package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/postback-dev/postback/client"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// statusNames are the delivery statuses as flags take them.
var statusNames = []string{"pending", "in_flight", "retrying", "succeeded", "failed", "dead", "cancelled"}

// parseStatus parses a delivery status: "dead", "DEAD", "in-flight",
// "DELIVERY_STATUS_DEAD".
func parseStatus(flag, s string) (postbackv1.DeliveryStatus, error) {
	u := strings.ReplaceAll(strings.ToUpper(strings.TrimSpace(s)), "-", "_")
	u = "DELIVERY_STATUS_" + strings.TrimPrefix(u, "DELIVERY_STATUS_")
	if v, ok := postbackv1.DeliveryStatus_value[u]; ok && v != 0 {
		return postbackv1.DeliveryStatus(v), nil
	}
	return 0, usageErrorf("--%s %q: want one of %s", flag, s, strings.Join(statusNames, ", "))
}

func (a *app) deliveriesCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "deliveries",
		Aliases: []string{"delivery", "dlv"},
		Short:   "What happened to each postback; send again",
	}
	cmd.AddCommand(a.deliveriesList(), a.deliveriesGet(), a.deliveriesAttempts(), a.deliveriesRetry(), a.deliveriesReplay())
	return group(cmd)
}

func (a *app) deliveriesList() *cobra.Command {
	var account, endpoint, event, status, since, until, pageToken string
	var pageSize int32
	var all bool
	cmd := &cobra.Command{
		Use:   "list [filters]",
		Short: "List deliveries, newest first",
		Long: `List deliveries, newest first, from the history store (a change shows
within a fraction of a second). Times take RFC 3339 (2026-01-02T15:04:05Z),
a date (2026-01-02, UTC) or a duration ago (90m, 2h, 7d).`,
		Args: noArgs,
		RunE: a.runE(func(cmd *cobra.Command, _ []string) error {
			req := &postbackv1.ListDeliveriesRequest{AccountId: account, EndpointId: endpoint, EventId: event,
				PageSize: pageSize, PageToken: pageToken}
			if pageSize < 0 {
				return usageErrorf("--page-size: want 0 (the server's default) to 500, got %d", pageSize)
			}
			var err error
			if status != "" {
				if req.Status, err = parseStatus("status", status); err != nil {
					return err
				}
			}
			now := time.Now()
			if since != "" {
				if req.StartTime, err = parseTime("since", since, now); err != nil {
					return err
				}
			}
			if until != "" {
				if req.EndTime, err = parseTime("until", until, now); err != nil {
					return err
				}
			}
			out := &postbackv1.ListDeliveriesResponse{}
			if err := a.pages(all, req.PageToken, func(ctx context.Context, c *client.Client, token string) (string, error) {
				req.PageToken = token
				res, err := c.Deliveries().ListDeliveries(ctx, req)
				if err != nil {
					return "", err
				}
				out.Deliveries = append(out.Deliveries, res.Deliveries...)
				out.NextPageToken = res.NextPageToken
				return res.NextPageToken, nil
			}); err != nil {
				return err
			}
			return a.emit(out, func(w io.Writer) {
				row(w, "ID", "STATUS", "ATTEMPTS", "LAST CODE", "ENDPOINT", "EVENT", "CREATED", "REASON")
				for _, d := range out.Deliveries {
					code := "-"
					if d.LastStatusCode != 0 {
						code = fmt.Sprint(d.LastStatusCode)
					}
					row(w, d.Id, enumName(d.Status, "DELIVERY_STATUS_"), d.AttemptCount, code, d.EndpointId, d.EventId,
						ts(d.CreateTime), truncate(firstOf(d.Reason, d.LastError), 60))
				}
				a.morePages(out.NextPageToken)
			})
		}),
	}
	fs := cmd.Flags()
	fs.StringVar(&account, "account", "", "only this account's deliveries")
	fs.StringVar(&endpoint, "endpoint", "", "only this endpoint's (ep_…)")
	fs.StringVar(&event, "event", "", "only this event's")
	fs.StringVar(&status, "status", "", "only this status: "+strings.Join(statusNames, ", "))
	fs.StringVar(&since, "since", "", "created at or after this time")
	fs.StringVar(&until, "until", "", "created before this time")
	fs.Int32Var(&pageSize, "page-size", 0, "deliveries a page (0: the server's default, 50; at most 500)")
	fs.StringVar(&pageToken, "page-token", "", "the next_page_token of a previous page")
	fs.BoolVar(&all, "all", false, "follow next_page_token to the last page")
	_ = cmd.RegisterFlagCompletionFunc("status", cobra.FixedCompletions(statusNames, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func firstOf(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

func (a *app) deliveriesGet() *cobra.Command {
	return &cobra.Command{
		Use:   "get ID",
		Short: "Show a delivery",
		Args:  exactArgs(1, "a delivery ID"),
		RunE: a.runE(func(cmd *cobra.Command, args []string) error {
			d, err := unary(a, func(ctx context.Context, c *client.Client) (*postbackv1.Delivery, error) {
				return c.Deliveries().GetDelivery(ctx, &postbackv1.GetDeliveryRequest{Id: args[0]})
			})
			if err != nil {
				return err
			}
			return a.emitDelivery(d)
		}),
	}
}

func (a *app) emitDelivery(d *postbackv1.Delivery) error {
	return a.emit(d, func(w io.Writer) {
		field(w, "ID", d.Id)
		field(w, "Account", d.AccountId)
		field(w, "Endpoint", d.EndpointId)
		field(w, "Event", d.EventId)
		field(w, "Event type", d.EventType)
		field(w, "Status", enumName(d.Status, "DELIVERY_STATUS_"))
		field(w, "Attempts", d.AttemptCount)
		field(w, "Next attempt", ts(d.NextAttemptTime))
		field(w, "Last status code", d.LastStatusCode)
		field(w, "Last error", d.LastError)
		field(w, "Reason", d.Reason)
		field(w, "Created", ts(d.CreateTime))
		field(w, "Updated", ts(d.UpdateTime))
	})
}

func (a *app) deliveriesAttempts() *cobra.Command {
	return &cobra.Command{
		Use:   "attempts ID",
		Short: "List every attempt of a delivery, oldest first",
		Args:  exactArgs(1, "a delivery ID"),
		RunE: a.runE(func(cmd *cobra.Command, args []string) error {
			res, err := unary(a, func(ctx context.Context, c *client.Client) (*postbackv1.ListAttemptsResponse, error) {
				return c.Deliveries().ListAttempts(ctx, &postbackv1.ListAttemptsRequest{DeliveryId: args[0]})
			})
			if err != nil {
				return err
			}
			return a.emit(res, func(w io.Writer) {
				row(w, "NUMBER", "START", "DURATION", "STATUS CODE", "OUTCOME", "RETRYABLE", "ERROR")
				for _, at := range res.Attempts {
					code := "-"
					if at.StatusCode != 0 {
						code = fmt.Sprint(at.StatusCode)
					}
					row(w, at.Number, ts(at.StartTime), dur(at.Duration), code, enumName(at.Outcome, "ATTEMPT_OUTCOME_"),
						at.Retryable, truncate(at.Error, 60))
				}
			})
		}),
	}
}

func (a *app) deliveriesRetry() *cobra.Command {
	return &cobra.Command{
		Use:   "retry ID",
		Short: "Send a delivery again now (any state but in flight or queued for its first send)",
		Args:  exactArgs(1, "a delivery ID"),
		RunE: a.runE(func(cmd *cobra.Command, args []string) error {
			d, err := unary(a, func(ctx context.Context, c *client.Client) (*postbackv1.Delivery, error) {
				return c.Deliveries().RetryDelivery(ctx, &postbackv1.RetryDeliveryRequest{Id: args[0]})
			})
			if err != nil {
				return err
			}
			return a.emitDelivery(d)
		}),
	}
}

func (a *app) deliveriesReplay() *cobra.Command {
	var endpoint, since, until string
	var statuses []string
	cmd := &cobra.Command{
		Use:   "replay --endpoint ID [--since T] [--until T] [--status dead,failed]",
		Short: "Re-queue an endpoint's DEAD (or the named statuses') deliveries",
		Args:  noArgs,
		RunE: a.runE(func(cmd *cobra.Command, _ []string) error {
			if strings.TrimSpace(endpoint) == "" {
				return usageErrorf("--endpoint is required (the endpoint whose deliveries to replay)")
			}
			req := &postbackv1.ReplayDeliveriesRequest{EndpointId: endpoint}
			for _, s := range statuses {
				st, err := parseStatus("status", s)
				if err != nil {
					return err
				}
				req.Statuses = append(req.Statuses, st)
			}
			now := time.Now()
			var err error
			if since != "" {
				if req.StartTime, err = parseTime("since", since, now); err != nil {
					return err
				}
			}
			if until != "" {
				if req.EndTime, err = parseTime("until", until, now); err != nil {
					return err
				}
			}
			res, err := unary(a, func(ctx context.Context, c *client.Client) (*postbackv1.ReplayDeliveriesResponse, error) {
				return c.Deliveries().ReplayDeliveries(ctx, req)
			})
			if err != nil {
				return err
			}
			return a.emit(res, func(w io.Writer) { fmt.Fprintf(w, "re-queued %d deliveries\n", res.Count) })
		}),
	}
	fs := cmd.Flags()
	fs.StringVar(&endpoint, "endpoint", "", "the endpoint whose deliveries to replay (required)")
	fs.StringSliceVar(&statuses, "status", nil, "statuses to replay (dead, failed, cancelled, succeeded; repeatable or comma-separated; default dead)")
	fs.StringVar(&since, "since", "", "created at or after this time")
	fs.StringVar(&until, "until", "", "created before this time")
	_ = cmd.RegisterFlagCompletionFunc("status", cobra.FixedCompletions([]string{"dead", "failed", "cancelled", "succeeded"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}
