package serversync_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
)

// Moving a mailbox's ProcessEmailFrom earlier pulls the mail the cursor had already
// passed: the next sync reads the inbox from the start with the new time, and what
// is tracked already is recognised by its message key, not tracked twice.
func TestProcessEmailFromMovedEarlierPullsEarlierMail(t *testing.T) {
	e := newSyncEnv(t, nil)
	ctx := context.Background()
	alice := e.mailbox(t, "alice", func(m *serversync.Mailbox) { m.ProcessEmailFrom = time.Now().Add(time.Hour) })
	require.NoError(t, e.demo.Deliver(alice.EmailAddress, message("x@partner.test", alice.EmailAddress, "Before the date", "Message-ID: <early@partner.test>\r\n", "b")))
	s := e.syncer(t, nil)
	testAndEnable(t, s, alice)
	run(t, s)
	synced := func(after time.Time) func() bool {
		return func() bool { return e.stats(t, alice.ID).LastSyncSucceededAt.After(after) }
	}
	eventually(t, "the first sync", synced(time.Time{}))
	require.Empty(t, e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID}), "mail before ProcessEmailFrom is skipped")
	cursor, err := e.store.GetCursor(ctx, alice.ID, serversync.InboxFolder)
	require.NoError(t, err)
	require.NotEmpty(t, cursor.Data, "the cursor has passed the skipped mail")

	// Moving it later asks for nothing.
	m, err := e.admin.UpdateMailbox(ctx, alice.ID, func(m *serversync.Mailbox) { m.ProcessEmailFrom = m.ProcessEmailFrom.Add(time.Hour) })
	require.NoError(t, err)
	assert.True(t, m.IncomingResyncRequestedAt.IsZero())

	m, err = e.admin.UpdateMailbox(ctx, alice.ID, func(m *serversync.Mailbox) { m.ProcessEmailFrom = time.Now().Add(-time.Hour) })
	require.NoError(t, err)
	require.False(t, m.IncomingResyncRequestedAt.IsZero(), "moving it earlier asks for a read from the start")
	last := e.stats(t, alice.ID).LastSyncSucceededAt
	e.clock.Advance(time.Hour) // due again
	eventually(t, "the earlier mail pulled", func() bool { return len(e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID})) == 1 })
	eventually(t, "the resync recorded", synced(last))
	m, err = e.store.GetMailbox(ctx, alice.ID)
	require.NoError(t, err)
	assert.True(t, m.IncomingResyncRequestedAt.IsZero(), "the request is done")

	// Earlier still (here: the profile's time, none): read again, nothing tracked twice.
	_, err = e.admin.UpdateMailbox(ctx, alice.ID, func(m *serversync.Mailbox) { m.ProcessEmailFrom = time.Time{} })
	require.NoError(t, err)
	require.NoError(t, e.demo.Deliver(alice.EmailAddress, message("y@partner.test", alice.EmailAddress, "New", "Message-ID: <new@partner.test>\r\n", "n")))
	last = e.stats(t, alice.ID).LastSyncSucceededAt
	e.clock.Advance(time.Hour)
	eventually(t, "the new mail", func() bool { return len(e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID})) == 2 })
	eventually(t, "the sync recorded", synced(last))
	st := e.stats(t, alice.ID)
	assert.Equal(t, 1, st.DuplicatesSkippedLastSync, "the mail tracked before was offered again and recognised")
	assert.Len(t, e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID}), 2)
	assert.Equal(t, 2, e.countEvents(serversync.EventMailTracked))
}

// A mailbox newly associated with a profile whose ProcessEmailFrom is earlier than
// its old one's pulls the earlier mail too; so does an explicit ResyncIncoming.
func TestResyncRequests(t *testing.T) {
	e := newSyncEnv(t, func(p *serversync.Profile) { p.ProcessEmailFrom = time.Now().Add(time.Hour) })
	ctx := context.Background()
	alice := e.mailbox(t, "alice", nil)
	early := *e.profile
	early.ID, early.Name, early.ProcessEmailFrom = "", "early", time.Now().Add(-24*time.Hour)
	other, err := e.admin.CreateProfile(ctx, &early)
	require.NoError(t, err)

	m, err := e.admin.UpdateMailbox(ctx, alice.ID, func(m *serversync.Mailbox) { m.ProfileID = other.ID })
	require.NoError(t, err)
	assert.False(t, m.IncomingResyncRequestedAt.IsZero(), "the new profile lets earlier mail in")
	m, err = e.admin.UpdateMailbox(ctx, alice.ID, func(m *serversync.Mailbox) { m.ProfileID = e.profile.ID; m.IncomingResyncRequestedAt = time.Time{} })
	require.NoError(t, err)
	assert.True(t, m.IncomingResyncRequestedAt.IsZero(), "back to the later one: nothing more to pull")

	require.NoError(t, e.admin.ResyncIncoming(ctx, alice.ID))
	m, err = e.store.GetMailbox(ctx, alice.ID)
	require.NoError(t, err)
	assert.False(t, m.IncomingResyncRequestedAt.IsZero())
}
