package sqlite

import (
	"container/list"
	"context"
	"database/sql"
	"sync"
)

// readStmts is how many read statements the store keeps prepared. A
// statement is per day table (its name is in the text), so this covers
// the fixed probes (Get, Attempts, Counts) of ~90 days and the list shapes
// in use on the recent days; the least recently used go first. Preparing
// a list query costs ~150 µs, against ~20 µs to run it, and a list that
// probes every day (by event, or a filter that matches little) would pay
// it per day.
const readStmts = 768

// stmtCache keeps prepared statements of the read pool by their text. A
// statement in use is closed only once released, so eviction never fails a
// query.
type stmtCache struct {
	db *sql.DB

	mu     sync.Mutex
	byKey  map[string]*list.Element // of *cachedStmt
	lru    list.List                // front: most recent
	closed bool
}

type cachedStmt struct {
	key, day string
	st       *sql.Stmt
	refs     int
	gone     bool // out of the cache: close at the last release
}

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, byKey: map[string]*list.Element{}}
}

// acquire returns the prepared statement of query (on day's tables),
// preparing it if need be. The caller releases it when done with its rows.
func (c *stmtCache) acquire(ctx context.Context, day, query string) (*cachedStmt, error) {
	c.mu.Lock()
	if e, ok := c.byKey[query]; ok {
		cs := e.Value.(*cachedStmt)
		cs.refs++
		c.lru.MoveToFront(e)
		c.mu.Unlock()
		return cs, nil
	}
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil, sql.ErrConnDone
	}
	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byKey[query]; ok { // prepared meanwhile by another reader
		_ = st.Close()
		cs := e.Value.(*cachedStmt)
		cs.refs++
		c.lru.MoveToFront(e)
		return cs, nil
	}
	cs := &cachedStmt{key: query, day: day, st: st, refs: 1}
	if c.closed {
		cs.gone = true // used once, closed at release
		return cs, nil
	}
	c.byKey[query] = c.lru.PushFront(cs)
	for c.lru.Len() > readStmts {
		c.removeLocked(c.lru.Back())
	}
	return cs, nil
}

// release gives back a statement acquire returned.
func (c *stmtCache) release(cs *cachedStmt) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cs.refs--
	if cs.gone && cs.refs == 0 {
		_ = cs.st.Close()
	}
}

func (c *stmtCache) removeLocked(e *list.Element) {
	cs := c.lru.Remove(e).(*cachedStmt)
	delete(c.byKey, cs.key)
	cs.gone = true
	if cs.refs == 0 {
		_ = cs.st.Close()
	}
}

// dropDay forgets the statements of a day Expire dropped.
func (c *stmtCache) dropDay(day string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for e := c.lru.Front(); e != nil; {
		next := e.Next()
		if e.Value.(*cachedStmt).day == day {
			c.removeLocked(e)
		}
		e = next
	}
}

// close forgets every statement (those in use close at their release).
func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for c.lru.Len() > 0 {
		c.removeLocked(c.lru.Back())
	}
}

// query runs a read statement of day's tables; done releases it and must
// be called after rows.Close.
func (s *Store) query(ctx context.Context, day, query string, args ...any) (rows *sql.Rows, done func(), err error) {
	cs, err := s.rstmts.acquire(ctx, day, query)
	if err != nil {
		return nil, nil, err
	}
	rows, err = cs.st.QueryContext(ctx, args...)
	if err != nil {
		s.rstmts.release(cs)
		return nil, nil, err
	}
	return rows, func() { s.rstmts.release(cs) }, nil
}

// queryRow is query for one row: it scans the row into dest and reports
// sql.ErrNoRows when there is none.
func (s *Store) queryRow(ctx context.Context, day, query string, args []any, dest ...any) error {
	cs, err := s.rstmts.acquire(ctx, day, query)
	if err != nil {
		return err
	}
	defer s.rstmts.release(cs)
	return cs.st.QueryRowContext(ctx, args...).Scan(dest...)
}
