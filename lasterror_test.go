package serversync_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
)

func (e *syncEnv) lastError(t *testing.T, id string) serversync.LastError {
	t.Helper()
	m, err := e.store.GetMailbox(context.Background(), id)
	require.NoError(t, err)
	return m.Stats.LastError
}

// A sync that fails and then works leaves no last error behind: a monitoring view
// showing it would send someone after a problem that is gone.
func TestLastErrorClearedByTheNextSuccessfulSync(t *testing.T) {
	e := newSyncEnv(t, nil)
	alice := e.mailbox(t, "alice", nil)
	require.NoError(t, e.demo.Deliver(alice.EmailAddress, message("x@p.test", alice.EmailAddress, "after a blip", "", "b")))
	store := &flakySaves{Store: e.store, failFirst: 1}
	e.store = store
	s := e.syncer(t, nil)
	testAndEnable(t, s, alice)
	run(t, s)
	eventually(t, "the failed sync recorded", func() bool { return e.lastError(t, alice.ID).Message != "" })
	assert.Equal(t, serversync.Incoming, e.lastError(t, alice.ID).Workload)
	e.clock.Advance(serversync.RetryIntervalDefault)
	eventually(t, "the message tracked on retry", func() bool {
		return len(e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID})) == 1
	})
	eventually(t, "the last error cleared", func() bool { return e.lastError(t, alice.ID) == serversync.LastError{} })
}

// Test & Enable records what it found: a failure becomes the last error, and a pass
// clears it.
func TestLastErrorClearedByTestAndEnable(t *testing.T) {
	ctx := context.Background()
	e := newSyncEnv(t, nil)
	alice := e.mailbox(t, "alice", func(m *serversync.Mailbox) { m.Password = auth.NewSecret("wrong") })
	s := e.syncer(t, nil)
	m, err := s.TestAndEnable(ctx, alice.ID)
	require.NoError(t, err)
	require.Equal(t, serversync.TestFailure, m.Status)
	assert.Equal(t, "auth_failed", m.Stats.LastError.Code)

	e.changeMailbox(t, alice.ID, func(m *serversync.Mailbox) { m.Password = auth.NewSecret("alice-pass") })
	m = testAndEnable(t, s, alice)
	assert.Zero(t, m.Stats.LastError)
	assert.Zero(t, e.lastError(t, alice.ID))
}

// One workload working clears only its own last error: an incoming sync that works
// says nothing about outgoing email, and a send that works clears outgoing's.
func TestLastErrorIsClearedByItsOwnWorkload(t *testing.T) {
	ctx := context.Background()
	e := newSyncEnv(t, nil)
	alice := e.mailbox(t, "alice", nil)
	bob := e.mailbox(t, "bob", nil)
	s := e.syncer(t, nil)
	testAndEnable(t, s, alice)
	outgoingTrouble := serversync.LastError{Workload: serversync.Outgoing, Code: "temporary_failure", Message: "451 try later", Count: 1, Host: "h", At: e.clock.Now()}
	e.changeMailbox(t, alice.ID, func(m *serversync.Mailbox) { m.Stats.LastError = outgoingTrouble })
	require.NoError(t, e.demo.Deliver(alice.EmailAddress, message("x@p.test", alice.EmailAddress, "incoming works", "", "b")))
	run(t, s)
	eventually(t, "the message tracked", func() bool {
		return len(e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID, Direction: serversync.Incoming})) == 1
	})
	eventually(t, "the sync recorded", func() bool {
		m, err := e.store.GetMailbox(ctx, alice.ID)
		return err == nil && m.Stats.ItemsProcessedLastSync == 1
	})
	assert.Equal(t, outgoingTrouble.Code, e.lastError(t, alice.ID).Code, "an incoming sync says nothing about outgoing email")

	queued, err := s.QueueEmail(ctx, &serversync.EmailActivity{MailboxID: alice.ID, To: []serversync.Address{{Email: bob.EmailAddress}}, Subject: "outgoing works"})
	require.NoError(t, err)
	eventually(t, "sent", func() bool { return e.activity(t, queued.ID).Status == serversync.StatusSent })
	eventually(t, "the outgoing error cleared", func() bool { return e.lastError(t, alice.ID) == serversync.LastError{} })
}

// Failures the Syncer finds before any server is involved carry a code that says
// what to fix, not "internal".
func TestTestAndEnableFailuresSayWhatToFix(t *testing.T) {
	ctx := context.Background()
	e := newSyncEnv(t, nil)
	s := e.syncer(t, nil)

	pending := e.mailbox(t, "pending", nil)
	e.changeMailbox(t, pending.ID, func(m *serversync.Mailbox) { m.Approval = serversync.ApprovalPending })

	noProfile := &serversync.Mailbox{
		ID: serversync.NewID(), Name: "noprofile", EmailAddress: "noprofile@example.test",
		IncomingMethod: serversync.IncomingServerSideSync, OutgoingMethod: serversync.OutgoingServerSideSync,
		Approval: serversync.ApprovalApproved,
	}
	require.NoError(t, e.store.CreateMailbox(ctx, noProfile)) // past Admin's validation, as an older release may have left it

	windows, err := e.admin.CreateProfile(ctx, &serversync.Profile{
		Name: "windows", ServerType: serversync.ServerTypeIMAPSMTP,
		IncomingServer: e.demo.Host, IncomingPort: e.demo.IMAPPort,
		OutgoingServer: e.demo.Host, OutgoingPort: e.demo.SMTPPort, OutgoingTLS: serversync.TLSImplicit,
		SeparateOutgoingSettings: true, OutgoingCredentialSource: serversync.CredentialsWindowsIntegrated,
		ExtraRootCAsPEM: e.demo.CAPEM,
	})
	require.NoError(t, err)
	integrated := e.mailbox(t, "integrated", func(m *serversync.Mailbox) { m.ProfileID = windows.ID })

	for _, tc := range []struct {
		mailbox  *serversync.Mailbox
		workload serversync.Direction
		code     string
	}{
		{pending, serversync.Incoming, serversync.CodeNotApproved},
		{noProfile, serversync.Incoming, serversync.CodeNoProfile},
		{e.exchangeMailbox(t, "exchange"), serversync.Incoming, serversync.CodeNoConnector},
		{integrated, serversync.Outgoing, "unsupported_credentials"},
	} {
		m, err := s.TestAndEnable(ctx, tc.mailbox.ID)
		require.NoError(t, err)
		assert.Equal(t, serversync.TestFailure, m.Status, tc.code)
		assert.Equal(t, tc.code, m.Stats.LastError.Code)
		assert.Equal(t, tc.workload, m.Stats.LastError.Workload, tc.code)
	}
}
