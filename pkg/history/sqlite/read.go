package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/postback-dev/postback/pkg/history"
	"github.com/postback-dev/postback/pkg/id"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

const dayMicros = int64(24 * time.Hour / time.Microsecond)

// ceilMicro is the first whole microsecond at or after t: created >= t and
// created < t hold for a microsecond created exactly when they hold against
// ceilMicro(t).
func ceilMicro(t time.Time) int64 {
	us := t.UnixMicro() // floors
	if t.After(time.UnixMicro(us)) {
		us++
	}
	return us
}

// bounds is a create-time window in microseconds: lo <= created, and
// (created, id) < (hi, hiID), where hiID "" makes it created < hi (no id
// is below "").
type bounds struct {
	lo, hi int64
	hiID   string
}

// holds reports whether the day starting at start (microseconds) may hold
// rows in b.
func (b bounds) holds(start int64) bool {
	return start <= b.hi && start+dayMicros > b.lo
}

// window is the bounds of [start, end), zero times unbounded.
func window(start, end time.Time) bounds {
	b := bounds{lo: math.MinInt64, hi: math.MaxInt64}
	if !start.IsZero() {
		b.lo = ceilMicro(start)
	}
	if !end.IsZero() {
		b.hi = ceilMicro(end)
	}
	return b
}

// daysIn is the days that may hold rows in b, newest first, with the
// microsecond their day starts.
func (s *Store) daysIn(b bounds) []string {
	all := s.dayList()
	var out []string
	for i := len(all) - 1; i >= 0; i-- {
		t, _ := parseDayKey(all[i])
		if b.holds(t.UnixMicro()) {
			out = append(out, all[i])
		}
	}
	return out
}

// List returns a page of deliveries (see history.Store).
func (s *Store) List(ctx context.Context, q history.Query) (*history.Page, error) {
	if err := s.fresh(ctx); err != nil {
		return nil, err
	}
	if q.Limit < 1 {
		return nil, fmt.Errorf("history list: limit %d, want at least 1", q.Limit)
	}
	b := window(q.Start, q.End)
	if q.Cursor != "" {
		c, err := history.DecodeCursor(q.Cursor)
		if err != nil {
			return nil, fmt.Errorf("history list: %w", err)
		}
		// The stricter upper bound of the two is the only one the scan
		// needs: a cursor at or past End leaves created < End.
		if us := c.Created.UnixMicro(); us < b.hi {
			b.hi, b.hiID = us, c.ID
		}
	}
	statuses := dedupe(q.Statuses)
	var out []*postbackv1.Delivery
	var last struct {
		created int64
		id      string
	}
	want := q.Limit + 1 // one more than the page says whether there is a next
	for _, day := range s.daysIn(b) {
		query, args := listSQL(day, q, statuses, b, want-len(out))
		rows, done, err := s.query(ctx, day, query, args...)
		if isNoSuchTable(err) {
			continue // expired under us
		}
		if err != nil {
			return nil, fmt.Errorf("history list %s: %w", day, err)
		}
		err = func() error {
			defer done()
			defer rows.Close()
			for rows.Next() {
				var created int64
				var id string
				var blob []byte
				if err := rows.Scan(&created, &id, &blob); err != nil {
					return err
				}
				if len(out) == q.Limit {
					out = append(out, nil) // the one more: not returned
					return nil
				}
				d := &postbackv1.Delivery{}
				if err := proto.Unmarshal(blob, d); err != nil {
					return fmt.Errorf("decode delivery %s: %w", id, err)
				}
				out = append(out, d)
				last.created, last.id = created, id
			}
			return rows.Err()
		}()
		if err != nil && !isNoSuchTable(err) {
			return nil, fmt.Errorf("history list %s: %w", day, err)
		}
		if len(out) == want {
			break
		}
	}
	page := &history.Page{Deliveries: out}
	if len(out) == want {
		page.Deliveries = out[:q.Limit]
		page.Next = history.EncodeCursor(history.Cursor{Created: time.UnixMicro(last.created).UTC(), ID: last.id})
	}
	return page, nil
}

func dedupe(st []postbackv1.DeliveryStatus) []postbackv1.DeliveryStatus {
	if len(st) < 2 {
		return st
	}
	st = slices.Clone(st)
	slices.Sort(st)
	return slices.Compact(st)
}

// listSQL is the keyset query of one day. It names the index that serves
// the query's shape, so that the plan never depends on the planner's
// guesses: a list by endpoint or account with statuses is one ordered range
// per status, merged (each branch stops at limit rows); the others are one
// ordered range, filtered.
func listSQL(day string, q history.Query, statuses []postbackv1.DeliveryStatus, b bounds, limit int) (string, []any) {
	t := deliveriesTable(day)
	var index string
	perStatus := false
	switch {
	case q.EventID != "":
		index = "_event"
	case q.EndpointID != "" && len(statuses) > 0:
		index, perStatus = "_endpoint_status", true
	case q.EndpointID != "":
		index = "_endpoint"
	case q.AccountID != "" && len(statuses) > 0:
		index, perStatus = "_account_status", true
	case q.AccountID != "":
		index = "_account"
	default:
		index = "_created"
	}
	var args []any
	cols := "created, id, delivery"
	branch := func(status []postbackv1.DeliveryStatus) string {
		var w strings.Builder
		w.WriteString("SELECT " + cols + " FROM " + t + " INDEXED BY " + t + index + " WHERE ")
		if q.AccountID != "" {
			w.WriteString("account_id = ? AND ")
			args = append(args, q.AccountID)
		}
		if q.EndpointID != "" {
			w.WriteString("endpoint_id = ? AND ")
			args = append(args, q.EndpointID)
		}
		if q.EventID != "" {
			w.WriteString("event_id = ? AND ")
			args = append(args, q.EventID)
		}
		switch len(status) {
		case 0:
		case 1:
			w.WriteString("status = ? AND ")
			args = append(args, int32(status[0]))
		default:
			w.WriteString("status IN (?" + strings.Repeat(", ?", len(status)-1) + ") AND ")
			for _, st := range status {
				args = append(args, int32(st))
			}
		}
		w.WriteString("created >= ? AND created <= ? AND (created < ? OR id < ?) ORDER BY created DESC, id DESC LIMIT ?")
		args = append(args, b.lo, b.hi, b.hi, b.hiID, limit)
		return w.String()
	}
	if !perStatus || len(statuses) == 1 {
		return branch(statuses), args
	}
	// The branches read the (covering) index only; the merged page's
	// deliveries are then read by rowid, limit of them, not limit per
	// status.
	cols = "created, id, rowid AS r"
	parts := make([]string, len(statuses))
	for i, st := range statuses {
		parts[i] = "SELECT created, id, r FROM (" + branch([]postbackv1.DeliveryStatus{st}) + ")"
	}
	args = append(args, limit)
	return "SELECT u.created, u.id, t.delivery FROM (" + strings.Join(parts, " UNION ALL ") +
		" ORDER BY created DESC, id DESC LIMIT ?) AS u CROSS JOIN " + t + " AS t ON t.rowid = u.r ORDER BY u.created DESC, u.id DESC", args
}

// idDay is the day the time in a Postback id (prefix_ and 26 characters
// of Crockford base32 whose first 10 carry the millisecond time) falls in,
// the first day to look for the delivery in.
func idDay(s string) (string, bool) {
	t, ok := id.Time(s)
	if !ok {
		return "", false
	}
	return dayKey(t), true
}

// probeOrder is the days to look for a delivery in: the day its id names
// first (its create time is that or close to it), then every other day,
// newest first.
func (s *Store) probeOrder(id string) []string {
	all := s.dayList()
	order := make([]string, 0, len(all))
	hint, ok := idDay(id)
	if ok {
		if _, found := slices.BinarySearch(all, hint); found {
			order = append(order, hint)
		} else {
			ok = false
		}
	}
	for i := len(all) - 1; i >= 0; i-- {
		if !ok || all[i] != hint {
			order = append(order, all[i])
		}
	}
	return order
}

// Get returns a delivery by id (see history.Store).
func (s *Store) Get(ctx context.Context, id string) (*history.Row, error) {
	if err := s.fresh(ctx); err != nil {
		return nil, err
	}
	for _, day := range s.probeOrder(id) {
		var blob, job []byte
		var version int64
		err := s.queryRow(ctx, day, "SELECT delivery, job, version FROM "+deliveriesTable(day)+" WHERE id = ?", []any{id},
			&blob, &job, &version)
		if errors.Is(err, sql.ErrNoRows) || isNoSuchTable(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("history get %s: %w", id, err)
		}
		d := &postbackv1.Delivery{}
		if err := proto.Unmarshal(blob, d); err != nil {
			return nil, fmt.Errorf("history get %s: decode: %w", id, err)
		}
		return &history.Row{Delivery: d, Job: job, Version: version}, nil
	}
	return nil, fmt.Errorf("history get %s: %w", id, history.ErrNotFound)
}

// Attempts returns a delivery's attempts, oldest first (see history.Store).
func (s *Store) Attempts(ctx context.Context, deliveryID string) ([]*postbackv1.Attempt, error) {
	if err := s.fresh(ctx); err != nil {
		return nil, err
	}
	for _, day := range s.probeOrder(deliveryID) {
		var one int
		err := s.queryRow(ctx, day, "SELECT 1 FROM "+deliveriesTable(day)+" WHERE id = ?", []any{deliveryID}, &one)
		if errors.Is(err, sql.ErrNoRows) || isNoSuchTable(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("history attempts of %s: %w", deliveryID, err)
		}
		ats, err := s.dayAttempts(ctx, day, deliveryID)
		if isNoSuchTable(err) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("history attempts of %s: %w", deliveryID, err)
		}
		return ats, nil
	}
	return nil, nil
}

func (s *Store) dayAttempts(ctx context.Context, day, deliveryID string) ([]*postbackv1.Attempt, error) {
	rows, done, err := s.query(ctx, day, "SELECT attempt FROM "+attemptsTable(day)+" WHERE delivery_id = ? ORDER BY number", deliveryID)
	if err != nil {
		return nil, err
	}
	defer done()
	defer rows.Close()
	var out []*postbackv1.Attempt
	for rows.Next() {
		var blob []byte
		if err := rows.Scan(&blob); err != nil {
			return nil, err
		}
		a := &postbackv1.Attempt{}
		if err := proto.Unmarshal(blob, a); err != nil {
			return nil, fmt.Errorf("decode attempt: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// Counts returns an endpoint's deliveries created in [start, end) by
// status (see history.Store); a zero start or end does not bound.
func (s *Store) Counts(ctx context.Context, endpointID string, start, end time.Time) (map[postbackv1.DeliveryStatus]int64, error) {
	if err := s.fresh(ctx); err != nil {
		return nil, err
	}
	b := window(start, end)
	out := map[postbackv1.DeliveryStatus]int64{}
	for _, day := range s.daysIn(b) {
		t := deliveriesTable(day)
		rows, done, err := s.query(ctx, day, "SELECT status, COUNT(*) FROM "+t+" INDEXED BY "+t+"_endpoint_status"+
			" WHERE endpoint_id = ? AND created >= ? AND created < ? GROUP BY status", endpointID, b.lo, b.hi)
		if isNoSuchTable(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("history counts %s: %w", day, err)
		}
		err = func() error {
			defer done()
			defer rows.Close()
			for rows.Next() {
				var st int32
				var n int64
				if err := rows.Scan(&st, &n); err != nil {
					return err
				}
				out[postbackv1.DeliveryStatus(st)] += n
			}
			return rows.Err()
		}()
		if err != nil && !isNoSuchTable(err) {
			return nil, fmt.Errorf("history counts %s: %w", day, err)
		}
	}
	return out, nil
}
