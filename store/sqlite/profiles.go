package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"iter"
	"strings"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/store/storekit"
)

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
