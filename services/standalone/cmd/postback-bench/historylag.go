package main

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// historyLag is how long after a burst's last delivery the history writer
// has stored every change the burst made: the time until the HISTORY
// stream (a work queue: a change leaves it once stored) holds none. It is 0
// for a build without the stream, and -1 when it did not empty within a
// minute.
func (b *bench) historyLag(ctx context.Context, last time.Time) float64 {
	js, closeNATS, err := b.jetStream("postback-bench-history-lag")
	if err != nil {
		return 0
	}
	defer closeNATS()
	st, err := js.Stream(ctx, "HISTORY")
	if err != nil {
		return 0 // a build before the history store
	}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		// Its keeper message (keep.HISTORY, in builds that have one) is
		// no change.
		info, err := st.Info(ctx, jetstream.WithSubjectFilter("keep.HISTORY"))
		if err == nil && info.State.Msgs == info.State.Subjects["keep.HISTORY"] {
			return max(0, time.Since(last).Seconds())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return -1
}
