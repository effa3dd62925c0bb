package ews_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector/ews"
)

func TestFetchCursorAcrossRestarts(t *testing.T) {
	f := newFixture(t, nil)
	target := f.target(alice, password("alice", "alice-pw"))
	deliver(t, f.srv, alice, "one", "two", "three")

	g, res, err := f.fetch(t, target, nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"one", "two", "three"}, g.subjects())
	assert.False(t, res.Reset)
	require.NotEmpty(t, res.Cursor)
	for _, r := range g.received {
		assert.False(t, r.IsZero(), "DateTimeReceived is read")
	}
	// The last message of the round carries the state after it.
	assert.Equal(t, res.Cursor, g.cursors[2])

	// A new session (a restart) from the stored cursor sees nothing again.
	g, res2, err := f.fetch(t, target, res.Cursor)
	require.NoError(t, err)
	assert.Empty(t, g.refs)

	// New mail, and a deleted message, after the cursor.
	deliver(t, f.srv, alice, "four")
	require.True(t, f.srv.Remove(alice, f.srv.Messages(alice, "inbox")[0].ID))
	g, _, err = f.fetch(t, target, res2.Cursor)
	require.NoError(t, err)
	assert.Equal(t, []string{"four"}, g.subjects(), "a delete is no new mail")
	for _, r := range f.srv.Requests() {
		assert.Equal(t, ews.ServerVersionDefault, r.Version)
	}
}

func TestFetchPagesBy512(t *testing.T) {
	f := newFixture(t, nil)
	target := f.target(alice, password("alice", "alice-pw"))
	const n = 1030
	for i := range n {
		_, err := f.srv.Deliver(alice, "inbox", mime("dave@example.test", alice, fmt.Sprintf("m%04d", i)), time.Now())
		require.NoError(t, err)
	}
	g, res, err := f.fetch(t, target, nil)
	require.NoError(t, err)
	require.Len(t, g.refs, n)
	for i, s := range g.subjects() {
		require.Equal(t, fmt.Sprintf("m%04d", i), s)
	}
	assert.Equal(t, 3, f.srv.Count("SyncFolderItems"), "512 + 512 + 6")
	assert.Equal(t, 52+52+1, f.srv.Count("GetItem"), "up to 10 items per GetItem, within each round")
	for _, r := range f.srv.Requests() {
		if r.Op == "GetItem" {
			assert.LessOrEqual(t, r.Items, ews.BatchSizeDefault)
		}
	}
	// Every message's cursor resumes right after it: at the end of a round, and
	// in the middle of one (the round is asked for again and what was handed
	// over of it is skipped).
	for _, at := range []int{0, 511, 600, n - 2} {
		rest, _, err := f.fetch(t, target, g.cursors[at])
		require.NoError(t, err)
		require.Equal(t, g.refs[at+1:], rest.refs, "resumed after message %d", at)
	}

	g3, _, err := f.fetch(t, target, res.Cursor)
	require.NoError(t, err)
	assert.Empty(t, g3.refs)
}

func TestFetchInvalidSyncStateResets(t *testing.T) {
	f := newFixture(t, nil)
	target := f.target(alice, password("alice", "alice-pw"))
	deliver(t, f.srv, alice, "one", "two")
	g, res, err := f.fetch(t, target, nil)
	require.NoError(t, err)
	require.Len(t, g.refs, 2)

	f.srv.InvalidateSyncStates(alice)
	deliver(t, f.srv, alice, "three")
	g2, res2, err := f.fetch(t, target, res.Cursor)
	require.NoError(t, err)
	assert.True(t, res2.Reset, "the server forgot the state: a reset")
	assert.Equal(t, []string{"one", "two", "three"}, g2.subjects(), "everything offered again; the Store's keys keep it from being tracked twice")
	assert.Equal(t, g.refs, g2.refs[:2], "same refs for the same items")

	g3, res3, err := f.fetch(t, target, res2.Cursor)
	require.NoError(t, err)
	assert.False(t, res3.Reset)
	assert.Empty(t, g3.refs)
}

func TestFetchReplayedReplyOffersAgain(t *testing.T) {
	f := newFixture(t, nil)
	target := f.target(alice, password("alice", "alice-pw"))
	deliver(t, f.srv, alice, "one")
	g, res, err := f.fetch(t, target, nil)
	require.NoError(t, err)
	require.Len(t, g.refs, 1)
	f.srv.ReplayNextSync(alice)
	g2, _, err := f.fetch(t, target, res.Cursor)
	require.NoError(t, err)
	assert.Equal(t, g.refs, g2.refs, "a replayed reply offers the same ref again, for the Syncer's message keys to skip")
}

func TestBusyBackOffObeyed(t *testing.T) {
	f := newFixture(t, nil)
	target := f.target(alice, password("alice", "alice-pw"))
	deliver(t, f.srv, alice, "one")
	const backOff = 40 * time.Millisecond
	f.srv.InjectBusy("SyncFolderItems", 2, backOff)
	g, _, err := f.fetch(t, target, nil)
	require.NoError(t, err)
	assert.Len(t, g.refs, 1)
	st := f.conn.Stats()
	assert.Equal(t, int64(2), st.Busy)
	assert.GreaterOrEqual(t, st.RetryWait, 2*backOff)
	var syncs []time.Time
	for _, r := range f.srv.Requests() {
		if r.Op == "SyncFolderItems" {
			syncs = append(syncs, r.At)
		}
	}
	require.Len(t, syncs, 3)
	assert.GreaterOrEqual(t, syncs[1].Sub(syncs[0]), backOff, "waited BackOffMilliseconds before retrying")
	assert.GreaterOrEqual(t, syncs[2].Sub(syncs[1]), backOff)
}

func TestBusyTooLongIsThrottled(t *testing.T) {
	f := newFixture(t, &ews.Options{MaxBusyRetries: 2})
	target := f.target(alice, password("alice", "alice-pw"))
	f.srv.InjectBusy("", 10, time.Millisecond)
	_, _, err := f.fetch(t, target, nil)
	ce := code(t, err)
	assert.Equal(t, serversync.CodeThrottled, ce.Code)
	assert.Equal(t, serversync.ErrorTransient, ce.Kind)
	assert.Equal(t, 3, f.srv.Count("SyncFolderItems"), "the first try and two retries")

	// A back-off longer than the connector may wait fails at once.
	f2 := newFixture(t, &ews.Options{MaxRetryWait: time.Second})
	f2.srv.InjectBusy("", 1, time.Hour)
	_, _, err = f2.fetch(t, f2.target(alice, password("alice", "alice-pw")), nil)
	assert.Equal(t, serversync.CodeThrottled, code(t, err).Code)
	assert.Less(t, f2.conn.Stats().RetryWait, time.Second)

	// Waiting ends with the context.
	f3 := newFixture(t, nil)
	f3.srv.InjectBusy("", 1, time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	sess, err := f3.conn.OpenIncoming(ctx, f3.target(alice, password("alice", "alice-pw")))
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		_, err := sess.Fetch(ctx, serversync.FetchRequest{}, func(*serversync.RemoteMessage) error { return nil })
		done <- err
	}()
	require.Eventually(t, func() bool { return f3.srv.Count("SyncFolderItems") == 1 }, 10*time.Second, 5*time.Millisecond)
	cancel()
	err = <-done
	assert.Equal(t, serversync.CodeCanceled, code(t, err).Code)
}

func TestImpersonation(t *testing.T) {
	f := newFixture(t, nil)
	f.srv.AllowImpersonation(svc, alice)
	deliver(t, f.srv, alice, "for alice")
	deliver(t, f.srv, bob, "for bob")

	g, _, err := f.fetch(t, f.target(alice, impersonation(alice)), nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"for alice"}, g.subjects())
	for _, r := range f.srv.Requests() {
		assert.Equal(t, svc, r.Login)
		assert.Equal(t, alice, r.Impersonated, "ExchangeImpersonation names the mailbox")
	}

	_, _, err = f.fetch(t, f.target(bob, impersonation(bob)), nil)
	ce := code(t, err)
	assert.Equal(t, serversync.CodeNoPermission, ce.Code)
	assert.Equal(t, serversync.ErrorPermanent, ce.Kind)
	assert.Contains(t, err.Error(), "ErrorImpersonateUserDenied")
	assert.Contains(t, err.Error(), "ApplicationImpersonation")
	assert.NotContains(t, err.Error(), "svc-pw")

	f.srv.AllowImpersonation(svc, "*")
	_, _, err = f.fetch(t, f.target("nobody@example.test", impersonation("nobody@example.test")), nil)
	assert.Equal(t, serversync.CodeMailboxNotFound, code(t, err).Code)
}

func TestDelegation(t *testing.T) {
	f := newFixture(t, nil)
	f.srv.AllowDelegate(svc, carol)
	deliver(t, f.srv, carol, "for carol")
	g, _, err := f.fetch(t, f.target(carol, delegation(carol)), nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"for carol"}, g.subjects())
	for _, r := range f.srv.Requests() {
		assert.Empty(t, r.Impersonated)
		assert.Equal(t, carol, r.Mailbox, "the mailbox named in DistinguishedFolderId")
	}
	_, _, err = f.fetch(t, f.target(bob, delegation(bob)), nil)
	ce := code(t, err)
	assert.Equal(t, serversync.CodeNoPermission, ce.Code)
	assert.Contains(t, err.Error(), "ErrorAccessDenied")
}

func TestAuthFailures(t *testing.T) {
	f := newFixture(t, nil)
	_, _, err := f.fetch(t, f.target(alice, password("alice", "wrong")), nil)
	ce := code(t, err)
	assert.Equal(t, serversync.CodeAuthFailed, ce.Code)
	assert.Equal(t, serversync.ErrorAuth, ce.Kind)
	assert.NotContains(t, err.Error(), "wrong")

	// Basic over plain http is refused before anything is sent.
	target := f.target(alice, password("alice", "alice-pw"))
	target.Endpoint.URL = strings.Replace(target.Endpoint.URL, "https://", "http://", 1)
	_, err = f.conn.OpenIncoming(context.Background(), target)
	assert.Equal(t, serversync.CodePlaintextAuthRefused, code(t, err).Code)
}

// A round that comes back otherwise than when a message's cursor was handed
// out is offered whole again: nothing is lost, whatever changed.
func TestFetchResumeInChangedRound(t *testing.T) {
	f := newFixture(t, nil)
	target := f.target(alice, password("alice", "alice-pw"))
	deliver(t, f.srv, alice, "one", "two", "three")
	g, _, err := f.fetch(t, target, nil)
	require.NoError(t, err)
	// The first round from no state lists what is in the inbox now: without "one",
	// the item at the cursor's place is another.
	require.True(t, f.srv.Remove(alice, g.refs[0]))
	rest, _, err := f.fetch(t, target, g.cursors[0])
	require.NoError(t, err)
	assert.Equal(t, []string{"two", "three"}, rest.subjects())

	// A cursor from another connector's format is refused, not guessed at.
	_, _, err = f.fetch(t, target, []byte(`{"v":9}`))
	assert.Equal(t, serversync.CodeBadCursor, code(t, err).Code)
}
