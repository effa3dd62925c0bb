package postgres_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"iter"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/internal/pgtest"
	"github.com/serversync/serversync/store/postgres"
	"github.com/serversync/serversync/store/storetest"
)

// connect opens a plain connection for reading the tables behind the store's back.
func connect(t *testing.T) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), pgtest.URL(t))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func table(schema, name string) string { return pgx.Identifier{schema, name}.Sanitize() }

// Processes starting together on a new database all open it; one of them migrates.
func TestConcurrentMigration(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	schema := pgtest.FreshSchema(t)
	const processes = 8
	var (
		wg     sync.WaitGroup
		start  = make(chan struct{})
		stores = make([]*postgres.Store, processes)
		errs   = make([]error, processes)
	)
	for i := range processes {
		wg.Go(func() {
			<-start
			stores[i], errs[i] = postgres.Open(ctx, pgtest.URL(t), &postgres.Options{Keys: keys(t, 1), Schema: schema})
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "process %d", i)
		defer stores[i].Close()
	}
	for _, s := range stores {
		v, err := s.SchemaVersion(ctx)
		require.NoError(t, err)
		assert.Equal(t, postgres.KnownVersion(), v)
	}
	var rows, version int
	require.NoError(t, connect(t).QueryRow(ctx, "SELECT count(*), max(version) FROM "+table(schema, "serversync_migrations")).Scan(&rows, &version))
	assert.Equal(t, postgres.KnownVersion(), rows, "each migration applied once")
	assert.Equal(t, postgres.KnownVersion(), version)

	// All of them work on the one schema.
	p := storetest.NewProfile("Shared")
	require.NoError(t, stores[3].CreateProfile(ctx, p))
	_, err := stores[6].GetProfile(ctx, p.ID)
	require.NoError(t, err)
}

func TestReopenKeepsDataAndSchema(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	schema := pgtest.FreshSchema(t)
	s := open(t, schema, keys(t, 1))
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
	leases, err := s.AcquireLeases(ctx, serversync.LeaseRequest{Host: "host-a", Now: storetest.BaseTime, TTL: time.Hour, Limit: 1})
	require.NoError(t, err)
	require.Len(t, leases, 1)
	require.NoError(t, s.Close())

	s = open(t, schema, keys(t, 1))
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
	assert.Equal(t, "host-a", gotM.LeaseHost)
	c, err := s.GetCursor(ctx, m.ID, "INBOX")
	require.NoError(t, err)
	assert.Equal(t, []byte("c1"), c.Data)
	res, err := s.SaveTracked(ctx, nil, []*serversync.EmailActivity{a})
	require.NoError(t, err)
	assert.Equal(t, []int{0}, res.Duplicates, "tracked before the restart means tracked")
	require.NoError(t, s.ReleaseLease(ctx, leases[0], time.Time{}), "a lease outlives its holder's restart")
}

// A database made by an older release is brought up to date when opened, its data
// kept: here, one from before migration 2 (the mailboxes' fillfactor).
func TestOlderSchemaMigrated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	schema := pgtest.FreshSchema(t)
	s := open(t, schema, keys(t, 1))
	m := storetest.NewMailbox("", "alice@example.com")
	require.NoError(t, s.CreateMailbox(ctx, m))
	require.NoError(t, s.Close())
	conn := connect(t)
	fillfactor := func() string {
		var options []string
		require.NoError(t, conn.QueryRow(ctx, "SELECT coalesce(reloptions, '{}') FROM pg_class WHERE oid = $1::regclass",
			table(schema, "mailboxes")).Scan(&options))
		return strings.Join(options, ",")
	}
	require.Equal(t, "fillfactor=70", fillfactor())
	_, err := conn.Exec(ctx, "ALTER TABLE "+table(schema, "mailboxes")+" RESET (fillfactor)")
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "DELETE FROM "+table(schema, "serversync_migrations")+" WHERE version >= 2")
	require.NoError(t, err)

	s = open(t, schema, keys(t, 1))
	defer s.Close()
	v, err := s.SchemaVersion(ctx)
	require.NoError(t, err)
	assert.Equal(t, postgres.KnownVersion(), v)
	assert.Equal(t, "fillfactor=70", fillfactor())
	_, err = s.GetMailbox(ctx, m.ID)
	assert.NoError(t, err)
}

func TestNewerSchemaRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	schema := pgtest.FreshSchema(t)
	require.NoError(t, open(t, schema, keys(t, 1)).Close())
	_, err := connect(t).Exec(ctx, "INSERT INTO "+table(schema, "serversync_migrations")+" (version) VALUES (999)")
	require.NoError(t, err)

	_, err = postgres.Open(ctx, pgtest.URL(t), &postgres.Options{Keys: keys(t, 1), Schema: schema})
	var tooNew *postgres.SchemaTooNewError
	require.ErrorAs(t, err, &tooNew)
	assert.Equal(t, 999, tooNew.Version)
	assert.Equal(t, postgres.KnownVersion(), tooNew.Known)
	assert.Contains(t, err.Error(), "schema version 999")
}

func TestSchemaOption(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// The subtests run in parallel, and a pgx.Conn is for one goroutine: each
	// connects on its own.
	countMailboxes := func(t *testing.T, schema string) int {
		var n int
		require.NoError(t, connect(t).QueryRow(ctx, "SELECT count(*) FROM "+table(schema, "mailboxes")).Scan(&n))
		return n
	}

	t.Run("CreatedAndQuoted", func(t *testing.T) {
		t.Parallel()
		schema := pgtest.Schema(t, "Serversync Test-"+serversync.NewID()) // needs quoting everywhere
		s := open(t, schema, keys(t, 1))
		defer s.Close()
		require.NoError(t, s.CreateMailbox(ctx, storetest.NewMailbox("", "alice@example.com")))
		assert.Equal(t, 1, countMailboxes(t, schema))
	})

	t.Run("EmptyUsesSearchPath", func(t *testing.T) {
		t.Parallel()
		schema := pgtest.FreshSchema(t)
		_, err := connect(t).Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize())
		require.NoError(t, err)
		s, err := postgres.Open(ctx, pgtest.WithParam(pgtest.URL(t), "search_path="+schema), &postgres.Options{Keys: keys(t, 1)})
		require.NoError(t, err)
		defer s.Close()
		require.NoError(t, s.CreateMailbox(ctx, storetest.NewMailbox("", "alice@example.com")))
		assert.Equal(t, 1, countMailboxes(t, schema))
	})

	t.Run("SchemasAreSeparateStores", func(t *testing.T) {
		t.Parallel()
		one, two := open(t, pgtest.FreshSchema(t), keys(t, 1)), open(t, pgtest.FreshSchema(t), keys(t, 1))
		defer one.Close()
		defer two.Close()
		m := storetest.NewMailbox("", "alice@example.com")
		require.NoError(t, one.CreateMailbox(ctx, m))
		require.NoError(t, two.CreateMailbox(ctx, storetest.NewMailbox("", "alice@example.com")), "the address is taken in the other schema only")
		_, err := two.GetMailbox(ctx, m.ID)
		require.ErrorIs(t, err, serversync.ErrNotFound)
	})
}

// The proof: known credentials are nowhere in the tables, as the database
// (and so a dump or a backup) holds them.
func TestSecretsNotStoredInPlainText(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	schema := pgtest.FreshSchema(t)
	s := open(t, schema, keys(t, 1))
	defer s.Close()
	const (
		profilePassword = "Profile-Password-7c1e"
		clientSecret    = "Client-Secret-0b4f"
		mailboxPassword = "Mailbox-Password-93ab"
		refreshToken    = "Refresh-Token-55d0"
		appAccessToken  = "App-Access-Token-d41c"
	)
	_, err := s.PutAppToken(ctx, "p1/https://outlook.office365.com/.default", storetest.NewAppToken(appAccessToken, storetest.BaseTime))
	require.NoError(t, err)
	p := storetest.NewProfile("Secrets")
	p.Password = auth.NewSecret(profilePassword)
	p.ClientSecret = auth.NewSecret(clientSecret)
	require.NoError(t, s.CreateProfile(ctx, p))
	m := storetest.NewMailbox(p.ID, "alice@contoso.test")
	m.Password = auth.NewSecret(mailboxPassword)
	m.OAuthToken.RefreshToken = auth.NewSecret(refreshToken)
	require.NoError(t, s.CreateMailbox(ctx, m))
	_, err = s.UpdateMailbox(ctx, m.ID, func(m *serversync.Mailbox) error {
		m.Name = "rewritten through an update"
		return nil
	})
	require.NoError(t, err)

	conn := connect(t)
	rows, err := conn.Query(ctx, "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema)
	require.NoError(t, err)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Contains(t, tables, "mailboxes")
	require.Contains(t, tables, "app_tokens")
	values := 0
	for _, name := range tables {
		rows, err := conn.Query(ctx, "SELECT * FROM "+table(schema, name))
		require.NoError(t, err)
		for rows.Next() {
			row, err := rows.Values()
			require.NoError(t, err)
			for _, v := range row {
				var raw string
				switch v := v.(type) {
				case []byte: // the records: their bytes as stored, not PostgreSQL's hex form
					raw = string(v)
				default:
					raw = fmt.Sprint(v)
				}
				values++
				for _, secret := range []string{profilePassword, clientSecret, mailboxPassword, refreshToken, appAccessToken} {
					assert.NotContains(t, raw, secret, "table %s", name)
					assert.NotContains(t, raw, base64.StdEncoding.EncodeToString([]byte(secret)), "table %s", name)
				}
			}
		}
		require.NoError(t, rows.Err())
	}
	require.Positive(t, values)

	got, err := s.GetMailbox(ctx, m.ID)
	require.NoError(t, err)
	assert.Equal(t, mailboxPassword, got.Password.Reveal())
	assert.Equal(t, refreshToken, got.OAuthToken.RefreshToken.Reveal())
}

func TestOpenWithoutKey(t *testing.T) {
	url := pgtest.URL(t)
	t.Setenv(auth.EnvSecretKey, "")
	t.Setenv(auth.EnvSecretKeyFile, "")
	_, err := postgres.Open(context.Background(), url, nil)
	require.ErrorIs(t, err, auth.ErrNoKey)
	assert.Contains(t, err.Error(), auth.EnvSecretKey)
}

func TestOpenErrorsHidePassword(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Nothing listens on port 1; the password must not appear in the error.
	_, err := postgres.Open(ctx, "postgres://sync:Very-Secret-Pw@127.0.0.1:1/db?sslmode=disable&connect_timeout=2", &postgres.Options{Keys: keys(t, 1)})
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "Very-Secret-Pw")
	_, err = postgres.Open(ctx, "postgres://sync:Very-Secret-Pw@127.0.0.1:1/db?pool_max_conns=nope", &postgres.Options{Keys: keys(t, 1)})
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "Very-Secret-Pw")
}

// Hosts are separate processes, each with its own pool: they take leases from one
// table at the same time, and no mailbox is ever held by two of them.
func TestHostsNeverShareAMailbox(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	schema := pgtest.FreshSchema(t)
	const (
		hosts, workersPerHost = 4, 2
		mailboxes, rounds     = 150, 30
	)
	stores := make([]*postgres.Store, hosts)
	for i := range stores {
		stores[i] = open(t, schema, keys(t, 1))
		defer stores[i].Close()
	}
	for i := range mailboxes {
		m := storetest.NewMailbox("", fmt.Sprintf("m%03d@example.com", i))
		m.NextSyncAt = storetest.BaseTime
		require.NoError(t, stores[i%hosts].CreateMailbox(ctx, m))
	}
	var (
		clock   atomic.Int64 // seconds since BaseTime
		mu      sync.Mutex
		holders = map[string]string{}
		tokens  = map[string]int64{}
		perHost = make([]atomic.Int64, hosts)
		wg      sync.WaitGroup
	)
	for h, s := range stores {
		host := fmt.Sprint("host-", h)
		for range workersPerHost {
			wg.Go(func() {
				for range rounds {
					// Leases outlive the test's clock: a mailbox is free only once released.
					now := storetest.BaseTime.Add(time.Duration(clock.Add(1)) * time.Second)
					leases, err := s.AcquireLeases(ctx, serversync.LeaseRequest{Host: host, Now: now, TTL: 24 * time.Hour, Limit: 7})
					if !assert.NoError(t, err) {
						return
					}
					mu.Lock()
					for _, l := range leases {
						if prev, held := holders[l.MailboxID]; held {
							t.Errorf("mailbox %s leased to %s while %s holds it", l.MailboxID, host, prev)
						}
						if l.Token <= tokens[l.MailboxID] {
							t.Errorf("mailbox %s: token %d after %d", l.MailboxID, l.Token, tokens[l.MailboxID])
						}
						holders[l.MailboxID], tokens[l.MailboxID] = host, l.Token
					}
					mu.Unlock()
					perHost[h].Add(int64(len(leases)))
					for _, l := range leases {
						mu.Lock()
						delete(holders, l.MailboxID)
						mu.Unlock()
						assert.NoError(t, s.ReleaseLease(ctx, l, now))
					}
				}
			})
		}
	}
	wg.Wait()
	for h := range perHost {
		assert.Positive(t, perHost[h].Load(), "host-%d got leases", h)
	}
	for m, err := range stores[0].ListMailboxes(ctx, serversync.MailboxFilter{}) {
		require.NoError(t, err)
		assert.Empty(t, m.LeaseHost, "every lease was released")
		assert.Zero(t, m.ForcedUnlockCount, "no lease was taken over")
	}
}

// keysOf reads a whole stream, keeping one string of each record.
func keysOf[T any](t *testing.T, seq iter.Seq2[T, error], key func(T) string) []string {
	t.Helper()
	var out []string
	for _, v := range storetest.Collect(t, seq) {
		out = append(out, key(v))
	}
	return out
}

// The conformance suite lists a handful of records; these lists span several
// pages, with and without limits.
func TestListsAcrossPages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := open(t, pgtest.FreshSchema(t), keys(t, 1))
	defer s.Close()
	const n = 250
	var names, emails, activityIDs, alertIDs []string
	var activities []*serversync.EmailActivity
	for i := range n { // names, addresses and keys sort against the storing order
		p := storetest.NewProfile(fmt.Sprintf("P%03d", n-i))
		require.NoError(t, s.CreateProfile(ctx, p))
		names = append(names, p.Name)
		m := storetest.NewMailbox("", fmt.Sprintf("m%03d@example.com", n-i))
		require.NoError(t, s.CreateMailbox(ctx, m))
		emails = append(emails, m.EmailAddress)
		a := storetest.NewActivity("mb-1", fmt.Sprintf("key-%03d", n-i))
		activities = append(activities, a)
		activityIDs = append(activityIDs, a.ID)
		alert := storetest.NewAlert("user-1")
		require.NoError(t, s.AddAlert(ctx, alert))
		alertIDs = append(alertIDs, alert.ID)
	}
	_, err := s.SaveTracked(ctx, nil, activities)
	require.NoError(t, err)
	slices.Sort(names)
	slices.Sort(emails)
	slices.Reverse(alertIDs) // newest first

	profileName := func(p *serversync.Profile) string { return p.Name }
	email := func(m *serversync.Mailbox) string { return m.EmailAddress }
	activityID := func(a *serversync.EmailActivity) string { return a.ID }
	alertID := func(a *serversync.Alert) string { return a.ID }
	assert.Equal(t, names, keysOf(t, s.ListProfiles(ctx), profileName))
	assert.Equal(t, emails, keysOf(t, s.ListMailboxes(ctx, serversync.MailboxFilter{}), email))
	assert.Equal(t, emails[:130], keysOf(t, s.ListMailboxes(ctx, serversync.MailboxFilter{Limit: 130}), email))
	assert.Equal(t, emails[:200], keysOf(t, s.ListMailboxes(ctx, serversync.MailboxFilter{Limit: 200}), email), "a limit on a page boundary")
	assert.Equal(t, activityIDs, keysOf(t, s.ListActivities(ctx, serversync.ActivityFilter{}), activityID))
	assert.Equal(t, activityIDs[:101], keysOf(t, s.ListActivities(ctx, serversync.ActivityFilter{MailboxID: "mb-1", Limit: 101}), activityID))
	assert.Equal(t, alertIDs, keysOf(t, s.ListAlerts(ctx, serversync.AlertFilter{}), alertID))
	assert.Equal(t, alertIDs[:150], keysOf(t, s.ListAlerts(ctx, serversync.AlertFilter{Recipient: "user-1", Limit: 150}), alertID))
}

// A listing holds a connection only while it reads a page: breaking out of it gives
// the connection back, and the store can be called between pages.
func TestListingGivesConnectionsBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	schema := pgtest.FreshSchema(t)
	s, err := postgres.Open(ctx, pgtest.WithParam(pgtest.URL(t), "pool_max_conns=2"), &postgres.Options{Keys: keys(t, 1), Schema: schema})
	require.NoError(t, err)
	defer s.Close()
	for i := range 5 {
		require.NoError(t, s.CreateMailbox(ctx, storetest.NewMailbox("", fmt.Sprintf("m%d@example.com", i))))
	}
	n := 0
	for m, err := range s.ListMailboxes(ctx, serversync.MailboxFilter{}) {
		require.NoError(t, err)
		_, err = s.UpdateMailbox(ctx, m.ID, func(m *serversync.Mailbox) error {
			m.Stats.ItemsProcessedLastSync = 7
			return nil
		})
		require.NoError(t, err, "the store works inside a listing")
		n++
	}
	assert.Equal(t, 5, n)
	for range 20 { // more early breaks than connections: each must give its connection back
		for range s.ListMailboxes(ctx, serversync.MailboxFilter{}) {
			break
		}
	}
	timeout, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = s.GetMailbox(timeout, serversync.NewID())
	require.ErrorIs(t, err, serversync.ErrNotFound, "a read after early breaks: listing connections must not leak")
}

// A release commits asynchronously, and only the release: the setting must not stay
// on the connection for the acquisitions and saves that use it next.
func TestReleaseLeavesCommitsSynchronous(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := postgres.Open(ctx, pgtest.WithParam(pgtest.URL(t), "pool_max_conns=1"), &postgres.Options{Keys: keys(t, 1), Schema: pgtest.FreshSchema(t)})
	require.NoError(t, err)
	defer s.Close()
	m := storetest.NewMailbox("", "m@example.com")
	m.NextSyncAt = storetest.BaseTime
	require.NoError(t, s.CreateMailbox(ctx, m))
	before, err := s.Setting(ctx, "synchronous_commit")
	require.NoError(t, err)
	require.Equal(t, "on", before)

	leases, err := s.AcquireLeases(ctx, serversync.LeaseRequest{Host: "h", Now: storetest.BaseTime, TTL: time.Minute})
	require.NoError(t, err)
	require.Len(t, leases, 1)
	require.NoError(t, s.ReleaseLease(ctx, leases[0], storetest.BaseTime.Add(time.Hour)))

	after, err := s.Setting(ctx, "synchronous_commit")
	require.NoError(t, err)
	assert.Equal(t, "on", after, "the one connection is back to synchronous commits")
	got, err := s.GetMailbox(ctx, m.ID)
	require.NoError(t, err)
	assert.True(t, got.NextSyncAt.Equal(storetest.BaseTime.Add(time.Hour)), "the release was applied")
}

// An app token's row, read behind the store's back, holds the access token sealed
// and the expiry PutAppToken compares; a row another key's token was copied into
// does not open.
func TestAppTokenSealedAtRest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	schema := pgtest.FreshSchema(t)
	s := open(t, schema, keys(t, 1))
	defer s.Close()
	const accessToken = "eyJhbGciOiJSUzI1NiJ9.App-Access-Token-77e2"
	expiry := storetest.BaseTime.Add(time.Hour)
	_, err := s.PutAppToken(ctx, "p1/r", storetest.NewAppToken(accessToken, expiry))
	require.NoError(t, err)
	_, err = s.PutAppToken(ctx, "p2/r", storetest.NewAppToken("other", expiry))
	require.NoError(t, err)

	conn := connect(t)
	var (
		data    []byte
		expires time.Time
	)
	require.NoError(t, conn.QueryRow(ctx, "SELECT data, expires_at FROM "+table(schema, "app_tokens")+" WHERE id = $1", "p1/r").Scan(&data, &expires))
	assert.NotContains(t, string(data), accessToken)
	assert.NotContains(t, string(data), base64.StdEncoding.EncodeToString([]byte(accessToken)))
	assert.NotContains(t, string(data), "App-Access-Token")
	assert.Contains(t, string(data), `"AccessToken":"v1:`, "sealed under a key")
	assert.True(t, expiry.Equal(expires), "expires_at %v", expires)

	// The sealed value is bound to its key: moved under another, it does not open.
	_, err = conn.Exec(ctx, "UPDATE "+table(schema, "app_tokens")+" SET data = $1 WHERE id = $2", data, "p2/r")
	require.NoError(t, err)
	_, err = s.AppToken(ctx, "p2/r")
	require.ErrorIs(t, err, auth.ErrDecrypt)
	assert.NotContains(t, err.Error(), accessToken)
	got, err := s.AppToken(ctx, "p1/r")
	require.NoError(t, err)
	assert.Equal(t, accessToken, got.AccessToken.Reveal())
}

// A database from before activities had a body column is migrated on Open, and
// the activities it holds, their bodies in their JSON, read back whole; updated,
// they are stored the new way and still read whole.
func TestActivitiesFromBeforeTheBodyColumnRead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	schema := pgtest.FreshSchema(t)
	require.NoError(t, open(t, schema, keys(t, 1)).Close())
	conn := connect(t)
	for _, stmt := range []string{ // undo migrations 0006 and after
		"ALTER TABLE " + table(schema, "activities") + " DROP COLUMN body",
		"DROP INDEX " + table(schema, "mailboxes_unscheduled"),
		fmt.Sprintf("DELETE FROM %s WHERE version > %d", table(schema, "serversync_migrations"), postgres.VersionBefore("0006_")),
	} {
		_, err := conn.Exec(ctx, stmt)
		require.NoError(t, err, stmt)
	}
	old, data := storetest.PreBodyColumnActivity(t)
	_, err := conn.Exec(ctx, `INSERT INTO `+table(schema, "activities")+` (id, mailbox_id, message_key, direction, status,
		message_id, tracking_token, conversation_hash, data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		old.ID, old.MailboxID, old.MessageKey, string(old.Direction), string(old.Status), old.MessageID,
		old.TrackingToken, old.ConversationHash, data)
	require.NoError(t, err)

	s := open(t, schema, keys(t, 1))
	defer s.Close()
	v, err := s.SchemaVersion(ctx)
	require.NoError(t, err)
	assert.Equal(t, postgres.KnownVersion(), v)
	storetest.CheckPreBodyColumnActivity(t, s, old, func() []byte {
		var stored []byte
		require.NoError(t, conn.QueryRow(ctx, "SELECT data FROM "+table(schema, "activities")+" WHERE id = $1", old.ID).Scan(&stored))
		return stored
	})
}
