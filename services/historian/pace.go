package historian

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/postback-dev/postback/pkg/stream"
)

// sendPace tells whether the send path is busy: whether jobs are being
// queued on DELIVERIES at rate a second or more, measured from the stream's
// last sequence between two looks at least paceEvery apart. A failed look
// counts as not busy: the writer then stores as it always does.
type sendPace struct {
	js   jetstream.JetStream
	rate int

	seen   stream.SeqRate // DELIVERIES' last sequence at the looks
	at     time.Time      // when the last look was
	isBusy bool           // what it found
}

// paceEvery is the least time between two looks; paceTimeout is the most
// a look may take (a broker that does not answer holds the writer up no
// longer: the look counts as not busy).
const (
	paceEvery   = 100 * time.Millisecond
	paceTimeout = time.Second
)

// busy says whether the send path is busy at now (see sendPace).
func (p *sendPace) busy(ctx context.Context, now time.Time) bool {
	if now.Sub(p.at) < paceEvery {
		return p.isBusy
	}
	ctx, cancel := context.WithTimeout(ctx, paceTimeout)
	defer cancel()
	info, err := p.js.Stream(ctx, stream.DeliveriesStream)
	p.at, p.isBusy = now, false
	if err != nil {
		p.seen.Forget()
		return false
	}
	if gap, elapsed, ok := p.seen.Observe(info.CachedInfo().State.LastSeq, now); ok {
		p.isBusy = float64(gap) >= float64(p.rate)*elapsed.Seconds()
	}
	return p.isBusy
}
