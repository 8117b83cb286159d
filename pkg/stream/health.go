package stream

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Streams are the names of every stream of the layout.
var Streams = []string{EventsStream, DeliveriesStream, SchedulesStream, AttemptsStream}

// Present reports whether every stream and KV bucket of the layout exists: a
// readiness check (a deleted stream comes back only when a service runs
// Ensure again, at its next start).
func Present(ctx context.Context, js jetstream.JetStream) error {
	for _, name := range Streams {
		if _, err := js.Stream(ctx, name); err != nil {
			return fmt.Errorf("stream %s: %w", name, err)
		}
	}
	for _, name := range []string{EndpointsBucket, DeliveriesBucket} {
		if _, err := js.KeyValue(ctx, name); err != nil {
			return fmt.Errorf("bucket %s: %w", name, err)
		}
	}
	return nil
}
