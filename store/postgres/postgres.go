package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"iter"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
)

// Options configures a Store. A nil *Options is equivalent to a zero one.
type Options struct {
	// Keys seal credentials at rest. nil reads them from the environment
	// (auth.KeysFromEnv); Open fails with auth.ErrNoKey when none is configured.
	// Every process sharing a database needs the same keys.
	Keys auth.KeyProvider
	// Schema is the PostgreSQL schema holding the tables. Open creates it if it is
	// missing and makes it the connections' search_path. "" leaves the search_path
	// of the connection string alone: the tables go to its first schema, normally
	// "public".
	Schema string
}

// ErrClosed is returned by every call made after Close. It is
// [serversync.ErrClosed], kept under this name for code that checks it here.
var ErrClosed = serversync.ErrClosed

// SchemaTooNewError is returned by Open when the database was migrated by a newer
// serversync than this one: an older build could misread what the newer one wrote,
// so it refuses to run rather than corrupt it.
type SchemaTooNewError struct {
	Version int // the database's schema version
	Known   int // the newest version this build knows
}

func (e *SchemaTooNewError) Error() string {
	return fmt.Sprintf("postgres: the database has schema version %d but this build knows only %d: use a newer serversync", e.Version, e.Known)
}

// Store is a serversync.Store on a PostgreSQL database. Safe for concurrent use, by
// many goroutines and by many processes sharing the database.
type Store struct {
	pool   *pgxpool.Pool
	sealer *auth.Sealer
	schema string
	closed atomic.Bool
}

var (
	_ serversync.Store         = (*Store)(nil)
	_ serversync.SecretRotator = (*Store)(nil)
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Open connects to the database named by connString (a postgres:// URL or
// keyword/value string, as pgx accepts it, pool settings included) and migrates
// its schema. The pool connects lazily; Open uses it once to migrate, so a
// database that can't be reached fails here.
func Open(ctx context.Context, connString string, opts *Options) (*Store, error) {
	if opts == nil {
		opts = &Options{}
	}
	keys := opts.Keys
	if keys == nil {
		envKeys, err := auth.KeysFromEnv()
		if err != nil {
			return nil, fmt.Errorf("postgres: %w", err)
		}
		keys = envKeys
	}
	config, err := pgxpool.ParseConfig(connString) // its errors redact the password
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if opts.Schema != "" {
		// A startup parameter rather than a SET: it holds for every connection the
		// pool ever opens, reconnects included.
		config.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{opts.Schema}.Sanitize()
	}
	pool, err := pgxpool.NewWithConfig(ctx, config)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	s := &Store{pool: pool, sealer: auth.NewSealer(keys), schema: opts.Schema}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the pool, waiting for connections in use to be returned. Calls
// after Close fail with ErrClosed.
func (s *Store) Close() error {
	if !s.closed.Swap(true) {
		s.pool.Close()
	}
	return nil
}

func migrations() ([]string, error) {
	entries, err := migrationFiles.ReadDir("migrations")
	if err != nil {
		return nil, err
	}
	files := make([]string, 0, len(entries))
	for _, e := range entries {
		files = append(files, e.Name())
	}
	sort.Strings(files) // numbered names: 0001_…, 0002_…
	return files, nil
}

// migrate applies the migrations the database hasn't seen, all in one transaction
// with their version rows, so a crash never leaves half of one. Processes starting
// together queue on an advisory lock held until that transaction ends: the first
// migrates, the others find the work done.
func (s *Store) migrate(ctx context.Context) error {
	files, err := migrations()
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// The lock is per schema, so stores in other schemas migrate in parallel.
		_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('serversync.migrate.' || coalesce(nullif($1, ''), current_schema()), 0))`, s.schema)
		if err != nil {
			return err
		}
		if s.schema != "" {
			// Checked first because CREATE SCHEMA IF NOT EXISTS needs the CREATE
			// privilege on the database even when the schema exists.
			var exists bool
			if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", s.schema).Scan(&exists); err != nil {
				return err
			}
			if !exists {
				if _, err := tx.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{s.schema}.Sanitize()); err != nil {
					return err
				}
			}
		}
		_, err = tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS serversync_migrations (
			version    integer PRIMARY KEY,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`)
		if err != nil {
			return err
		}
		version, err := schemaVersion(ctx, tx)
		if err != nil {
			return err
		}
		if version > len(files) {
			return &SchemaTooNewError{Version: version, Known: len(files)}
		}
		for i := version; i < len(files); i++ {
			script, err := migrationFiles.ReadFile("migrations/" + files[i])
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, string(script)); err != nil { // no arguments: the simple protocol runs every statement
				return fmt.Errorf("migration %s: %w", files[i], err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO serversync_migrations (version) VALUES ($1)", i+1); err != nil {
				return err
			}
		}
		return nil
	})
	var tooNew *SchemaTooNewError
	if err != nil && !errors.As(err, &tooNew) {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	return err
}

// SchemaVersion returns the number of migrations applied to the database.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	v, err := schemaVersion(ctx, s.pool)
	if err != nil {
		return 0, fmt.Errorf("postgres: read schema version: %w", err)
	}
	return v, nil
}

func schemaVersion(ctx context.Context, q querier) (int, error) {
	var v int
	err := q.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM serversync_migrations").Scan(&v)
	return v, err
}

// querier is the pool or a transaction.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// check fails calls made after Close or with a context already done, before they
// touch the database (or an update callback).
func (s *Store) check(ctx context.Context) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	return nil
}

// txAttempts bounds how often inTx runs a transaction that PostgreSQL aborted
// asking for a retry.
const txAttempts = 3

// inTx runs fn in a READ COMMITTED transaction and commits if it returns nil. fn's
// error comes back as it is (an update callback's error must reach the caller
// unchanged), so fn passes the errors of its statements through dbError itself. A
// deadlock or serialization failure runs fn again: the store orders its own
// statements to avoid them, but a caller's mix of operations may still cause one.
func (s *Store) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		err := s.tryTx(ctx, fn)
		if attempt == txAttempts || !retryable(err) {
			return err
		}
	}
}

func (s *Store) tryTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return dbError(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit; after a failure, the failure is what matters
	if err := fn(tx); err != nil {
		return err
	}
	return dbError(tx.Commit(ctx))
}

// SQLSTATE codes the store acts on.
const (
	codeUniqueViolation      = "23505"
	codeForeignKeyViolation  = "23503"
	codeSerializationFailure = "40001"
	codeDeadlockDetected     = "40P01"
)

func pgCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

func retryable(err error) bool {
	code := pgCode(err)
	return code == codeSerializationFailure || code == codeDeadlockDetected
}

// uniqueFields names the record field each unique constraint guards.
var uniqueFields = map[string]struct{ entity, field string }{
	"profiles_pkey":              {"Profile", "ID"},
	"profiles_name_unique":       {"Profile", "Name"},
	"mailboxes_pkey":             {"Mailbox", "ID"},
	"mailboxes_email_unique":     {"Mailbox", "EmailAddress"},
	"mailboxes_regarding_unique": {"Mailbox", "Regarding"},
	"activities_id_unique":       {"EmailActivity", "ID"},
	"activities_message_unique":  {"EmailActivity", "MessageKey"},
	"alerts_id_unique":           {"Alert", "ID"},
	"act_conflicts_id_unique":    {"ACTConflict", "ID"},
}

// dbError wraps an error of the database, turning a violated unique constraint into
// serversync.DuplicateError. PostgreSQL's messages name constraints, never values
// (those are in the error's Detail, which its message leaves out), so no secret can
// leak through them.
func dbError(err error) error {
	if err == nil {
		return nil
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == codeUniqueViolation {
		if f, ok := uniqueFields[pgErr.ConstraintName]; ok {
			return serversync.DuplicateError(f.entity, f.field)
		}
	}
	return fmt.Errorf("postgres: %w", err)
}

func notFound(entity, id string) error {
	return fmt.Errorf("postgres: %s %q: %w", entity, id, serversync.ErrNotFound)
}

// nullTime stores the zero time as NULL.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// fromNull reads a nullable time column back, NULL as the zero time.
func fromNull(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// nullIfEmpty stores "" as NULL, for columns where "none" must not match anything.
func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// limitArg is the value of a "LIMIT $n": NULL, no limit, for 0 or less.
func limitArg(n int) any {
	if n <= 0 {
		return nil
	}
	return n
}

// where builds a WHERE clause from the conditions whose value is set.
type where struct {
	clauses []string
	args    []any
}

// add adds the condition "<left> $n", left being a column and an operator.
func (w *where) add(left string, arg any) {
	w.args = append(w.args, arg)
	w.clauses = append(w.clauses, left+" $"+strconv.Itoa(len(w.args)))
}

func (w *where) String() string {
	if len(w.clauses) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.clauses, " AND ")
}

// listPageSize is how many rows one query of a List method reads.
const listPageSize = 100

// list describes the query of a List method for stream.
type list[T any] struct {
	selectFrom string // "SELECT … FROM table"
	filter     where
	key        string // the unique column the list is ordered by
	descending bool
	limit      int // 0: no limit
	// scan decodes one row and returns the record with its key value.
	scan func(pgx.Rows) (T, any, error)
}

// stream runs a List method's query page by page, each page a short query that
// resumes after the key of the previous page's last row. Rows are yielded as they
// are read, so memory holds one record; a page holds a connection only while it is
// read; and a caller breaking out of the loop stops the stream after at most the
// rest of one page (pgx reads a result to its end when rows close). The query runs
// when iteration starts, so an unused iterator costs nothing.
func stream[T any](ctx context.Context, s *Store, l list[T]) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		if err := s.check(ctx); err != nil {
			yield(zero, err)
			return
		}
		order, after := " ORDER BY "+l.key, " > "
		if l.descending {
			order, after = order+" DESC", " < "
		}
		var last any // the key of the last row yielded; nil before the first page
		for yielded := 0; ; {
			n := listPageSize
			if l.limit > 0 {
				n = min(n, l.limit-yielded)
			}
			filter := where{clauses: slices.Clone(l.filter.clauses), args: slices.Clone(l.filter.args)}
			if last != nil {
				filter.add(l.key+after, last)
			}
			rows, err := s.pool.Query(ctx, l.selectFrom+filter.String()+order+" LIMIT "+strconv.Itoa(n), filter.args...)
			if err != nil {
				yield(zero, dbError(err))
				return
			}
			read := 0
			for rows.Next() {
				v, key, err := l.scan(rows)
				if err != nil {
					rows.Close()
					yield(zero, err)
					return
				}
				read++
				last = key
				if !yield(v, nil) {
					rows.Close()
					return
				}
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				yield(zero, dbError(err))
				return
			}
			yielded += read
			if read < n || (l.limit > 0 && yielded >= l.limit) {
				return
			}
		}
	}
}
