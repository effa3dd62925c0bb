package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/serversync/serversync"
)

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
