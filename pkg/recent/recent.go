// Package recent keeps a small, bounded sample of each account's recent
// events of each type, so that the console can preview an endpoint with
// real data: Postback keeps no event after rendering it (EVENTS is a work
// queue), and this sample is the only copy.
//
// Design. One value per (account, event type) in the KV bucket
// stream.RecentEventsBucket, key "<account_id>.<event_type>": a JSON object
// holding the last Keep events, newest first, each with its id, accept
// time and data (the event's data as published, JSON). The bucket's MaxAge
// (stream.RecentEventsAge) drops a key not written for a week, and its
// per-value cap (stream.RecentEventsMaxValue) bounds each key; an event
// whose data encodes to more than MaxData bytes is not sampled at all.
//
// The renderer offers every event it takes to a Sampler (Offer). Offer
// never blocks and never fails: it takes at most one event per key every
// Interval (an in-memory throttle, bounded to maxThrottled keys), hands it
// to one background writer through a small queue, and drops it when that
// queue is full. The writer encodes the event and updates the key with
// compare-and-set (read, prepend, trim, write at the read revision; on a
// conflict — another renderer wrote the key meanwhile — it reads and tries
// again, up to three times, then drops the event). So concurrent renderers
// do not lose each other's events, and none waits on the other.
//
// Failure policy: the sample is a convenience, never on the render's
// critical path. A failed write (NATS down, bucket full, permission
// missing) is logged at most once a minute and otherwise ignored; the
// event is rendered and acked as if there were no sample. The writes count
// against nothing else (no stream limit, no rate limit of the account).
package recent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/postback-dev/postback/pkg/eventdata"
	"github.com/postback-dev/postback/pkg/stream"
)

// Bounds of the sample.
const (
	// Keep is how many events a key holds.
	Keep = 5
	// MaxData is the largest event data (JSON bytes) sampled.
	MaxData = 64 << 10
	// Interval is how often one renderer writes a key at most.
	Interval = 10 * time.Second
	// maxThrottled bounds the throttle's map of keys.
	maxThrottled = 10000
	// queueSize bounds the events waiting for the writer.
	queueSize = 256
	// casTries is how often the writer tries a compare-and-set.
	casTries = 3
	// writeTimeout bounds one write.
	writeTimeout = 5 * time.Second
	// logEvery is how often a failed write is logged at most.
	logEvery = time.Minute
)

// Event is one sampled event.
type Event struct {
	ID   string          `json:"id"`
	Time time.Time       `json:"time"`
	Data json.RawMessage `json:"data"` // a JSON object
}

// value is what a key holds.
type value struct {
	Events []Event `json:"events"` // newest first
}

// Key is the bucket key of an account's events of a type.
func Key(accountID, eventType string) string { return accountID + "." + eventType }

// Store reads and writes the sample.
type Store struct {
	kv jetstream.KeyValue
}

// OpenStore binds to the bucket (made by stream.Ensure).
func OpenStore(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	kv, err := js.KeyValue(ctx, stream.RecentEventsBucket)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", stream.RecentEventsBucket, err)
	}
	return &Store{kv: kv}, nil
}

// List returns the sampled events of an account and type, newest first
// (none when nothing was sampled).
func (s *Store) List(ctx context.Context, accountID, eventType string) ([]Event, error) {
	v, _, err := s.get(ctx, Key(accountID, eventType))
	if err != nil {
		return nil, err
	}
	return v.Events, nil
}

// get reads a key: its value and revision (0 when it does not exist).
func (s *Store) get(ctx context.Context, key string) (value, uint64, error) {
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return value{}, 0, nil
	}
	if err != nil {
		return value{}, 0, fmt.Errorf("read recent events %s: %w", key, err)
	}
	var v value
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		return value{}, e.Revision(), nil // unreadable: start again
	}
	return v, e.Revision(), nil
}

// ErrTooLarge is Add's answer for an event whose data is over MaxData.
var ErrTooLarge = errors.New("recent: event data over the sample's size cap")

// Add puts ev first in the key's sample (compare-and-set; see the package
// comment), keeping the newest Keep events. An event already held (the
// same id: a redelivered event) is not added again.
func (s *Store) Add(ctx context.Context, accountID, eventType string, ev Event) error {
	if len(ev.Data) > MaxData {
		return ErrTooLarge
	}
	key := Key(accountID, eventType)
	var err error
	for range casTries {
		var (
			v   value
			rev uint64
		)
		if v, rev, err = s.get(ctx, key); err != nil {
			return err
		}
		events := make([]Event, 0, Keep)
		events = append(events, ev)
		for _, e := range v.Events {
			if len(events) == Keep {
				break
			}
			if e.ID != ev.ID {
				events = append(events, e)
			}
		}
		b, merr := encode(events)
		if merr != nil {
			return merr
		}
		if rev == 0 {
			_, err = s.kv.Create(ctx, key, b)
		} else {
			_, err = s.kv.Update(ctx, key, b, rev)
		}
		if err == nil || !stream.Contended(err) {
			return err
		}
	}
	return fmt.Errorf("write recent events %s: %w", key, err)
}

// encode writes the events, dropping the oldest until the value fits the
// bucket's cap.
func encode(events []Event) ([]byte, error) {
	for {
		b, err := json.Marshal(value{Events: events})
		if err != nil {
			return nil, err
		}
		if len(b) <= stream.RecentEventsMaxValue || len(events) <= 1 {
			return b, nil
		}
		events = events[:len(events)-1]
	}
}

// Sampler feeds the store from a hot path: see the package comment.
type Sampler struct {
	store    *Store
	log      *slog.Logger
	interval time.Duration
	now      func() time.Time
	queue    chan offered

	mu      sync.Mutex
	last    map[string]time.Time // key → when this sampler last took an event of it
	logged  time.Time            // when a failed write was last logged
	dropped int                  // failed writes since then
}

type offered struct {
	account, eventType, id string
	time                   time.Time
	data                   map[string]any
}

// NewSampler makes a sampler writing to store; Run starts its writer.
func NewSampler(store *Store, log *slog.Logger) *Sampler {
	if log == nil {
		log = slog.Default()
	}
	return &Sampler{store: store, log: log, interval: Interval, now: time.Now,
		queue: make(chan offered, queueSize), last: map[string]time.Time{}}
}

// Offer hands an event to the sampler. It reports whether the event was
// taken; it never blocks. data must not change afterwards (the writer
// encodes it later).
func (s *Sampler) Offer(accountID, eventType, eventID string, at time.Time, data map[string]any) bool {
	if s == nil {
		return false
	}
	key := Key(accountID, eventType)
	now := s.now()
	s.mu.Lock()
	if t, ok := s.last[key]; ok && now.Sub(t) < s.interval {
		s.mu.Unlock()
		return false
	}
	if len(s.last) >= maxThrottled {
		for k, t := range s.last {
			if now.Sub(t) >= s.interval {
				delete(s.last, k)
			}
		}
		if len(s.last) >= maxThrottled {
			clear(s.last) // a burst of keys: a few extra writes, bounded memory
		}
	}
	s.last[key] = now
	s.mu.Unlock()
	select {
	case s.queue <- offered{account: accountID, eventType: eventType, id: eventID, time: at, data: data}:
		return true
	default:
		return false // the writer is behind: this event is not sampled
	}
}

// Run writes offered events until ctx ends.
func (s *Sampler) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case o := <-s.queue:
			s.write(ctx, o)
		}
	}
}

func (s *Sampler) write(ctx context.Context, o offered) {
	data, err := eventdata.AppendJSON(nil, o.data)
	if err != nil {
		s.failed(ctx, o, err)
		return
	}
	if len(data) > MaxData {
		return // not sampled, by design
	}
	wctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	if err := s.store.Add(wctx, o.account, o.eventType, Event{ID: o.id, Time: o.time, Data: data}); err != nil && ctx.Err() == nil {
		s.failed(ctx, o, err)
	}
}

// failed logs a failed write, at most once every logEvery.
func (s *Sampler) failed(ctx context.Context, o offered, err error) {
	now := s.now()
	s.mu.Lock()
	s.dropped++
	if !s.logged.IsZero() && now.Sub(s.logged) < logEvery {
		s.mu.Unlock()
		return
	}
	n := s.dropped
	s.logged, s.dropped = now, 0
	s.mu.Unlock()
	s.log.WarnContext(ctx, "recent events: sample not written (ignored; logged at most once a minute)",
		"account_id", o.account, "event_type", o.eventType, "error", err, "failed_writes", n)
}
