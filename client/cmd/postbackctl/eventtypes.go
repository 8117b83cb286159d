package main

import (
	"context"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/postback-dev/postback/client"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

func (a *app) eventTypesCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "event-types",
		Aliases: []string{"event-type", "types"},
		Short:   "The event types and their data points",
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the event types",
		Args:  noArgs,
		RunE: a.runE(func(cmd *cobra.Command, _ []string) error {
			res, err := a.listEventTypes()
			if err != nil {
				return err
			}
			return a.emit(res, func(w io.Writer) {
				row(w, "NAME", "DATA POINTS", "DESCRIPTION")
				for _, t := range res.EventTypes {
					row(w, t.Name, len(t.DataPoints), t.Description)
				}
			})
		}),
	}
	get := &cobra.Command{
		Use:               "get NAME",
		Short:             "Show one event type and its data points",
		Args:              exactArgs(1, "NAME"),
		ValidArgsFunction: a.completeEventTypes,
		RunE: a.runE(func(cmd *cobra.Command, args []string) error {
			res, err := a.listEventTypes()
			if err != nil {
				return err
			}
			for _, t := range res.EventTypes {
				if t.Name == args[0] {
					return a.emit(t, func(w io.Writer) {
						field(w, "Name", t.Name)
						field(w, "Description", t.Description)
						row(w)
						row(w, "DATA POINT", "TYPE", "ITEM", "DESCRIPTION")
						for _, dp := range t.DataPoints {
							row(w, dp.Name, enumName(dp.Type, "DATA_POINT_TYPE_"), dp.Item, dp.Description)
						}
					})
				}
			}
			return &exitErr{code: exitNotFound, err: errorf("event type %q not found (see postbackctl event-types list)", args[0])}
		}),
	}
	cmd.AddCommand(list, get)
	return group(cmd)
}

func (a *app) listEventTypes() (*postbackv1.ListEventTypesResponse, error) {
	return unary(a, func(ctx context.Context, c *client.Client) (*postbackv1.ListEventTypesResponse, error) {
		return c.EventTypes().ListEventTypes(ctx, &postbackv1.ListEventTypesRequest{})
	})
}

// completeEventTypes completes event type names from the server (nothing
// when it cannot be reached within a second).
func (a *app) completeEventTypes(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
	if err := a.resolve(cmd); err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	c, err := a.connect()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx, cancel := context.WithTimeout(a.ctx, time.Second)
	defer cancel()
	res, err := c.EventTypes().ListEventTypes(ctx, &postbackv1.ListEventTypesRequest{})
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var names []string
	for _, t := range res.EventTypes {
		names = append(names, t.Name+"\t"+t.Description)
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}
