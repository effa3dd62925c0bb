package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/store/storekit"
)

var _ serversync.AppTokenStore = (*Store)(nil)

func (s *Store) decodeAppToken(ctx context.Context, key string, data []byte) (serversync.AppToken, error) {
	var t serversync.AppToken
	if err := storekit.DecodeRecord(ctx, s.sealer, storekit.AppTokenKind, key, data, &t); err != nil {
		return serversync.AppToken{}, fmt.Errorf("postgres: %w", err)
	}
	return t, nil
}

// AppToken implements serversync.AppTokenStore.
func (s *Store) AppToken(ctx context.Context, key string) (serversync.AppToken, error) {
	if err := storekit.CheckAppTokenKey(key); err != nil {
		return serversync.AppToken{}, err
	}
	if err := s.check(ctx); err != nil {
		return serversync.AppToken{}, err
	}
	data, err := readData(ctx, s.pool, "app_tokens", "app token", key, "")
	if err != nil {
		return serversync.AppToken{}, err
	}
	return s.decodeAppToken(ctx, key, data)
}

// putAppTokenSQL stores the token unless the stored one expires later
// (storekit.KeepStoredAppToken), atomically however many processes put at once,
// and returns the row when it wrote one. When it did not, PostgreSQL has locked
// the stored row all the same, so reading it in the same transaction returns the
// token that won until the transaction ends.
const putAppTokenSQL = `INSERT INTO app_tokens (id, expires_at, data) VALUES ($1, $2, $3)
ON CONFLICT (id) DO UPDATE SET expires_at = EXCLUDED.expires_at, data = EXCLUDED.data
WHERE app_tokens.expires_at <= EXCLUDED.expires_at
RETURNING data`

// PutAppToken implements serversync.AppTokenStore: one statement when the token
// is stored, a second one in the same transaction to read the later token kept.
func (s *Store) PutAppToken(ctx context.Context, key string, t serversync.AppToken) (serversync.AppToken, error) {
	if err := storekit.CheckAppToken(key, t); err != nil {
		return serversync.AppToken{}, err
	}
	if err := s.check(ctx); err != nil {
		return serversync.AppToken{}, err
	}
	data, err := storekit.EncodeRecord(ctx, s.sealer, storekit.AppTokenKind, key, &t)
	if err != nil {
		return serversync.AppToken{}, fmt.Errorf("postgres: %w", err)
	}
	var stored []byte
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, putAppTokenSQL, key, t.Expiry, data).Scan(&stored)
		if errors.Is(err, pgx.ErrNoRows) { // a later token is stored
			stored, err = readData(ctx, tx, "app_tokens", "app token", key, "")
			return err
		}
		return dbError(err)
	})
	if err != nil {
		return serversync.AppToken{}, err
	}
	return s.decodeAppToken(ctx, key, stored)
}

// DeleteAppTokens implements serversync.AppTokenStore. starts_with compares
// characters, not patterns, so no character of the prefix is special.
func (s *Store) DeleteAppTokens(ctx context.Context, prefix string) error {
	if err := storekit.CheckAppTokenPrefix(prefix); err != nil {
		return err
	}
	if err := s.check(ctx); err != nil {
		return err
	}
	_, err := s.pool.Exec(ctx, "DELETE FROM app_tokens WHERE starts_with(id, $1)", prefix)
	return dbError(err)
}
