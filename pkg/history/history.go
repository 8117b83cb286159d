// Package history is the delivery history: the latest state of every
// delivery and every attempt sent for it, kept for the retention period and
// read by the delivery log (ListDeliveries, GetDelivery, ListAttempts),
// replay and endpoint health.
//
// The hot state of a delivery in flight (its claim, its compare-and-set
// revision) lives in NATS KV; this store is where a delivery's life is told
// once it has happened. It is written only by the history writer, which
// takes Entries from the HISTORY stream in batches, so:
//
//   - Append is idempotent. A delivery's row takes an Entry only when the
//     Entry's Version is at least the row's (a redelivered or late Entry is
//     a no-op, never a step back); an attempt is keyed by delivery id and
//     attempt number, and a second copy of it is dropped.
//   - Rows are placed by the delivery's creation time, and retention drops
//     whole days (a PostgreSQL partition, an SQLite day table), never row by
//     row: Expire costs the same for a thousand rows as for a billion.
//   - Lists are newest first by (create time, id), paged with an opaque
//     keyset cursor: a page costs the same on the first page as on the
//     hundredth, and rows written while a reader pages never shift it.
//
// Two backends pass the conformance suite in historytest: postgres (for
// production) and sqlite (the embedded default, no server).
package history

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// ErrNotFound is returned by Get for a delivery the store does not hold.
var ErrNotFound = errors.New("delivery not in the history")

// ErrBadCursor is returned by List for a cursor it did not hand out.
var ErrBadCursor = errors.New("malformed page cursor")

// ErrRefused marks an Append error caused by what the entries hold, not by
// the store's state (a value it cannot encode or a column cannot take):
// the same entries fail the same way however often they are tried. The
// writer then stores the batch in halves, and sets aside the one entry
// refused on its own, so one bad change never holds up the history.
var ErrRefused = errors.New("the history store refuses this entry")

// Refused marks err as ErrRefused (errors.Is), keeping its message.
func Refused(err error) error { return refusedError{err} }

type refusedError struct{ err error }

func (e refusedError) Error() string   { return e.err.Error() }
func (e refusedError) Unwrap() []error { return []error{e.err, ErrRefused} }

// Entry is one change in a delivery's life, as the writer hands it to the
// store: the delivery's state after the change, and the attempt the change
// recorded, if any.
type Entry struct {
	// Delivery is the whole state after the change. Its id, account,
	// endpoint, event, type and create time never change between Entries
	// of one delivery.
	Delivery *postbackv1.Delivery
	// Attempt is the attempt this change recorded (nil: none, as for a
	// deferral or a cancellation). Attempts are kept by number: the first
	// copy of (delivery id, number) stays.
	Attempt *postbackv1.Attempt
	// Job is the rendered request, opaque to the store (the stream's job
	// encoding), kept so that a delivery can be sent again after its hot
	// state is gone. Nil keeps the Job the row already holds.
	Job []byte
	// Version orders the Entries of one delivery: the row takes an Entry
	// only if its Version is not lower than the row's.
	Version int64
}

// Row is a stored delivery.
type Row struct {
	Delivery *postbackv1.Delivery
	Job      []byte // nil when the delivery never rendered
	Version  int64
}

// Query selects deliveries for List. Zero fields do not filter.
type Query struct {
	AccountID  string // "" = every account (an operator's view)
	EndpointID string
	EventID    string
	// Statuses keeps deliveries in any of these statuses (empty = any).
	Statuses []postbackv1.DeliveryStatus
	// Start and End bound the create time to [Start, End).
	Start, End time.Time
	// Limit is the page size (at least 1).
	Limit int
	// Cursor continues from a previous Page.Next ("" = the first page).
	Cursor string
}

// Page is one page of deliveries, newest first.
type Page struct {
	Deliveries []*postbackv1.Delivery
	// Next is the cursor of the following page; "" when this is the last.
	Next string
}

// Store is a delivery history backend.
type Store interface {
	// Append applies entries, idempotently (see Entry). All of them are
	// applied or, on error, none need be: the caller retries the batch,
	// or splits it when the error is ErrRefused.
	Append(ctx context.Context, entries []Entry) error
	// Get returns a delivery by id, or ErrNotFound.
	Get(ctx context.Context, id string) (*Row, error)
	// List returns a page of deliveries, newest first by (create time, id).
	List(ctx context.Context, q Query) (*Page, error)
	// Attempts returns a delivery's attempts, oldest first (by number).
	Attempts(ctx context.Context, deliveryID string) ([]*postbackv1.Attempt, error)
	// Counts returns, for an endpoint's deliveries created in [start, end),
	// how many are in each status now (statuses with none are absent).
	Counts(ctx context.Context, endpointID string, start, end time.Time) (map[postbackv1.DeliveryStatus]int64, error)
	// Expire drops every whole day (UTC) that ended at or before before,
	// deliveries and attempts together, and returns how many days it
	// dropped.
	Expire(ctx context.Context, before time.Time) (int, error)
	// Close releases the store.
	Close() error
}

// Cursor is the keyset position of a page boundary: the last delivery a
// page returned. Backends encode it with EncodeCursor and read it back with
// DecodeCursor, so a cursor is opaque to callers and the same in both.
type Cursor struct {
	Created time.Time // the delivery's create time (microseconds)
	ID      string
}

const cursorVersion = 1

// EncodeCursor makes the opaque form of c.
func EncodeCursor(c Cursor) string {
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(c.ID))
	b = append(b, cursorVersion)
	b = binary.AppendVarint(b, c.Created.UnixMicro())
	b = append(b, c.ID...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeCursor reads a cursor EncodeCursor made, or fails with ErrBadCursor.
func DecodeCursor(s string) (Cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < 2 || b[0] != cursorVersion {
		return Cursor{}, fmt.Errorf("%w %q", ErrBadCursor, s)
	}
	us, n := binary.Varint(b[1:])
	if n <= 0 || len(b[1+n:]) == 0 {
		return Cursor{}, fmt.Errorf("%w %q", ErrBadCursor, s)
	}
	return Cursor{Created: time.UnixMicro(us).UTC(), ID: string(b[1+n:])}, nil
}

// Day is the UTC day a create time falls in: the unit rows are placed and
// dropped by.
func Day(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}
