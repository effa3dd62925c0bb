package serversync_test

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector/standard"
)

// folderlessConnector opens the demo server's IMAP sessions but hands them out
// as plain incoming sessions, without folders, as POP3's are.
type folderlessConnector struct {
	serversync.IncomingConnector
	unused atomic.Int32 // sessions closed without a Fetch: opened for a Sent copy
}

func (c *folderlessConnector) OpenIncoming(ctx context.Context, target *serversync.Target) (serversync.IncomingSession, error) {
	sess, err := c.IncomingConnector.OpenIncoming(ctx, target)
	if err != nil {
		return nil, err
	}
	return &folderlessSession{IncomingSession: sess, c: c}, nil
}

type folderlessSession struct {
	serversync.IncomingSession
	c       *folderlessConnector
	fetched bool
}

func (s *folderlessSession) Fetch(ctx context.Context, req serversync.FetchRequest, fn func(*serversync.RemoteMessage) error) (serversync.FetchResult, error) {
	s.fetched = true
	return s.IncomingSession.Fetch(ctx, req, fn)
}

func (s *folderlessSession) Close() error {
	if !s.fetched {
		s.c.unused.Add(1)
	}
	return s.IncomingSession.Close()
}

// A session that is no FolderSession gets no Undeliverable moves and no Sent
// copies, as POP3 never did; and after the first sent email no session is opened
// only to find that out again.
func TestNoFolderOperationsWithoutFolderSession(t *testing.T) {
	e := newSyncEnv(t, func(p *serversync.Profile) { p.MoveFailedToUndeliverable = true })
	alice := e.mailbox(t, "alice", nil)
	bob := e.mailbox(t, "bob", nil)
	require.NoError(t, e.demo.Deliver(alice.EmailAddress, message("x@partner.test", alice.EmailAddress, "refuse me", "Message-ID: <refuse@p>\r\n", "body")))

	conns := standard.Connectors(&standard.Options{Logger: slog.New(slog.DiscardHandler)})
	folderless := &folderlessConnector{IncomingConnector: conns.Incoming[serversync.ServerTypeIMAPSMTP]}
	conns.Incoming = map[serversync.ServerType]serversync.IncomingConnector{serversync.ServerTypeIMAPSMTP: folderless}
	s, err := serversync.NewSyncer(e.store, conns, &serversync.Config{
		Tick: 10 * time.Millisecond, ScanInterval: 20 * time.Millisecond, OutboxInterval: 20 * time.Millisecond,
		IdleConnections: -1, Now: e.clock.Now, Logger: testLogger(), OnEvent: e.onEvent,
		Track: func(context.Context, *serversync.EmailActivity, *serversync.Mailbox) error {
			return errors.New("no matching record")
		},
	})
	require.NoError(t, err)
	testAndEnable(t, s, alice)
	testAndEnable(t, s, bob)
	run(t, s)

	eventually(t, "the refused message recorded", func() bool {
		return len(e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID, Status: serversync.StatusFailed})) == 1
	})
	send := func(subject string) {
		queued, err := s.QueueEmail(context.Background(), &serversync.EmailActivity{
			MailboxID: alice.ID, To: []serversync.Address{{Email: bob.EmailAddress}}, Subject: subject, TextBody: "hello",
		})
		require.NoError(t, err)
		eventually(t, subject+" sent", func() bool { return e.activity(t, queued.ID).Status == serversync.StatusSent })
	}
	before := folderless.unused.Load()
	send("first")
	eventually(t, "a session opened for the Sent copy", func() bool { return folderless.unused.Load() == before+1 })
	send("second")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, s.Stop(ctx)) // the second send's follow-ups are done

	moved, _ := e.demo.Messages(alice.EmailAddress, serversync.UndeliverableFolder) // an error: no such folder
	assert.Empty(t, moved, "nothing moved without folders")
	inbox, err := e.demo.Messages(alice.EmailAddress, "INBOX")
	require.NoError(t, err)
	assert.Len(t, inbox, 1, "the refused message stays in the inbox")
	copies, _ := e.demo.Messages(alice.EmailAddress, serversync.SentFolder)
	assert.Empty(t, copies, "no Sent copy without folders")
	assert.Equal(t, before+1, folderless.unused.Load(), "no session opened for the second email's Sent copy")
}
