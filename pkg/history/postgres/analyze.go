package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/postback-dev/postback/pkg/history"
)

// Statistics of the days being written.
//
// PostgreSQL plans a list over the day partitions from each partition's
// statistics, which autovacuum gathers only about a minute after a table
// changed by a tenth. A day just made or just filled has none, and the
// plans it then chose were measured at 100-500 ms for a page (bitmap scans
// of every day and a sort of all their rows for one endpoint's page; a
// backward walk of the account's index for one event) where the same
// query takes 1-5 ms on analyzed days. So the store analyzes a day itself
// once it has grown by a fifth (and at least 1,000 rows) since it was last
// analyzed: in the background, one ANALYZE at a time, never holding up an
// Append; when one ends, the next day due starts. A failed ANALYZE is
// dropped; the next growth tries again, and autovacuum stays the backstop.
// At Open, the days with no statistics at all (a store filled and closed
// before its ANALYZEs ran) are analyzed first, newest first.

// analyzeMin is the least growth of a day that is analyzed.
const analyzeMin = 1000

// grew notes rows appended (by create time) and starts analyzing, unless
// an ANALYZE is running.
func (s *Store) grew(created []time.Time) {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	for _, c := range created {
		s.grown[history.Day(c)]++
	}
	s.nextAnalyze()
}

// nextAnalyze starts the ANALYZE of a day that is due, unless one is
// running: the days Open found never analyzed first, then the first day
// that grew enough. Called under statsMu; each ANALYZE, when done, looks
// for the next, so none waits for another Append.
func (s *Store) nextAnalyze() {
	if s.analyzing {
		return
	}
	if len(s.unanalyzed) > 0 {
		tables := s.unanalyzed[0]
		s.unanalyzed = s.unanalyzed[1:]
		s.analyzing = true
		go s.analyze(tables, time.Time{}, 0)
		return
	}
	for day, n := range s.grown {
		if n >= analyzeMin && n*5 >= s.analyzed[day] {
			s.analyzing = true
			go s.analyze(partitionName("deliveries", day)+", "+partitionName("attempts", day), day, n)
			return
		}
	}
}

// analyze runs ANALYZE on tables, then notes that day (if any) as
// analyzed with n more rows, and starts the next.
func (s *Store) analyze(tables string, day time.Time, n int64) {
	ctx, cancel := context.WithTimeout(s.bg, time.Minute)
	defer cancel()
	_, err := s.pool.Exec(ctx, "ANALYZE "+tables)
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	s.analyzing = false
	if s.bg.Err() != nil {
		return // closed
	}
	if !day.IsZero() {
		if err != nil { // a dropped day, an outage: start over
			delete(s.grown, day)
		} else {
			s.analyzed[day] += n
			s.grown[day] -= n
		}
	}
	s.nextAnalyze()
}

// analyzeUnanalyzed queues the day partitions PostgreSQL has no statistics
// of (a store filled and closed before its ANALYZEs ran, a restore): at
// start, so the first lists after a restart are planned from statistics.
// Best effort: autovacuum stays the backstop.
func (s *Store) analyzeUnanalyzed(ctx context.Context) {
	rows, err := s.pool.Query(ctx, `
SELECT c.relname FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
JOIN pg_class p ON p.oid = i.inhparent
WHERE p.relname IN ('deliveries', 'attempts') AND c.reltuples < 0
ORDER BY c.relname DESC`)
	if err != nil {
		return
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return
	}
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	for _, n := range names {
		s.unanalyzed = append(s.unanalyzed, pgx.Identifier{n}.Sanitize())
	}
	s.nextAnalyze()
}
