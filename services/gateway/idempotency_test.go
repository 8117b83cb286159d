package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/postback-dev/postback/pkg/history/sqlite"
	"github.com/postback-dev/postback/pkg/secret"
	"github.com/postback-dev/postback/pkg/stream"
	"github.com/postback-dev/postback/pkg/stream/streamtest"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// keyedServer is a gateway on a real JetStream whose keys last window.
func keyedServer(t *testing.T, window time.Duration) (*Server, jetstream.JetStream) {
	t.Helper()
	keyring, store := keyringAndStore(t)
	js := streamtest.JetStream(t)
	s, err := NewServer(context.Background(), js, keyring, nil, store, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s.keyed = newKeyedLog(js, window)
	return s, js
}

func clearing(key string) *postbackv1.PublishRequest {
	data, _ := structpb.NewStruct(map[string]any{"CampaignId": 9876, "ActionIds": "ACT-101,ACT-102"})
	return &postbackv1.PublishRequest{AccountId: "brand-1", EventType: "action_clearing", Data: data, IdempotencyKey: key}
}

// events is how many events EVENTS holds (markers and keeper apart).
func events(t *testing.T, js jetstream.JetStream) uint64 {
	return streamtest.Work(t, js, stream.EventsStream)
}

// A PublishBatch shares one atomic batch between its keyed events; a key
// already used, or used twice in the batch, answers as a duplicate with
// the first event's id and fails nothing else in the batch.
func TestKeyedEventsInABatchAreEachStoredOnceWithTheirKeys(t *testing.T) {
	s, js := keyedServer(t, time.Hour)
	ctx := operator()
	first, err := s.Publish(ctx, clearing("order-1"))
	if err != nil || first.Duplicate {
		t.Fatalf("first publish: %v, %v", first, err)
	}
	batch := &postbackv1.PublishBatchRequest{Events: []*postbackv1.PublishRequest{
		clearing("order-1"), // used above
		clearing("order-2"),
		clearing("order-3"),
		clearing("order-2"), // twice in this batch
		clearing(""),        // no key
	}}
	res, err := s.PublishBatch(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		dup  bool
		same int // index whose id it must carry (-1: the first publish's; -2: its own)
	}{{true, -1}, {false, -2}, {false, -2}, {true, 1}, {false, -2}}
	for i, w := range want {
		r := res.Results[i]
		if r.Error != nil {
			t.Fatalf("events[%d]: %v", i, r.Error)
		}
		if r.Duplicate != w.dup {
			t.Errorf("events[%d]: duplicate = %v, want %v", i, r.Duplicate, w.dup)
		}
		switch {
		case w.same == -1 && r.EventId != first.EventId:
			t.Errorf("events[%d]: id %s, want the first publish's %s", i, r.EventId, first.EventId)
		case w.same >= 0 && r.EventId != res.Results[w.same].EventId:
			t.Errorf("events[%d]: id %s, want events[%d]'s %s", i, r.EventId, w.same, res.Results[w.same].EventId)
		}
	}
	if got := events(t, js); got != 4 {
		t.Errorf("EVENTS holds %d events, want 4: order-1, order-2, order-3 and the unkeyed one", got)
	}
}

// Many keyed events at once (concurrent calls and large batches) are
// stored once each; the same keys again are all duplicates.
func TestManyKeyedEventsAtOnceAreStoredOncePerKey(t *testing.T) {
	s, js := keyedServer(t, time.Hour)
	ctx := operator()
	const calls, per = 8, 300
	publish := func(round string) []*postbackv1.PublishBatchResponse {
		out := make([]*postbackv1.PublishBatchResponse, calls)
		errs := make(chan error, calls)
		for c := range calls {
			go func() {
				req := &postbackv1.PublishBatchRequest{}
				for i := range per {
					req.Events = append(req.Events, clearing(fmt.Sprintf("k-%d-%d", c, i)))
				}
				var err error
				out[c], err = s.PublishBatch(ctx, req)
				errs <- err
			}()
		}
		for range calls {
			if err := <-errs; err != nil {
				t.Fatalf("%s: %v", round, err)
			}
		}
		return out
	}
	firsts := publish("first round")
	repeats := publish("repeat round")
	for c := range calls {
		for i := range per {
			f, r := firsts[c].Results[i], repeats[c].Results[i]
			if f.Error != nil || r.Error != nil || f.Duplicate || !r.Duplicate || r.EventId != f.EventId {
				t.Fatalf("k-%d-%d: first %v, repeat %v; want new, then a duplicate with the same id", c, i, f, r)
			}
		}
	}
	if got := events(t, js); got != calls*per {
		t.Errorf("EVENTS holds %d events, want %d", got, calls*per)
	}
}

// A key lasts its window, then may be used again: its marker expires.
func TestAKeyIsFreeAgainAfterItsWindow(t *testing.T) {
	s, js := keyedServer(t, time.Second)
	ctx := operator()
	first, err := s.Publish(ctx, clearing("order-9"))
	if err != nil {
		t.Fatal(err)
	}
	if again, err := s.Publish(ctx, clearing("order-9")); err != nil || !again.Duplicate || again.EventId != first.EventId {
		t.Fatalf("within the window: %v, %v; want a duplicate of %s", again, err, first.EventId)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		later, err := s.Publish(ctx, clearing("order-9"))
		if err != nil {
			t.Fatal(err)
		}
		if !later.Duplicate {
			if later.EventId == first.EventId {
				t.Fatalf("a new event after the window carries the first's id %s", first.EventId)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the key is still taken 10 s after its 1 s window")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := events(t, js); got != 2 {
		t.Errorf("EVENTS holds %d events, want 2", got)
	}
}

// keyringAndStore are a new keyring and an SQLite history store, closed
// with t: what every gateway under test needs.
func keyringAndStore(t *testing.T) (*secret.Keyring, *sqlite.Store) {
	t.Helper()
	key, err := secret.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	keyring, err := secret.ParseKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	store, err := sqlite.Open(filepath.Join(t.TempDir(), "history.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return keyring, store
}
