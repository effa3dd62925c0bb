package sqlite_test

import (
	"context"
	"database/sql"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/store/sqlite"
	"github.com/serversync/serversync/store/storetest"
)

func open(t testing.TB, path string, k auth.KeyProvider) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path, &sqlite.Options{Keys: k})
	require.NoError(t, err)
	return s
}

func TestReopenKeepsDataAndSchema(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "s.db")
	s := open(t, path, keys(t, 1))
	version, err := s.SchemaVersion(ctx)
	require.NoError(t, err)
	require.Positive(t, version)

	p := storetest.NewProfile("Reopened")
	p.Password = auth.NewSecret("profile-pw")
	require.NoError(t, s.CreateProfile(ctx, p))
	m := storetest.NewMailbox(p.ID, "alice@contoso.test")
	m.NextSyncAt = storetest.BaseTime
	require.NoError(t, s.CreateMailbox(ctx, m))
	a := storetest.NewActivity(m.ID, "key-1")
	_, err = s.SaveTracked(ctx, &serversync.Cursor{MailboxID: m.ID, Folder: "INBOX", Data: []byte("c1")}, []*serversync.EmailActivity{a})
	require.NoError(t, err)
	require.NoError(t, s.Close())

	s = open(t, path, keys(t, 1))
	defer s.Close()
	again, err := s.SchemaVersion(ctx)
	require.NoError(t, err)
	assert.Equal(t, version, again, "reopening applies no migration")
	gotP, err := s.GetProfile(ctx, p.ID)
	require.NoError(t, err)
	assert.Equal(t, "profile-pw", gotP.Password.Reveal())
	gotM, err := s.GetMailbox(ctx, m.ID)
	require.NoError(t, err)
	assert.True(t, gotM.NextSyncAt.Equal(storetest.BaseTime))
	c, err := s.GetCursor(ctx, m.ID, "INBOX")
	require.NoError(t, err)
	assert.Equal(t, []byte("c1"), c.Data)
	res, err := s.SaveTracked(ctx, nil, []*serversync.EmailActivity{a})
	require.NoError(t, err)
	assert.Equal(t, []int{0}, res.Duplicates, "tracked before the restart means tracked")
}

func TestNewerSchemaRefused(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "s.db")
	require.NoError(t, open(t, path, keys(t, 1)).Close())
	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	_, err = db.Exec("PRAGMA user_version = 999")
	require.NoError(t, err)
	require.NoError(t, db.Close())

	_, err = sqlite.Open(context.Background(), path, &sqlite.Options{Keys: keys(t, 1)})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "schema version 999")
}

// The proof: a known password is nowhere in the database files.
func TestSecretsNotInFile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "s.db")
	s := open(t, path, keys(t, 1))
	const (
		profilePassword = "Profile-Password-7c1e"
		mailboxPassword = "Mailbox-Password-93ab"
		refreshToken    = "Refresh-Token-55d0"
		appAccessToken  = "App-Access-Token-d41c"
	)
	_, err := s.PutAppToken(ctx, "p1/https://outlook.office365.com/.default", storetest.NewAppToken(appAccessToken, storetest.BaseTime))
	require.NoError(t, err)
	p := storetest.NewProfile("Secrets")
	p.Password = auth.NewSecret(profilePassword)
	require.NoError(t, s.CreateProfile(ctx, p))
	m := storetest.NewMailbox(p.ID, "alice@contoso.test")
	m.Password = auth.NewSecret(mailboxPassword)
	m.OAuthToken.RefreshToken = auth.NewSecret(refreshToken)
	require.NoError(t, s.CreateMailbox(ctx, m))

	files, err := filepath.Glob(path + "*") // the database, its -wal and -shm
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, secret := range []string{profilePassword, mailboxPassword, refreshToken, appAccessToken} {
			assert.NotContains(t, string(raw), secret, f)
			assert.NotContains(t, string(raw), base64.StdEncoding.EncodeToString([]byte(secret)), f)
		}
	}
	got, err := s.GetMailbox(ctx, m.ID)
	require.NoError(t, err)
	assert.Equal(t, mailboxPassword, got.Password.Reveal())
	assert.Equal(t, refreshToken, got.OAuthToken.RefreshToken.Reveal())
	require.NoError(t, s.Close())
}

func TestOpenWithoutKey(t *testing.T) {
	t.Setenv(auth.EnvSecretKey, "")
	t.Setenv(auth.EnvSecretKeyFile, "")
	_, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "s.db"), nil)
	require.ErrorIs(t, err, auth.ErrNoKey)
	assert.Contains(t, err.Error(), auth.EnvSecretKey)
}

// Writing inside a listing works (readers and the writer are separate connections),
// and breaking out of a listing releases its connection.
func TestWriteWhileListing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "s.db"), keys(t, 1))
	defer s.Close()
	p := storetest.NewProfile("P")
	require.NoError(t, s.CreateProfile(ctx, p))
	for _, email := range []string{"a@x.test", "b@x.test", "c@x.test"} {
		require.NoError(t, s.CreateMailbox(ctx, storetest.NewMailbox(p.ID, email)))
	}
	n := 0
	for m, err := range s.ListMailboxes(ctx, serversync.MailboxFilter{}) {
		require.NoError(t, err)
		_, err = s.UpdateMailbox(ctx, m.ID, func(m *serversync.Mailbox) error {
			m.Stats.ItemsProcessedLastSync = 7
			return nil
		})
		require.NoError(t, err)
		n++
	}
	assert.Equal(t, 3, n)
	for i := 0; i < 20; i++ { // more early breaks than reader connections: each must give its connection back
		for range s.ListMailboxes(ctx, serversync.MailboxFilter{}) {
			break
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.GetMailbox(ctx, storetest.NewMailbox(p.ID, "z@x.test").ID)
		done <- err
	}()
	select {
	case err := <-done:
		assert.ErrorIs(t, err, serversync.ErrNotFound)
	case <-time.After(10 * time.Second):
		t.Fatal("a read blocked after early breaks: listing connections leaked")
	}
}

// An app token's row, read behind the store's back, holds the access token sealed
// and the expiry PutAppToken compares; a row another key's token was copied into
// does not open.
func TestAppTokenSealedAtRest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "s.db")
	s := open(t, path, keys(t, 1))
	defer s.Close()
	const accessToken = "eyJhbGciOiJSUzI1NiJ9.App-Access-Token-77e2"
	expiry := storetest.BaseTime.Add(time.Hour)
	_, err := s.PutAppToken(ctx, "p1/r", storetest.NewAppToken(accessToken, expiry))
	require.NoError(t, err)
	_, err = s.PutAppToken(ctx, "p2/r", storetest.NewAppToken("other", expiry))
	require.NoError(t, err)

	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	defer db.Close()
	var (
		data    []byte
		expires int64
	)
	require.NoError(t, db.QueryRowContext(ctx, "SELECT data, expires_at FROM app_tokens WHERE id = ?", "p1/r").Scan(&data, &expires))
	assert.NotContains(t, string(data), accessToken)
	assert.NotContains(t, string(data), base64.StdEncoding.EncodeToString([]byte(accessToken)))
	assert.NotContains(t, string(data), "App-Access-Token")
	assert.Contains(t, string(data), `"AccessToken":"v1:`, "sealed under a key")
	assert.Equal(t, expiry.UnixMicro(), expires)

	// The sealed value is bound to its key: moved under another, it does not open.
	_, err = db.ExecContext(ctx, "UPDATE app_tokens SET data = ? WHERE id = ?", data, "p2/r")
	require.NoError(t, err)
	_, err = s.AppToken(ctx, "p2/r")
	require.ErrorIs(t, err, auth.ErrDecrypt)
	assert.NotContains(t, err.Error(), accessToken)
	got, err := s.AppToken(ctx, "p1/r")
	require.NoError(t, err)
	assert.Equal(t, accessToken, got.AccessToken.Reveal())
}

// A database from before activities had a body column (migration 0005) is
// migrated on Open, and the activities it holds, their bodies in their JSON, read
// back whole; updated, they are stored the new way and still read whole.
func TestActivitiesFromBeforeTheBodyColumnRead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "s.db")
	require.NoError(t, open(t, path, keys(t, 1)).Close())

	old, data := storetest.PreBodyColumnActivity(t)
	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	for _, stmt := range []string{ // undo migrations 0005 and after
		"ALTER TABLE activities DROP COLUMN body",
		"DROP INDEX mailboxes_unscheduled",
		fmt.Sprintf("PRAGMA user_version = %d", sqlite.VersionBefore("0005_")),
	} {
		_, err = db.Exec(stmt)
		require.NoError(t, err, stmt)
	}
	_, err = db.Exec(`INSERT INTO activities (id, mailbox_id, message_key, direction, status, message_id,
		tracking_token, conversation_hash, next_attempt_at, claim_expires_at, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, 0, ?)`,
		old.ID, old.MailboxID, old.MessageKey, string(old.Direction), string(old.Status), old.MessageID,
		old.TrackingToken, old.ConversationHash, data)
	require.NoError(t, err)
	require.NoError(t, db.Close())

	s := open(t, path, keys(t, 1))
	defer s.Close()
	version, err := s.SchemaVersion(ctx)
	require.NoError(t, err)
	assert.Greater(t, version, sqlite.VersionBefore("0005_"), "migrated")
	storetest.CheckPreBodyColumnActivity(t, s, old, func() []byte {
		db, err := sql.Open("sqlite", path)
		require.NoError(t, err)
		defer db.Close()
		var stored []byte
		require.NoError(t, db.QueryRow("SELECT data FROM activities WHERE id = ?", old.ID).Scan(&stored))
		return stored
	})
}
