package storetest

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
)

// testKeys is a key provider whose current key is filled with fill and which still
// opens what keys filled with previous sealed.
func testKeys(t testing.TB, fill byte, previous ...byte) auth.KeyProvider {
	t.Helper()
	key := func(fill byte) auth.Key {
		k, err := auth.NewKey(bytes.Repeat([]byte{fill}, auth.KeySize))
		require.NoError(t, err)
		return k
	}
	var old []auth.Key
	for _, f := range previous {
		old = append(old, key(f))
	}
	return auth.NewStaticKeys(key(fill), old...)
}

// rotatorOf returns s as a SecretRotator, skipping t for a store without one.
func rotatorOf(t *testing.T, s serversync.Store) serversync.SecretRotator {
	t.Helper()
	r, ok := s.(serversync.SecretRotator)
	if !ok {
		t.Skip("storetest: the store implements no serversync.SecretRotator")
	}
	return r
}

// database is fresh storage from Harness.NewDatabase.
type database struct {
	open   func(keys auth.KeyProvider) serversync.Store
	closed map[serversync.Store]bool
}

// handle opens a new handle on the database, closed when t ends unless the test
// closes it first with close.
func (d *database) handle(t *testing.T, keys auth.KeyProvider) serversync.Store {
	t.Helper()
	s := d.open(keys)
	require.NotNil(t, s, "storetest: Harness.NewDatabase's open returned nil")
	t.Cleanup(func() {
		if !d.closed[s] {
			_ = s.Close()
		}
	})
	return s
}

// close closes a handle once.
func (d *database) close(t *testing.T, s serversync.Store) {
	t.Helper()
	d.closed[s] = true
	require.NoError(t, s.Close())
}

// openDatabase returns fresh storage, skipping t when the harness has no
// NewDatabase.
func (h harness) openDatabase(t *testing.T) *database {
	t.Helper()
	if h.NewDatabase == nil {
		s := h.openUnmanaged(t)
		_, rotates := s.(serversync.SecretRotator)
		require.NoError(t, s.Close())
		if rotates {
			t.Skip("storetest: the store is a serversync.SecretRotator: run storetest.RunHarness with a Harness.NewDatabase to test it")
		}
		t.Skip("storetest: the store implements no serversync.SecretRotator")
	}
	return &database{open: h.NewDatabase(t), closed: map[serversync.Store]bool{}}
}

func testSecretRotation(t *testing.T, h harness) {
	// What one key sealed, RotateSecrets re-seals under the next: everything still
	// reads back, a second run finds nothing to do, the old key can be retired, and
	// without the new key nothing opens.
	t.Run("ResealsUnderTheCurrentKey", func(t *testing.T) {
		t.Parallel()
		db := h.openDatabase(t)
		ctx := t.Context()

		s := db.handle(t, testKeys(t, 1))
		rotatorOf(t, s)
		p := NewProfile("Rotated")
		p.Password = auth.NewSecret("profile-password")
		require.NoError(t, s.CreateProfile(ctx, p))
		m := NewMailbox(p.ID, "alice@example.com")
		m.Password = auth.NewSecret("mailbox-password")
		m.OAuthToken.RefreshToken = auth.NewSecret("refresh-token")
		require.NoError(t, s.CreateMailbox(ctx, m))
		// More than a page of rows, for stores that rotate in batches, and rows
		// without secrets, which have nothing to re-seal.
		const more = 250
		for i := range more {
			mb := NewMailbox("", fmt.Sprintf("user%03d@example.com", i))
			if i%2 == 0 {
				mb.Password = auth.NewSecret(fmt.Sprint("password-", i))
			}
			require.NoError(t, s.CreateMailbox(ctx, mb))
		}
		db.close(t, s)

		s = db.handle(t, testKeys(t, 2, 1)) // a new current key, the old one kept to open
		n, err := rotatorOf(t, s).RotateSecrets(ctx)
		require.NoError(t, err)
		assert.Equal(t, 3+more/2, n, "every sealed value is rewritten once")
		requireSecrets(t, s, p, m)
		n, err = rotatorOf(t, s).RotateSecrets(ctx)
		require.NoError(t, err)
		assert.Zero(t, n, "nothing is left under the old key")
		db.close(t, s)

		s = db.handle(t, testKeys(t, 2)) // the old key can go now
		requireSecrets(t, s, p, m)
		got := Collect(t, s.ListMailboxes(ctx, serversync.MailboxFilter{EmailAddress: "user100@example.com"}))
		require.Len(t, got, 1)
		assert.Equal(t, "password-100", got[0].Password.Reveal())
		db.close(t, s)

		s = db.handle(t, testKeys(t, 1)) // without the new key nothing opens
		_, err = s.GetProfile(ctx, p.ID)
		require.ErrorIs(t, err, auth.ErrUnknownKey)
		_, err = s.GetMailbox(ctx, m.ID)
		require.ErrorIs(t, err, auth.ErrUnknownKey)
		db.close(t, s)
	})

	t.Run("NothingToRotate", func(t *testing.T) {
		t.Parallel()
		db := h.openDatabase(t)
		s := db.handle(t, testKeys(t, 1))
		n, err := rotatorOf(t, s).RotateSecrets(t.Context())
		require.NoError(t, err)
		assert.Zero(t, n)
	})

	t.Run("CancelledContext", func(t *testing.T) {
		t.Parallel()
		db := h.openDatabase(t)
		s := db.handle(t, testKeys(t, 1))
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := rotatorOf(t, s).RotateSecrets(ctx)
		require.ErrorIs(t, err, context.Canceled)
	})

	t.Run("CallAfterCloseFails", func(t *testing.T) {
		t.Parallel()
		db := h.openDatabase(t)
		s := db.handle(t, testKeys(t, 1))
		r := rotatorOf(t, s)
		db.close(t, s)
		_, err := r.RotateSecrets(t.Context())
		require.ErrorIs(t, err, serversync.ErrClosed)
	})
}

// requireSecrets checks that p's and m's secrets read back from s as stored.
func requireSecrets(t *testing.T, s serversync.Store, p *serversync.Profile, m *serversync.Mailbox) {
	t.Helper()
	gotP, err := s.GetProfile(t.Context(), p.ID)
	require.NoError(t, err)
	assert.Equal(t, p.Password.Reveal(), gotP.Password.Reveal())
	gotM, err := s.GetMailbox(t.Context(), m.ID)
	require.NoError(t, err)
	assert.Equal(t, m.Password.Reveal(), gotM.Password.Reveal())
	assert.Equal(t, m.OAuthToken.RefreshToken.Reveal(), gotM.OAuthToken.RefreshToken.Reveal())
}
