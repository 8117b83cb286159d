package endpoints

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/postback-dev/postback/pkg/delivery"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// Cache answers "this account's endpoints for this event type" from
// memory, kept current by one watch on the endpoints bucket.
//
// Memory is bounded by Size (account, event type) lists, not by the number
// of endpoints in the system: a list is loaded on first use (a filtered key
// listing, no scan of values), the watch updates only lists already held,
// and a full cache drops an arbitrary list. A list loaded while an update
// for it was in flight is used once and not kept, so the cache never holds
// an older state than the bucket once the watch has caught up.
type Cache struct {
	store *Store
	size  int
	w     jetstream.KeyWatcher

	mu      sync.RWMutex
	lists   map[string]map[string]*postbackv1.Endpoint // "<account>.<type>" → key → endpoint
	loading map[string]*load                           // lists being read from the bucket
}

// load counts the loads of one list in flight and the updates to it seen
// meanwhile; it exists only while a load is in flight.
type load struct{ readers, updates int }

// DefaultCacheSize is how many (account, event type) lists a cache holds.
const DefaultCacheSize = 50000

// NewCache starts the watch; it stops when ctx ends.
func NewCache(ctx context.Context, store *Store, size int) (*Cache, error) {
	if size <= 0 {
		size = DefaultCacheSize
	}
	w, err := store.kv.WatchAll(ctx, jetstream.UpdatesOnly())
	if err != nil {
		return nil, fmt.Errorf("watch endpoints: %w", err)
	}
	c := &Cache{store: store, size: size, w: w,
		lists: map[string]map[string]*postbackv1.Endpoint{}, loading: map[string]*load{}}
	go c.follow(ctx)
	return c, nil
}

// listKey is "<account>.<type>" of an endpoint key "ep.<account>.<type>.<id>".
func listKey(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, "ep.")
	if !ok {
		return "", false
	}
	i := strings.LastIndexByte(rest, '.')
	if i < 0 {
		return "", false
	}
	return rest[:i], true
}

func (c *Cache) follow(ctx context.Context) {
	defer func() { _ = c.w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-c.w.Updates():
			if !ok {
				return
			}
			if e == nil {
				continue // end of initial values (none with UpdatesOnly)
			}
			c.apply(e)
		}
	}
}

func (c *Cache) apply(e jetstream.KeyValueEntry) {
	lk, ok := listKey(e.Key())
	if !ok {
		return
	}
	var ep *postbackv1.Endpoint
	if e.Operation() == jetstream.KeyValuePut {
		ep = &postbackv1.Endpoint{}
		if err := proto.Unmarshal(e.Value(), ep); err != nil {
			ep = nil
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if l := c.loading[lk]; l != nil {
		l.updates++
	}
	list, held := c.lists[lk]
	if !held {
		return
	}
	if ep == nil {
		delete(list, e.Key())
	} else {
		list[e.Key()] = ep
	}
}

// List returns the endpoints of an account for an event type, ordered by id.
// The returned endpoints are shared: do not modify them.
func (c *Cache) List(ctx context.Context, accountID, eventType string) ([]*postbackv1.Endpoint, error) {
	lk := accountID + "." + eventType
	c.mu.RLock()
	list, held := c.lists[lk]
	var out []*postbackv1.Endpoint
	if held {
		out = make([]*postbackv1.Endpoint, 0, len(list))
		for _, e := range list {
			out = append(out, e)
		}
	}
	c.mu.RUnlock()
	if !held {
		c.mu.Lock()
		l := c.loading[lk]
		if l == nil {
			l = &load{}
			c.loading[lk] = l
		}
		l.readers++
		seen := l.updates
		c.mu.Unlock()
		loaded, err := c.store.List(ctx, accountID, eventType)
		c.mu.Lock()
		defer c.mu.Unlock()
		if l.readers--; l.readers == 0 {
			delete(c.loading, lk)
		}
		if err != nil {
			return nil, err
		}
		if l.updates == seen { // nothing changed while loading: keep it
			if len(c.lists) >= c.size {
				for k := range c.lists {
					delete(c.lists, k)
					break
				}
			}
			m := make(map[string]*postbackv1.Endpoint, len(loaded))
			for _, e := range loaded {
				m[Key(e)] = e
			}
			c.lists[lk] = m
		}
		return loaded, nil
	}
	slices.SortFunc(out, func(a, b *postbackv1.Endpoint) int { return strings.Compare(a.Id, b.Id) })
	return out, nil
}

// Get returns the endpoint stored under its key (account, event type, id),
// ErrNotFound when there is none. The endpoint is shared: do not modify it.
func (c *Cache) Get(ctx context.Context, accountID, eventType, id string) (*postbackv1.Endpoint, error) {
	eps, err := c.List(ctx, accountID, eventType)
	if err != nil {
		return nil, err
	}
	for _, e := range eps {
		if e.Id == id {
			return e, nil
		}
	}
	return nil, ErrNotFound
}

// ForJob returns the current configuration of a job's endpoint: from the
// cache under the key the job was rendered for, or by id alone when the
// endpoint's event type has changed since. ErrNotFound: it was deleted.
func (c *Cache) ForJob(ctx context.Context, job *delivery.Job) (*postbackv1.Endpoint, error) {
	ep, err := c.Get(ctx, job.AccountID, job.EventType, job.EndpointID)
	if errors.Is(err, ErrNotFound) {
		return c.store.Get(ctx, job.EndpointID)
	}
	return ep, err
}
