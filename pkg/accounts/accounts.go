// Package accounts keeps each account's settings (the auto-disable
// default of its endpoints) in a NATS KV bucket (stream.AccountsBucket),
// one key per account. An account never configured has the zero settings:
// auto-disable off.
package accounts

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/postback-dev/postback/pkg/stream"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// Store is the accounts bucket.
type Store struct {
	kv jetstream.KeyValue
}

// OpenStore binds the accounts bucket (stream.Ensure must have run).
func OpenStore(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	kv, err := js.KeyValue(ctx, stream.AccountsBucket)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", stream.AccountsBucket, err)
	}
	return &Store{kv: kv}, nil
}

// Get returns an account's settings (the zero settings when never set).
func (s *Store) Get(ctx context.Context, accountID string) (*postbackv1.AccountSettings, error) {
	e, err := s.kv.Get(ctx, accountID)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return &postbackv1.AccountSettings{AccountId: accountID}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read settings of account %s: %w", accountID, err)
	}
	st := &postbackv1.AccountSettings{}
	if err := proto.Unmarshal(e.Value(), st); err != nil {
		return nil, fmt.Errorf("decode settings of account %s: %w", accountID, err)
	}
	return st, nil
}

// Put stores an account's settings.
func (s *Store) Put(ctx context.Context, st *postbackv1.AccountSettings) error {
	b, err := proto.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode settings of account %s: %w", st.AccountId, err)
	}
	if _, err := s.kv.Put(ctx, st.AccountId, b); err != nil {
		return fmt.Errorf("store settings of account %s: %w", st.AccountId, err)
	}
	return nil
}
