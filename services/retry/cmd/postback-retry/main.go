// Command postback-retry runs the retry service on its own.
package main

import (
	"context"

	"github.com/postback-dev/postback/pkg/process"
	"github.com/postback-dev/postback/services/retry"
)

var version = "dev"

func main() {
	process.Main("postback-retry", version, func(ctx context.Context, p *process.Process) error {
		layout, err := p.Config.Layout()
		if err != nil {
			return err
		}
		sched, err := p.Config.Schedule()
		if err != nil {
			return err
		}
		return retry.Run(ctx, retry.Config{NATS: p.NATS, Layout: layout, Schedule: sched, Logger: p.Log,
			TracerProvider: p.Telemetry.TracerProvider, MeterProvider: p.Telemetry.MeterProvider})
	})
}
