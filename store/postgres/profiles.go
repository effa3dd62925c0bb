package postgres

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/store/storekit"
)

// nameKey is the profiles.name_key of a name: names are unique case-insensitively.
func nameKey(name string) string { return strings.ToLower(name) }

func (s *Store) decodeProfile(ctx context.Context, id string, data []byte) (*serversync.Profile, error) {
	var p serversync.Profile
	if err := storekit.DecodeRecord(ctx, s.sealer, "profile", id, data, &p); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return &p, nil
}

// CreateProfile implements serversync.ProfileStore.
func (s *Store) CreateProfile(ctx context.Context, p *serversync.Profile) error {
	if p.ID == "" {
		return storekit.Required("Profile", "ID")
	}
	if err := s.check(ctx); err != nil {
		return err
	}
	data, err := storekit.EncodeRecord(ctx, s.sealer, "profile", p.ID, p)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	_, err = s.pool.Exec(ctx, "INSERT INTO profiles (id, name_key, data) VALUES ($1, $2, $3)", p.ID, nameKey(p.Name), data)
	return dbError(err)
}

// readData returns the data column of the row of table with that id, or an error
// wrapping ErrNotFound. lock is "" or a locking clause such as "FOR NO KEY UPDATE".
func readData(ctx context.Context, q querier, table, entity, id, lock string) ([]byte, error) {
	var data []byte
	err := q.QueryRow(ctx, "SELECT data FROM "+table+" WHERE id = $1 "+lock, id).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound(entity, id)
	}
	return data, dbError(err)
}

// lockForUpdate is how Update methods lock the row they read: NO KEY UPDATE, since
// they never change a key, leaves the KEY SHARE locks of foreign key checks free, so
// updating a mailbox never waits for (or deadlocks with) a profile delete.
const lockForUpdate = "FOR NO KEY UPDATE"

// GetProfile implements serversync.ProfileStore.
func (s *Store) GetProfile(ctx context.Context, id string) (*serversync.Profile, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	data, err := readData(ctx, s.pool, "profiles", "profile", id, "")
	if err != nil {
		return nil, err
	}
	return s.decodeProfile(ctx, id, data)
}

// UpdateProfile implements serversync.ProfileStore.
func (s *Store) UpdateProfile(ctx context.Context, id string, update func(*serversync.Profile) error) (*serversync.Profile, error) {
	var out *serversync.Profile
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		data, err := readData(ctx, tx, "profiles", "profile", id, lockForUpdate)
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
		if data, err = storekit.EncodeRecord(ctx, s.sealer, "profile", id, p); err != nil {
			return fmt.Errorf("postgres: %w", err)
		}
		if _, err := tx.Exec(ctx, "UPDATE profiles SET name_key = $1, data = $2 WHERE id = $3", nameKey(p.Name), data, id); err != nil {
			return dbError(err)
		}
		out = p
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteProfile implements serversync.ProfileStore. The foreign key of
// mailboxes.profile_id makes the in-use check atomic with the delete.
func (s *Store) DeleteProfile(ctx context.Context, id string) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, "DELETE FROM profiles WHERE id = $1", id)
	switch {
	case pgCode(err) == codeForeignKeyViolation:
		return fmt.Errorf("postgres: profile %q: %w", id, serversync.ErrProfileInUse)
	case err != nil:
		return dbError(err)
	case tag.RowsAffected() == 0:
		return notFound("profile", id)
	}
	return nil
}

// ListProfiles implements serversync.ProfileStore.
func (s *Store) ListProfiles(ctx context.Context) iter.Seq2[*serversync.Profile, error] {
	return stream(ctx, s, list[*serversync.Profile]{
		selectFrom: "SELECT id, data FROM profiles",
		key:        "name_key",
		scan: func(rows pgx.Rows) (*serversync.Profile, any, error) {
			var id string
			var data []byte
			if err := rows.Scan(&id, &data); err != nil {
				return nil, nil, dbError(err)
			}
			p, err := s.decodeProfile(ctx, id, data)
			if err != nil {
				return nil, nil, err
			}
			return p, nameKey(p.Name), nil
		},
	})
}
