package sqlite

import (
	"context"
	"database/sql"
	"sync"
)

// statements prepares each query once per database handle and keeps it: the
// pure-Go SQLite compiles SQL on every unprepared call, which was a sixth of the
// CPU of a poll. The queries are fixed strings plus a bounded set of filter
// combinations, so the cache stays small.
type statements struct {
	db     *sql.DB
	mu     sync.Mutex
	stmts  map[string]*sql.Stmt
	wanted map[string]bool
}

func (c *statements) get(ctx context.Context, query string) (*sql.Stmt, error) {
	c.mu.Lock()
	st, ok := c.stmts[query]
	c.mu.Unlock()
	if ok {
		return st, nil
	}
	// Prepare without the lock: preparing waits for a connection, and whoever holds
	// one may be waiting for the lock.
	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stmts == nil {
		c.stmts = make(map[string]*sql.Stmt)
	}
	if existing, ok := c.stmts[query]; ok { // prepared meanwhile by another caller
		_ = st.Close()
		return existing, nil
	}
	c.stmts[query] = st
	return st, nil
}

func (c *statements) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.stmts {
		_ = st.Close()
	}
	c.stmts = nil
}

// cached returns the prepared statement of query, or nil after noting that query
// is wanted: the writer has one connection, which the transaction holds, so
// statements for it are prepared after the transaction ends (prepareWanted).
func (c *statements) cached(query string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.stmts[query]
	if !ok {
		if c.wanted == nil {
			c.wanted = make(map[string]bool)
		}
		c.wanted[query] = true
	}
	return st
}

// prepareWanted prepares the queries transactions ran unprepared.
func (c *statements) prepareWanted(ctx context.Context) {
	c.mu.Lock()
	wanted := c.wanted
	c.wanted = nil
	c.mu.Unlock()
	for query := range wanted {
		_, _ = c.get(ctx, query) // a query that fails to prepare fails when run, with its error
	}
}

// txn is a write transaction that runs its queries as prepared statements once
// they have been prepared.
type txn struct {
	tx    *sql.Tx
	stmts *statements
}

func (t *txn) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := t.stmts.cached(query); st != nil {
		return t.tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, query, args...)
}

func (t *txn) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := t.stmts.cached(query); st != nil {
		return t.tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return t.tx.QueryContext(ctx, query, args...)
}

func (t *txn) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := t.stmts.cached(query); st != nil {
		return t.tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, query, args...)
}

// QueryContext runs a prepared query outside a transaction.
func (c *statements) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := c.get(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// QueryRowContext runs a prepared single-row query outside a transaction.
func (c *statements) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := c.get(ctx, query)
	if err != nil {
		return c.db.QueryRowContext(ctx, query, args...) // reports the same error
	}
	return st.QueryRowContext(ctx, args...)
}

// stmt returns query as a statement of this transaction, to run many times.
func (t *txn) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st := t.stmts.cached(query); st != nil {
		return t.tx.StmtContext(ctx, st), nil
	}
	return t.tx.PrepareContext(ctx, query)
}
