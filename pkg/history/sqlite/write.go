package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/postback-dev/postback/pkg/history"
)

// dayStmts are the write statements of one day, prepared on the writer's
// connection once and reused by every batch (tx.Stmt rebinds them).
type dayStmts struct {
	upsert, attempt *sql.Stmt
}

func (d *dayStmts) close() {
	if d.upsert != nil {
		_ = d.upsert.Close()
	}
	if d.attempt != nil {
		_ = d.attempt.Close()
	}
}

// row is an Entry made ready to write, outside the write lock.
type row struct {
	day                          string
	created                      int64
	id, account, endpoint, event string
	status                       int32
	version                      int64
	delivery, job                []byte
	attemptNumber                int32
	attempt                      []byte // nil: no attempt
}

// prepare encodes the entries.
func prepare(entries []history.Entry) ([]row, error) {
	rows := make([]row, len(entries))
	for i, e := range entries {
		d := e.Delivery
		switch {
		case d == nil:
			return nil, fmt.Errorf("entry %d has no delivery", i)
		case d.Id == "":
			return nil, fmt.Errorf("entry %d: delivery has no id", i)
		case !d.CreateTime.IsValid():
			return nil, fmt.Errorf("entry %d: delivery %s has no valid create time", i, d.Id)
		}
		created := d.CreateTime.AsTime()
		b, err := proto.Marshal(d)
		if err != nil {
			return nil, fmt.Errorf("entry %d: encode delivery %s: %w", i, d.Id, err)
		}
		r := row{
			day: dayKey(created), created: created.UnixMicro(),
			id: d.Id, account: d.AccountId, endpoint: d.EndpointId, event: d.EventId,
			status: int32(d.Status), version: e.Version, delivery: b, job: e.Job,
		}
		if a := e.Attempt; a != nil {
			// The attempt is the entry's delivery's, whatever its own
			// DeliveryId says: it is kept where its delivery is.
			if r.attempt, err = proto.Marshal(a); err != nil {
				return nil, fmt.Errorf("entry %d: encode attempt %d of %s: %w", i, a.Number, d.Id, err)
			}
			r.attemptNumber = a.Number
		}
		rows[i] = r
	}
	return rows, nil
}

// Append applies entries in one transaction (see history.Store).
func (s *Store) Append(ctx context.Context, entries []history.Entry) error {
	if len(entries) == 0 {
		return nil
	}
	rows, err := prepare(entries)
	if err != nil {
		return fmt.Errorf("history append: %w", err)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return errors.New("history append: store closed")
	}
	if err := s.ensureDays(ctx, rows); err != nil {
		return fmt.Errorf("history append: %w", err)
	}
	if err := s.appendRows(ctx, rows); err != nil {
		return fmt.Errorf("history append: %w", err)
	}
	return nil
}

// ensureDays creates the tables of the rows' days that do not exist, in a
// transaction of their own, and prepares the write statements of every day
// the rows touch. Called under wmu.
func (s *Store) ensureDays(ctx context.Context, rows []row) error {
	var missing []string
	seen := map[string]bool{}
	for i := range rows {
		d := rows[i].day
		if !seen[d] && !s.known[d] {
			missing = append(missing, d)
		}
		seen[d] = true
	}
	if len(missing) > 0 {
		tx, err := s.w.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("create day tables: %w", err)
		}
		for _, d := range missing {
			for _, q := range dayDDL(d) {
				if _, err := tx.ExecContext(ctx, q); err != nil {
					_ = tx.Rollback()
					return fmt.Errorf("create tables of %s: %w", d, err)
				}
			}
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("create day tables: %w", err)
		}
		for _, d := range missing {
			s.known[d] = true
		}
		s.publishDays()
	}
	for d := range seen {
		if s.stmts[d] != nil {
			continue
		}
		st, err := s.prepareDay(ctx, d)
		if err != nil {
			return err
		}
		s.stmts[d] = st
	}
	return nil
}

// prepareDay prepares the write statements of a day on the writer.
func (s *Store) prepareDay(ctx context.Context, day string) (*dayStmts, error) {
	d, a := deliveriesTable(day), attemptsTable(day)
	st := &dayStmts{}
	var err error
	st.upsert, err = s.w.PrepareContext(ctx, `INSERT INTO `+d+`
		(id, created, account_id, endpoint_id, event_id, status, version, delivery, job)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET
			status = excluded.status, version = excluded.version, delivery = excluded.delivery,
			job = COALESCE(excluded.job, `+d+`.job)
		WHERE excluded.version >= `+d+`.version`)
	if err != nil {
		return nil, fmt.Errorf("prepare upsert of %s: %w", day, err)
	}
	st.attempt, err = s.w.PrepareContext(ctx, `INSERT INTO `+a+` (delivery_id, number, attempt)
		VALUES (?, ?, ?) ON CONFLICT DO NOTHING`)
	if err != nil {
		st.close()
		return nil, fmt.Errorf("prepare attempt insert of %s: %w", day, err)
	}
	return st, nil
}

// appendRows writes the rows in one transaction, in order (so that of two
// entries of one delivery in a batch the higher version wins either way).
func (s *Store) appendRows(ctx context.Context, rows []row) (err error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	bound := map[string]*dayStmts{}
	for i := range rows {
		r := &rows[i]
		st := bound[r.day]
		if st == nil {
			c := s.stmts[r.day]
			st = &dayStmts{upsert: tx.StmtContext(ctx, c.upsert), attempt: tx.StmtContext(ctx, c.attempt)}
			bound[r.day] = st
		}
		var job any
		if r.job != nil {
			job = r.job
		}
		if _, err := st.upsert.ExecContext(ctx, r.id, r.created, r.account, r.endpoint, r.event,
			r.status, r.version, r.delivery, job); err != nil {
			return fmt.Errorf("delivery %s: %w", r.id, err)
		}
		if r.attempt != nil {
			if _, err := st.attempt.ExecContext(ctx, r.id, r.attemptNumber, r.attempt); err != nil {
				return fmt.Errorf("attempt %d of %s: %w", r.attemptNumber, r.id, err)
			}
		}
	}
	return tx.Commit()
}

// Expire drops every day that ended at or before before (see
// history.Store).
func (s *Store) Expire(ctx context.Context, before time.Time) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return 0, errors.New("history expire: store closed")
	}
	var drop []string
	for d := range s.known {
		start, _ := parseDayKey(d)
		if !start.Add(24 * time.Hour).After(before) {
			drop = append(drop, d)
		}
	}
	if len(drop) == 0 {
		return 0, nil
	}
	// The day's statements go first: a prepared statement on a dropped
	// table is of no use, and the next Append of the day prepares anew.
	for _, d := range drop {
		if st := s.stmts[d]; st != nil {
			st.close()
			delete(s.stmts, d)
		}
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("history expire: %w", err)
	}
	for _, d := range drop {
		for _, t := range []string{deliveriesTable(d), attemptsTable(d)} {
			if _, err := tx.ExecContext(ctx, "DROP TABLE IF EXISTS "+t); err != nil {
				_ = tx.Rollback()
				return 0, fmt.Errorf("history expire: drop %s: %w", t, err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("history expire: %w", err)
	}
	for _, d := range drop {
		delete(s.known, d)
	}
	s.publishDays()
	for _, d := range drop {
		s.rstmts.dropDay(d)
	}
	return len(drop), nil
}
