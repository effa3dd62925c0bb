// Package sqlite is the embedded default serversync.Store: one SQLite file, pure Go
// (modernc.org/sqlite, no cgo), no server to run.
//
// The database runs in WAL mode, so it has "-wal" and "-shm" siblings next to the
// main file; copy all three (or use SQLite's backup) to copy a live database. Writes
// go through a single connection whose transactions take the write lock up front
// (BEGIN IMMEDIATE), reads through a small pool that runs beside them, and a third
// connection copies the log into the database in the background (checkpoint.go), so
// the writer does not wait for the disk: that is how one process uses SQLite safely
// and quickly from many goroutines. A Store is safe for concurrent use; two
// processes may share a file but only one should run a Syncer on it (use
// store/postgres for many).
//
// Profiles, mailboxes and shared app tokens are stored with their credentials
// sealed (AES-256-GCM, see package auth); the schema is migrated on Open from migrations embedded in the
// binary, its version kept in PRAGMA user_version.
package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
)

// Defaults for Options.
const (
	BusyTimeoutDefault  = 5 * time.Second
	MaxReadConnsDefault = 4
	// CacheSizeDefault was measured (README, "Measured"): syncing 20,000 messages
	// with 8 MB caches peaked at ~55–60 MB RSS against ~100 MB with 32 MB, for no
	// more CPU. Since bodies are stored compressed in a column of their own, rows
	// are a fraction of the size and 2 MB (SQLite's own default) costs no
	// measurable CPU against 8 MB, for ~8 MB less peak RSS.
	CacheSizeDefault = 2 << 20
)

// Options configures a Store. A nil *Options is equivalent to a zero one.
type Options struct {
	// Keys seal credentials at rest. nil reads them from the environment
	// (auth.KeysFromEnv); Open fails with auth.ErrNoKey when none is configured.
	Keys auth.KeyProvider
	// BusyTimeout is how long a statement waits for another process's lock.
	BusyTimeout time.Duration
	// MaxReadConns bounds the pool of reading connections.
	MaxReadConns int
	// CacheSize is the most page cache, in bytes, each connection keeps (SQLite's
	// cache_size): the writer's fills up as a sync writes, and it is most of the
	// process's memory after a large initial sync. At most 1 + MaxReadConns
	// caches of this size.
	CacheSize int64
}

// ErrClosed is returned by every call made after Close. It is
// [serversync.ErrClosed], kept under this name for code that checks it here.
var ErrClosed = serversync.ErrClosed

// Store is a serversync.Store on one SQLite file. Safe for concurrent use.
type Store struct {
	writer *sql.DB // one connection: SQLite has one writer anyway, and this keeps it in-process
	reader *sql.DB
	sealer *auth.Sealer
	closed atomic.Bool
	writes statements // prepared on writer
	reads  statements // prepared on reader
	// checkpoints copies the log into the database in the background (checkpoint.go).
	checkpoints *checkpointer
	// bodyBuffer is the buffer SaveTracked encodes bodies into, kept between
	// batches: growing a new one for each batch was a tenth of what a sync allocated.
	bodyBuffer atomic.Pointer[[]byte]
}

var (
	_ serversync.Store         = (*Store)(nil)
	_ serversync.SecretRotator = (*Store)(nil)
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Open opens the database at path, creating it if needed, and migrates its schema.
func Open(ctx context.Context, path string, opts *Options) (*Store, error) {
	if opts == nil {
		opts = &Options{}
	}
	keys := opts.Keys
	if keys == nil {
		envKeys, err := auth.KeysFromEnv()
		if err != nil {
			return nil, fmt.Errorf("sqlite: %w", err)
		}
		keys = envKeys
	}
	busy := cmp.Or(opts.BusyTimeout, BusyTimeoutDefault)
	cacheSize := cmp.Or(opts.CacheSize, CacheSizeDefault)
	dsn := func(extra ...string) string {
		q := url.Values{}
		q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds()))
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(NORMAL)")
		q.Add("_pragma", fmt.Sprintf("cache_size(%d)", -max(cacheSize>>10, 1))) // negative: KiB
		for i := 0; i+1 < len(extra); i += 2 {
			q.Add(extra[i], extra[i+1])
		}
		return "file:" + path + "?" + q.Encode()
	}
	writer, err := sql.Open("sqlite", dsn("_txlock", "immediate", "_pragma", fmt.Sprintf("wal_autocheckpoint(%d)", walCheckpointBackstop)))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	writer.SetMaxOpenConns(1)
	writer.SetConnMaxIdleTime(0)
	checkpoints, err := sql.Open("sqlite", dsn())
	if err != nil {
		writer.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	s := &Store{writer: writer, sealer: auth.NewSealer(keys), checkpoints: startCheckpointer(checkpoints)}
	s.writes.db = writer
	if err := s.migrate(ctx); err != nil {
		s.checkpoints.close()
		writer.Close()
		return nil, err
	}
	reader, err := sql.Open("sqlite", dsn("_pragma", "query_only(1)"))
	if err != nil {
		s.checkpoints.close()
		writer.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	reader.SetMaxOpenConns(cmp.Or(opts.MaxReadConns, MaxReadConnsDefault))
	s.reader = reader
	s.reads.db = reader
	return s, nil
}

// Close closes the database. Calls after Close fail with ErrClosed.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.reads.close()
	s.writes.close()
	return errors.Join(s.checkpoints.close(), s.reader.Close(), s.writer.Close())
}

func (s *Store) migrations() ([]string, error) {
	names, err := migrationFiles.ReadDir("migrations")
	if err != nil {
		return nil, err
	}
	files := make([]string, 0, len(names))
	for _, n := range names {
		files = append(files, n.Name())
	}
	sort.Strings(files) // numbered names: 0001_…, 0002_…
	return files, nil
}

// migrate applies the migrations the database hasn't seen, each in its own
// transaction together with the new user_version, so a crash never leaves half.
func (s *Store) migrate(ctx context.Context) error {
	files, err := s.migrations()
	if err != nil {
		return err
	}
	version, err := s.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	if version > len(files) {
		return fmt.Errorf("sqlite: the database has schema version %d but this build knows only %d: use a newer serversync", version, len(files))
	}
	for i := version; i < len(files); i++ {
		script, err := migrationFiles.ReadFile("migrations/" + files[i])
		if err != nil {
			return err
		}
		err = s.write(ctx, func(tx *txn) error {
			if _, err := tx.tx.ExecContext(ctx, string(script)); err != nil { // several statements: not preparable
				return err
			}
			_, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", i+1))
			return err
		})
		if err != nil {
			return fmt.Errorf("sqlite: migration %s: %w", files[i], err)
		}
	}
	return nil
}

// SchemaVersion returns the number of migrations applied to the database.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	if err := s.writer.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return 0, fmt.Errorf("sqlite: read schema version: %w", err)
	}
	return v, nil
}

// write runs fn in an immediate write transaction, committing if it returns nil.
func (s *Store) write(ctx context.Context, fn func(tx *txn) error) error {
	if s.closed.Load() {
		return ErrClosed
	}
	conn, err := s.writer.Conn(ctx) // the writer's one connection, whose counters tell what it wrote
	if err != nil {
		return err
	}
	err = writeOn(ctx, conn, &s.writes, fn)
	s.checkpoints.wrote(conn)
	conn.Close()
	s.writes.prepareWanted(ctx) // once the writer's connection is free again
	return err
}

func writeOn(ctx context.Context, conn *sql.Conn, stmts *statements, fn func(tx *txn) error) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(&txn{tx: tx, stmts: stmts}); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

func (s *Store) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	return s.reads.QueryContext(ctx, query, args...)
}

func (s *Store) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	return s.reads.QueryRowContext(ctx, query, args...)
}

// rowQuerier is a *sql.DB or a *sql.Tx.
type rowQuerier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// readData returns the data column of the row of table with that id, or an error
// wrapping ErrNotFound.
func readData(ctx context.Context, q rowQuerier, table, entity, id string) ([]byte, error) {
	var data []byte
	err := q.QueryRowContext(ctx, "SELECT data FROM "+table+" WHERE id = ?", id).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound(entity, id)
	} else if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	return data, nil
}

// micros stores a time as Unix microseconds, the zero time as 0.
func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func notFound(entity, id string) error {
	return fmt.Errorf("sqlite: %s %q: %w", entity, id, serversync.ErrNotFound)
}

func isUnique(err error, column string) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed") && strings.Contains(err.Error(), column)
}

// where builds a WHERE clause from the conditions whose value is set.
type where struct {
	clauses []string
	args    []any
}

func (w *where) add(cond string, args ...any) {
	w.clauses = append(w.clauses, cond)
	w.args = append(w.args, args...)
}

func (w *where) String() string {
	if len(w.clauses) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.clauses, " AND ")
}

func limit(n int) int {
	if n <= 0 {
		return -1 // SQLite: no limit
	}
	return n
}

// rowsSeq streams rows through decode, closing them when the consumer stops. The
// query runs when iteration starts, so an unused iterator costs nothing.
func rowsSeq[T any](ctx context.Context, s *Store, query string, args []any, decode func(*sql.Rows) (T, error)) func(func(T, error) bool) {
	return func(yield func(T, error) bool) {
		var zero T
		rows, err := s.query(ctx, query, args...)
		if err != nil {
			yield(zero, fmt.Errorf("sqlite: %w", err))
			return
		}
		defer rows.Close()
		for rows.Next() {
			v, err := decode(rows)
			if err != nil {
				yield(zero, err)
				return
			}
			if !yield(v, nil) {
				return
			}
		}
		if err := rows.Err(); err != nil {
			yield(zero, fmt.Errorf("sqlite: %w", err))
		}
	}
}
