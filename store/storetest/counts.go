package storetest

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
)

// testActivityCounts checks serversync.ActivityCountStore, for stores that
// implement it: counts by mailbox, direction and status, filtered, agreeing with
// what ListActivities streams, and following status changes.
func testActivityCounts(t *testing.T, h harness) {
	h.run(t, "CountsByMailboxDirectionStatus", func(t *testing.T, s serversync.Store) {
		cs, ok := s.(serversync.ActivityCountStore)
		if !ok {
			t.Skip("storetest: the store implements no serversync.ActivityCountStore")
		}
		ctx := t.Context()
		got, err := cs.CountActivities(ctx, serversync.ActivityCountFilter{})
		require.NoError(t, err)
		assert.Empty(t, got, "an empty store counts nothing")

		failed := NewActivity("mb-a", "k3")
		failed.Status = serversync.StatusFailed
		saveTracked(t, s, nil, NewActivity("mb-a", "k1"), NewActivity("mb-a", "k2"), failed, NewActivity("mb-b", "k1"))
		out1, out2 := NewOutgoing("mb-a", "o1"), NewOutgoing("mb-a", "o2")
		require.NoError(t, s.QueueOutgoing(ctx, out1))
		require.NoError(t, s.QueueOutgoing(ctx, out2))
		_, err = s.UpdateActivity(ctx, out2.ID, func(a *serversync.EmailActivity) error {
			a.Status = serversync.StatusSent
			return nil
		})
		require.NoError(t, err)

		got, err = cs.CountActivities(ctx, serversync.ActivityCountFilter{})
		require.NoError(t, err)
		assert.Equal(t, []serversync.ActivityCount{
			{MailboxID: "mb-a", Direction: serversync.Incoming, Status: serversync.StatusFailed, Count: 1},
			{MailboxID: "mb-a", Direction: serversync.Incoming, Status: serversync.StatusTracked, Count: 2},
			{MailboxID: "mb-a", Direction: serversync.Outgoing, Status: serversync.StatusPendingSend, Count: 1},
			{MailboxID: "mb-a", Direction: serversync.Outgoing, Status: serversync.StatusSent, Count: 1},
			{MailboxID: "mb-b", Direction: serversync.Incoming, Status: serversync.StatusTracked, Count: 1},
		}, got)

		got, err = cs.CountActivities(ctx, serversync.ActivityCountFilter{MailboxID: "mb-a", Direction: serversync.Incoming})
		require.NoError(t, err)
		assert.Equal(t, []serversync.ActivityCount{
			{MailboxID: "mb-a", Direction: serversync.Incoming, Status: serversync.StatusFailed, Count: 1},
			{MailboxID: "mb-a", Direction: serversync.Incoming, Status: serversync.StatusTracked, Count: 2},
		}, got)

		got, err = cs.CountActivities(ctx, serversync.ActivityCountFilter{Status: serversync.StatusTracked})
		require.NoError(t, err)
		assert.Equal(t, []serversync.ActivityCount{
			{MailboxID: "mb-a", Direction: serversync.Incoming, Status: serversync.StatusTracked, Count: 2},
			{MailboxID: "mb-b", Direction: serversync.Incoming, Status: serversync.StatusTracked, Count: 1},
		}, got)

		// The streaming fallback agrees with the store's own count.
		all, err := cs.CountActivities(ctx, serversync.ActivityCountFilter{})
		require.NoError(t, err)
		streamed, err := serversync.CountActivities(ctx, activitiesOnly{s}, serversync.ActivityCountFilter{})
		require.NoError(t, err)
		assert.Equal(t, all, streamed)
		totals := serversync.Totals(all)
		assert.Equal(t, int64(3), totals[serversync.Incoming][serversync.StatusTracked])
		assert.Equal(t, int64(1), totals[serversync.Outgoing][serversync.StatusSent])
	})

	h.run(t, "CountAfterClose", func(t *testing.T, s serversync.Store) {
		if _, ok := s.(serversync.ActivityCountStore); !ok {
			t.Skip("storetest: the store implements no serversync.ActivityCountStore")
		}
		closed := h.openUnmanaged(t)
		require.NoError(t, closed.Close())
		_, err := closed.(serversync.ActivityCountStore).CountActivities(t.Context(), serversync.ActivityCountFilter{})
		assert.ErrorIs(t, err, serversync.ErrClosed)
	})
}

// activitiesOnly hides every method but the ActivityStore's, so CountActivities
// takes its streaming path.
type activitiesOnly struct{ serversync.ActivityStore }

// testRecentActivities checks serversync.RecentActivityStore, for stores that
// implement it, against the streaming fallback.
func testRecentActivities(t *testing.T, h harness) {
	h.run(t, "NewestFirst", func(t *testing.T, s serversync.Store) {
		rs, ok := s.(serversync.RecentActivityStore)
		if !ok {
			t.Skip("storetest: the store implements no serversync.RecentActivityStore")
		}
		ctx := t.Context()
		got, err := rs.RecentActivities(ctx, "mb-a", 3)
		require.NoError(t, err)
		assert.Empty(t, got)
		var ids []string
		for _, key := range []string{"k1", "k2", "k3", "k4"} {
			a := NewActivity("mb-a", key)
			saveTracked(t, s, nil, a, NewActivity("mb-b", key))
			ids = append(ids, a.ID)
		}
		out := NewOutgoing("mb-a", "o1")
		require.NoError(t, s.QueueOutgoing(ctx, out))
		ids = append(ids, out.ID)

		got, err = rs.RecentActivities(ctx, "mb-a", 3)
		require.NoError(t, err)
		require.Len(t, got, 3)
		assert.Equal(t, []string{ids[4], ids[3], ids[2]}, []string{got[0].ID, got[1].ID, got[2].ID})
		assert.Equal(t, "Message k4", got[1].Subject, "whole records")
		streamed, err := serversync.RecentActivities(ctx, activitiesOnly{s}, "mb-a", 3)
		require.NoError(t, err)
		require.Len(t, streamed, 3)
		for i := range got {
			assert.Equal(t, got[i].ID, streamed[i].ID)
		}
		got, err = rs.RecentActivities(ctx, "mb-a", 100)
		require.NoError(t, err)
		assert.Len(t, got, 5)
	})
}
