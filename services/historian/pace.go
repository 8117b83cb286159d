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

	seq    uint64    // DELIVERIES' last sequence at the last look
	at     time.Time // when
	isBusy bool      // what the last look found
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
	var seq uint64
	if err == nil {
		seq = info.CachedInfo().State.LastSeq
	}
	if err != nil || p.at.IsZero() || seq < p.seq {
		p.seq, p.at, p.isBusy = seq, now, false
		return false
	}
	p.isBusy = float64(seq-p.seq) >= float64(p.rate)*now.Sub(p.at).Seconds()
	p.seq, p.at = seq, now
	return p.isBusy
}
