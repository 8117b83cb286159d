package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"modernc.org/sqlite"

	"github.com/postback-dev/postback/pkg/history"
)

// dayStmts are the write statements of one day, prepared on the writer's
// connection once and reused by every batch (tx.Stmt rebinds them): one row
// at a time, and rowsPerStatement rows at once (a batch is written mostly
// by the wide ones: one statement's set-up and cursors serve many rows).
type dayStmts struct {
	upsert, attempt   *sql.Stmt
	upsertN, attemptN *sql.Stmt
}

// rowsPerStatement is how many rows a wide statement writes (9 parameters a
// delivery row, well under SQLite's limit of 32766).
const rowsPerStatement = 32

func (d *dayStmts) close() {
	for _, st := range []*sql.Stmt{d.upsert, d.attempt, d.upsertN, d.attemptN} {
		if st != nil {
			_ = st.Close()
		}
	}
}

// row is a delivery row made ready to write, outside the write lock.
type row struct {
	day                          string
	created                      int64
	id, account, endpoint, event string
	status                       int32
	version                      int64
	delivery, job                []byte
}

// attemptRow is an attempt made ready to write.
type attemptRow struct {
	day     string
	id      string
	number  int32
	attempt []byte
}

// prepare encodes the entries: one row per delivery (the highest version,
// the later at equal version, as the upsert would leave it), one per
// (delivery, attempt number) (the first copy, as ON CONFLICT DO NOTHING
// would leave it), in the order they came.
func prepare(entries []history.Entry) ([]row, []attemptRow, error) {
	rows := make([]row, 0, len(entries))
	at := map[string]int{} // delivery id → index in rows
	var attempts []attemptRow
	seen := map[attemptKey]bool{}
	for i, e := range entries {
		d := e.Delivery
		switch {
		case d == nil:
			return nil, nil, fmt.Errorf("entry %d has no delivery", i)
		case d.Id == "":
			return nil, nil, fmt.Errorf("entry %d: delivery has no id", i)
		case !d.CreateTime.IsValid():
			return nil, nil, fmt.Errorf("entry %d: delivery %s has no valid create time", i, d.Id)
		}
		created := d.CreateTime.AsTime()
		day := dayKey(created)
		if a := e.Attempt; a != nil && !seen[attemptKey{d.Id, a.Number}] {
			// The attempt is the entry's delivery's, whatever its own
			// DeliveryId says: it is kept where its delivery is.
			b, err := proto.Marshal(a)
			if err != nil {
				return nil, nil, fmt.Errorf("entry %d: encode attempt %d of %s: %w", i, a.Number, d.Id, err)
			}
			seen[attemptKey{d.Id, a.Number}] = true
			attempts = append(attempts, attemptRow{day: day, id: d.Id, number: a.Number, attempt: b})
		}
		j, dup := at[d.Id]
		if dup && e.Version < rows[j].version {
			continue
		}
		b, err := proto.Marshal(d)
		if err != nil {
			return nil, nil, fmt.Errorf("entry %d: encode delivery %s: %w", i, d.Id, err)
		}
		r := row{
			day: day, created: created.UnixMicro(),
			id: d.Id, account: d.AccountId, endpoint: d.EndpointId, event: d.EventId,
			status: int32(d.Status), version: e.Version, delivery: b, job: e.Job,
		}
		if dup {
			if r.job == nil {
				r.job = rows[j].job // the upsert keeps a job the entry lacks
			}
			rows[j] = r
			continue
		}
		at[d.Id] = len(rows)
		rows = append(rows, r)
	}
	return rows, attempts, nil
}

type attemptKey struct {
	id     string
	number int32
}

// Append applies entries in one transaction (see history.Store).
func (s *Store) Append(ctx context.Context, entries []history.Entry) error {
	if len(entries) == 0 {
		return nil
	}
	rows, attempts, err := prepare(entries)
	if err != nil {
		return history.Refused(fmt.Errorf("history append: %w", err))
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return errors.New("history append: store closed")
	}
	if err := s.ensureDays(ctx, rows); err != nil {
		return fmt.Errorf("history append: %w", err)
	}
	if err := s.appendRows(ctx, rows, attempts); err != nil {
		if refusedByData(err) {
			return history.Refused(fmt.Errorf("history append: %w", err))
		}
		return fmt.Errorf("history append: %w", err)
	}
	return nil
}

// SQLite's primary result codes for what the values themselves cause.
const (
	sqliteTooBig     = 18
	sqliteConstraint = 19
	sqliteMismatch   = 20
)

// refusedByData reports an error that the rows' values caused, which the
// same rows meet again however often they are tried: a value too big, a
// constraint, a type mismatch. Busy, locked, I/O and full-disk errors are
// not.
func refusedByData(err error) bool {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Code() & 0xff { // the primary code of an extended one
	case sqliteTooBig, sqliteConstraint, sqliteMismatch:
		return true
	}
	return false
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
	upsert := func(n int) string {
		return `INSERT INTO ` + d + `
		(id, created, account_id, endpoint_id, event_id, status, version, delivery, job)
		VALUES ` + placeholders(n, 9) + `
		ON CONFLICT (id) DO UPDATE SET
			status = excluded.status, version = excluded.version, delivery = excluded.delivery,
			job = COALESCE(excluded.job, ` + d + `.job)
		WHERE excluded.version >= ` + d + `.version`
	}
	attempt := func(n int) string {
		return `INSERT INTO ` + a + ` (delivery_id, number, attempt) VALUES ` + placeholders(n, 3) + ` ON CONFLICT DO NOTHING`
	}
	st := &dayStmts{}
	for _, p := range []struct {
		to   **sql.Stmt
		text string
	}{
		{&st.upsert, upsert(1)}, {&st.upsertN, upsert(rowsPerStatement)},
		{&st.attempt, attempt(1)}, {&st.attemptN, attempt(rowsPerStatement)},
	} {
		var err error
		if *p.to, err = s.w.PrepareContext(ctx, p.text); err != nil {
			st.close()
			return nil, fmt.Errorf("prepare the writes of %s: %w", day, err)
		}
	}
	return st, nil
}

// placeholders is n groups of k parameters: (?, ?), (?, ?) for n=2, k=2.
func placeholders(n, k int) string {
	group := "(" + strings.TrimSuffix(strings.Repeat("?, ", k), ", ") + ")"
	return strings.TrimSuffix(strings.Repeat(group+", ", n), ", ")
}

// appendRows writes the rows and attempts in one transaction, each day's
// rowsPerStatement at a time (rows hold one per delivery, so no statement
// writes a row twice).
func (s *Store) appendRows(ctx context.Context, rows []row, attempts []attemptRow) (err error) {
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
	stmts := func(day string) *dayStmts {
		st := bound[day]
		if st == nil {
			c := s.stmts[day]
			st = &dayStmts{
				upsert: tx.StmtContext(ctx, c.upsert), upsertN: tx.StmtContext(ctx, c.upsertN),
				attempt: tx.StmtContext(ctx, c.attempt), attemptN: tx.StmtContext(ctx, c.attemptN),
			}
			bound[day] = st
		}
		return st
	}
	args := make([]any, 0, 9*rowsPerStatement)
	err = writeByDay(rows, func(r *row) string { return r.day }, func(day string, group []row) error {
		st := stmts(day)
		return writeGroup(ctx, group, st.upsert, st.upsertN, args, func(args []any, r *row) []any {
			var job any
			if r.job != nil {
				job = r.job
			}
			return append(args, r.id, r.created, r.account, r.endpoint, r.event, r.status, r.version, r.delivery, job)
		})
	})
	if err != nil {
		return fmt.Errorf("deliveries: %w", err)
	}
	err = writeByDay(attempts, func(a *attemptRow) string { return a.day }, func(day string, group []attemptRow) error {
		st := stmts(day)
		return writeGroup(ctx, group, st.attempt, st.attemptN, args, func(args []any, a *attemptRow) []any {
			return append(args, a.id, a.number, a.attempt)
		})
	})
	if err != nil {
		return fmt.Errorf("attempts: %w", err)
	}
	return tx.Commit()
}

// writeByDay calls write with each day's items, days in the order first
// seen, items in the order they came.
func writeByDay[T any](items []T, dayOf func(*T) string, write func(day string, group []T) error) error {
	byDay := map[string][]T{}
	var days []string
	for i := range items {
		d := dayOf(&items[i])
		if byDay[d] == nil {
			days = append(days, d)
		}
		byDay[d] = append(byDay[d], items[i])
	}
	for _, d := range days {
		if err := write(d, byDay[d]); err != nil {
			return fmt.Errorf("%s: %w", d, err)
		}
	}
	return nil
}

// writeGroup writes items rowsPerStatement at a time through wide and the
// rest one at a time through one; bind appends an item's parameters.
func writeGroup[T any](ctx context.Context, items []T, one, wide *sql.Stmt, args []any, bind func([]any, *T) []any) error {
	for len(items) > 0 {
		n, stmt := 1, one
		if len(items) >= rowsPerStatement {
			n, stmt = rowsPerStatement, wide
		}
		args = args[:0]
		for i := range items[:n] {
			args = bind(args, &items[i])
		}
		if _, err := stmt.ExecContext(ctx, args...); err != nil {
			return err
		}
		items = items[n:]
	}
	return nil
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
