package stream

import "time"

// SeqRate reads a stream's message rate from its last sequence seen at
// successive moments: the historian's look at DELIVERIES (is a burst being
// sent?) and each keeper (is its stream busy?) both judge a stream this way.
// The zero value has seen nothing.
type SeqRate struct {
	seq uint64    // the sequence seen last
	at  time.Time // when (zero: nothing seen)
}

// Observe records seq at now and returns how many messages the stream took
// since the previous observation, and over how long. ok is false for the
// first observation and when the sequence went back (a purged or recreated
// stream): then there is nothing to judge by.
func (r *SeqRate) Observe(seq uint64, now time.Time) (gap uint64, elapsed time.Duration, ok bool) {
	prev, at := r.seq, r.at
	r.seq, r.at = seq, now
	if at.IsZero() || seq < prev {
		return 0, 0, false
	}
	return seq - prev, now.Sub(at), true
}

// Forget drops what r has seen: the next observation is a first one.
func (r *SeqRate) Forget() { *r = SeqRate{} }
