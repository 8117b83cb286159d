// Command postback-historian runs the history writer on its own.
package main

import (
	"context"

	"github.com/postback-dev/postback/pkg/process"
	"github.com/postback-dev/postback/services/historian"
)

var version = "dev"

func main() {
	process.Main("postback-historian", version, func(ctx context.Context, p *process.Process) error {
		layout, err := p.Config.Layout()
		if err != nil {
			return err
		}
		store, err := p.Config.History(ctx)
		if err != nil {
			return err
		}
		defer store.Close()
		return historian.Run(ctx, historian.Config{NATS: p.NATS, Layout: layout, Store: store, Logger: p.Log,
			MeterProvider: p.Telemetry.MeterProvider})
	})
}
