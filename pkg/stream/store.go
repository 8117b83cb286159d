package stream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// ErrNotFound is returned when a key does not exist.
var ErrNotFound = errors.New("not found")

// ErrExists is returned by Create when the key is already there.
var ErrExists = errors.New("already exists")

// Endpoints is the endpoint configuration bucket. Values are
// postbackv1.Endpoint in protobuf binary with secrets already sealed.
type Endpoints struct{ kv jetstream.KeyValue }

// OpenEndpoints binds the endpoints bucket (Ensure must have run).
func OpenEndpoints(ctx context.Context, js jetstream.JetStream) (*Endpoints, error) {
	kv, err := js.KeyValue(ctx, EndpointsBucket)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", EndpointsBucket, err)
	}
	return &Endpoints{kv: kv}, nil
}

// EndpointKey is the key of an endpoint: ep.<account>.<event_type>.<id>.
func EndpointKey(accountID, eventType, id string) string {
	return "ep." + accountID + "." + eventType + "." + id
}

// Key is the key of an endpoint message.
func Key(e *postbackv1.Endpoint) string { return EndpointKey(e.AccountId, e.EventType, e.Id) }

// Put stores an endpoint under its key.
func (s *Endpoints) Put(ctx context.Context, e *postbackv1.Endpoint) error {
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
func (s *Endpoints) Delete(ctx context.Context, key string) error {
	if err := s.kv.Delete(ctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("delete endpoint %s: %w", key, err)
	}
	return nil
}

// GetByKey reads the endpoint stored under key.
func (s *Endpoints) GetByKey(ctx context.Context, key string) (*postbackv1.Endpoint, error) {
	entry, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read endpoint %s: %w", key, err)
	}
	e := &postbackv1.Endpoint{}
	if err := proto.Unmarshal(entry.Value(), e); err != nil {
		return nil, fmt.Errorf("decode endpoint %s: %w", key, err)
	}
	return e, nil
}

// Get finds an endpoint by id alone (a server-side subject filter on the
// last key token, no scan of values).
func (s *Endpoints) Get(ctx context.Context, id string) (*postbackv1.Endpoint, error) {
	keys, err := s.keys(ctx, "ep.*.*."+id)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, ErrNotFound
	}
	return s.GetByKey(ctx, keys[0])
}

// List returns the endpoints of an account, optionally of one event type
// ("" = all), ordered by id. An empty account lists every account.
func (s *Endpoints) List(ctx context.Context, accountID, eventType string) ([]*postbackv1.Endpoint, error) {
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

func (s *Endpoints) keys(ctx context.Context, filter string) ([]string, error) {
	lister, err := s.kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("list endpoint keys %s: %w", filter, err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	return keys, nil
}

// Deliveries is the delivery state bucket: <account>.<delivery_id> →
// postbackv1.Delivery in protobuf binary.
type Deliveries struct{ kv jetstream.KeyValue }

// OpenDeliveries binds the deliveries bucket (Ensure must have run).
func OpenDeliveries(ctx context.Context, js jetstream.JetStream) (*Deliveries, error) {
	kv, err := js.KeyValue(ctx, DeliveriesBucket)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", DeliveriesBucket, err)
	}
	return &Deliveries{kv: kv}, nil
}

func deliveryKey(d *postbackv1.Delivery) string { return d.AccountId + "." + d.Id }

// Create stores a new delivery; ErrExists when it is already there (a
// redelivered event renders the same delivery ids).
func (s *Deliveries) Create(ctx context.Context, d *postbackv1.Delivery) error {
	b, err := proto.Marshal(d)
	if err != nil {
		return fmt.Errorf("encode delivery %s: %w", d.Id, err)
	}
	if _, err := s.kv.Create(ctx, deliveryKey(d), b); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return ErrExists
		}
		return fmt.Errorf("create delivery %s: %w", d.Id, err)
	}
	return nil
}

// Put stores the delivery's current state.
func (s *Deliveries) Put(ctx context.Context, d *postbackv1.Delivery) error {
	b, err := proto.Marshal(d)
	if err != nil {
		return fmt.Errorf("encode delivery %s: %w", d.Id, err)
	}
	if _, err := s.kv.Put(ctx, deliveryKey(d), b); err != nil {
		return fmt.Errorf("store delivery %s: %w", d.Id, err)
	}
	return nil
}

// Get reads a delivery by account and id.
func (s *Deliveries) Get(ctx context.Context, accountID, id string) (*postbackv1.Delivery, error) {
	entry, err := s.kv.Get(ctx, accountID+"."+id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read delivery %s: %w", id, err)
	}
	d := &postbackv1.Delivery{}
	if err := proto.Unmarshal(entry.Value(), d); err != nil {
		return nil, fmt.Errorf("decode delivery %s: %w", id, err)
	}
	return d, nil
}

// Find reads a delivery by id alone (server-side filter on the id token).
func (s *Deliveries) Find(ctx context.Context, id string) (*postbackv1.Delivery, error) {
	lister, err := s.kv.ListKeysFiltered(ctx, "*."+id)
	if err != nil {
		return nil, fmt.Errorf("find delivery %s: %w", id, err)
	}
	var key string
	for k := range lister.Keys() {
		key = k
	}
	if key == "" {
		return nil, ErrNotFound
	}
	acc, _, _ := strings.Cut(key, ".")
	return s.Get(ctx, acc, id)
}

// Each calls fn for every delivery of an account ("" = every account) until
// fn returns false.
func (s *Deliveries) Each(ctx context.Context, accountID string, fn func(*postbackv1.Delivery) bool) error {
	acc := accountID
	if acc == "" {
		acc = "*"
	}
	lister, err := s.kv.ListKeysFiltered(ctx, acc+".*")
	if err != nil {
		return fmt.Errorf("list deliveries: %w", err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	for _, k := range keys {
		a, id, _ := strings.Cut(k, ".")
		d, err := s.Get(ctx, a, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if !fn(d) {
			return nil
		}
	}
	return nil
}
