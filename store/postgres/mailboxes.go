package postgres

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/serversync/serversync"
	"github.com/serversync/serversync/store/storekit"
)

// emailKey is the mailboxes.email_key of an address: unique case-insensitively.
func emailKey(email string) string { return strings.ToLower(email) }

// mailboxColumns are read with every mailbox: the record and the lease state that
// the lease methods keep in columns.
const mailboxColumns = "id, data, next_sync_at, lease_host, lease_expires_at, forced_unlocks"

func (s *Store) scanMailbox(ctx context.Context, row pgx.Row) (*serversync.Mailbox, error) {
	var (
		id, host      string
		data          []byte
		next, expires *time.Time
		forcedUnlocks int
	)
	if err := row.Scan(&id, &data, &next, &host, &expires, &forcedUnlocks); err != nil {
		return nil, err
	}
	var m serversync.Mailbox
	if err := storekit.DecodeRecord(ctx, s.sealer, "mailbox", id, data, &m); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	m.NextSyncAt, m.LeaseHost, m.LeaseExpiresAt, m.ForcedUnlockCount = fromNull(next), host, fromNull(expires), forcedUnlocks
	return &m, nil
}

// mailboxIndex is the searchable columns derived from a mailbox, in the order of
// mailboxInsertColumns after id.
func mailboxIndex(m *serversync.Mailbox) []any {
	return []any{emailKey(m.EmailAddress), m.Regarding.ID, nullIfEmpty(m.ProfileID), string(m.Approval), string(m.Status),
		m.AnyEnabled(), m.TestAndEnablePending, nullTime(m.NextSyncAt)}
}

// mailboxInsertColumns are the columns a new mailbox row is written with, in the
// order of mailboxRow's values.
var mailboxInsertColumns = []string{"id", "email_key", "regarding_id", "profile_id", "approval", "status",
	"any_enabled", "test_pending", "next_sync_at", "lease_host", "lease_expires_at", "forced_unlocks", "data"}

var insertMailboxSQL = func() string {
	params := make([]string, len(mailboxInsertColumns))
	for i := range params {
		params[i] = "$" + strconv.Itoa(i+1)
	}
	return "INSERT INTO mailboxes (" + strings.Join(mailboxInsertColumns, ", ") + ") VALUES (" + strings.Join(params, ", ") + ")"
}()

// mailboxRow returns the values of mailboxInsertColumns for m, its secrets sealed.
func (s *Store) mailboxRow(ctx context.Context, m *serversync.Mailbox) ([]any, error) {
	data, err := storekit.EncodeRecord(ctx, s.sealer, "mailbox", m.ID, m)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	row := append([]any{m.ID}, mailboxIndex(m)...)
	return append(row, m.LeaseHost, nullTime(m.LeaseExpiresAt), m.ForcedUnlockCount, data), nil
}

// mailboxWriteError explains a violated foreign key of a mailbox write: its profile
// does not exist.
func mailboxWriteError(m *serversync.Mailbox, err error) error {
	if pgCode(err) == codeForeignKeyViolation {
		return &serversync.ValidationError{Entity: "Mailbox", Field: "ProfileID",
			Reason: fmt.Sprintf("no profile %q: create it first or leave ProfileID empty", m.ProfileID), Err: serversync.ErrNotFound}
	}
	return dbError(err)
}

// CreateMailbox implements serversync.MailboxStore.
func (s *Store) CreateMailbox(ctx context.Context, m *serversync.Mailbox) error {
	if m.ID == "" {
		return storekit.Required("Mailbox", "ID")
	}
	if err := s.check(ctx); err != nil {
		return err
	}
	row, err := s.mailboxRow(ctx, m)
	if err != nil {
		return err
	}
	_, err = s.pool.Exec(ctx, insertMailboxSQL, row...)
	return mailboxWriteError(m, err)
}

// GetMailbox implements serversync.MailboxStore.
func (s *Store) GetMailbox(ctx context.Context, id string) (*serversync.Mailbox, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	return s.getMailbox(ctx, s.pool, id, "")
}

func (s *Store) getMailbox(ctx context.Context, q querier, id, lock string) (*serversync.Mailbox, error) {
	m, err := s.scanMailbox(ctx, q.QueryRow(ctx, "SELECT "+mailboxColumns+" FROM mailboxes WHERE id = $1 "+lock, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("mailbox", id)
	} else if err != nil {
		return nil, dbError(err)
	}
	return m, nil
}

// UpdateMailbox implements serversync.MailboxStore.
func (s *Store) UpdateMailbox(ctx context.Context, id string, update func(*serversync.Mailbox) error) (*serversync.Mailbox, error) {
	var out *serversync.Mailbox
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		m, err := s.getMailbox(ctx, tx, id, lockForUpdate)
		if err != nil {
			return err
		}
		lease := *m
		if err := update(m); err != nil {
			return err
		}
		if m.ID != id {
			return storekit.Unchangeable("Mailbox", "ID")
		}
		// The lease belongs to the lease methods: whatever update did to it is undone.
		m.LeaseHost, m.LeaseExpiresAt, m.ForcedUnlockCount = lease.LeaseHost, lease.LeaseExpiresAt, lease.ForcedUnlockCount
		data, err := storekit.EncodeRecord(ctx, s.sealer, "mailbox", id, m)
		if err != nil {
			return fmt.Errorf("postgres: %w", err)
		}
		args := append(mailboxIndex(m), data, id)
		_, err = tx.Exec(ctx, `UPDATE mailboxes SET email_key = $1, regarding_id = $2, profile_id = $3, approval = $4,
			status = $5, any_enabled = $6, test_pending = $7, next_sync_at = $8, data = $9 WHERE id = $10`, args...)
		if err != nil {
			return mailboxWriteError(m, err)
		}
		out = m
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteMailbox implements serversync.MailboxStore. The lease goes with the row, so
// a holder's renew or release finds nothing and fails with ErrLeaseLost.
func (s *Store) DeleteMailbox(ctx context.Context, id string) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "DELETE FROM mailboxes WHERE id = $1", id)
		if err != nil {
			return dbError(err)
		}
		if tag.RowsAffected() == 0 {
			return notFound("mailbox", id)
		}
		for _, table := range []string{"cursors", "act_records", "act_conflicts"} {
			if _, err := tx.Exec(ctx, "DELETE FROM "+table+" WHERE mailbox_id = $1", id); err != nil {
				return dbError(err)
			}
		}
		return nil
	})
}

// ListMailboxes implements serversync.MailboxStore.
func (s *Store) ListMailboxes(ctx context.Context, f serversync.MailboxFilter) iter.Seq2[*serversync.Mailbox, error] {
	var w where
	if f.ProfileID != "" {
		w.add("profile_id =", f.ProfileID)
	}
	if f.EmailAddress != "" {
		w.add("email_key =", emailKey(f.EmailAddress))
	}
	if f.RegardingID != "" {
		w.add("regarding_id =", f.RegardingID)
	}
	if f.Approval != "" {
		w.add("approval =", string(f.Approval))
	}
	if f.Status != "" {
		w.add("status =", string(f.Status))
	}
	if f.Enabled != nil {
		w.add("any_enabled =", *f.Enabled)
	}
	if f.TestAndEnablePending != nil {
		w.add("test_pending =", *f.TestAndEnablePending)
	}
	// Spelled as the partial indexes' conditions, so the planner can use them: the
	// Syncer's scan for unscheduled mailboxes (every ScanInterval) reads the few
	// it finds, not the whole table.
	switch {
	case f.Scheduled == nil:
	case *f.Scheduled:
		w.clauses = append(w.clauses, "next_sync_at IS NOT NULL")
	default:
		w.clauses = append(w.clauses, "next_sync_at IS NULL")
	}
	return stream(ctx, s, list[*serversync.Mailbox]{
		selectFrom: "SELECT " + mailboxColumns + " FROM mailboxes",
		filter:     w,
		key:        "email_key",
		limit:      f.Limit,
		scan: func(rows pgx.Rows) (*serversync.Mailbox, any, error) {
			m, err := s.scanMailbox(ctx, rows)
			if err != nil {
				return nil, nil, dbError(err)
			}
			return m, emailKey(m.EmailAddress), nil
		},
	})
}
