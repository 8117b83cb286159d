// Package brokertest starts the embedded NATS server for a test: a real
// JetStream server on a free loopback port, storing in the test's temp
// dir, stopped when the test ends.
package brokertest

import (
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/postback-dev/postback/pkg/broker"
)

// JetStream starts a server and returns a JetStream context on a
// connection to it (named after the test).
func JetStream(t testing.TB) jetstream.JetStream {
	t.Helper()
	srv, err := broker.Start(broker.Options{Port: -1, DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	nc, err := srv.Connect(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}
