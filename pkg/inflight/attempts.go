package inflight

import (
	"context"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/postback-dev/postback/pkg/stream"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// Attempts is the attempt history stream. A delivery's latest attempt
// lives in its record (Record.Last), written together with the delivery's
// state; when a later attempt takes its place, the sender first appends it
// here. So a delivery that succeeds at once never writes to this stream,
// and its full history is delivery.Attempts(List(...), record.Last) (with
// the history store's, for attempts the stream has let go of).
type Attempts struct {
	js jetstream.JetStream

	mu sync.Mutex
	st jetstream.Stream // bound on first List: a lookup saved per call
}

// NewAttempts binds the attempt history.
func NewAttempts(js jetstream.JetStream) *Attempts { return &Attempts{js: js} }

// stream is the ATTEMPTS stream, bound once.
func (a *Attempts) stream(ctx context.Context) (jetstream.Stream, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.st == nil {
		st, err := a.js.Stream(ctx, stream.AttemptsStream)
		if err != nil {
			return nil, err
		}
		a.st = st
	}
	return a.st, nil
}

// Append records one attempt (idempotent per delivery and attempt number).
func (a *Attempts) Append(ctx context.Context, accountID string, at *postbackv1.Attempt) error {
	b, err := proto.Marshal(at)
	if err != nil {
		return fmt.Errorf("encode attempt %s/%d: %w", at.DeliveryId, at.Number, err)
	}
	msgID := stream.AttemptID(at.DeliveryId, at.Number, at.GetStartTime().AsTime().UnixNano())
	if _, err := a.js.PublishMsg(ctx, stream.NewMsg(ctx, stream.AttemptSubject(accountID, at.DeliveryId), b, msgID)); err != nil {
		return fmt.Errorf("record attempt %s/%d: %w", at.DeliveryId, at.Number, err)
	}
	return nil
}

// Retire moves a record's latest attempt to the stream and clears it from
// the record, before another attempt is queued to take its place; the
// caller then writes the record. Appending is idempotent, so a retry of the
// caller after a failed write is safe.
func (a *Attempts) Retire(ctx context.Context, r *Record) error {
	if r.Last == nil {
		return nil
	}
	if err := a.Append(ctx, r.Delivery.AccountId, r.Last); err != nil {
		return err
	}
	r.Last = nil
	return nil
}

// List returns every recorded attempt of a delivery, oldest first.
func (a *Attempts) List(ctx context.Context, accountID, deliveryID string) ([]*postbackv1.Attempt, error) {
	subject := stream.AttemptSubject(accountID, deliveryID)
	s, err := a.stream(ctx)
	if err != nil {
		return nil, fmt.Errorf("attempts of %s: %w", deliveryID, err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return nil, fmt.Errorf("attempts of %s: %w", deliveryID, err)
	}
	n := int(info.State.Subjects[subject])
	if n == 0 {
		return nil, nil
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		return nil, fmt.Errorf("attempts of %s: %w", deliveryID, err)
	}
	out := make([]*postbackv1.Attempt, 0, n)
	for len(out) < n {
		batch, err := c.Fetch(n-len(out), jetstream.FetchMaxWait(2e9))
		if err != nil {
			return nil, fmt.Errorf("attempts of %s: %w", deliveryID, err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			at := &postbackv1.Attempt{}
			if err := proto.Unmarshal(m.Data(), at); err != nil {
				return nil, fmt.Errorf("decode attempt of %s: %w", deliveryID, err)
			}
			out = append(out, at)
		}
		if err := batch.Error(); err != nil {
			return nil, fmt.Errorf("attempts of %s: %w", deliveryID, err)
		}
		if got == 0 {
			break
		}
	}
	return out, nil
}
