package fakeconn_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector/fakeconn"
)

const alice = "alice@example.test"

var target = &serversync.Target{EmailAddress: alice}

func msg(n int) []byte {
	return fmt.Appendf(nil, "Message-ID: <m%d@example.test>\r\nSubject: %d\r\n\r\n%s\r\n", n, n, strings.Repeat("body ", 20))
}

func open(t *testing.T, c *fakeconn.Connector) serversync.IncomingSession {
	t.Helper()
	s, err := c.OpenIncoming(t.Context(), target)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// fetch collects a fetch's messages (body and cursor).
func fetch(t *testing.T, s serversync.IncomingSession, req serversync.FetchRequest) ([]serversync.RemoteMessage, serversync.FetchResult, error) {
	t.Helper()
	var got []serversync.RemoteMessage
	res, err := s.Fetch(t.Context(), req, func(m *serversync.RemoteMessage) error {
		body, err := io.ReadAll(m.Body)
		if err != nil {
			return err
		}
		c := *m
		c.Body = bytes.NewReader(body)
		got = append(got, c)
		return nil
	})
	return got, res, err
}

func body(t *testing.T, m serversync.RemoteMessage) []byte {
	t.Helper()
	b, err := io.ReadAll(m.Body)
	require.NoError(t, err)
	return b
}

func TestFetchResumesAfterItsCursor(t *testing.T) {
	c := fakeconn.New(nil)
	s := open(t, c)
	got, res, err := fetch(t, s, serversync.FetchRequest{})
	require.NoError(t, err)
	assert.Empty(t, got)
	for i := range 3 {
		c.Deliver(alice, msg(i))
	}
	got, res, err = fetch(t, s, serversync.FetchRequest{Cursor: res.Cursor})
	require.NoError(t, err)
	require.Len(t, got, 3)
	for i, m := range got {
		assert.Equal(t, msg(i), body(t, m), "byte for byte, in order")
		assert.Equal(t, serversync.InboxFolder, m.Folder)
	}
	again, _, err := fetch(t, s, serversync.FetchRequest{Cursor: res.Cursor})
	require.NoError(t, err)
	assert.Empty(t, again)
	rest, _, err := fetch(t, s, serversync.FetchRequest{Cursor: got[0].Cursor})
	require.NoError(t, err)
	assert.Len(t, rest, 2, "a message's cursor resumes right after it")

	c.ResetCursors()
	all, reset, err := fetch(t, s, serversync.FetchRequest{Cursor: res.Cursor})
	require.NoError(t, err)
	assert.True(t, reset.Reset, "an invalidated cursor is reported")
	assert.Len(t, all, 3, "and everything is offered again")
}

func TestFetchSince(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fakeconn.New(nil)
		c.Deliver(alice, msg(1))
		time.Sleep(time.Hour)
		since := time.Now()
		c.Deliver(alice, msg(2))
		got, _, err := fetch(t, open(t, c), serversync.FetchRequest{Since: since})
		require.NoError(t, err)
		require.Len(t, got, 1)
		assert.Equal(t, msg(2), body(t, got[0]))
		assert.Equal(t, since, got[0].ReceivedAt)
	})
}

// Every call is recorded with its arguments and result.
func TestCallsAreRecorded(t *testing.T) {
	ctx := t.Context()
	c := fakeconn.New(nil)
	c.Deliver(alice, msg(1))
	c.Deliver(alice, msg(2))
	s := open(t, c)
	got, res, err := fetch(t, s, serversync.FetchRequest{})
	require.NoError(t, err)
	require.NoError(t, s.(serversync.FolderSession).Move(ctx, serversync.InboxFolder, got[0].Ref, serversync.UndeliverableFolder))
	require.NoError(t, s.Delete(ctx, serversync.InboxFolder, got[1].Ref))
	require.NoError(t, s.(serversync.FolderSession).Append(ctx, serversync.SentFolder, time.Time{}, bytes.NewReader(msg(3)), int64(len(msg(3)))))
	_, _, err = fetch(t, s, serversync.FetchRequest{Cursor: res.Cursor})
	require.NoError(t, err)
	require.NoError(t, s.Close())

	out, err := c.OpenOutgoing(ctx, &serversync.Target{EmailAddress: alice})
	require.NoError(t, err)
	env := serversync.Envelope{From: alice, To: []string{"bob@example.test"}}
	require.NoError(t, out.Send(ctx, env, bytes.NewReader(msg(4))))
	require.NoError(t, out.Close())

	var ops []fakeconn.Op
	for _, call := range c.Calls() {
		ops = append(ops, call.Op)
		assert.NoError(t, call.Err)
		assert.Equal(t, alice, call.Mailbox)
	}
	assert.Equal(t, []fakeconn.Op{fakeconn.OpOpenIncoming, fakeconn.OpFetch, fakeconn.OpMove, fakeconn.OpDelete, fakeconn.OpAppend,
		fakeconn.OpFetch, fakeconn.OpCloseIncoming, fakeconn.OpOpenOutgoing, fakeconn.OpSend, fakeconn.OpCloseOutgoing}, ops)
	fetches := c.CallsOf(fakeconn.OpFetch)
	assert.Nil(t, fetches[0].Cursor)
	assert.Equal(t, 2, fetches[0].Delivered)
	assert.Equal(t, res.Cursor, fetches[1].Cursor, "a fetch records the cursor it was asked to resume from")
	assert.Zero(t, fetches[1].Delivered)
	move := c.CallsOf(fakeconn.OpMove)[0]
	assert.Equal(t, got[0].Ref, move.Ref)
	assert.Equal(t, serversync.UndeliverableFolder, move.ToFolder)
	assert.Equal(t, msg(3), c.CallsOf(fakeconn.OpAppend)[0].Message)
	sent := c.Sent()
	require.Len(t, sent, 1)
	assert.Equal(t, env, sent[0].Envelope)
	assert.Equal(t, msg(4), sent[0].Message)
	assert.Equal(t, 2, sent[0].Session, "the second session opened")

	assert.Empty(t, c.Messages(alice, serversync.InboxFolder), "moved and deleted")
	assert.Len(t, c.Messages(alice, serversync.UndeliverableFolder), 1)
	assert.Len(t, c.Messages(alice, serversync.SentFolder), 1)
	delivered := c.Messages("bob@example.test", serversync.InboxFolder)
	require.Len(t, delivered, 1, "a send is delivered to its recipient")
	assert.Equal(t, msg(4), delivered[0].Raw)
	assert.Zero(t, c.OpenSessions())
}

func TestFaults(t *testing.T) {
	ctx := t.Context()
	c := fakeconn.New(nil)
	auth := fakeconn.Error(serversync.ErrorAuth, serversync.ScopeMailbox, "auth_failed")
	c.Inject(fakeconn.Fault{Op: fakeconn.OpOpenIncoming, Mailbox: "bob@example.test", Err: auth, Times: fakeconn.Always})
	c.Inject(fakeconn.Fault{Op: fakeconn.OpOpenIncoming, Times: 2})

	for range 2 {
		_, err := c.OpenIncoming(ctx, target)
		var ce *serversync.ConnectorError
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, serversync.ErrorTransient, ce.Kind, "the default fault is a dropped connection")
		assert.Equal(t, "network", ce.Code)
	}
	s, err := c.OpenIncoming(ctx, target)
	require.NoError(t, err, "a fault injected twice fails two calls")
	require.NoError(t, s.Close())

	for range 3 {
		_, err = c.OpenIncoming(ctx, &serversync.Target{EmailAddress: "bob@example.test"})
		var ce *serversync.ConnectorError
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, serversync.ErrorAuth, ce.Kind)
		assert.Equal(t, string(fakeconn.OpOpenIncoming), ce.Op, "the error names the call that failed")
	}
	c.Heal()
	s, err = c.OpenIncoming(ctx, &serversync.Target{EmailAddress: "bob@example.test"})
	require.NoError(t, err, "healed")
	require.NoError(t, s.Close())
	opens := c.CallsOf(fakeconn.OpOpenIncoming)
	require.Len(t, opens, 7)
	assert.Error(t, opens[0].Err, "failed calls are recorded with their error")
	assert.NoError(t, opens[6].Err)

	custom := errors.New("anything at all")
	c.Inject(fakeconn.Fault{Op: fakeconn.OpDelete, Err: custom})
	s = open(t, c)
	assert.ErrorIs(t, s.Delete(ctx, serversync.InboxFolder, "1"), custom)
	assert.NoError(t, s.Delete(ctx, serversync.InboxFolder, "1"), "once")
}

// A connection dropped in the middle of a message: the messages before it arrive
// whole, the broken one's Body fails, the session is dead, and a new session
// resumes from the last whole message's cursor.
func TestDroppedBodyMidRead(t *testing.T) {
	c := fakeconn.New(nil)
	for i := range 5 {
		c.Deliver(alice, msg(i))
	}
	c.Inject(fakeconn.Fault{Op: fakeconn.OpFetch, After: 2, CutBody: true})
	s := open(t, c)
	var whole []serversync.RemoteMessage
	var partial []byte
	_, err := s.Fetch(t.Context(), serversync.FetchRequest{}, func(m *serversync.RemoteMessage) error {
		b, err := io.ReadAll(m.Body)
		if err != nil {
			partial = b
			return err
		}
		whole = append(whole, *m)
		return nil
	})
	kind := serversync.ClassifyError(err).Kind
	assert.Equal(t, serversync.ErrorTransient, kind, "%v", err)
	require.Len(t, whole, 2)
	assert.NotEmpty(t, partial)
	assert.Less(t, len(partial), len(msg(2)), "the third message is cut short")
	assert.Equal(t, 3, c.CallsOf(fakeconn.OpFetch)[0].Delivered)

	_, _, err = fetch(t, s, serversync.FetchRequest{})
	assert.Error(t, err, "the session is broken")

	rest, _, err := fetch(t, open(t, c), serversync.FetchRequest{Cursor: whole[1].Cursor})
	require.NoError(t, err)
	assert.Len(t, rest, 3)
}

// A held call waits for its release, or its context, whatever the clock does.
func TestHold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fakeconn.New(nil)
		gate := c.Hold(fakeconn.OpSend, "")
		out, err := c.OpenOutgoing(t.Context(), target)
		require.NoError(t, err)
		defer out.Close()
		done := make(chan error, 1)
		go func() {
			done <- out.Send(t.Context(), serversync.Envelope{From: alice, To: []string{alice}}, bytes.NewReader(msg(1)))
		}()
		<-gate.Reached()
		assert.Equal(t, fakeconn.OpSend, gate.Call().Op)
		time.Sleep(time.Hour)
		synctest.Wait()
		select {
		case <-done:
			t.Fatal("a held call went on before its release")
		default:
		}
		assert.Empty(t, c.Messages(alice, serversync.InboxFolder))
		gate.Release()
		require.NoError(t, <-done)
		assert.Len(t, c.Messages(alice, serversync.InboxFolder), 1)

		gate = c.Hold(fakeconn.OpSend, "")
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		err = out.Send(ctx, serversync.Envelope{From: alice, To: []string{alice}}, bytes.NewReader(msg(2)))
		assert.ErrorIs(t, err, context.DeadlineExceeded, "a held call ends with its context")
		assert.Len(t, c.Messages(alice, serversync.InboxFolder), 1, "and does nothing")
	})
}

func TestWaitForChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		c := fakeconn.New(nil)
		c.Deliver(alice, msg(1))
		s := open(t, c)
		got, _, err := fetch(t, s, serversync.FetchRequest{})
		require.NoError(t, err)
		idle := s.(serversync.IdleSession)
		require.NoError(t, s.(serversync.FolderSession).Move(ctx, serversync.InboxFolder, got[0].Ref, "Archive"))

		done := make(chan error, 1)
		go func() { done <- idle.WaitForChange(ctx, serversync.InboxFolder) }()
		synctest.Wait()
		select {
		case <-done:
			t.Fatal("the session's own move woke it")
		default:
		}
		c.Deliver(alice, msg(2))
		require.NoError(t, <-done, "new mail ends the wait")
		require.NoError(t, idle.WaitForChange(ctx, serversync.InboxFolder), "a change since the last fetch ends it at once")

		_, _, err = fetch(t, s, serversync.FetchRequest{})
		require.NoError(t, err)
		go func() { done <- idle.WaitForChange(ctx, serversync.InboxFolder) }()
		time.Sleep(2 * time.Hour)
		c.Drop(alice)
		err = <-done
		kind := serversync.ClassifyError(err).Kind
		assert.Equal(t, serversync.ErrorTransient, kind, "a dropped connection: %v", err)

		timeout, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		err = open(t, c).(serversync.IdleSession).WaitForChange(timeout, "Archive")
		assert.ErrorIs(t, err, context.DeadlineExceeded)

		noIdle := fakeconn.New(&fakeconn.Options{NoIdle: true})
		err = open(t, noIdle).(serversync.IdleSession).WaitForChange(ctx, serversync.InboxFolder)
		assert.ErrorIs(t, err, errors.ErrUnsupported)
	})
}

// With DeferDeletes, deletions apply at Commit or Close, as POP3's at QUIT, and a
// session that breaks first loses them.
func TestDeferredDeletes(t *testing.T) {
	ctx := t.Context()
	c := fakeconn.New(&fakeconn.Options{DeferDeletes: true})
	for i := range 3 {
		c.Deliver(alice, msg(i))
	}
	s := open(t, c)
	require.NoError(t, s.Delete(ctx, serversync.InboxFolder, "1"))
	assert.Len(t, c.Messages(alice, serversync.InboxFolder), 3)
	require.NoError(t, s.(serversync.CommitSession).Commit(ctx))
	assert.Len(t, c.Messages(alice, serversync.InboxFolder), 2)

	require.NoError(t, s.Delete(ctx, serversync.InboxFolder, "2"))
	c.Drop(alice)
	_ = s.Close()
	assert.Len(t, c.Messages(alice, serversync.InboxFolder), 2, "lost with the connection")

	s = open(t, c)
	require.NoError(t, s.Delete(ctx, serversync.InboxFolder, "2"))
	require.NoError(t, s.Close())
	assert.Len(t, c.Messages(alice, serversync.InboxFolder), 1, "applied at Close")
}

// Probing fails where opening would: a refused login fails "authenticate".
func TestProbe(t *testing.T) {
	c := fakeconn.New(nil)
	prober := c.Incoming().(serversync.Prober)
	steps := prober.Probe(t.Context(), target)
	for _, s := range steps {
		assert.True(t, s.OK, s.Name)
	}
	c.Inject(fakeconn.Fault{Op: fakeconn.OpOpenIncoming, Err: fakeconn.Error(serversync.ErrorAuth, serversync.ScopeMailbox, "auth_failed")})
	steps = prober.Probe(t.Context(), target)
	require.Len(t, steps, 2)
	assert.True(t, steps[0].OK)
	assert.Equal(t, "authenticate", steps[1].Name)
	assert.False(t, steps[1].OK)
	assert.Len(t, c.CallsOf(fakeconn.OpProbeIncoming), 2)
	assert.Empty(t, c.CallsOf(fakeconn.OpOpenIncoming), "a probe opens no session")
	steps = c.Outgoing().(serversync.Prober).Probe(t.Context(), target)
	assert.Len(t, steps, 3)
}
