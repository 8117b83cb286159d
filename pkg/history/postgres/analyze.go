package postgres

import (
	"context"
	"time"

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
// Append. A failed ANALYZE is dropped; the next growth tries again, and
// autovacuum stays the backstop.

// analyzeMin is the least growth of a day that is analyzed.
const analyzeMin = 1000

// grew notes rows appended (by create time) and starts an ANALYZE of the
// first day that grew enough, unless one is running.
func (s *Store) grew(created []time.Time) {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	for _, c := range created {
		s.grown[history.Day(c)]++
	}
	if s.analyzing {
		return
	}
	for day, n := range s.grown {
		if n >= analyzeMin && n*5 >= s.analyzed[day] {
			s.analyzing = true
			go s.analyze(day, n)
			return
		}
	}
}

func (s *Store) analyze(day time.Time, n int64) {
	ctx, cancel := context.WithTimeout(s.bg, time.Minute)
	defer cancel()
	_, err := s.pool.Exec(ctx, "ANALYZE "+partitionName("deliveries", day)+", "+partitionName("attempts", day))
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	s.analyzing = false
	if err != nil { // a dropped day, a closed store, an outage: start over
		delete(s.grown, day)
		return
	}
	s.analyzed[day] += n
	s.grown[day] -= n
}
