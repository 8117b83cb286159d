// Package opsevents publishes and reads operational events: what an
// operator (or an account's own tooling) should know about its endpoints
// and deliveries as it happens.
//
// Types: endpoint.failing (a run of failed attempts reached
// endpointhealth.FailingAfter), endpoint.disabled (auto-disable turned the
// endpoint off), endpoint.recovered (a success ended a run that was
// failing or disabled), delivery.dead (a delivery spent its retries).
//
// Each is one message on operations.<account_id>.<type> in the OPERATIONS
// stream (pkg/stream layout): limits retention for 7 days, so a reader can
// also start from a time. The body is a postbackv1.OperationalEvent in
// protobuf binary; the header Postback-Event-Type names its type. An
// event's id is derived from what it is (the endpoint and the run's start,
// or the delivery), and is the message's Nats-Msg-Id, so a writer that
// publishes it again after a crash stores it once.
//
// Failure policy: publishing is retried by the caller (the history writer
// publishes after it has stored the change that caused the event; an
// event it fails to publish is logged and not retried forever: the state
// it reports is in the endpoint's health and the delivery history).
package opsevents

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/postback-dev/postback/pkg/stream"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// The event types.
const (
	EndpointFailing   = "endpoint.failing"
	EndpointDisabled  = "endpoint.disabled"
	EndpointRecovered = "endpoint.recovered"
	DeliveryDead      = "delivery.dead"
)

// Types are every event type, in the order an outage tells them.
var Types = []string{EndpointFailing, EndpointDisabled, EndpointRecovered, DeliveryDead}

// ValidType reports whether t is an event type.
func ValidType(t string) bool { return slices.Contains(Types, t) }

// TypeHeader names an event's type on its message.
const TypeHeader = "Postback-Event-Type"

// ID is an event's id: its type and what it is about, "<type>:<subject>"
// (the endpoint id and the run's start for an endpoint event, the
// delivery id for delivery.dead).
func ID(eventType, about string) string { return eventType + ":" + about }

// EndpointEventID is the id of an endpoint event for the run of failures
// that began at runStart.
func EndpointEventID(eventType, endpointID string, runStart time.Time) string {
	return ID(eventType, fmt.Sprintf("%s:%d", endpointID, runStart.UnixMicro()))
}

// Publish stores an event in OPERATIONS.
func Publish(ctx context.Context, js jetstream.JetStream, ev *postbackv1.OperationalEvent) error {
	b, err := proto.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode operational event %s: %w", ev.Id, err)
	}
	m := nats.NewMsg(stream.OperationsSubject(ev.AccountId, ev.Type))
	m.Data = b
	m.Header.Set(TypeHeader, ev.Type)
	m.Header.Set(jetstream.MsgIDHeader, ev.Id)
	if _, err := js.PublishMsg(ctx, m); err != nil {
		return fmt.Errorf("publish operational event %s: %w", ev.Id, err)
	}
	return nil
}

// Decode reads an event from a message body.
func Decode(b []byte) (*postbackv1.OperationalEvent, error) {
	ev := &postbackv1.OperationalEvent{}
	if err := proto.Unmarshal(b, ev); err != nil {
		return nil, fmt.Errorf("decode operational event: %w", err)
	}
	return ev, nil
}

// Filter selects events to watch.
type Filter struct {
	AccountID string    // "" = every account
	Types     []string  // empty = all
	Since     time.Time // zero: only events published from now on
}

func (f Filter) subjects() []string {
	acc := f.AccountID
	if acc == "" {
		acc = "*"
	}
	if len(f.Types) == 0 {
		return []string{"operations." + acc + ".>"}
	}
	out := make([]string, 0, len(f.Types))
	for _, t := range f.Types {
		out = append(out, stream.OperationsSubject(acc, t))
	}
	return out
}

// Watch calls fn with each event f selects, in the order they were
// stored, until ctx ends or fn returns an error (which Watch returns).
// It reads through an ephemeral ordered consumer: nothing is acked, and
// a watcher that falls behind never holds up the stream. ready (when not
// nil) is called once the consumer is in place: every event stored after
// that is seen.
func Watch(ctx context.Context, js jetstream.JetStream, f Filter, ready func() error, fn func(*postbackv1.OperationalEvent) error) error {
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: f.subjects(), DeliverPolicy: jetstream.DeliverNewPolicy}
	if !f.Since.IsZero() {
		since := f.Since
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	c, err := js.OrderedConsumer(ctx, stream.OperationsStream, cfg)
	if err != nil {
		return fmt.Errorf("watch operational events: %w", err)
	}
	it, err := c.Messages()
	if err != nil {
		return fmt.Errorf("watch operational events: %w", err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	if ready != nil {
		if err := ready(); err != nil {
			return err
		}
	}
	for {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return ctx.Err()
			}
			return fmt.Errorf("watch operational events: %w", err)
		}
		ev, err := Decode(m.Data())
		if err != nil {
			continue // not an event: nothing a watcher can use
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
}
