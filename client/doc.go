// Package client is the Go client of Postback's gRPC API (package
// postback.v1, docs/api.md).
//
// New returns a Client; its Events, Endpoints, Deliveries and EventTypes
// methods are the typed gRPC stubs, and EachDelivery and EachEndpoint walk
// every page of a listing. Events are published with:
//
//   - Client.Publish: one event per call, retried on Unavailable and on
//     ResourceExhausted back-pressure with exponential backoff and jitter
//     (WithRetry; default 10 attempts, 100ms doubling to 5s, each delay
//     drawn from [d/2, d]), bounded by the context;
//   - Client.NewPublisher: a batching Publisher (PublishBatch), which cuts a
//     batch at MaxBatch events (default 100, at most 1000, the gateway's
//     limit) or Linger after its first event (default 10ms), retries as
//     Publish does, per event, and sends what is pending on Flush and Close.
//     Its Publish returns at once a Result to wait on.
//
// # Idempotency
//
// Both set a random idempotency key (PublishRequest.idempotency_key) on
// every request that has none, once, before the first attempt, and keep it
// on every retry. The gateway answers a repeated key (per account, within
// an hour, across restarts) with duplicate = true and the first event's
// id, so a retry whose earlier attempt was in fact stored never makes a
// second event. A caller that sets its own keys (say, from its database
// row) gets the same guarantee across its own restarts. The gateway stores
// an event and its key's marker in one atomic write, so this holds across
// a kill -9 of the gateway or the broker too.
//
// # Transport and authentication
//
// WithTLS and WithInsecure choose the transport. Without either, a
// loopback address (localhost, 127.0.0.0/8, ::1, a unix socket) is
// plaintext and any other address is TLS with the system's roots.
// WithToken sends "authorization: Bearer <token>" on every call.
//
// # Tracing
//
// Every call carries the caller's OpenTelemetry trace context and baggage
// in its gRPC metadata (W3C traceparent, tracestate, baggage), where the
// gateway reads it: the gateway's span becomes a child of the caller's.
// The global propagator is used when one is installed
// (otel.SetTextMapPropagator), W3C trace context and baggage otherwise. A
// Publisher's batch carries the context of its first event.
//
// # Module
//
// The module is github.com/postback-dev/postback/client. In this
// repository its go.mod replaces the proto module with ../proto; replace
// directives of a dependency are ignored by the modules that import it, so
// an importer needs no replace of its own: it resolves the proto module
// (github.com/postback-dev/postback/proto) by the version required here.
package client
