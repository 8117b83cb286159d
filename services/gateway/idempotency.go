package gateway

// Idempotency keys that last their window, whatever restarts.
//
// EVENTS drops a publish whose Nats-Msg-Id (idem:<account>:<key>) it saw
// within the dedupe window, but the server rebuilds that window at a
// restart from the messages it still stores, and EVENTS, a work queue,
// keeps none once the renderer has taken them: after a restart a repeat
// would be a new event. So the first event id of each key is also kept in
// the postback-idempotency bucket (TTL = the window), and a publish with
// a key goes:
//
//  1. Look the key up: found, the call is a duplicate of that event.
//  2. Publish with the Nats-Msg-Id. If the server calls it a duplicate,
//     an earlier call published it and is writing the key: wait for it
//     (briefly) and answer with its event id.
//  3. Record the key with this event's id (create only).
//
// Failure policy: the event is published before its key is recorded, so a
// crash between 2 and 3 never loses an event; a repeat after that crash and
// a restart can then make a second event (the window is a millisecond). A
// failed record (3) is logged and the call still succeeds: the event is
// stored, and only its idempotency across a restart is weakened.

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/postback-dev/postback/pkg/stream"
)

// keys is the idempotency bucket.
type keys struct{ kv jetstream.KeyValue }

func openKeys(ctx context.Context, js jetstream.JetStream) (*keys, error) {
	kv, err := js.KeyValue(ctx, stream.IdempotencyBucket)
	if err != nil {
		return nil, err
	}
	return &keys{kv: kv}, nil
}

// keyOf is the bucket key of an account's idempotency key: any text the
// caller chose, hashed to what a key may hold.
func keyOf(accountID, key string) string {
	sum := sha256.Sum256([]byte(key))
	return accountID + "." + base64.RawURLEncoding.EncodeToString(sum[:])
}

// first returns the event id first published with the key ("" when none).
func (k *keys) first(ctx context.Context, accountID, key string) (string, error) {
	e, err := k.kv.Get(ctx, keyOf(accountID, key))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return string(e.Value()), nil
}

// waitFirst waits up to a second for the key's first event id, which the
// call that published it is writing.
func (k *keys) waitFirst(ctx context.Context, accountID, key string) (string, error) {
	deadline := time.Now().Add(time.Second)
	for {
		id, err := k.first(ctx, accountID, key)
		if id != "" || err != nil || time.Now().After(deadline) {
			return id, err
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// record keeps eventID as the key's first event, unless one is kept.
func (k *keys) record(ctx context.Context, accountID, key, eventID string) error {
	_, err := k.kv.Create(ctx, keyOf(accountID, key), []byte(eventID))
	if errors.Is(err, jetstream.ErrKeyExists) {
		return nil
	}
	return err
}
