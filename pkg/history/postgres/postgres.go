// Package postgres is the PostgreSQL backend of the delivery history, for
// production: a history.Store on a pgx connection pool.
//
// # Design
//
// Two tables, deliveries and attempts, both partitioned by range of the
// delivery's create time, one partition per UTC day (history.Day), named
// deliveries_YYYYMMDD and attempts_YYYYMMDD. An attempt is placed by its
// delivery's create time, not its own, so a day's two partitions hold the
// same deliveries and retention drops them together: Expire drops whole
// partitions (DROP TABLE), never rows, so it costs the same for any number of
// rows and leaves nothing for VACUUM.
//
// A delivery row holds the whole protobuf of the delivery (returned by Get
// and List) beside the columns it is filtered by (account, endpoint, event,
// status), its version, and the job (nullable). Every list shape has an index
// of its equality columns followed by (created, id), declared on the parent
// and so built on every day; a List is one keyset query, newest first:
//
//	WHERE <filters> AND created <= $c AND (created, id) < ($c, $id)
//	ORDER BY created DESC, id DESC LIMIT limit+1
//
// which PostgreSQL runs as an ordered Append over the day partitions, newest
// first, each a backward index scan that stops at the page's end: a page
// costs about its own rows whether it is the first or the hundredth, and
// rows written meanwhile never shift it. The extra row says whether there is
// a next page. Several statuses are one such scan per status, merged (a
// LATERAL join over the statuses), so a rare status does not turn a page into
// a scan of the account. Get and Attempts know only the delivery id, so they
// probe the id index of every day (tens of small index probes).
//
// Partitions are made on demand: Append makes the day of every delivery in
// its batch, in a short transaction of its own before the batch's, under an
// advisory lock (CREATE TABLE IF NOT EXISTS ... PARTITION OF), so concurrent
// writers and replicas do not collide; the days known to exist are cached in
// the Store. Expire drops days under the same lock and forgets them; a day a
// writer still believed in is made again on its next batch (an insert that
// finds no partition clears the cache and is tried once more).
//
// Append is one transaction: the batch's deliveries, deduplicated by id
// (highest version, the later at equal version: one INSERT may not update a
// row twice), go in as arrays (unnest, so no limit on the batch from bind
// parameters) with ON CONFLICT (created, id) DO UPDATE ... WHERE the row's
// version is not higher, keeping the row's job when the entry has none; the
// attempts go in the same way with ON CONFLICT DO NOTHING, so the first copy
// of (delivery, number) stays. Rows are sent sorted by key, so concurrent
// batches lock shared rows in one order and do not deadlock.
//
// The schema is made by numbered migrations embedded from migrations/*.sql,
// recorded in schema_migrations and applied by Open in one transaction that
// holds a fixed advisory lock, so replicas starting together apply each
// migration once, the others waiting and then finding it done.
//
// # Failure policy
//
// The store never retries across an outage (its one retry is the made-again
// day above) and never logs: every method
// returns its error, wrapped with what it was doing ("history append: ..."),
// and the caller decides (the history writer retries its batch, which is
// safe: Append is idempotent and all-or-nothing). The pool replaces broken
// connections by itself, so once PostgreSQL is back the next call works
// (Open itself fails if PostgreSQL cannot be reached or migrated). A batch
// that failed may have made its day partitions; that is harmless. Making or
// dropping a partition locks its parent table, so it waits at most 5 s for
// queries in flight (later queries queue behind it) and then fails, to be
// retried. Errors never carry the connection URL, which may hold a password.
//
// Operations: a query that cannot prune by create time (Get, Attempts) locks
// every day's partition and the index it probes, so with a long retention
// the server's lock table (max_locks_per_transaction x max_connections) must
// hold a few hundred locks per concurrent query.
package postgres

import (
	"cmp"
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/proto"

	"github.com/postback-dev/postback/pkg/history"
	"github.com/postback-dev/postback/pkg/id"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Advisory lock keys (pg_advisory_xact_lock), fixed so every replica takes
// the same ones: "pbhist" followed by a number.
const (
	migrateLockKey   int64 = 0x706268697374_0001
	partitionLockKey int64 = 0x706268697374_0002
)

// ddlLockTimeout bounds how long making or dropping a partition waits for
// the parent table's lock (held a moment by every query); while it waits,
// later queries queue behind it, so it gives up early and the caller retries.
const ddlLockTimeout = "5s"

// Store is the PostgreSQL history store.
type Store struct {
	pool *pgxpool.Pool

	mu   sync.Mutex
	days map[time.Time]bool // day partitions known to exist

	// Statistics of the days being written (analyze.go): rows appended
	// to each day since it was last analyzed, and rows it had then.
	statsMu    sync.Mutex
	grown      map[time.Time]int64
	analyzed   map[time.Time]int64
	analyzing  bool
	unanalyzed []string        // partitions with no statistics, found at Open
	bg         context.Context // ends with Close: the background ANALYZE
	stopBg     context.CancelFunc
}

var _ history.Store = (*Store)(nil)

// Open connects to the database at url (a postgres:// URL or key=value
// string, as pgx takes it), applies the migrations it lacks, and returns the
// store. It fails when the database cannot be reached or migrated.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's message quotes the URL, redacting the password only on a
		// best-effort basis: say nothing of it.
		return nil, errors.New("history postgres: cannot parse the connection URL (not shown: it may hold a password)")
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("history postgres: %w", err)
	}
	s := &Store{pool: pool, days: map[time.Time]bool{}, grown: map[time.Time]int64{}, analyzed: map[time.Time]int64{}}
	s.bg, s.stopBg = context.WithCancel(context.Background())
	if err := s.migrate(ctx); err != nil {
		s.stopBg()
		pool.Close()
		return nil, fmt.Errorf("history postgres: %w", err)
	}
	s.analyzeUnanalyzed(ctx)
	return s, nil
}

// Close closes the pool.
func (s *Store) Close() error {
	s.stopBg()
	s.pool.Close()
	return nil
}

// migration is one embedded migrations/NNNN_name.sql.
type migration struct {
	version int
	name    string
	sql     string
}

func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, n := range names {
		base := path.Base(n)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name is not NNNN_name.sql", base)
		}
		b, err := migrationFiles.ReadFile(n)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: base, sql: string(b)})
	}
	slices.SortFunc(out, func(a, b migration) int { return cmp.Compare(a.version, b.version) })
	for i := 1; i < len(out); i++ {
		if out[i].version == out[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s share version %d", out[i-1].name, out[i].name, out[i].version)
		}
	}
	return out, nil
}

// migrate applies the migrations not yet recorded, in one transaction under
// the migration lock.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrateLockKey); err != nil {
			return fmt.Errorf("take the migration lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    integer PRIMARY KEY,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, "SELECT version FROM schema_migrations")
		if err != nil {
			return err
		}
		done, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			return err
		}
		for _, m := range ms {
			if slices.Contains(done, int32(m.version)) {
				continue
			}
			// No arguments: pgx sends it as a simple query, so a file may
			// hold several statements.
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("apply %s: %w", m.name, err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, now())", m.version); err != nil {
				return fmt.Errorf("record %s: %w", m.name, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// Partitions.

const dayLayout = "20060102"

func partitionName(table string, day time.Time) string { return table + "_" + day.Format(dayLayout) }

// ensureDays makes the day partitions of both tables that are not known to
// exist.
func (s *Store) ensureDays(ctx context.Context, days []time.Time) error {
	s.mu.Lock()
	var missing []time.Time
	for _, d := range days {
		if !s.days[d] {
			missing = append(missing, d)
		}
	}
	s.mu.Unlock()
	if len(missing) == 0 {
		return nil
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '"+ddlLockTimeout+"'"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", partitionLockKey); err != nil {
			return err
		}
		for _, d := range missing {
			from, to := d.Format(time.RFC3339), d.AddDate(0, 0, 1).Format(time.RFC3339)
			for _, table := range []string{"deliveries", "attempts"} {
				sql := fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s PARTITION OF %s FOR VALUES FROM ('%s') TO ('%s')",
					pgx.Identifier{partitionName(table, d)}.Sanitize(), table, from, to)
				if _, err := tx.Exec(ctx, sql); err != nil {
					return fmt.Errorf("make partition %s: %w", partitionName(table, d), err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	for _, d := range missing {
		s.days[d] = true
	}
	s.mu.Unlock()
	return nil
}

func (s *Store) forgetDays(days []time.Time) {
	s.mu.Lock()
	for _, d := range days {
		delete(s.days, d)
	}
	s.mu.Unlock()
}

// Append.

// batch is a batch of entries made ready for the INSERTs: columns as arrays,
// sorted by key.
type batch struct {
	days []time.Time

	created                        []time.Time
	ids, accounts, endpoints, evts []string
	statuses                       []int16
	versions                       []int64
	deliveries, jobs               [][]byte

	aCreated    []time.Time
	aDeliveries []string
	aNumbers    []int32
	attempts    [][]byte
}

type deliveryRow struct {
	created time.Time
	e       *history.Entry
}

type attemptRow struct {
	created time.Time
	id      string
	a       *postbackv1.Attempt
}

func makeBatch(entries []history.Entry) (*batch, error) {
	byID := make(map[string]deliveryRow, len(entries))
	type attemptKey struct {
		id string
		n  int32
	}
	attempts := map[attemptKey]attemptRow{}
	days := map[time.Time]bool{}
	for i := range entries {
		e := &entries[i]
		d := e.Delivery
		if d == nil || d.Id == "" {
			return nil, fmt.Errorf("entry %d has no delivery id", i)
		}
		if d.CreateTime == nil {
			return nil, fmt.Errorf("delivery %s has no create time", d.Id)
		}
		created := d.CreateTime.AsTime().Truncate(time.Microsecond).UTC()
		days[history.Day(created)] = true
		if prev, ok := byID[d.Id]; !ok || e.Version >= prev.e.Version {
			if ok && e.Job == nil && prev.e.Job != nil {
				// As the upserts one by one would leave it: the later
				// entry keeps the job the earlier one wrote.
				withJob := *e
				withJob.Job = prev.e.Job
				e = &withJob
			}
			byID[d.Id] = deliveryRow{created: created, e: e}
		}
		if a := e.Attempt; a != nil {
			k := attemptKey{d.Id, a.Number}
			if _, ok := attempts[k]; !ok { // the first copy stays
				attempts[k] = attemptRow{created: created, id: d.Id, a: a}
			}
		}
	}

	b := &batch{}
	for d := range days {
		b.days = append(b.days, d)
	}
	slices.SortFunc(b.days, time.Time.Compare)

	rows := make([]deliveryRow, 0, len(byID))
	for _, r := range byID {
		rows = append(rows, r)
	}
	slices.SortFunc(rows, func(x, y deliveryRow) int {
		return cmp.Or(x.created.Compare(y.created), cmp.Compare(x.e.Delivery.Id, y.e.Delivery.Id))
	})
	for _, r := range rows {
		d := r.e.Delivery
		pb, err := proto.Marshal(d)
		if err != nil {
			return nil, fmt.Errorf("encode delivery %s: %w", d.Id, err)
		}
		b.created = append(b.created, r.created)
		b.ids = append(b.ids, d.Id)
		b.accounts = append(b.accounts, d.AccountId)
		b.endpoints = append(b.endpoints, d.EndpointId)
		b.evts = append(b.evts, d.EventId)
		b.statuses = append(b.statuses, int16(d.Status))
		b.versions = append(b.versions, r.e.Version)
		b.deliveries = append(b.deliveries, pb)
		b.jobs = append(b.jobs, r.e.Job) // nil: NULL, the row's job stays
	}

	ats := make([]attemptRow, 0, len(attempts))
	for _, a := range attempts {
		ats = append(ats, a)
	}
	slices.SortFunc(ats, func(x, y attemptRow) int {
		return cmp.Or(x.created.Compare(y.created), cmp.Compare(x.id, y.id), cmp.Compare(x.a.Number, y.a.Number))
	})
	for _, a := range ats {
		pb, err := proto.Marshal(a.a)
		if err != nil {
			return nil, fmt.Errorf("encode attempt %d of %s: %w", a.a.Number, a.id, err)
		}
		b.aCreated = append(b.aCreated, a.created)
		b.aDeliveries = append(b.aDeliveries, a.id)
		b.aNumbers = append(b.aNumbers, a.a.Number)
		b.attempts = append(b.attempts, pb)
	}
	return b, nil
}

const insertDeliveries = `
INSERT INTO deliveries AS d (created, id, account_id, endpoint_id, event_id, status, version, delivery, job)
SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[], $6::smallint[], $7::bigint[], $8::bytea[], $9::bytea[])
ON CONFLICT (created, id) DO UPDATE SET
	account_id = excluded.account_id,
	endpoint_id = excluded.endpoint_id,
	event_id = excluded.event_id,
	status = excluded.status,
	version = excluded.version,
	delivery = excluded.delivery,
	job = COALESCE(excluded.job, d.job)
WHERE d.version <= excluded.version`

const insertAttempts = `
INSERT INTO attempts (created, delivery_id, number, attempt)
SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::integer[], $4::bytea[])
ON CONFLICT DO NOTHING`

// Append applies entries in one transaction (see history.Entry).
func (s *Store) Append(ctx context.Context, entries []history.Entry) error {
	if len(entries) == 0 {
		return nil
	}
	b, err := makeBatch(entries)
	if err != nil {
		return history.Refused(fmt.Errorf("history append: %w", err))
	}
	for try := 0; ; try++ {
		if err := s.ensureDays(ctx, b.days); err != nil {
			return fmt.Errorf("history append: %w", err)
		}
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, insertDeliveries, b.created, b.ids, b.accounts, b.endpoints, b.evts, b.statuses, b.versions, b.deliveries, b.jobs); err != nil {
				return fmt.Errorf("deliveries: %w", err)
			}
			if len(b.attempts) > 0 {
				if _, err := tx.Exec(ctx, insertAttempts, b.aCreated, b.aDeliveries, b.aNumbers, b.attempts); err != nil {
					return fmt.Errorf("attempts: %w", err)
				}
			}
			return nil
		})
		if err == nil {
			s.grew(b.created)
			return nil
		}
		if try == 0 && noPartition(err) {
			// A day was dropped (by another replica's Expire) after this
			// store cached it: make it again, once.
			s.forgetDays(b.days)
			continue
		}
		if refusedByData(err) {
			return history.Refused(fmt.Errorf("history append: %w", err))
		}
		return fmt.Errorf("history append: %w", err)
	}
}

// refusedByData reports an error that the rows' values caused, which the
// same rows meet again however often they are tried: a data exception
// (class 22: a NUL in text, a value out of range), an integrity constraint
// (class 23) other than a missing partition, or a program limit (class 54:
// a value too large). Connection, resource and lock errors are not.
func refusedByData(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || noPartition(err) {
		return false
	}
	switch pgErr.Code[:min(2, len(pgErr.Code))] {
	case "22", "23", "54":
		return true
	}
	return false
}

// noPartition reports an insert that found no partition for a row.
func noPartition(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23514" && strings.Contains(pgErr.Message, "no partition")
}

// Reads.

// eventSkew is how far before its event a delivery's create time may be
// (the renderer's clock behind the gateway's).
const eventSkew = time.Hour

// onIDDay is the condition and arguments that look for a delivery id on
// the day its id names, where it is created (the id carries its event's
// time): one partition instead of every day's. ok is false when the id
// names no day; callers look in every day when it finds nothing.
func onIDDay(deliveryID string) (cond string, args []any, ok bool) {
	t, ok := id.Time(deliveryID)
	if !ok {
		return "", nil, false
	}
	day := history.Day(t.Add(-eventSkew))
	return " AND created >= $2 AND created < $3", []any{deliveryID, day, history.Day(t).Add(48 * time.Hour)}, true
}

// Get returns a delivery by id: from the day its id names, else any day.
func (s *Store) Get(ctx context.Context, deliveryID string) (*history.Row, error) {
	var (
		pb, job []byte
		version int64
	)
	const get = "SELECT delivery, job, version FROM deliveries WHERE id = $1"
	err := pgx.ErrNoRows
	if cond, args, ok := onIDDay(deliveryID); ok {
		err = s.pool.QueryRow(ctx, get+cond+" LIMIT 1", args...).Scan(&pb, &job, &version)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		err = s.pool.QueryRow(ctx, get+" LIMIT 1", deliveryID).Scan(&pb, &job, &version)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("history get %s: %w", deliveryID, history.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("history get %s: %w", deliveryID, err)
	}
	d := &postbackv1.Delivery{}
	if err := proto.Unmarshal(pb, d); err != nil {
		return nil, fmt.Errorf("history get %s: decode: %w", deliveryID, err)
	}
	return &history.Row{Delivery: d, Job: job, Version: version}, nil
}

// List returns a page of deliveries, newest first.
func (s *Store) List(ctx context.Context, q history.Query) (*history.Page, error) {
	if q.Limit < 1 {
		return nil, fmt.Errorf("history list: limit %d, want at least 1", q.Limit)
	}
	var cursor *history.Cursor
	if q.Cursor != "" {
		c, err := history.DecodeCursor(q.Cursor)
		if err != nil {
			return nil, fmt.Errorf("history list: %w", err)
		}
		cursor = &c
	}
	sql, args := listQuery(q, cursor)
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("history list: %w", err)
	}
	type listed struct {
		created time.Time
		id      string
		pb      []byte
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (listed, error) {
		var l listed
		err := r.Scan(&l.created, &l.id, &l.pb)
		return l, err
	})
	if err != nil {
		return nil, fmt.Errorf("history list: %w", err)
	}
	page := &history.Page{}
	if len(got) > q.Limit {
		got = got[:q.Limit]
		last := got[len(got)-1]
		page.Next = history.EncodeCursor(history.Cursor{Created: last.created, ID: last.id})
	}
	page.Deliveries = make([]*postbackv1.Delivery, len(got))
	for i, l := range got {
		d := &postbackv1.Delivery{}
		if err := proto.Unmarshal(l.pb, d); err != nil {
			return nil, fmt.Errorf("history list: decode %s: %w", l.id, err)
		}
		page.Deliveries[i] = d
	}
	return page, nil
}

// listQuery builds the keyset query of q. The limit (a number we format) is
// written into the text rather than bound, so a cached generic plan knows it
// is small.
func listQuery(q history.Query, cursor *history.Cursor) (string, []any) {
	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if q.AccountID != "" {
		where = append(where, "account_id = "+arg(q.AccountID))
	}
	if q.EndpointID != "" {
		where = append(where, "endpoint_id = "+arg(q.EndpointID))
	}
	if q.EventID != "" {
		where = append(where, "event_id = "+arg(q.EventID))
		// An event's deliveries are made after it (its id says when it was
		// accepted; an hour allows for hosts' clocks): the days before are
		// pruned.
		if t, ok := id.Time(q.EventID); ok {
			where = append(where, "created >= "+arg(t.Add(-eventSkew)))
		}
	}
	if !q.Start.IsZero() {
		where = append(where, "created >= "+arg(ceilMicro(q.Start)))
	}
	if !q.End.IsZero() {
		where = append(where, "created < "+arg(ceilMicro(q.End)))
	}
	if cursor != nil {
		c, id := arg(cursor.Created), arg(cursor.ID)
		// created <= c is implied by the row comparison; said alone it
		// lets the newer days be pruned.
		where = append(where, "created <= "+c, "(created, id) < ("+c+", "+id+")")
	}
	statuses := uniqueStatuses(q.Statuses)
	limit := strconv.Itoa(q.Limit + 1)
	const order = " ORDER BY created DESC, id DESC LIMIT "
	switch len(statuses) {
	case 0:
	case 1:
		where = append(where, "status = "+arg(statuses[0]))
	default:
		// One ordered scan per status (each on an index ending in
		// status, created, id), merged: never more than limit+1 rows
		// read per status, however rare or common each one is. The
		// statuses are a VALUES list, one parameter each, not an array:
		// PostgreSQL then knows how many there are when it weighs a
		// cached generic plan, and takes one (planning this over every
		// day partition costs more than running it).
		values := make([]string, len(statuses))
		for i, st := range statuses {
			values[i] = "(" + arg(st) + "::smallint)"
		}
		where = append(where, "status = s.status")
		return "SELECT created, id, delivery FROM (VALUES " + strings.Join(values, ", ") + ") AS s(status) CROSS JOIN LATERAL (" +
			"SELECT created, id, delivery FROM deliveries WHERE " + strings.Join(where, " AND ") + order + limit +
			") AS d" + order + limit, args
	}
	sql := "SELECT created, id, delivery FROM deliveries"
	if len(where) > 0 {
		sql += " WHERE " + strings.Join(where, " AND ")
	}
	return sql + order + limit, args
}

func uniqueStatuses(in []postbackv1.DeliveryStatus) []int16 {
	out := make([]int16, 0, len(in))
	for _, s := range in {
		if !slices.Contains(out, int16(s)) {
			out = append(out, int16(s))
		}
	}
	slices.Sort(out)
	return out
}

// ceilMicro rounds t up to the microsecond: create times are whole
// microseconds, so created >= t (or < t) is created >= ceilMicro(t).
func ceilMicro(t time.Time) time.Time {
	if tr := t.Truncate(time.Microsecond); !tr.Equal(t) {
		return tr.Add(time.Microsecond)
	}
	return t
}

// Attempts returns a delivery's attempts, oldest first.
func (s *Store) Attempts(ctx context.Context, deliveryID string) ([]*postbackv1.Attempt, error) {
	const attempts = "SELECT attempt FROM attempts WHERE delivery_id = $1"
	var pbs [][]byte
	if cond, args, ok := onIDDay(deliveryID); ok {
		rows, err := s.pool.Query(ctx, attempts+cond+" ORDER BY number", args...)
		if err != nil {
			return nil, fmt.Errorf("history attempts %s: %w", deliveryID, err)
		}
		if pbs, err = pgx.CollectRows(rows, pgx.RowTo[[]byte]); err != nil {
			return nil, fmt.Errorf("history attempts %s: %w", deliveryID, err)
		}
	}
	if len(pbs) == 0 { // not on its day (or none at all): every day
		rows, err := s.pool.Query(ctx, attempts+" ORDER BY number", deliveryID)
		if err != nil {
			return nil, fmt.Errorf("history attempts %s: %w", deliveryID, err)
		}
		if pbs, err = pgx.CollectRows(rows, pgx.RowTo[[]byte]); err != nil {
			return nil, fmt.Errorf("history attempts %s: %w", deliveryID, err)
		}
	}
	out := make([]*postbackv1.Attempt, len(pbs))
	for i, pb := range pbs {
		a := &postbackv1.Attempt{}
		if err := proto.Unmarshal(pb, a); err != nil {
			return nil, fmt.Errorf("history attempts %s: decode: %w", deliveryID, err)
		}
		out[i] = a
	}
	return out, nil
}

// Counts returns how many of an endpoint's deliveries created in [start,
// end) are in each status. A zero start or end does not bound.
func (s *Store) Counts(ctx context.Context, endpointID string, start, end time.Time) (map[postbackv1.DeliveryStatus]int64, error) {
	sql := "SELECT status, count(*) FROM deliveries WHERE endpoint_id = $1"
	args := []any{endpointID}
	if !start.IsZero() {
		args = append(args, ceilMicro(start))
		sql += " AND created >= $" + strconv.Itoa(len(args))
	}
	if !end.IsZero() {
		args = append(args, ceilMicro(end))
		sql += " AND created < $" + strconv.Itoa(len(args))
	}
	rows, err := s.pool.Query(ctx, sql+" GROUP BY status", args...)
	if err != nil {
		return nil, fmt.Errorf("history counts %s: %w", endpointID, err)
	}
	out := map[postbackv1.DeliveryStatus]int64{}
	var (
		st int16
		n  int64
	)
	if _, err := pgx.ForEachRow(rows, []any{&st, &n}, func() error {
		out[postbackv1.DeliveryStatus(st)] = n
		return nil
	}); err != nil {
		return nil, fmt.Errorf("history counts %s: %w", endpointID, err)
	}
	return out, nil
}

// Retention.

// Expire drops the day partitions (of both tables) of every day that ended
// at or before before, and returns how many days it dropped.
func (s *Store) Expire(ctx context.Context, before time.Time) (int, error) {
	var dropped []time.Time
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		dropped = nil
		if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '"+ddlLockTimeout+"'"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", partitionLockKey); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `
			SELECT p.relname::text, c.relname::text
			FROM pg_inherits i
			JOIN pg_class c ON c.oid = i.inhrelid
			JOIN pg_class p ON p.oid = i.inhparent
			WHERE i.inhparent IN ('deliveries'::regclass, 'attempts'::regclass)
			ORDER BY p.relname DESC, c.relname`)
		if err != nil {
			return fmt.Errorf("list partitions: %w", err)
		}
		// Dropping a partition locks its parent. Deliveries go first, as
		// in Append and ensureDays, so that a batch (which writes
		// deliveries, then attempts) and Expire never wait for each other
		// in a cycle.
		type part struct{ table, name string }
		parts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (part, error) {
			var p part
			err := r.Scan(&p.table, &p.name)
			return p, err
		})
		if err != nil {
			return fmt.Errorf("list partitions: %w", err)
		}
		days := map[time.Time]bool{}
		for _, p := range parts {
			day, err := time.Parse(dayLayout, strings.TrimPrefix(p.name, p.table+"_"))
			if err != nil || partitionName(p.table, day) != p.name {
				continue // not one of ours
			}
			if day.AddDate(0, 0, 1).After(before) {
				continue // not over by before
			}
			if _, err := tx.Exec(ctx, "DROP TABLE "+pgx.Identifier{p.name}.Sanitize()); err != nil {
				return fmt.Errorf("drop %s: %w", p.name, err)
			}
			if !days[day] {
				days[day] = true
				dropped = append(dropped, day)
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("history expire: %w", err)
	}
	s.forgetDays(dropped)
	return len(dropped), nil
}
