package serversync_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
)

// A user mailbox left on the default filter tracks none of its mail: the first
// sync says so with an Information alert, counts what it filtered, reports
// progress against the server's count, and changing the filter reads it again
// without tracking anything twice.
func TestFirstSyncFilteredEverythingThenReread(t *testing.T) {
	e := newSyncEnv(t, nil)
	m := e.mailbox(t, "newcomer", func(m *serversync.Mailbox) { m.IncomingFilter = "" }) // the default
	require.Equal(t, serversync.FilterResponsesToCRM, m.IncomingFilter, "user mailboxes default to responses to CRM email")
	const n = 7
	for i := range n {
		require.NoError(t, e.demo.Deliver(m.EmailAddress, message("Bob <bob@fabrikam.test>", m.EmailAddress,
			fmt.Sprintf("Hello %d", i), fmt.Sprintf("Message-ID: <m%d@fabrikam.test>\r\n", i), "Hi")))
	}
	s := e.syncer(t, &serversync.Config{SaveBatch: 2})
	run(t, s)
	testAndEnable(t, s, m)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := serversync.WaitInitialSync(ctx, e.store, m.ID)
	require.NoError(t, err)
	assert.Equal(t, n, m.Stats.FilteredLastSync)
	assert.Equal(t, int64(n), m.Stats.Filtered)
	assert.Equal(t, n, m.Stats.InitialSyncTotal, "the server's count, from IMAP STATUS")
	assert.Empty(t, e.activities(t, serversync.ActivityFilter{MailboxID: m.ID}))

	alerts := e.alerts(t, serversync.AlertFilter{MailboxID: m.ID, Level: serversync.AlertInformation})
	var filtered *serversync.Alert
	for _, a := range alerts {
		if a.Code == serversync.CodeAllMailFiltered {
			filtered = a
		}
	}
	require.NotNil(t, filtered, "an Information alert says the filter left everything out: %+v", alerts)
	assert.Contains(t, filtered.Message, "read 7 messages and tracked none")
	assert.Contains(t, filtered.Message, "ChangeIncomingFilter")

	// Progress: a start at 0 of 7, then steps, then a finish with everything counted.
	e.mu.Lock()
	var progress []serversync.SyncProgress
	var final *serversync.SyncProgress
	for _, ev := range e.events {
		switch {
		case ev.Kind == serversync.EventSyncProgress && ev.MailboxID == m.ID:
			progress = append(progress, *ev.Progress)
		case ev.Kind == serversync.EventSyncFinished && ev.MailboxID == m.ID && ev.Progress != nil && final == nil:
			final = ev.Progress
		}
	}
	e.mu.Unlock()
	require.NotEmpty(t, progress)
	assert.Equal(t, serversync.SyncProgress{Total: n}, progress[0])
	assert.Greater(t, len(progress), 2, "progress is reported as batches are stored: %+v", progress)
	require.NotNil(t, final)
	assert.Equal(t, serversync.SyncProgress{Total: n, Processed: n, Filtered: n, Done: true}, *final)
	assert.Equal(t, 100, final.Percent())

	// Changing the filter reads the filtered mail again, at once.
	_, err = e.admin.ChangeIncomingFilter(ctx, m.ID, serversync.FilterAll)
	require.NoError(t, err)
	eventually(t, "the filtered mail tracked", func() bool {
		return len(e.activities(t, serversync.ActivityFilter{MailboxID: m.ID})) == n
	})
	counts, err := serversync.CountActivities(ctx, e.store, serversync.ActivityCountFilter{MailboxID: m.ID})
	require.NoError(t, err)
	assert.Equal(t, []serversync.ActivityCount{{MailboxID: m.ID, Direction: serversync.Incoming, Status: serversync.StatusTracked, Count: n}}, counts)
	eventually(t, "the resync finished", func() bool {
		got, err := e.store.GetMailbox(ctx, m.ID)
		return err == nil && got.IncomingResyncRequestedAt.IsZero()
	})

	// Reading from the start once more tracks nothing twice: all duplicates.
	before, err := e.store.GetMailbox(ctx, m.ID)
	require.NoError(t, err)
	require.NoError(t, e.admin.ResyncIncoming(ctx, m.ID))
	eventually(t, "the second resync finished", func() bool {
		got, err := e.store.GetMailbox(ctx, m.ID)
		if err != nil {
			return false
		}
		if !got.IncomingResyncRequestedAt.IsZero() {
			// Due now, and again after a sync that was under way when the resync was
			// asked for: its release schedules the next poll, which this test's clock
			// never reaches.
			_, err = e.store.UpdateMailbox(ctx, m.ID, func(m *serversync.Mailbox) error { m.NextSyncAt = e.clock.Now(); return nil })
			require.NoError(t, err)
			return false
		}
		return got.Stats.DuplicatesSkipped-before.Stats.DuplicatesSkipped == n
	})
	assert.Len(t, e.activities(t, serversync.ActivityFilter{MailboxID: m.ID}), n)

	// A filter it already has changes nothing; a bad one is refused.
	_, err = e.admin.ChangeIncomingFilter(ctx, m.ID, serversync.FilterAll)
	require.NoError(t, err)
	_, err = e.admin.ChangeIncomingFilter(ctx, m.ID, "Everything")
	var verr *serversync.ValidationError
	require.ErrorAs(t, err, &verr)
	assert.Equal(t, "IncomingFilter", verr.Field)
}

// WaitInitialSync gives up, naming the error, when incoming mail is disabled.
func TestWaitInitialSyncReportsADisabledMailbox(t *testing.T) {
	e := newSyncEnv(t, nil)
	m := e.mailbox(t, "wrongpass", func(m *serversync.Mailbox) { m.Password = auth.NewSecret("not-the-password") })
	s := e.syncer(t, nil)
	run(t, s)
	_, err := s.TestAndEnable(context.Background(), m.ID)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = serversync.WaitInitialSync(ctx, e.store, m.ID)
	require.ErrorIs(t, err, serversync.ErrIncomingDisabled)
	assert.Contains(t, err.Error(), serversync.CodeAuthFailed)

	// A mailbox not tested yet is waited for until ctx ends.
	idle := newSyncEnv(t, nil)
	other := idle.mailbox(t, "untested", nil)
	short, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	_, err = serversync.WaitInitialSync(short, idle.store, other.ID)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

// What an operator reads in the log at Info: Test & Enable outcomes, the initial
// sync's start with the server's count, and the summary of each sync that read
// mail; a sync that found nothing new is a Debug line.
func TestSyncsAndTestsAreLoggedAtInfo(t *testing.T) {
	e := newSyncEnv(t, nil)
	m := e.mailbox(t, "logged", nil)
	for i := range 3 {
		require.NoError(t, e.demo.Deliver(m.EmailAddress, message("Bob <bob@fabrikam.test>", m.EmailAddress,
			fmt.Sprintf("Hello %d", i), fmt.Sprintf("Message-ID: <log%d@fabrikam.test>\r\n", i), "Hi")))
	}
	var log lockedLog
	s := e.loggingSyncer(t, &log)
	run(t, s)
	testAndEnable(t, s, m)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := serversync.WaitInitialSync(ctx, e.store, m.ID)
	require.NoError(t, err)
	eventually(t, "the summary logged", func() bool { return strings.Contains(log.String(), `msg="incoming sync finished"`) })
	text := log.String()
	assert.Regexp(t, `level=INFO msg="Test & Enable passed" .*mailbox=`+m.ID, text)
	assert.Regexp(t, `level=INFO msg="initial sync started" .*messages_on_server=3`, text)
	assert.Regexp(t, `level=INFO msg="incoming sync finished" .*mailbox=`+m.ID+` tracked=3 failed=0 filtered=0 duplicates=0`, text)
	assert.NotContains(t, text, "logged-pass", "no secret in the log")

	// A poll that finds nothing is logged at Debug only.
	_, err = e.store.UpdateMailbox(ctx, m.ID, func(m *serversync.Mailbox) error { m.NextSyncAt = e.clock.Now(); return nil })
	require.NoError(t, err)
	eventually(t, "an empty poll", func() bool {
		return strings.Contains(log.String(), `level=DEBUG msg="incoming sync finished"`)
	})
	assert.Equal(t, 1, strings.Count(log.String(), `level=INFO msg="incoming sync finished"`))
}
