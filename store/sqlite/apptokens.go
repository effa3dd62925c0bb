package sqlite

import (
	"context"
	"fmt"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/store/storekit"
)

var _ serversync.AppTokenStore = (*Store)(nil)

func (s *Store) decodeAppToken(ctx context.Context, key string, data []byte) (serversync.AppToken, error) {
	var t serversync.AppToken
	if err := storekit.DecodeRecord(ctx, s.sealer, storekit.AppTokenKind, key, data, &t); err != nil {
		return serversync.AppToken{}, fmt.Errorf("sqlite: %w", err)
	}
	return t, nil
}

// AppToken implements serversync.AppTokenStore.
func (s *Store) AppToken(ctx context.Context, key string) (serversync.AppToken, error) {
	if err := storekit.CheckAppTokenKey(key); err != nil {
		return serversync.AppToken{}, err
	}
	if s.closed.Load() {
		return serversync.AppToken{}, ErrClosed
	}
	data, err := readData(ctx, &s.reads, "app_tokens", "app token", key)
	if err != nil {
		return serversync.AppToken{}, err
	}
	return s.decodeAppToken(ctx, key, data)
}

// putAppTokenSQL stores the token unless the stored one expires later
// (storekit.KeepStoredAppToken).
const putAppTokenSQL = `INSERT INTO app_tokens (id, expires_at, data) VALUES (?, ?, ?)
ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at, data = excluded.data
WHERE app_tokens.expires_at <= excluded.expires_at`

// PutAppToken implements serversync.AppTokenStore. The comparison and the write
// share one write transaction, and SQLite runs one writer at a time, whichever
// process it is in.
func (s *Store) PutAppToken(ctx context.Context, key string, t serversync.AppToken) (serversync.AppToken, error) {
	if err := storekit.CheckAppToken(key, t); err != nil {
		return serversync.AppToken{}, err
	}
	if s.closed.Load() {
		return serversync.AppToken{}, ErrClosed
	}
	data, err := storekit.EncodeRecord(ctx, s.sealer, storekit.AppTokenKind, key, &t)
	if err != nil {
		return serversync.AppToken{}, fmt.Errorf("sqlite: %w", err)
	}
	var stored []byte
	err = s.write(ctx, func(tx *txn) error {
		if _, err := tx.ExecContext(ctx, putAppTokenSQL, key, micros(t.Expiry), data); err != nil {
			return err
		}
		stored, err = readData(ctx, tx, "app_tokens", "app token", key)
		return err
	})
	if err != nil {
		return serversync.AppToken{}, fmt.Errorf("sqlite: put app token %q: %w", key, err)
	}
	return s.decodeAppToken(ctx, key, stored)
}

// DeleteAppTokens implements serversync.AppTokenStore. Keys are compared as
// characters of valid UTF-8 text (storekit.CheckAppTokenKey), so a character
// prefix is a byte prefix; nothing in the prefix is a pattern.
func (s *Store) DeleteAppTokens(ctx context.Context, prefix string) error {
	if err := storekit.CheckAppTokenPrefix(prefix); err != nil {
		return err
	}
	err := s.write(ctx, func(tx *txn) error {
		_, err := tx.ExecContext(ctx, "DELETE FROM app_tokens WHERE substr(id, 1, length(?)) = ?", prefix, prefix)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: delete app tokens: %w", err)
	}
	return nil
}
