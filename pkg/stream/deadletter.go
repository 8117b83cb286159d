package stream

// Dead letters: messages no service can process.
//
// A message on a work subject that cannot be decoded (junk published
// straight onto events.>, a job in no known format), that decodes to
// something no service can act on (an event or job without an account or
// with ids that are not subject tokens), or whose handler panics, would be
// redelivered without end: nothing a retry does can change it, and each
// pass costs a worker. Such a message is copied, with why, to
//
//	DEADLETTERS  deadletter.<consumer>
//	             Limits retention, MaxAge = Options.Retention, at most
//	             maxDeadLetters messages, discard old: dead letters are
//	             for an operator to read (ListDeadLetters, the gRPC
//	             DeliveryService.ListDeadLetters, postback.dead_letters on
//	             /metrics), and a flood of junk must never make taking a
//	             message off a work stream fail.
//
// and then terminated on its work stream (a work queue: terminating
// removes it). The copy is published first, with the message's stream and
// sequence as its dedupe id, so a crash between the two leaves the message
// to be dead-lettered again, and the second copy is dropped by the server.
//
// The failure policy of the tries: a message that is poison by its content
// (PoisonError) is dead-lettered at once, since a retry reads the same
// bytes; a handler that panics is given the message again (NakWithDelay,
// backing off) up to PoisonTries deliveries, then it is dead-lettered. Every
// other failure is a dependency that is down or slow (NATS, Redis) and is
// retried without a bound: those messages are work waiting, not poison.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// DeadLettersStream holds the dead letters.
const DeadLettersStream = "DEADLETTERS"

// PoisonTries is how many deliveries a message whose handler panics gets
// before it is dead-lettered.
const PoisonTries = 5

const maxDeadLetters = 100_000

// Headers of a dead letter (its body is the message's, byte for byte).
const (
	DeadReasonHeader   = "Postback-Dead-Reason"
	DeadSubjectHeader  = "Postback-Dead-Subject"
	DeadStreamHeader   = "Postback-Dead-Stream"
	DeadSequenceHeader = "Postback-Dead-Sequence"
	DeadTriesHeader    = "Postback-Dead-Tries"
)

// MetricDeadLetters counts dead-lettered messages by consumer.
const MetricDeadLetters = "postback.dead_letters"

// DeadLetterSubject is where the dead letters of a consumer go.
func DeadLetterSubject(consumer string) string { return "deadletter." + consumer }

// PoisonError says a message can never be processed, whatever is retried.
type PoisonError struct{ Reason string }

func (e *PoisonError) Error() string { return e.Reason }

// Poison is a PoisonError with a formatted reason.
func Poison(format string, args ...any) error {
	return &PoisonError{Reason: fmt.Sprintf(format, args...)}
}

// IsPoison reports whether err says its message can never be processed.
func IsPoison(err error) bool {
	var p *PoisonError
	return errors.As(err, &p)
}

// DeadLetter is one dead-lettered message as an operator reads it.
type DeadLetter struct {
	Sequence uint64 // in DEADLETTERS
	Consumer string
	Subject  string // where the message was published
	Reason   string
	Tries    int
	Time     time.Time // when it was dead-lettered
	Data     []byte
}

// DeadLetters moves messages to the dead-letter stream for one consumer.
type DeadLetters struct {
	js       jetstream.JetStream
	log      *slog.Logger
	consumer string
	count    metric.Int64Counter
	attrs    metric.AddOption
}

// NewDeadLetters returns the dead-letter box of a consumer, logging to log
// and counting on mp (nil: the global provider).
func NewDeadLetters(js jetstream.JetStream, consumer string, log *slog.Logger, mp metric.MeterProvider) (*DeadLetters, error) {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	count, err := mp.Meter(scope).Int64Counter(MetricDeadLetters, metric.WithUnit("{message}"),
		metric.WithDescription("Messages no service could process, moved to the DEADLETTERS stream."))
	if err != nil {
		return nil, err
	}
	d := &DeadLetters{js: js, log: log, consumer: consumer, count: count,
		attrs: metric.WithAttributeSet(attribute.NewSet(attribute.String("consumer", consumer)))}
	// At 0 from start-up, so the first dead letter after a restart shows
	// in increase() (docs/operations.md, "Zero series").
	count.Add(context.Background(), 0, d.attrs)
	return d, nil
}

// Move copies m with its reason to the dead-letter stream and terminates
// it on its work stream.
func (d *DeadLetters) Move(ctx context.Context, m jetstream.Msg, reason string) error {
	out := nats.NewMsg(DeadLetterSubject(d.consumer))
	out.Data = m.Data()
	out.Header.Set(DeadReasonHeader, reason)
	out.Header.Set(DeadSubjectHeader, m.Subject())
	if n := m.Headers().Get(GroupHeader); n != "" { // an event group: its count, to read it by
		out.Header.Set(GroupHeader, n)
	}
	if meta, err := m.Metadata(); err == nil {
		seq := strconv.FormatUint(meta.Sequence.Stream, 10)
		out.Header.Set(DeadStreamHeader, meta.Stream)
		out.Header.Set(DeadSequenceHeader, seq)
		out.Header.Set(DeadTriesHeader, strconv.FormatUint(meta.NumDelivered, 10))
		out.Header.Set(MsgIDHeader, DeadLetterID(meta.Stream, meta.Sequence.Stream))
	}
	if _, err := d.js.PublishMsg(ctx, out); err != nil {
		return fmt.Errorf("dead-letter a message from %s: %w", m.Subject(), err)
	}
	if err := m.Term(); err != nil {
		return fmt.Errorf("terminate a dead-lettered message from %s: %w", m.Subject(), err)
	}
	d.count.Add(ctx, 1, d.attrs)
	return nil
}

// Add puts data, which came on subject, in the dead letters with its
// reason, under msgID (so a second pass over the same thing adds nothing):
// for a part of a message that cannot be processed while the rest of it
// can, such as one change of a history batch the store refuses.
func (d *DeadLetters) Add(ctx context.Context, subject string, data []byte, msgID, reason string) error {
	out := nats.NewMsg(DeadLetterSubject(d.consumer))
	out.Data = data
	out.Header.Set(DeadReasonHeader, reason)
	out.Header.Set(DeadSubjectHeader, subject)
	out.Header.Set(MsgIDHeader, msgID)
	if _, err := d.js.PublishMsg(ctx, out); err != nil {
		return fmt.Errorf("dead-letter a part of a message from %s: %w", subject, err)
	}
	d.count.Add(ctx, 1, d.attrs)
	return nil
}

// Reject handles a message its handler could not process: poison (by its
// content) goes to the dead letters at once; anything else is given back to
// be tried again after retryAfter. A message that cannot be dead-lettered
// now is given back too, to be dead-lettered when it comes again.
func (d *DeadLetters) Reject(ctx context.Context, m jetstream.Msg, err error, retryAfter time.Duration) {
	if IsPoison(err) {
		merr := d.Move(ctx, m, err.Error())
		if merr == nil {
			d.log.WarnContext(ctx, "message dead-lettered", "consumer", d.consumer, "subject", m.Subject(), "reason", err.Error())
			return
		}
		d.log.ErrorContext(ctx, "dead-lettering failed; the message will come again", "subject", m.Subject(), "error", merr)
	}
	_ = m.NakWithDelay(retryAfter)
}

// Guard wraps a handler so that a panic does not end the process: the
// message is given back with a growing delay, and dead-lettered once it has
// been delivered PoisonTries times.
func (d *DeadLetters) Guard(h Handler) Handler {
	return func(ctx context.Context, m jetstream.Msg) {
		defer func() {
			r := recover()
			if r == nil {
				return
			}
			tries := uint64(1)
			if meta, err := m.Metadata(); err == nil {
				tries = meta.NumDelivered
			}
			d.log.ErrorContext(ctx, "handler panicked", "consumer", d.consumer, "subject", m.Subject(), "tries", tries, "panic", fmt.Sprint(r))
			if tries >= PoisonTries {
				d.Reject(ctx, m, Poison("the %s handler panicked on each of %d deliveries: %v", d.consumer, tries, r), time.Second)
				return
			}
			_ = m.NakWithDelay(time.Duration(1<<min(tries, 6)) * 100 * time.Millisecond)
		}()
		h(ctx, m)
	}
}

// ListDeadLetters returns up to limit dead letters after sequence after
// (0: from the oldest), of one consumer ("" = all), oldest first, and the
// sequence to pass next (0: no more).
func ListDeadLetters(ctx context.Context, js jetstream.JetStream, consumer string, after uint64, limit int) ([]DeadLetter, uint64, error) {
	st, err := js.Stream(ctx, DeadLettersStream)
	if err != nil {
		return nil, 0, fmt.Errorf("dead letters: %w", err)
	}
	filter := "deadletter.>"
	if consumer != "" {
		filter = DeadLetterSubject(consumer)
	}
	var out []DeadLetter
	seq := after + 1
	for len(out) < limit {
		raw, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out, 0, nil
		}
		if err != nil {
			return nil, 0, fmt.Errorf("dead letters: %w", err)
		}
		tries, _ := strconv.Atoi(raw.Header.Get(DeadTriesHeader))
		out = append(out, DeadLetter{
			Sequence: raw.Sequence, Consumer: raw.Subject[len("deadletter."):], Subject: raw.Header.Get(DeadSubjectHeader),
			Reason: raw.Header.Get(DeadReasonHeader), Tries: tries, Time: raw.Time, Data: raw.Data,
		})
		seq = raw.Sequence + 1
	}
	return out, seq - 1, nil
}
