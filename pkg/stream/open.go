package stream

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Open is every service's start: a JetStream context on nc, or, when nc
// is nil, on a new connection to url named name (reconnecting forever),
// with the layout ensured. The returned func closes the connection Open
// made (nothing when nc was given).
func Open(ctx context.Context, nc *nats.Conn, url, name string, o Options) (jetstream.JetStream, func(), error) {
	done := func() {}
	if nc == nil {
		var err error
		nc, err = nats.Connect(url, ClientOptions(name, nil)...)
		if err != nil {
			return nil, nil, fmt.Errorf("connect to NATS %s: %w", RedactURLs(url), err)
		}
		done = nc.Close
	}
	js, err := New(nc)
	if err != nil {
		done()
		return nil, nil, err
	}
	if err := Ensure(ctx, js, o); err != nil {
		done()
		return nil, nil, err
	}
	return js, done, nil
}

// New is a JetStream context on nc whose asynchronous publishes fail after
// publishTimeout without an acknowledgement. jetstream's default waits
// forever: a server that dies after taking a message never answers, and a
// renderer waiting on its jobs' acknowledgements then held its events (and
// kept them in progress) until it was restarted.
func New(nc *nats.Conn) (jetstream.JetStream, error) {
	return jetstream.New(nc, jetstream.WithPublishAsyncTimeout(publishTimeout))
}
