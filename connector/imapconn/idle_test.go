package imapconn_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector/imapconn"
)

// waitUntilReturns runs wait in a goroutine and calls poke every 50 ms until it
// returns, failing after 5 s.
func waitUntilReturns(t *testing.T, wait func() error, poke func()) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- wait() }()
	ticker := time.NewTicker(50 * time.Millisecond)
	defer ticker.Stop()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case err := <-done:
			return err
		case <-ticker.C:
			poke()
		case <-timeout:
			t.Fatal("WaitForChange did not return within 5 s")
		}
	}
}

func TestWaitForChangeNewMail(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverConfig{})
	helper := ts.client(t, "alice")
	sess := ts.open(t, ts.target("alice"), nil)
	idle, ok := sess.(serversync.IdleSession)
	require.True(t, ok)
	_, res := fetchAll(t, sess, serversync.FetchRequest{})

	n := 0
	err := waitUntilReturns(t, func() error {
		return idle.WaitForChange(context.Background(), "INBOX")
	}, func() {
		n++
		appendMessage(t, helper, "INBOX", testMessage(n, 100), time.Time{})
	})
	require.NoError(t, err)

	// The session is usable after IDLE: the new mail is there.
	got, _ := fetchAll(t, sess, serversync.FetchRequest{Cursor: res.Cursor})
	assert.NotEmpty(t, got)
}

func TestWaitForChangeMailArrivedBefore(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverConfig{})
	helper := ts.client(t, "alice")
	sess := ts.open(t, ts.target("alice"), nil)
	fetchAll(t, sess, serversync.FetchRequest{})
	appendMessage(t, helper, "INBOX", testMessage(1, 100), time.Time{})
	// Mail that arrived between the fetch and the wait is not waited for.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, sess.(serversync.IdleSession).WaitForChange(ctx, ""))
}

func TestWaitForChangeOwnMoveIsNotAChange(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverConfig{})
	helper := ts.client(t, "alice")
	appendMessage(t, helper, "INBOX", testMessage(1, 100), time.Time{})
	appendMessage(t, helper, "INBOX", testMessage(2, 100), time.Time{})
	sess := ts.open(t, ts.target("alice"), nil)
	got, _ := fetchAll(t, sess, serversync.FetchRequest{})
	require.NoError(t, sess.Move(context.Background(), "", got[0].msg.Ref, "Undeliverable"))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := sess.(serversync.IdleSession).WaitForChange(ctx, "")
	assert.ErrorIs(t, err, context.DeadlineExceeded, "our own expunge must not wake the wait")
}

func TestWaitForChangeCanceled(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverConfig{})
	sess := ts.open(t, ts.target("alice"), &imapconn.Options{IdleRestart: 30 * time.Millisecond})
	idle := sess.(serversync.IdleSession)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- idle.WaitForChange(ctx, "INBOX") }()
	time.Sleep(100 * time.Millisecond) // let it IDLE, and restart IDLE a few times
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		require.Error(t, err)
		assert.ErrorIs(t, err, context.Canceled)
		assert.Less(t, time.Since(start), time.Second)
	case <-time.After(5 * time.Second):
		t.Fatal("WaitForChange ignored the canceled context")
	}

	// IDLE ended cleanly: the session still works.
	helper := ts.client(t, "alice")
	appendMessage(t, helper, "INBOX", testMessage(1, 100), time.Time{})
	got, _ := fetchAll(t, sess, serversync.FetchRequest{})
	assert.Len(t, got, 1)
}

func TestIdleUnsupportedIsRecognisable(t *testing.T) {
	assert.ErrorIs(t, imapconn.ErrIdleUnsupported, errors.ErrUnsupported)
}
