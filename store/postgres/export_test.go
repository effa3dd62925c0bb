package postgres

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/serversync/serversync"
)

// CopyMailboxes stores mailboxes with one COPY, the benchmarks' way to seed 100,000
// of them in seconds. It writes the rows CreateMailbox would write. Tests only.
func (s *Store) CopyMailboxes(ctx context.Context, mailboxes []*serversync.Mailbox) error {
	rows := make([][]any, len(mailboxes))
	for i, m := range mailboxes {
		row, err := s.mailboxRow(ctx, m)
		if err != nil {
			return err
		}
		rows[i] = row
	}
	_, err := s.pool.CopyFrom(ctx, pgx.Identifier{"mailboxes"}, mailboxInsertColumns, pgx.CopyFromRows(rows))
	return dbError(err)
}

// Vacuum runs VACUUM (ANALYZE) on one of the store's tables. Tests only.
func (s *Store) Vacuum(ctx context.Context, table string) error {
	_, err := s.pool.Exec(ctx, "VACUUM (ANALYZE) "+pgx.Identifier{table}.Sanitize())
	return err
}

// Setting reads a run-time setting through the pool. Tests only.
func (s *Store) Setting(ctx context.Context, name string) (string, error) {
	var v string
	err := s.pool.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v)
	return v, err
}

// KnownVersion is the schema version this build migrates to. Tests only.
func KnownVersion() int {
	files, err := migrations()
	if err != nil {
		panic(err)
	}
	return len(files)
}

// VersionBefore is the schema version of a database migrated up to, not
// including, the migration whose file name starts with prefix. Tests only.
func VersionBefore(prefix string) int {
	files, err := migrations()
	if err != nil {
		panic(err)
	}
	for i, f := range files {
		if strings.HasPrefix(f, prefix) {
			return i
		}
	}
	panic("no migration " + prefix)
}
