package serversync_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/ews"
	"github.com/serversync/serversync/connector/ews/ewstest"
)

// TestSyncerOnEWS runs the Syncer on an Exchange Server profile against the
// fake EWS: AutoDiscover (the JSON endpoint misses, POX answers) cached on each
// mailbox, a service account impersonating three mailboxes, Test & Enable,
// incoming mail tracked exactly once even when Exchange forgets the sync state
// or replays a reply, a refused message moved to Undeliverable, and an email
// sent with SendAndSaveCopy whose Sent copy is the server's alone.
func TestSyncerOnEWS(t *testing.T) {
	ctx := context.Background()
	srv, err := ewstest.NewServer(nil)
	require.NoError(t, err)
	defer srv.Close()
	names := []string{"alice", "bob", "carol"}
	for _, n := range names {
		srv.AddMailbox(n + "@example.test")
	}
	srv.AddUser("svc-crm", "svc-pass", "")
	srv.AllowImpersonation("svc-crm", "*")
	srv.SetAutodiscover("example.test", ewstest.AutodiscoverConfig{POX: true})

	e := newSyncEnv(t, nil)
	p, err := e.admin.CreateProfile(ctx, &serversync.Profile{
		Name: "exchange-server", Owner: "admin-user", ServerType: serversync.ServerTypeExchangeServer, AutoDiscover: true,
		IncomingCredentialSource: serversync.CredentialsProfile, UseImpersonation: true,
		Username: "svc-crm", Password: auth.NewSecret("svc-pass"),
		ExtraRootCAsPEM: srv.RootCAsPEM(), ConnectionTimeout: 10 * time.Second, MoveFailedToUndeliverable: true,
	})
	require.NoError(t, err)
	var boxes []*serversync.Mailbox
	for _, n := range names {
		boxes = append(boxes, approvedMailbox(t, e.admin, e.store, p.ID, n, nil))
	}
	for _, n := range names {
		address := n + "@example.test"
		for _, subject := range []string{"hello " + n, "refuse me " + n} {
			_, err := srv.Deliver(address, "inbox", message("dave@example.test", address, subject, "", "hi"), time.Now())
			require.NoError(t, err)
		}
	}

	client := srv.Client()
	defer client.CloseIdleConnections()
	conn := ews.New(&ews.Options{HTTPClient: client, Logger: slog.New(slog.DiscardHandler)})
	cfg := serversync.Config{Tick: 10 * time.Millisecond, ScanInterval: 20 * time.Millisecond, OutboxInterval: 20 * time.Millisecond,
		IdleConnections: -1, Now: e.clock.Now, Logger: testLogger(), OnEvent: e.onEvent,
		Track: func(_ context.Context, a *serversync.EmailActivity, _ *serversync.Mailbox) error {
			if len(a.Subject) > 9 && a.Subject[:9] == "refuse me" {
				return errors.New("no matching record")
			}
			return nil
		}}
	s, err := serversync.NewSyncer(e.store, serversync.Connectors{
		Incoming: map[serversync.ServerType]serversync.IncomingConnector{serversync.ServerTypeExchangeServer: conn},
		Outgoing: map[serversync.ServerType]serversync.OutgoingConnector{serversync.ServerTypeExchangeServer: conn},
	}, &cfg)
	require.NoError(t, err)
	for _, m := range boxes {
		testAndEnable(t, s, m)
		stored, err := e.store.GetMailbox(ctx, m.ID)
		require.NoError(t, err)
		assert.Equal(t, srv.EWSURL(), stored.DiscoveredServer, "the discovered server is cached on the mailbox")
		assert.Equal(t, e.clock.Now(), stored.DiscoveredServerAt)
	}
	posts := func() int {
		n := 0
		for _, r := range srv.AutodiscoverRequests() {
			if r.Method == "POST" {
				n++
			}
		}
		return n
	}
	assert.Equal(t, len(names), posts(), "one discovery per mailbox: Test & Enable's outgoing test reuses the incoming one's")

	run(t, s)
	for _, m := range boxes {
		eventually(t, "both messages of "+m.Name+" processed", func() bool {
			return len(e.activities(t, serversync.ActivityFilter{MailboxID: m.ID})) == 2
		})
		address := m.EmailAddress
		eventually(t, "the refused one moved", func() bool { return len(srv.Messages(address, "Undeliverable")) == 1 })
		assert.Len(t, srv.Messages(address, "inbox"), 1)
	}
	for _, r := range srv.Requests() {
		if r.Op != "" && r.Code == "NoError" {
			assert.Equal(t, "svc-crm", r.Login)
			assert.NotEmpty(t, r.Impersonated, "every request impersonates its mailbox")
		}
	}

	// Exchange forgets alice's sync state: everything in her inbox is offered
	// again, nothing is tracked twice, and new mail still comes in.
	srv.InvalidateSyncStates("alice@example.test")
	for _, n := range names {
		address := n + "@example.test"
		_, err := srv.Deliver(address, "inbox", message("dave@example.test", address, "later "+n, "", "hi"), time.Now())
		require.NoError(t, err)
	}
	for _, m := range boxes {
		eventually(t, "the later message of "+m.Name+" tracked at a next poll", func() bool {
			e.clock.Advance(time.Minute)
			return len(e.activities(t, serversync.ActivityFilter{MailboxID: m.ID, Direction: serversync.Incoming})) == 3
		})
	}
	invalid := 0
	for _, r := range srv.Requests() {
		if r.Code == "ErrorInvalidSyncStateData" {
			invalid++
			assert.Equal(t, "alice@example.test", r.Mailbox)
		}
	}
	// At least one reset; more when a run's lease lapsed under the fast test
	// clock before it could store the new state (its save is refused, and the
	// next run resets again: still nothing tracked twice, as checked below).
	assert.Positive(t, invalid, "alice's sync state was found invalid")
	// A replayed reply offers bob's later message again: skipped as a duplicate.
	srv.ReplayNextSync("bob@example.test")
	eventually(t, "bob's duplicate skipped", func() bool {
		e.clock.Advance(time.Minute)
		m, err := e.store.GetMailbox(ctx, boxes[1].ID)
		return err == nil && m.Stats.DuplicatesSkipped > 0
	})
	for _, m := range boxes {
		var subjects []string
		for _, a := range e.activities(t, serversync.ActivityFilter{MailboxID: m.ID, Direction: serversync.Incoming}) {
			subjects = append(subjects, a.Subject)
		}
		assert.ElementsMatch(t, []string{"hello " + m.Name, "refuse me " + m.Name, "later " + m.Name}, subjects, "each tracked once")
	}
	stored, err := e.store.GetMailbox(ctx, boxes[0].ID)
	require.NoError(t, err)
	assert.Positive(t, stored.Stats.DuplicatesSkipped, "alice's reset offered her tracked mail again")

	sent, err := s.QueueEmail(ctx, &serversync.EmailActivity{MailboxID: boxes[0].ID,
		To: []serversync.Address{{Email: "bob@example.test"}}, Subject: "through EWS"})
	require.NoError(t, err)
	eventually(t, "sent", func() bool {
		a, err := e.store.GetActivity(ctx, sent.ID)
		return err == nil && a.Status == serversync.StatusSent
	})
	require.Len(t, srv.Sent(), 1)
	assert.Equal(t, "SendAndSaveCopy", srv.Sent()[0].Disposition)
	assert.Contains(t, string(srv.Sent()[0].MIME), "through EWS")
	assert.Len(t, srv.Messages("alice@example.test", "sentitems"), 1, "one Sent copy: the server's")
	assert.Equal(t, len(names), posts(), "the cached server is used, not discovered again")
}
