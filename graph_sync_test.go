package serversync_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/graph"
	"github.com/serversync/serversync/connector/graph/graphtest"
)

// TestSyncerOnGraph runs the Syncer on an Exchange Online profile against the
// fake Graph server, with delegated OAuth tokens: Test & Enable, incoming mail
// tracked once, a message the host refuses moved to Undeliverable, an email sent through sendMail with its Sent copy kept by the
// server alone.
func TestSyncerOnGraph(t *testing.T) {
	ctx := context.Background()
	srv, err := graphtest.NewServer(nil)
	require.NoError(t, err)
	defer srv.Close()
	const alice, bob = "alice@example.test", "bob@example.test"
	srv.AddMailbox(alice, "tenant-1")
	srv.AddMailbox(bob, "tenant-1")
	srv.AddToken("alice-access", graphtest.Principal{User: alice, TenantID: "tenant-1", Permissions: []string{"Mail.ReadWrite", "Mail.Send"}})

	e := newSyncEnv(t, nil)
	p, err := e.admin.CreateProfile(ctx, &serversync.Profile{
		Name: "exchange-online", Owner: "admin-user", ServerType: serversync.ServerTypeExchangeOnline,
		IncomingServer: srv.URL(), OutgoingServer: srv.URL(), ExtraRootCAsPEM: srv.RootCAsPEM(), ConnectionTimeout: 10 * time.Second,
		IncomingCredentialSource: serversync.CredentialsOAuth, OutgoingCredentialSource: serversync.CredentialsOAuth,
		ClientID: "serversync-test", TokenURL: "https://login.test/token", MoveFailedToUndeliverable: true,
	})
	require.NoError(t, err)
	m := approvedMailbox(t, e.admin, e.store, p.ID, "alice", func(m *serversync.Mailbox) {
		m.OAuthToken = serversync.OAuthToken{AccessToken: auth.NewSecret("alice-access"), TokenType: "Bearer", Expiry: time.Now().Add(time.Hour)}
	})
	for _, subject := range []string{"first", "refuse me", "second"} {
		_, err := srv.Deliver(alice, "inbox", message("carol@example.test", alice, subject, "", "hello"), time.Now())
		require.NoError(t, err)
	}

	conn := graph.New(&graph.Options{Logger: slog.New(slog.DiscardHandler)})
	cfg := serversync.Config{Tick: 10 * time.Millisecond, ScanInterval: 20 * time.Millisecond, OutboxInterval: 20 * time.Millisecond,
		IdleConnections: -1, Now: e.clock.Now, Logger: testLogger(), OnEvent: e.onEvent,
		Track: func(_ context.Context, a *serversync.EmailActivity, _ *serversync.Mailbox) error {
			if a.Subject == "refuse me" {
				return errors.New("no matching record")
			}
			return nil
		}}
	s, err := serversync.NewSyncer(e.store, serversync.Connectors{
		Incoming: map[serversync.ServerType]serversync.IncomingConnector{serversync.ServerTypeExchangeOnline: conn},
		Outgoing: map[serversync.ServerType]serversync.OutgoingConnector{serversync.ServerTypeExchangeOnline: conn},
	}, &cfg)
	require.NoError(t, err)
	testAndEnable(t, s, m)
	run(t, s)
	eventually(t, "all three processed", func() bool { return len(e.activities(t, serversync.ActivityFilter{MailboxID: m.ID})) == 3 })
	eventually(t, "the refused one moved", func() bool { return len(srv.Messages(alice, "Undeliverable")) == 1 })
	assert.Equal(t, "refuse me", srv.Messages(alice, "Undeliverable")[0].Subject)
	assert.Len(t, srv.Messages(alice, "inbox"), 2)

	sent, err := s.QueueEmail(ctx, &serversync.EmailActivity{MailboxID: m.ID,
		To: []serversync.Address{{Email: bob}}, Subject: "through sendMail"})
	require.NoError(t, err)
	eventually(t, "sent", func() bool {
		a, err := e.store.GetActivity(ctx, sent.ID)
		return err == nil && a.Status == serversync.StatusSent
	})
	require.Len(t, srv.Sent(), 1)
	assert.Contains(t, string(srv.Sent()[0].MIME), "through sendMail")
	require.Len(t, srv.Messages(bob, "inbox"), 1, "delivered")
	assert.Len(t, srv.Messages(alice, "sentitems"), 1, "one Sent copy: the server's")

	_, err = srv.Deliver(alice, "inbox", message("carol@example.test", alice, "third", "", "hello"), time.Now())
	require.NoError(t, err)
	eventually(t, "third tracked at the next poll", func() bool {
		e.clock.Advance(time.Minute)
		return len(e.activities(t, serversync.ActivityFilter{MailboxID: m.ID, Direction: serversync.Incoming})) == 4
	})
	var subjects []string
	for _, a := range e.activities(t, serversync.ActivityFilter{MailboxID: m.ID, Direction: serversync.Incoming}) {
		subjects = append(subjects, a.Subject)
	}
	assert.ElementsMatch(t, []string{"first", "refuse me", "second", "third"}, subjects, "each processed once")
	assert.False(t, strings.Contains(strings.Join(subjects, ","), "through sendMail"))
}
