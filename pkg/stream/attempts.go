package stream

import (
	"context"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// Attempts is the attempt history stream.
type Attempts struct{ js jetstream.JetStream }

// NewAttempts binds the attempt history.
func NewAttempts(js jetstream.JetStream) *Attempts { return &Attempts{js: js} }

// Append records one attempt (idempotent per delivery and attempt number).
func (a *Attempts) Append(ctx context.Context, accountID string, at *postbackv1.Attempt) error {
	b, err := proto.Marshal(at)
	if err != nil {
		return fmt.Errorf("encode attempt %s/%d: %w", at.DeliveryId, at.Number, err)
	}
	msgID := "att:" + at.DeliveryId + ":" + strconv.Itoa(int(at.Number)) + ":" + strconv.FormatInt(at.GetStartTime().AsTime().UnixNano(), 36)
	if _, err := a.js.PublishMsg(ctx, NewMsg(ctx, AttemptSubject(accountID, at.DeliveryId), b, msgID)); err != nil {
		return fmt.Errorf("record attempt %s/%d: %w", at.DeliveryId, at.Number, err)
	}
	return nil
}

// List returns every recorded attempt of a delivery, oldest first.
func (a *Attempts) List(ctx context.Context, accountID, deliveryID string) ([]*postbackv1.Attempt, error) {
	subject := AttemptSubject(accountID, deliveryID)
	s, err := a.js.Stream(ctx, AttemptsStream)
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
