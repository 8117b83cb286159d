// Command postback-sender runs the sender on its own; several replicas share
// the endpoints' limits through Redis (POSTBACK_REDIS_URL).
package main

import (
	"context"

	"github.com/postback-dev/postback/pkg/dispatch"
	"github.com/postback-dev/postback/pkg/process"
	"github.com/postback-dev/postback/services/sender"
)

var version = "dev"

func main() {
	process.Main("postback-sender", version, func(ctx context.Context, p *process.Process) error {
		layout, err := p.Config.Layout()
		if err != nil {
			return err
		}
		keyring, err := p.Config.Keyring(false)
		if err != nil {
			return err
		}
		jobKey, err := p.Config.JobKeyring(false)
		if err != nil {
			return err
		}
		allow, err := p.Config.Allow()
		if err != nil {
			return err
		}
		lim, closeLimiter, err := p.Config.Limiter(true) // a sender may always have run before
		if err != nil {
			return err
		}
		defer closeLimiter()
		p.Probes.Add("limiter", lim.Ready)
		sched, err := p.Config.Schedule()
		if err != nil {
			return err
		}
		tp := p.Telemetry.TracerProvider
		return sender.Run(ctx, sender.Config{NATS: p.NATS, Layout: layout, Limiter: lim,
			Dispatcher: dispatch.New(dispatch.Options{Allow: allow, Version: version, TracerProvider: tp}),
			Keyring:    keyring, JobKey: jobKey, Workers: p.Config.SenderWorkers, InFlightPerEndpoint: p.Config.InFlightPerEndpoint,
			MaxRetryAfter: sender.LongestStep(sched), // a Retry-After holds an endpoint back no longer than the schedule waits
			Logger:        p.Log, TracerProvider: tp, MeterProvider: p.Telemetry.MeterProvider})
	})
}
