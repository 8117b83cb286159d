package endpointhealth

import (
	"context"
	"sync"
	"testing"

	"github.com/postback-dev/postback/pkg/stream/streamtest"
)

func TestUpdateFromConcurrentWritersLosesNoAttempt(t *testing.T) {
	js := streamtest.JetStream(t)
	ctx := context.Background()
	s, err := OpenStore(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 4, 5
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if _, _, err := s.Update(ctx, "ep_1", func(st *State) Change {
					return st.Apply([]Outcome{fail(w*each + i)}, FailingAfter)
				}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	st, err := s.Get(ctx, "ep_1")
	if err != nil {
		t.Fatal(err)
	}
	if st.ConsecutiveFailures != writers*each || !st.FailingSince.Equal(at(0)) || !st.Announced {
		t.Errorf("state %+v, want %d failures since %v, announced", st, writers*each, at(0))
	}
	if err := s.Delete(ctx, "ep_1"); err != nil {
		t.Fatal(err)
	}
	if st, err := s.Get(ctx, "ep_1"); err != nil || st.ConsecutiveFailures != 0 {
		t.Errorf("after Delete: %+v, %v; want the zero state", st, err)
	}
}
