// Package streamtest starts a real JetStream server for a test (brokertest)
// with Postback's stream layout in place.
package streamtest

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/postback-dev/postback/pkg/broker/brokertest"
	"github.com/postback-dev/postback/pkg/stream"
)

// JetStream starts a server, lays out the streams, buckets and consumers
// (twice: every service does it at start-up, so it must be idempotent) and
// returns a JetStream context on a connection to it.
func JetStream(t testing.TB) jetstream.JetStream {
	t.Helper()
	js := brokertest.JetStream(t)
	for range 2 {
		if err := stream.Ensure(context.Background(), js, stream.DefaultOptions()); err != nil {
			t.Fatal(err)
		}
	}
	return js
}

// State is the state of the stream named name (messages, sequences,
// subjects) as the server has it now.
func State(t testing.TB, js jetstream.JetStream, name string) jetstream.StreamState {
	t.Helper()
	s, err := js.Stream(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State
}

// Work is how many messages the stream named name holds apart from its
// keeper (stream.WorkMessages): the work waiting in it.
func Work(t testing.TB, js jetstream.JetStream, name string) uint64 {
	t.Helper()
	n, err := stream.WorkMessages(context.Background(), js, name)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Handed is how many messages the consumers of the stream named name have
// been handed in all (redeliveries included): the work that went through
// it, which its sequence (the keeper's messages advance it too) is not.
func Handed(t testing.TB, js jetstream.JetStream, name string) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for c := range s.ListConsumers(context.Background()).Info() {
		n += c.Delivered.Consumer
	}
	return n
}
