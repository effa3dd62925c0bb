package postgres

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/serversync/serversync"
)

func decodeSettings(data []byte) (*serversync.OrgSettings, error) {
	settings := serversync.DefaultOrgSettings()
	if data == nil { // never stored
		return settings, nil
	}
	if err := json.Unmarshal(data, settings); err != nil {
		return nil, fmt.Errorf("postgres: decode org settings: %w", err)
	}
	return settings, nil
}

// GetOrgSettings implements serversync.SettingsStore.
func (s *Store) GetOrgSettings(ctx context.Context) (*serversync.OrgSettings, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	var data []byte
	if err := s.pool.QueryRow(ctx, "SELECT data FROM settings WHERE id = 1").Scan(&data); err != nil {
		return nil, dbError(err)
	}
	return decodeSettings(data)
}

// UpdateOrgSettings implements serversync.SettingsStore. The settings row exists
// from the first migration on, so concurrent updates queue on its lock.
func (s *Store) UpdateOrgSettings(ctx context.Context, update func(*serversync.OrgSettings) error) (*serversync.OrgSettings, error) {
	var out *serversync.OrgSettings
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var data []byte
		if err := tx.QueryRow(ctx, "SELECT data FROM settings WHERE id = 1 FOR UPDATE").Scan(&data); err != nil {
			return dbError(err)
		}
		settings, err := decodeSettings(data)
		if err != nil {
			return err
		}
		if err := update(settings); err != nil {
			return err
		}
		if data, err = json.Marshal(settings); err != nil {
			return fmt.Errorf("postgres: encode org settings: %w", err)
		}
		if _, err := tx.Exec(ctx, "UPDATE settings SET data = $1 WHERE id = 1", data); err != nil {
			return dbError(err)
		}
		out = settings
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
