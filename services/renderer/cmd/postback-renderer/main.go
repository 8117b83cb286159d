// Command postback-renderer runs the renderer on its own.
package main

import (
	"context"

	"github.com/postback-dev/postback/pkg/process"
	"github.com/postback-dev/postback/services/renderer"
)

var version = "dev"

func main() {
	process.Main("postback-renderer", version, func(ctx context.Context, p *process.Process) error {
		layout, err := p.Config.Layout()
		if err != nil {
			return err
		}
		jobKey, err := p.Config.JobKeyring(false)
		if err != nil {
			return err
		}
		return renderer.Run(ctx, renderer.Config{NATS: p.NATS, Layout: layout, Logger: p.Log, JobKey: jobKey,
			TracerProvider: p.Telemetry.TracerProvider, MeterProvider: p.Telemetry.MeterProvider})
	})
}
