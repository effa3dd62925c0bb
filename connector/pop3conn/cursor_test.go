package pop3conn_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector/connectortest"
)

// renumber gives every message in user's maildrop a new UIDL, as a server does
// when it rebuilds its index: the cursor's UIDLs mean nothing any more.
func (s *memServer) renumber(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.drops[user] {
		s.nextUID++
		e.uid = fmt.Sprintf("uid-%06d", s.nextUID)
	}
}

func refs(msgs []*serversync.RemoteMessage) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, m.Ref)
	}
	return out
}

func deliverN(srv *memServer, n int) {
	for i := range n {
		srv.deliver("alice", connectortest.Message(i, "x"))
	}
}

// Deleting messages, the cursor's own among them, is no reset while an earlier
// one the cursor remembers is still there: nothing is offered again.
func TestDeletedMessagesAreNoReset(t *testing.T) {
	srv := newMemServer(t, nil)
	deliverN(srv, 3)
	s := open(t, srv.target("alice", "alice-pass", serversync.TLSStartTLS))
	_, msgs, _ := fetchAll(t, s, serversync.FetchRequest{})
	require.Len(t, msgs, 3)
	require.NoError(t, s.Delete(context.Background(), "", msgs[0].Ref))
	require.NoError(t, s.Delete(context.Background(), "", msgs[2].Ref))

	// The next fetch logs in again, committing the deletions: the cursor's message is gone.
	_, again, res := fetchAll(t, s, serversync.FetchRequest{Cursor: msgs[2].Cursor})
	assert.False(t, res.Reset, "messages deleted are not a server that invalidated the cursor")
	assert.Empty(t, again, "nothing is offered again")
	assert.Equal(t, 1, srv.count("alice"))

	srv.deliver("alice", connectortest.Message(9, "new"))
	_, fresh, res := fetchAll(t, s, serversync.FetchRequest{Cursor: res.Cursor})
	assert.False(t, res.Reset)
	require.Len(t, fresh, 1, "only the new message")
	assert.NotEqual(t, msgs[1].Ref, fresh[0].Ref)
}

// Delete-after-processing empties the maildrop each poll. With the cursor the
// session gives after its deletions, the next poll offers the new mail, and only
// it, without calling it a reset, whether or not mail arrived in between.
func TestDeleteAfterProcessingIsNoReset(t *testing.T) {
	srv := newMemServer(t, nil)
	s := open(t, srv.target("alice", "alice-pass", serversync.TLSStartTLS))
	cursor := []byte(nil)
	for poll, arrived := range []int{3, 0, 2, 1} {
		deliverN(srv, arrived)
		_, msgs, res := fetchAll(t, s, serversync.FetchRequest{Cursor: cursor})
		assert.False(t, res.Reset, "poll %d", poll)
		require.Len(t, msgs, arrived, "poll %d offers what arrived", poll)
		for _, m := range msgs {
			require.NoError(t, s.Delete(context.Background(), "", m.Ref))
		}
		require.NoError(t, s.(serversync.CommitSession).Commit(context.Background()))
		cursor = s.(serversync.DeletionCursorSession).CursorAfterDeletes(res.Cursor)
		require.Zero(t, srv.count("alice"))
	}
}

// A cursor saved before the deletions (the process died after committing them)
// names only messages that are gone: an empty maildrop is still no reset.
func TestStaleCursorOnAnEmptyMaildrop(t *testing.T) {
	srv := newMemServer(t, nil)
	deliverN(srv, 2)
	s := open(t, srv.target("alice", "alice-pass", serversync.TLSStartTLS))
	_, msgs, res := fetchAll(t, s, serversync.FetchRequest{})
	for _, m := range msgs {
		require.NoError(t, s.Delete(context.Background(), "", m.Ref))
	}
	for range 2 {
		_, again, next := fetchAll(t, s, serversync.FetchRequest{Cursor: res.Cursor})
		assert.False(t, next.Reset)
		assert.Empty(t, again)
	}
}

// A UIDL list unrelated to the cursor's is a reset: every message is offered again.
func TestRenumberedUIDLsAreAReset(t *testing.T) {
	srv := newMemServer(t, nil)
	deliverN(srv, 3)
	s := open(t, srv.target("alice", "alice-pass", serversync.TLSStartTLS))
	_, msgs, res := fetchAll(t, s, serversync.FetchRequest{})
	require.Len(t, msgs, 3)
	srv.renumber("alice")
	_, again, res := fetchAll(t, s, serversync.FetchRequest{Cursor: res.Cursor})
	assert.True(t, res.Reset)
	assert.Len(t, again, 3, "everything is offered again; the Store's message keys keep it from being tracked twice")
}

// A cursor written by an earlier release (one UIDL) still resumes after it.
func TestSingleUIDLCursorResumes(t *testing.T) {
	srv := newMemServer(t, nil)
	deliverN(srv, 3)
	s := open(t, srv.target("alice", "alice-pass", serversync.TLSStartTLS))
	_, msgs, _ := fetchAll(t, s, serversync.FetchRequest{})
	_, rest, res := fetchAll(t, s, serversync.FetchRequest{Cursor: []byte(msgs[0].Ref)})
	assert.False(t, res.Reset)
	assert.Equal(t, refs(msgs[1:]), refs(rest))
}
