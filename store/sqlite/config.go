package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"strings"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/store/storekit"
)

// ---- Profiles ----------------------------------------------------------------

func (s *Store) encodeProfile(ctx context.Context, p *serversync.Profile) ([]byte, error) {
	return storekit.EncodeRecord(ctx, s.sealer, "profile", p.ID, p)
}

func (s *Store) decodeProfile(ctx context.Context, id string, data []byte) (*serversync.Profile, error) {
	var p serversync.Profile
	if err := storekit.DecodeRecord(ctx, s.sealer, "profile", id, data, &p); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	return &p, nil
}

// CreateProfile implements serversync.ProfileStore.
func (s *Store) CreateProfile(ctx context.Context, p *serversync.Profile) error {
	if p.ID == "" {
		return storekit.Required("Profile", "ID")
	}
	data, err := s.encodeProfile(ctx, p)
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx *txn) error {
		if exists(ctx, tx, "SELECT 1 FROM profiles WHERE id = ?", p.ID) {
			return serversync.DuplicateError("Profile", "ID")
		}
		if exists(ctx, tx, "SELECT 1 FROM profiles WHERE name_key = ?", strings.ToLower(p.Name)) {
			return serversync.DuplicateError("Profile", "Name")
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO profiles (id, name_key, data) VALUES (?, ?, ?)", p.ID, strings.ToLower(p.Name), data)
		return err
	})
}

// exists reports whether query finds a row; a failed query counts as no row and
// the statement that follows reports the problem.
func exists(ctx context.Context, tx *txn, query string, args ...any) bool {
	var one int
	return tx.QueryRowContext(ctx, query, args...).Scan(&one) == nil
}

// GetProfile implements serversync.ProfileStore.
func (s *Store) GetProfile(ctx context.Context, id string) (*serversync.Profile, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	data, err := readData(ctx, &s.reads, "profiles", "profile", id)
	if err != nil {
		return nil, err
	}
	return s.decodeProfile(ctx, id, data)
}

// UpdateProfile implements serversync.ProfileStore.
func (s *Store) UpdateProfile(ctx context.Context, id string, update func(*serversync.Profile) error) (*serversync.Profile, error) {
	var out *serversync.Profile
	err := s.write(ctx, func(tx *txn) error {
		data, err := readData(ctx, tx, "profiles", "profile", id)
		if err != nil {
			return err
		}
		p, err := s.decodeProfile(ctx, id, data)
		if err != nil {
			return err
		}
		if err := update(p); err != nil {
			return err
		}
		if p.ID != id {
			return storekit.Unchangeable("Profile", "ID")
		}
		if exists(ctx, tx, "SELECT 1 FROM profiles WHERE name_key = ? AND id <> ?", strings.ToLower(p.Name), id) {
			return serversync.DuplicateError("Profile", "Name")
		}
		if data, err = s.encodeProfile(ctx, p); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, "UPDATE profiles SET name_key = ?, data = ? WHERE id = ?", strings.ToLower(p.Name), data, id)
		out = p
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteProfile implements serversync.ProfileStore.
func (s *Store) DeleteProfile(ctx context.Context, id string) error {
	return s.write(ctx, func(tx *txn) error {
		if exists(ctx, tx, "SELECT 1 FROM mailboxes WHERE profile_id = ? LIMIT 1", id) {
			return fmt.Errorf("sqlite: profile %q: %w", id, serversync.ErrProfileInUse)
		}
		res, err := tx.ExecContext(ctx, "DELETE FROM profiles WHERE id = ?", id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return notFound("profile", id)
		}
		return nil
	})
}

// ListProfiles implements serversync.ProfileStore.
func (s *Store) ListProfiles(ctx context.Context) iter.Seq2[*serversync.Profile, error] {
	return rowsSeq(ctx, s, "SELECT id, data FROM profiles ORDER BY name_key, id", nil,
		func(rows *sql.Rows) (*serversync.Profile, error) {
			var id string
			var data []byte
			if err := rows.Scan(&id, &data); err != nil {
				return nil, fmt.Errorf("sqlite: %w", err)
			}
			return s.decodeProfile(ctx, id, data)
		})
}

// ---- Mailboxes ---------------------------------------------------------------

// mailboxColumns are read with every mailbox: the record and the lease state that
// the lease methods keep in columns.
const mailboxColumns = "id, data, next_sync_at, lease_host, lease_expires_at, forced_unlocks"

func (s *Store) scanMailbox(ctx context.Context, row interface{ Scan(...any) error }) (*serversync.Mailbox, error) {
	var (
		id, host      string
		data          []byte
		next, expires int64
		forcedUnlocks int
	)
	if err := row.Scan(&id, &data, &next, &host, &expires, &forcedUnlocks); err != nil {
		return nil, err
	}
	var m serversync.Mailbox
	if err := storekit.DecodeRecord(ctx, s.sealer, "mailbox", id, data, &m); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	m.NextSyncAt, m.LeaseHost, m.LeaseExpiresAt, m.ForcedUnlockCount = fromMicros(next), host, fromMicros(expires), forcedUnlocks
	return &m, nil
}

// checkMailboxRefs enforces the unique fields and the profile reference of m.
func checkMailboxRefs(ctx context.Context, tx *txn, m *serversync.Mailbox) error {
	if exists(ctx, tx, "SELECT 1 FROM mailboxes WHERE email_key = ? AND id <> ?", strings.ToLower(m.EmailAddress), m.ID) {
		return serversync.DuplicateError("Mailbox", "EmailAddress")
	}
	// "regarding_id <> ''" repeats the partial index's condition so SQLite uses the
	// index instead of scanning every mailbox on each save.
	if m.Regarding.ID != "" && exists(ctx, tx, "SELECT 1 FROM mailboxes WHERE regarding_id = ? AND regarding_id <> '' AND id <> ?", m.Regarding.ID, m.ID) {
		return serversync.DuplicateError("Mailbox", "Regarding")
	}
	if m.ProfileID != "" && !exists(ctx, tx, "SELECT 1 FROM profiles WHERE id = ?", m.ProfileID) {
		return &serversync.ValidationError{Entity: "Mailbox", Field: "ProfileID",
			Reason: fmt.Sprintf("no profile %q: create it first or leave ProfileID empty", m.ProfileID), Err: serversync.ErrNotFound}
	}
	return nil
}

// mailboxIndex is the searchable columns derived from a mailbox.
func mailboxIndex(m *serversync.Mailbox) []any {
	return []any{strings.ToLower(m.EmailAddress), m.Regarding.ID, m.ProfileID, string(m.Approval), string(m.Status),
		boolInt(m.AnyEnabled()), boolInt(m.TestAndEnablePending), micros(m.NextSyncAt)}
}

// CreateMailbox implements serversync.MailboxStore.
func (s *Store) CreateMailbox(ctx context.Context, m *serversync.Mailbox) error {
	if m.ID == "" {
		return storekit.Required("Mailbox", "ID")
	}
	data, err := storekit.EncodeRecord(ctx, s.sealer, "mailbox", m.ID, m)
	if err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	return s.write(ctx, func(tx *txn) error {
		if exists(ctx, tx, "SELECT 1 FROM mailboxes WHERE id = ?", m.ID) {
			return serversync.DuplicateError("Mailbox", "ID")
		}
		if err := checkMailboxRefs(ctx, tx, m); err != nil {
			return err
		}
		args := append([]any{m.ID}, mailboxIndex(m)...)
		args = append(args, m.LeaseHost, micros(m.LeaseExpiresAt), m.ForcedUnlockCount, data)
		_, err := tx.ExecContext(ctx, `INSERT INTO mailboxes (id, email_key, regarding_id, profile_id, approval, status,
			any_enabled, test_pending, next_sync_at, lease_host, lease_expires_at, forced_unlocks, data)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, args...)
		return err
	})
}

// GetMailbox implements serversync.MailboxStore.
func (s *Store) GetMailbox(ctx context.Context, id string) (*serversync.Mailbox, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	m, err := s.scanMailbox(ctx, s.queryRow(ctx, "SELECT "+mailboxColumns+" FROM mailboxes WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("mailbox", id)
	} else if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	return m, nil
}

// UpdateMailbox implements serversync.MailboxStore.
func (s *Store) UpdateMailbox(ctx context.Context, id string, update func(*serversync.Mailbox) error) (*serversync.Mailbox, error) {
	var out *serversync.Mailbox
	err := s.write(ctx, func(tx *txn) error {
		m, err := s.scanMailbox(ctx, tx.QueryRowContext(ctx, "SELECT "+mailboxColumns+" FROM mailboxes WHERE id = ?", id))
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("mailbox", id)
		} else if err != nil {
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
		if err := checkMailboxRefs(ctx, tx, m); err != nil {
			return err
		}
		data, err := storekit.EncodeRecord(ctx, s.sealer, "mailbox", id, m)
		if err != nil {
			return err
		}
		args := append(mailboxIndex(m), data, id)
		_, err = tx.ExecContext(ctx, `UPDATE mailboxes SET email_key = ?, regarding_id = ?, profile_id = ?, approval = ?,
			status = ?, any_enabled = ?, test_pending = ?, next_sync_at = ?, data = ? WHERE id = ?`, args...)
		out = m
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteMailbox implements serversync.MailboxStore.
func (s *Store) DeleteMailbox(ctx context.Context, id string) error {
	return s.write(ctx, func(tx *txn) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM mailboxes WHERE id = ?", id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return notFound("mailbox", id)
		}
		_, err = tx.ExecContext(ctx, "DELETE FROM cursors WHERE mailbox_id = ?", id)
		return err
	})
}

// ListMailboxes implements serversync.MailboxStore.
func (s *Store) ListMailboxes(ctx context.Context, f serversync.MailboxFilter) iter.Seq2[*serversync.Mailbox, error] {
	var w where
	if f.ProfileID != "" {
		w.add("profile_id = ?", f.ProfileID)
	}
	if f.EmailAddress != "" {
		w.add("email_key = ?", strings.ToLower(f.EmailAddress))
	}
	if f.RegardingID != "" {
		w.add("regarding_id = ? AND regarding_id <> ''", f.RegardingID) // the second term lets SQLite use the partial index
	}
	if f.Approval != "" {
		w.add("approval = ?", string(f.Approval))
	}
	if f.Status != "" {
		w.add("status = ?", string(f.Status))
	}
	if f.Enabled != nil {
		w.add("any_enabled = ?", boolInt(*f.Enabled))
	}
	if f.TestAndEnablePending != nil {
		w.add("test_pending = ?", boolInt(*f.TestAndEnablePending))
	}
	if f.Scheduled != nil {
		w.add("(coalesce(next_sync_at, 0) <> 0) = ?", boolInt(*f.Scheduled)) // micros stores the zero time as 0
	}
	query := "SELECT " + mailboxColumns + " FROM mailboxes" + w.String() + " ORDER BY email_key, id LIMIT ?"
	return rowsSeq(ctx, s, query, append(w.args, limit(f.Limit)), func(rows *sql.Rows) (*serversync.Mailbox, error) {
		return s.scanMailbox(ctx, rows)
	})
}

// ---- Org settings ------------------------------------------------------------

// GetOrgSettings implements serversync.SettingsStore.
func (s *Store) GetOrgSettings(ctx context.Context) (*serversync.OrgSettings, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	var data []byte
	err := s.queryRow(ctx, "SELECT data FROM settings WHERE id = 1").Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return serversync.DefaultOrgSettings(), nil
	} else if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	var settings serversync.OrgSettings
	if err := json.Unmarshal(data, &settings); err != nil {
		return nil, fmt.Errorf("sqlite: decode org settings: %w", err)
	}
	return &settings, nil
}

// UpdateOrgSettings implements serversync.SettingsStore.
func (s *Store) UpdateOrgSettings(ctx context.Context, update func(*serversync.OrgSettings) error) (*serversync.OrgSettings, error) {
	var out *serversync.OrgSettings
	err := s.write(ctx, func(tx *txn) error {
		settings := serversync.DefaultOrgSettings()
		var data []byte
		err := tx.QueryRowContext(ctx, "SELECT data FROM settings WHERE id = 1").Scan(&data)
		switch {
		case err == nil:
			if err := json.Unmarshal(data, settings); err != nil {
				return fmt.Errorf("sqlite: decode org settings: %w", err)
			}
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		if err := update(settings); err != nil {
			return err
		}
		if data, err = json.Marshal(settings); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, "INSERT INTO settings (id, data) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET data = excluded.data", data)
		out = settings
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
