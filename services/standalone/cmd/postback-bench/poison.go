package main

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The poison scenario: junk published straight onto the work subjects of
// every consumer (the renderer's events, the sender's first sends and
// retries, the retry service's failures) while a steady 200/s runs. No
// service can read a junk message, whatever it retries; what is measured is
// the steady traffic beside them, and then whether every junk message was
// set aside as a dead letter (stream DEADLETTERS, subjects deadletter.>,
// each with the subject it came from in its Postback-Dead-Subject header)
// rather than redelivered without end.
const (
	junkPerSubject = 100
	// deadLettersStream and deadSubjectHeader are pkg/stream's names for
	// them, written out: the bench reads the layout as an operator would,
	// and runs against binaries that may predate the stream.
	deadLettersStream = "DEADLETTERS"
	deadSubjectHeader = "Postback-Dead-Subject"
	deadStreamHeader  = "Postback-Dead-Stream"
	deadSeqHeader     = "Postback-Dead-Sequence"
	// deadLetterLimit bounds the wait for the dead letters after the
	// steady run.
	deadLetterLimit = 60 * time.Second
)

// junkDeliveryPrefix is the junk's first-send subjects but their last
// token (one subject per delivery, as first sends are queued).
const junkDeliveryPrefix = "deliveries.3.junk-acct.junk-ep.junk-dlv-"

// junkSubjects are the subjects of the i-th junk message of each kind.
func junkSubjects(i int) []string {
	return []string{"events.action_clearing", junkDeliveryPrefix + strconv.Itoa(i), "failed.3.junk-ep", "retries.3.junk-ep"}
}

// isJunk says whether subject is one the poison scenario put junk on.
func isJunk(subject string) bool {
	switch subject {
	case "events.action_clearing", "failed.3.junk-ep", "retries.3.junk-ep":
		return true
	}
	return strings.HasPrefix(subject, junkDeliveryPrefix)
}

// junk is random bytes after a zero byte: no JSON starts with it and no
// job does (a protobuf tag of field 0 is invalid), so no consumer can read
// the message, whatever the random rest of it is.
func junk() []byte {
	b := make([]byte, 1+64+rand.IntN(449))
	_, _ = crand.Read(b[1:])
	b[0] = 0
	return b
}

func (b *bench) poison(ctx context.Context, name string) (Result, error) {
	if b.natsURL == "" {
		return Result{}, &skipError{reason: "the URL of the deployment's NATS server is not known"}
	}
	js, closeNATS, err := b.jetStream("postback-bench-poison")
	if err != nil {
		return Result{}, err
	}
	defer closeNATS()
	type junkOutcome struct {
		stored int
		err    error // the first failed publish
	}
	published := make(chan junkOutcome, 1)
	go func() {
		// Into the steady run, as noisy-intake's backlog: the junk arrives
		// while the steady traffic flows.
		select {
		case <-ctx.Done():
			published <- junkOutcome{err: ctx.Err()}
			return
		case <-time.After(min(2*time.Second, b.steady/2)):
		}
		stored, err := b.publishJunk(ctx, js)
		progress("%s: %d junk messages stored, %d on each of %s", name, stored, junkPerSubject,
			strings.Join(junkSubjectNames(), ", "))
		published <- junkOutcome{stored, err}
	}()
	r, err := b.steadyRun(ctx, name, "poison-steady", 200, nil)
	j := <-published
	if err != nil {
		return r, err
	}
	want := 4 * junkPerSubject
	junkNote := fmt.Sprintf("%d of %d junk messages stored", j.stored, want)
	if j.err != nil {
		junkNote += fmt.Sprintf(" (first failure: %v)", j.err)
	}
	progress("%s: waiting up to %s for %d dead letters of the junk", name, deadLetterLimit, j.stored)
	r.Note = joinNotes(r.Note, junkNote, b.deadLetters(ctx, name, js, j.stored))
	return r, nil
}

// junkSubjectNames are the junk's subjects as the notes name them.
func junkSubjectNames() []string {
	s := junkSubjects(0)
	s[1] = junkDeliveryPrefix + "<i>"
	return s
}

// publishJunk stores junkPerSubject junk messages on each junk subject
// through JetStream (so each is in its work stream once it returns), each
// with a Nats-Msg-Id of its own so none is dropped as a duplicate, and
// returns how many were stored.
func (b *bench) publishJunk(ctx context.Context, js jetstream.JetStream) (int, error) {
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	stored := 0
	var first error
	for i := range junkPerSubject {
		for k, subject := range junkSubjects(i) {
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := js.PublishMsg(pctx, &nats.Msg{Subject: subject, Data: junk()},
				jetstream.WithMsgID(fmt.Sprintf("bench-junk-%s-%d-%d", run, k, i)))
			cancel()
			if err != nil {
				if first == nil {
					first = fmt.Errorf("%s: %w", subject, err)
				}
				continue
			}
			stored++
		}
	}
	return stored, first
}

// deadLetters waits (up to deadLetterLimit) until DEADLETTERS holds want
// dead letters of the junk, reading it by sequence, and describes them by
// the first token of the subject each came from. A missing stream is a
// figure (0), not a failure of the bench.
func (b *bench) deadLetters(ctx context.Context, name string, js jetstream.JetStream, want int) string {
	ctx, cancel := context.WithTimeout(ctx, deadLetterLimit)
	defer cancel()
	began := time.Now()
	s, err := js.Stream(ctx, deadLettersStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		progress("warning: %s: no %s stream: 0 dead letters", name, deadLettersStream)
		return fmt.Sprintf("dead letters: 0 (no %s stream)", deadLettersStream)
	}
	if err != nil {
		return fmt.Sprintf("dead letters: %s not read: %v", deadLettersStream, err)
	}
	byPrefix := map[string]int{}
	seen := map[string]bool{} // the junk message's stream and sequence
	var junkDead, other, twice int
	var readErr error
	next := uint64(1)
	for junkDead < want && ctx.Err() == nil && readErr == nil {
		info, err := s.Info(ctx)
		if err != nil {
			readErr = err
			break
		}
		for next = max(next, info.State.FirstSeq); next <= info.State.LastSeq && ctx.Err() == nil; next++ {
			m, err := s.GetMsg(ctx, next)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue // aged out or deleted
			}
			if err != nil {
				readErr = err
				break
			}
			subject := m.Header.Get(deadSubjectHeader)
			if !isJunk(subject) {
				other++
				continue
			}
			if stream, seq := m.Header.Get(deadStreamHeader), m.Header.Get(deadSeqHeader); stream != "" && seq != "" {
				if seen[stream+":"+seq] {
					twice++
					continue
				}
				seen[stream+":"+seq] = true
			}
			prefix, _, _ := strings.Cut(subject, ".")
			byPrefix[prefix]++
			junkDead++
		}
		if junkDead < want && readErr == nil {
			select {
			case <-ctx.Done():
			case <-time.After(250 * time.Millisecond):
			}
		}
	}
	var parts []string
	for _, subject := range junkSubjects(0) {
		prefix, _, _ := strings.Cut(subject, ".")
		parts = append(parts, fmt.Sprintf("%s %d", prefix, byPrefix[prefix]))
	}
	note := fmt.Sprintf("dead letters of the junk: %d of %d after %s (%s); %d other dead letters, %d of the junk twice",
		junkDead, want, time.Since(began).Round(10*time.Millisecond), strings.Join(parts, ", "), other, twice)
	if readErr != nil {
		note += fmt.Sprintf("; reading %s failed: %v", deadLettersStream, readErr)
	}
	progress("%s: %s", name, note)
	return note
}
