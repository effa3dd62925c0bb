package postgres_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/standard"
	"github.com/serversync/serversync/internal/demoserver"
	"github.com/serversync/serversync/internal/pgtest"
	"github.com/serversync/serversync/store/postgres"
)

// PostgreSQL restarting, a failover or a proxy dropping idle connections all look
// the same to a Syncer: its pooled connections die mid-statement. While a Syncer
// tracks mail, every connection of its pool is terminated over and over; it must
// carry on, track every message once, keep its mailboxes enabled, and stop cleanly.
func TestSyncerRidesOutTerminatedConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("terminates PostgreSQL connections for a few seconds; skipped with -short")
	}
	ctx := context.Background()
	schema := pgtest.FreshSchema(t)
	appName := "serversync-outage-" + serversync.NewID()
	store, err := postgres.Open(ctx, pgtest.WithParam(pgtest.URL(t), "application_name="+appName),
		&postgres.Options{Keys: keys(t, 1), Schema: schema})
	require.NoError(t, err)
	defer store.Close()

	const mailboxes, perMailbox = 4, 30
	users := map[string]string{}
	for i := range mailboxes {
		users[fmt.Sprintf("user%d@example.test", i)] = "pass"
	}
	demo, err := demoserver.Start(users)
	require.NoError(t, err)
	defer demo.Close()
	admin := serversync.NewAdmin(store, &serversync.AdminConfig{
		CanApprove: func(context.Context, string, *serversync.Mailbox) error { return nil }, Logger: slog.New(slog.DiscardHandler),
	})
	profile, err := admin.CreateProfile(ctx, &serversync.Profile{
		Name: "demo", ServerType: serversync.ServerTypeIMAPSMTP,
		IncomingServer: demo.Host, IncomingPort: demo.IMAPPort,
		OutgoingServer: demo.Host, OutgoingPort: demo.SMTPPort, OutgoingTLS: serversync.TLSImplicit,
		ExtraRootCAsPEM: demo.CAPEM,
	})
	require.NoError(t, err)
	syncer, err := serversync.NewSyncer(store, standard.Connectors(&standard.Options{Logger: slog.New(slog.DiscardHandler)}), &serversync.Config{
		Tick: 10 * time.Millisecond, ScanInterval: 20 * time.Millisecond, RetryInterval: 50 * time.Millisecond,
		SaveBatch: 3, IdleConnections: -1, Logger: slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)
	var ids []string
	for i := range mailboxes {
		email := fmt.Sprintf("user%d@example.test", i)
		m, err := admin.CreateMailbox(ctx, &serversync.Mailbox{
			Name: email, EmailAddress: email, ProfileID: profile.ID, Owner: "owner",
			Regarding: serversync.Regarding{Type: serversync.RegardingUser, ID: email},
			Password:  auth.NewSecret("pass"), IncomingFilter: serversync.FilterAll,
		})
		require.NoError(t, err)
		require.NoError(t, admin.Approve(ctx, "admin", m.ID))
		m, err = syncer.TestAndEnable(ctx, m.ID)
		require.NoError(t, err)
		require.Equal(t, serversync.TestSuccess, m.Status)
		ids = append(ids, m.ID)
		for n := range perMailbox {
			require.NoError(t, demo.Deliver(email, fmt.Appendf(nil, "From: x@partner.test\r\nTo: %s\r\nSubject: message %d\r\n"+
				"Message-ID: <outage-%d-%d@partner.test>\r\n\r\nbody\r\n", email, n, i, n)))
		}
	}

	// Terminate the Syncer's connections every few milliseconds while it works.
	killer, err := pgx.Connect(ctx, pgtest.URL(t))
	require.NoError(t, err)
	defer killer.Close(ctx)
	stopKilling := make(chan struct{})
	killed := make(chan int64, 1)
	go func() {
		var total int64
		defer func() { killed <- total }()
		for {
			select {
			case <-stopKilling:
				return
			case <-time.After(15 * time.Millisecond):
			}
			var n int64
			if err := killer.QueryRow(ctx, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1", appName).Scan(&n); err == nil {
				total += n
			}
		}
	}()
	runErr := make(chan error, 1)
	go func() { runErr <- syncer.Run(ctx) }()

	total := mailboxes * perMailbox
	countTracked := func() int { // -1 when a read lost its connection too
		n := 0
		for _, id := range ids {
			for _, err := range store.ListActivities(ctx, serversync.ActivityFilter{MailboxID: id}) {
				if err != nil {
					return -1
				}
				n++
			}
		}
		return n
	}
	// Terminations every 15 ms for up to 20 s (or until half the mail is tracked):
	// how much gets through under fire depends on the machine; that all of it is
	// tracked once they stop, within a minute and not a LeaseTTL later, does not.
	underFire := 0
	for deadline := time.Now().Add(20 * time.Second); underFire < total/2 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		underFire = max(underFire, countTracked())
	}
	close(stopKilling)
	terminated := <-killed
	require.Positive(t, terminated, "connections were terminated while the Syncer worked")

	require.Eventually(t, func() bool { return countTracked() >= total }, 60*time.Second, 50*time.Millisecond,
		"every message tracked (%d of %d under fire)", underFire, total)
	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, syncer.Stop(stopCtx))
	require.ErrorIs(t, <-runErr, serversync.ErrSyncerStopped, "Run carried on through the outage")

	for _, id := range ids {
		seen := map[string]bool{}
		for a, err := range store.ListActivities(ctx, serversync.ActivityFilter{MailboxID: id}) {
			require.NoError(t, err)
			assert.False(t, seen[a.MessageID], "%s tracked twice", a.MessageID)
			seen[a.MessageID] = true
		}
		assert.Len(t, seen, perMailbox)
		m, err := store.GetMailbox(ctx, id)
		require.NoError(t, err)
		assert.True(t, m.IncomingEnabled, "%s still enabled", m.EmailAddress)
	}
	t.Logf("%d connections terminated while %d of %d messages were tracked", terminated, underFire, total)
}
