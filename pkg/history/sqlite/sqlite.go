// Package sqlite is the embedded delivery history: a history.Store in one
// SQLite file, with no server, the default for standalone mode and single
// boxes.
//
// # Design
//
// Rows are placed by the UTC day of the delivery's create time
// (history.Day), one pair of tables per day: deliveries_YYYYMMDD (one row
// per delivery, its latest state) and attempts_YYYYMMDD (one row per
// attempt, keyed by delivery id and number). Retention (Expire) drops whole
// pairs: no per-row work and no dead rows to vacuum (SQLite walks the
// day's pages onto its free list, ~40 ms for a day of 33,000 deliveries),
// and the next days' rows reuse the freed pages, so the file stays at its
// high-water mark rather than shrinking. A pair is created on demand by
// the first Append that holds a delivery of its day (again after Expire
// dropped it). The set of days is read from sqlite_master at Open and kept
// in memory.
//
// A delivery row keeps the whole postbackv1.Delivery as protobuf (what Get
// and List return) beside the columns the lists filter on, with one index
// per list shape, each ordered newest first by (created, id), so that a
// page is a keyset range scan: the first page and the hundredth cost the
// same. List names the index of its shape (INDEXED BY), walks the days
// newest to oldest and stops once it holds a page and one row more (which
// says there is a next page); several statuses are one range per status,
// merged. Get and Attempts look in the day the id's time names first, then
// in every other day. Read statements are prepared once and kept (an LRU
// of a few hundred); write statements are kept per day.
//
// The file is in WAL mode with synchronous=NORMAL. Writes go through one
// connection (MaxOpenConns 1, BEGIN IMMEDIATE), serialized in the process
// by a mutex; reads use a pool of their own, query_only, so a reader never
// waits for a write batch (WAL readers see the last commit and take no
// lock a writer holds). Every connection gets its pragmas from the DSN;
// the page cache is bounded per connection (16 MiB for the writer, 8 MiB
// for each of 4 readers) and mmap is off, so memory does not grow with the
// file.
//
// # Failure policy
//
//   - Append applies a batch in one transaction: on any error nothing of
//     the batch is applied and the error is returned for the caller (the
//     history writer) to retry the batch; Append is idempotent, so a retry
//     or a redelivery is safe. The only thing that may outlive a failed
//     batch is an empty day pair it created (day tables are created in a
//     transaction of their own, before the batch), which is harmless.
//   - An Entry that cannot be stored at all (no delivery, no id, no valid
//     create time) fails the batch with an error that says which entry: it
//     is a bug in the writer, not a state to store.
//   - synchronous=NORMAL in WAL mode survives a crash of the process
//     whole; a power loss or an OS crash may lose the last transactions
//     committed (never corrupt the file). The writer has acked those
//     entries off the HISTORY stream by then, so they are lost from the
//     history: that is the trade for write throughput (synchronous=FULL,
//     an fsync per batch, would close it).
//   - Lock waits (another process holding the file) wait up to the busy
//     timeout (5 s), then fail with SQLITE_BUSY, returned as an error.
//   - A read that meets a day Expire dropped under it reads that day as
//     empty, never fails: the day is gone, as it would be a moment later.
//   - Errors are wrapped with the operation that failed ("history append:
//     …"); ErrNotFound and ErrBadCursor are the history package's.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/postback-dev/postback/pkg/history"
)

// schemaVersion is stored in PRAGMA user_version: a file written by a newer
// layout is refused rather than misread.
const schemaVersion = 1

// readConns is the size of the read pool.
const readConns = 4

// Pragmas every connection gets. cache_size is in KiB when negative: 16 MiB
// for the writer and 8 MiB per reader keep the process's RSS modest whatever
// the file's size; mmap is off, so the file is read through the page cache
// only. journal_size_limit truncates the WAL back to 64 MiB after a
// checkpoint that let it grow past that (a large batch).
const (
	commonPragmas = "_pragma=busy_timeout(5000)&_pragma=mmap_size(0)&_pragma=temp_store(MEMORY)"
	writePragmas  = commonPragmas + "&_pragma=page_size(" + pageSize + ")&_journal_mode=WAL&_pragma=synchronous(NORMAL)" +
		"&_pragma=cache_size(-16000)&_pragma=journal_size_limit(67108864)&_txlock=immediate"
	readPragmas = commonPragmas + "&_pragma=cache_size(-8000)&_pragma=query_only(1)"
)

const pageSize = "16384"

// Store is the SQLite history. It is safe for concurrent use.
type Store struct {
	w *sql.DB // one connection: every write
	r *sql.DB // the read pool

	// days is the sorted (oldest first) list of the days whose tables
	// exist, as day keys (YYYYMMDD). Readers load it; writers replace it
	// under wmu.
	days atomic.Pointer[[]string]

	wmu    sync.Mutex // serializes writes (Append, Expire) and guards below
	known  map[string]bool
	stmts  map[string]*dayStmts // prepared write statements by day
	closed bool

	rstmts *stmtCache // prepared read statements

	// schema is the file's schema_version when days was last read from
	// sqlite_master by a reader, so that a process that only reads (the
	// gateway, beside a history writer in another process) sees the days
	// the writer makes and drops.
	schema  atomic.Int64
	refresh sync.Mutex
}

var _ history.Store = (*Store)(nil)

// Open opens (creating it if need be) the history in the SQLite file at
// path. The file's directory must exist.
func Open(path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("history open: empty path")
	}
	uri := "file:" + escapePath(path)
	w, err := sql.Open("sqlite", uri+"?"+writePragmas)
	if err != nil {
		return nil, fmt.Errorf("history open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	s := &Store{w: w, known: map[string]bool{}, stmts: map[string]*dayStmts{}}
	ctx := context.Background()
	if err := s.init(ctx); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("history open %s: %w", path, err)
	}
	// The read pool opens after the writer made the file WAL.
	r, err := sql.Open("sqlite", uri+"?"+readPragmas)
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("history open %s: %w", path, err)
	}
	r.SetMaxOpenConns(readConns)
	r.SetMaxIdleConns(readConns)
	r.SetConnMaxLifetime(0)
	r.SetConnMaxIdleTime(0)
	if err := r.PingContext(ctx); err != nil {
		_ = r.Close()
		_ = w.Close()
		return nil, fmt.Errorf("history open %s: %w", path, err)
	}
	s.r, s.rstmts = r, newStmtCache(r)
	return s, nil
}

// escapePath makes path safe inside a file: URI (SQLite decodes %XX).
func escapePath(path string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
}

// init checks the layout version and loads the days.
func (s *Store) init(ctx context.Context) error {
	var mode string
	if err := s.w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return err
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal mode %q, want wal", mode)
	}
	var v int
	if err := s.w.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return err
	}
	switch {
	case v == 0:
		if _, err := s.w.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", schemaVersion)); err != nil {
			return err
		}
	case v > schemaVersion:
		return fmt.Errorf("file has history layout %d, this build reads up to %d", v, schemaVersion)
	}
	rows, err := s.w.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' AND (name LIKE 'deliveries\_%' ESCAPE '\' OR name LIKE 'attempts\_%' ESCAPE '\')`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return err
		}
		_, key, _ := strings.Cut(name, "_")
		if _, ok := parseDayKey(key); ok {
			s.known[key] = true
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	s.publishDays()
	return nil
}

// publishDays makes the readers' day list from known. Called under wmu (or
// before the store is shared).
func (s *Store) publishDays() {
	days := make([]string, 0, len(s.known))
	for d := range s.known {
		days = append(days, d)
	}
	slices.Sort(days)
	s.days.Store(&days)
}

// fresh brings the readers' day list up to date when another connection
// (another process's writer) changed the file's schema since it was read:
// one PRAGMA per read when nothing changed.
func (s *Store) fresh(ctx context.Context) error {
	var v int64
	if err := s.r.QueryRowContext(ctx, "PRAGMA schema_version").Scan(&v); err != nil {
		return fmt.Errorf("history read schema version: %w", err)
	}
	if v == s.schema.Load() {
		return nil
	}
	s.refresh.Lock()
	defer s.refresh.Unlock()
	if v == s.schema.Load() {
		return nil
	}
	rows, err := s.r.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'deliveries\_%' ESCAPE '\'`)
	if err != nil {
		return fmt.Errorf("history read days: %w", err)
	}
	defer rows.Close()
	var days []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return fmt.Errorf("history read days: %w", err)
		}
		if _, key, _ := strings.Cut(name, "_"); key != "" {
			if _, ok := parseDayKey(key); ok {
				days = append(days, key)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("history read days: %w", err)
	}
	slices.Sort(days)
	s.days.Store(&days)
	s.schema.Store(v)
	return nil
}

// dayList is the readers' snapshot of the days, oldest first.
func (s *Store) dayList() []string {
	if p := s.days.Load(); p != nil {
		return *p
	}
	return nil
}

// Close releases the store.
func (s *Store) Close() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	for d, st := range s.stmts {
		st.close()
		delete(s.stmts, d)
	}
	var errs []error
	if s.r != nil {
		s.rstmts.close()
		errs = append(errs, s.r.Close())
	}
	errs = append(errs, s.w.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("history close: %w", err)
	}
	return nil
}

// dayKey is the table suffix of the day t falls in (UTC): YYYYMMDD.
func dayKey(t time.Time) string {
	return history.Day(t).Format("20060102")
}

// parseDayKey reads a day key back to the start of its day.
func parseDayKey(k string) (time.Time, bool) {
	if len(k) != 8 {
		return time.Time{}, false
	}
	t, err := time.ParseInLocation("20060102", k, time.UTC)
	return t, err == nil
}

func deliveriesTable(day string) string { return "deliveries_" + day }
func attemptsTable(day string) string   { return "attempts_" + day }

// dayDDL is the schema of one day. The delivery table is a rowid table (its
// rows carry the whole delivery and job, too large for WITHOUT ROWID to pay
// off); its unique id index is the upsert's conflict target and Get's probe.
// Each list shape has an index ordered newest first by (created, id), with
// id in it so that the keyset bound is checked in the index.
func dayDDL(day string) []string {
	d, a := deliveriesTable(day), attemptsTable(day)
	return []string{
		`CREATE TABLE IF NOT EXISTS ` + d + ` (
			id          TEXT    NOT NULL PRIMARY KEY,
			created     INTEGER NOT NULL, -- Delivery.CreateTime, unix microseconds
			account_id  TEXT    NOT NULL,
			endpoint_id TEXT    NOT NULL,
			event_id    TEXT    NOT NULL,
			status      INTEGER NOT NULL,
			version     INTEGER NOT NULL,
			delivery    BLOB    NOT NULL, -- postbackv1.Delivery, protobuf
			job         BLOB              -- NULL: never rendered
		)`,
		`CREATE INDEX IF NOT EXISTS ` + d + `_created ON ` + d + ` (created DESC, id DESC)`,
		`CREATE INDEX IF NOT EXISTS ` + d + `_account ON ` + d + ` (account_id, created DESC, id DESC)`,
		`CREATE INDEX IF NOT EXISTS ` + d + `_account_status ON ` + d + ` (account_id, status, created DESC, id DESC)`,
		`CREATE INDEX IF NOT EXISTS ` + d + `_endpoint ON ` + d + ` (endpoint_id, created DESC, id DESC)`,
		`CREATE INDEX IF NOT EXISTS ` + d + `_endpoint_status ON ` + d + ` (endpoint_id, status, created DESC, id DESC)`,
		`CREATE INDEX IF NOT EXISTS ` + d + `_event ON ` + d + ` (event_id)`,
		`CREATE TABLE IF NOT EXISTS ` + a + ` (
			delivery_id TEXT    NOT NULL,
			number      INTEGER NOT NULL,
			attempt     BLOB    NOT NULL, -- postbackv1.Attempt, protobuf
			PRIMARY KEY (delivery_id, number)
		) WITHOUT ROWID`,
	}
}

// isNoSuchTable reports an error from a day table Expire dropped.
func isNoSuchTable(err error) bool {
	return err != nil && strings.Contains(err.Error(), "no such table")
}
