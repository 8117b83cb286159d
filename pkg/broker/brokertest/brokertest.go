// Package brokertest starts the embedded NATS server for a test: a real
// JetStream server on a free loopback port, storing in the test's temp
// dir, stopped when the test ends.
package brokertest

import (
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/postback-dev/postback/pkg/broker"
)

// JetStream starts a server and returns a JetStream context on a
// connection to it.
func JetStream(t testing.TB) jetstream.JetStream {
	t.Helper()
	srv, err := broker.Start(broker.Options{Port: -1, DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return Connect(t, srv.ClientURL())
}

// Connect returns a JetStream context on a connection to the server at url
// (named after the test), closed when the test ends.
func Connect(t testing.TB, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url, nats.Name(t.Name()))
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
