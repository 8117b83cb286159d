package endpoints

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/postback-dev/postback/pkg/stream/streamtest"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

func TestEndpointCacheFollowsPutsAndDeletes(t *testing.T) {
	js := streamtest.JetStream(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	eps, err := OpenStore(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	cache, err := NewCache(ctx, eps, 10)
	if err != nil {
		t.Fatal(err)
	}
	put := func(id, url string) {
		t.Helper()
		if err := eps.Put(ctx, &postbackv1.Endpoint{Id: id, AccountId: "acc", EventType: "action_clearing", Url: url}); err != nil {
			t.Fatal(err)
		}
	}
	urls := func() []string {
		l, err := cache.List(ctx, "acc", "action_clearing")
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range l {
			out = append(out, e.Id+"="+e.Url)
		}
		return out
	}
	eventuallyEqual := func(want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			got := urls()
			if strings.Join(got, ",") == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("cache holds %v, want %q", got, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	put("ep_a", "http://a")
	eventuallyEqual("ep_a=http://a") // loaded on first use
	put("ep_b", "http://b")
	put("ep_a", "http://a2")
	eventuallyEqual("ep_a=http://a2,ep_b=http://b") // followed by the watch
	if err := eps.Delete(ctx, KeyOf("acc", "action_clearing", "ep_a")); err != nil {
		t.Fatal(err)
	}
	eventuallyEqual("ep_b=http://b")
	if _, err := cache.Get(ctx, "acc", "action_clearing", "ep_a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of a deleted endpoint: %v", err)
	}
}

func TestAnEndpointMovedToAnotherTypeIsFoundUnderItsNewKey(t *testing.T) {
	js := streamtest.JetStream(t)
	ctx := context.Background()
	eps, err := OpenStore(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	old := &postbackv1.Endpoint{Id: "ep_a", AccountId: "acc", EventType: "action_clearing", Url: "http://old"}
	moved := &postbackv1.Endpoint{Id: "ep_a", AccountId: "acc", EventType: "action_update", Url: "http://new"}
	// The gateway writes the new key, then deletes the old one (a tombstone
	// that stays in the bucket's subject state). The old key sorts first.
	if err := eps.Put(ctx, old); err != nil {
		t.Fatal(err)
	}
	if err := eps.Put(ctx, moved); err != nil {
		t.Fatal(err)
	}
	if err := eps.Delete(ctx, Key(old)); err != nil {
		t.Fatal(err)
	}
	got, err := eps.Get(ctx, "ep_a")
	if err != nil || got.Url != "http://new" {
		t.Fatalf("Get = %v, %v; want the endpoint under its new key", got, err)
	}
	all, err := eps.List(ctx, "acc", "")
	if err != nil || len(all) != 1 || all[0].Url != "http://new" {
		t.Fatalf("List = %v, %v; want only the moved endpoint", all, err)
	}
}

func TestModifyAppliesEveryChangeOfConcurrentWriters(t *testing.T) {
	js := streamtest.JetStream(t)
	ctx := context.Background()
	eps, err := OpenStore(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	e := &postbackv1.Endpoint{Id: "ep_m", AccountId: "acc", EventType: "action_clearing", Url: "http://x"}
	if err := eps.Put(ctx, e); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 8)
	for range 8 {
		go func() {
			_, err := eps.Modify(ctx, Key(e), func(cur *postbackv1.Endpoint) bool {
				cur.MaxInFlight++
				return true
			})
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	got, err := eps.Get(ctx, "ep_m")
	if err != nil || got.MaxInFlight != 8 {
		t.Fatalf("after 8 concurrent increments: %v, %v; want max_in_flight 8", got.GetMaxInFlight(), err)
	}
	if _, err := eps.Modify(ctx, KeyOf("acc", "action_clearing", "ep_none"), func(*postbackv1.Endpoint) bool { return true }); !errors.Is(err, ErrNotFound) {
		t.Errorf("Modify of a missing endpoint: %v, want ErrNotFound", err)
	}
}
