// Package endpoints keeps the endpoints: the endpoints bucket in NATS KV
// (Store), and the in-memory view of it the renderer, sender and retry
// service read (Cache), kept current by a watch. An endpoint's own rules
// (validation, limits, secrets) are pkg/endpoint's.
package endpoints

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/postback-dev/postback/pkg/stream"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// ErrNotFound is returned when an endpoint does not exist.
var ErrNotFound = errors.New("not found")

// Store is the endpoint configuration bucket. Values are
// postbackv1.Endpoint in protobuf binary with secrets already sealed.
type Store struct {
	kv jetstream.KeyValue
	st jetstream.Stream // the bucket's stream, for listing keys
}

// OpenStore binds the endpoints bucket (Ensure must have run).
func OpenStore(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	kv, err := js.KeyValue(ctx, stream.EndpointsBucket)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", stream.EndpointsBucket, err)
	}
	st, err := js.Stream(ctx, "KV_"+stream.EndpointsBucket)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", stream.EndpointsBucket, err)
	}
	return &Store{kv: kv, st: st}, nil
}

// KeyOf is the key of an endpoint: ep.<account>.<event_type>.<id>.
func KeyOf(accountID, eventType, id string) string {
	return "ep." + accountID + "." + eventType + "." + id
}

// Key is the key of an endpoint message.
func Key(e *postbackv1.Endpoint) string { return KeyOf(e.AccountId, e.EventType, e.Id) }

// Put stores an endpoint under its key.
func (s *Store) Put(ctx context.Context, e *postbackv1.Endpoint) error {
	b, err := proto.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode endpoint %s: %w", e.Id, err)
	}
	if _, err := s.kv.Put(ctx, Key(e), b); err != nil {
		return fmt.Errorf("store endpoint %s: %w", e.Id, err)
	}
	return nil
}

// Delete removes the endpoint stored under key.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := s.kv.Delete(ctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("delete endpoint %s: %w", key, err)
	}
	return nil
}

// GetByKey reads the endpoint stored under key.
func (s *Store) GetByKey(ctx context.Context, key string) (*postbackv1.Endpoint, error) {
	e, _, err := s.getRevision(ctx, key)
	return e, err
}

// getRevision reads the endpoint stored under key and its KV revision.
func (s *Store) getRevision(ctx context.Context, key string) (*postbackv1.Endpoint, uint64, error) {
	entry, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, ErrNotFound
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read endpoint %s: %w", key, err)
	}
	e := &postbackv1.Endpoint{}
	if err := proto.Unmarshal(entry.Value(), e); err != nil {
		return nil, 0, fmt.Errorf("decode endpoint %s: %w", key, err)
	}
	return e, entry.Revision(), nil
}

// Get finds an endpoint by id alone (a server-side subject filter on the
// last key token, no scan of values). A key whose last entry is a delete
// (the endpoint moved to another type) is passed over.
func (s *Store) Get(ctx context.Context, id string) (*postbackv1.Endpoint, error) {
	keys, err := s.keys(ctx, "ep.*.*."+id)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		e, err := s.GetByKey(ctx, k)
		if !errors.Is(err, ErrNotFound) {
			return e, err
		}
	}
	return nil, ErrNotFound
}

// List returns the endpoints of an account, optionally of one event type
// ("" = all), ordered by id. An empty account lists every account.
func (s *Store) List(ctx context.Context, accountID, eventType string) ([]*postbackv1.Endpoint, error) {
	acc, typ := accountID, eventType
	if acc == "" {
		acc = "*"
	}
	if typ == "" {
		typ = "*"
	}
	keys, err := s.keys(ctx, "ep."+acc+"."+typ+".*")
	if err != nil {
		return nil, err
	}
	out := make([]*postbackv1.Endpoint, 0, len(keys))
	for _, k := range keys {
		e, err := s.GetByKey(ctx, k)
		if errors.Is(err, ErrNotFound) {
			continue // deleted while listing
		}
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b *postbackv1.Endpoint) int { return strings.Compare(a.Id, b.Id) })
	return out, nil
}

func (s *Store) keys(ctx context.Context, filter string) ([]string, error) {
	keys, err := stream.ListKeys(ctx, s.st, stream.EndpointsBucket, filter)
	if err != nil {
		return nil, fmt.Errorf("list endpoint keys %s: %w", filter, err)
	}
	return keys, nil
}

// Modify reads the endpoint stored under key, lets fn change it, and
// writes it back with compare-and-set, reading again and calling fn again
// when another writer changed it meanwhile. fn returns false to write
// nothing. It returns the endpoint as written (or as read, unchanged).
func (s *Store) Modify(ctx context.Context, key string, fn func(*postbackv1.Endpoint) bool) (*postbackv1.Endpoint, error) {
	for try := 0; ; try++ {
		e, rev, err := s.getRevision(ctx, key)
		if err != nil {
			return nil, err
		}
		if !fn(e) {
			return e, nil
		}
		b, err := proto.Marshal(e)
		if err != nil {
			return nil, fmt.Errorf("encode endpoint %s: %w", e.Id, err)
		}
		_, err = s.kv.Update(ctx, key, b, rev)
		if err == nil {
			return e, nil
		}
		if try+1 >= stream.CASTries || !stream.Contended(err) {
			return nil, fmt.Errorf("store endpoint %s: %w", e.Id, err)
		}
		if err := stream.CASBackoff(ctx, try+1); err != nil {
			return nil, fmt.Errorf("store endpoint %s: %w", e.Id, err)
		}
	}
}
