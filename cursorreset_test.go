package serversync_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector/fakeconn"
)

// A server that invalidates the cursor (IMAP UIDVALIDITY changed) offers every
// message again: only the new one is tracked, the others are counted as
// duplicates, and nothing is tracked twice however long the Syncer goes on.
func TestInvalidatedCursorTracksNothingTwice(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		e := newFakeEnv(t, nil, nil)
		alice := e.mailbox(t, "alice", nil)
		for i := range 3 {
			e.fake.Deliver(alice.EmailAddress, message("x@p.test", alice.EmailAddress, fmt.Sprintf("m%d", i), "", "b"))
		}
		s := e.syncer(t, &serversync.Config{IdleConnections: -1})
		testAndEnable(t, s, alice)
		e.run(t, s)
		settle()
		require.Len(t, e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID}), 3)

		e.fake.ResetCursors()
		e.fake.Deliver(alice.EmailAddress, message("x@p.test", alice.EmailAddress, "new", "", "b"))
		time.Sleep(serversync.ActivePollDefault)
		settle()
		fetches := e.callsFor(fakeconn.OpFetch, alice)
		require.Len(t, fetches, 2)
		assert.Equal(t, 4, fetches[1].Delivered, "everything offered again")
		assert.Len(t, e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID}), 4)
		m := e.get(t, alice.ID)
		assert.Equal(t, 3, m.Stats.DuplicatesSkippedLastSync)
		assert.Equal(t, 1, m.Stats.ItemsProcessedLastSync)

		time.Sleep(2 * serversync.MaxIdlePollDefault)
		settle()
		assert.Len(t, e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID}), 4, "hours of polls later")
		assert.Equal(t, 4, e.countEvents(serversync.EventMailTracked))
	})
}
