package ews_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
)

func TestSendAndSaveCopy(t *testing.T) {
	f := newFixture(t, nil)
	f.srv.AllowImpersonation(svc, "*")
	assert.True(t, f.conn.KeepsSentCopy(), "the Syncer must not store a second Sent copy")
	ctx := context.Background()
	out, err := f.conn.OpenOutgoing(ctx, f.target(alice, impersonation(alice)))
	require.NoError(t, err)
	defer out.Close()
	msg := "From: <alice@example.test>\r\nTo: <bob@example.test>\r\nSubject: quote\r\n\r\nhere it is\r\n"
	require.NoError(t, out.Send(ctx, serversync.Envelope{From: alice, To: []string{bob, carol}}, strings.NewReader(msg)))

	sent := f.srv.Sent()
	require.Len(t, sent, 1)
	assert.Equal(t, "SendAndSaveCopy", sent[0].Disposition)
	assert.Equal(t, alice, sent[0].Mailbox)
	assert.ElementsMatch(t, []string{bob, carol}, sent[0].Recipients, "carol, only in the envelope, goes as Bcc")
	require.Len(t, f.srv.Messages(bob, "inbox"), 1)
	require.Len(t, f.srv.Messages(carol, "inbox"), 1)
	assert.NotContains(t, string(f.srv.Messages(bob, "inbox")[0].MIME), "carol", "Bcc is not delivered")
	require.Len(t, f.srv.Messages(alice, "sentitems"), 1, "Exchange saved the copy")
	assert.Equal(t, "quote", f.srv.Messages(alice, "sentitems")[0].Subject)
}

func TestSendByDelegateSavesInTheirSentItems(t *testing.T) {
	f := newFixture(t, nil)
	f.srv.AllowDelegate(svc, carol)
	ctx := context.Background()
	out, err := f.conn.OpenOutgoing(ctx, f.target(carol, delegation(carol)))
	require.NoError(t, err)
	msg := "From: <carol@example.test>\r\nTo: <bob@example.test>\r\nSubject: from carol\r\n\r\nhi\r\n"
	require.NoError(t, out.Send(ctx, serversync.Envelope{From: carol, To: []string{bob}}, strings.NewReader(msg)))
	assert.Len(t, f.srv.Messages(carol, "sentitems"), 1)
	assert.Len(t, f.srv.Messages(bob, "inbox"), 1)

	// Without rights on the mailbox, OpenOutgoing already fails (Test & Enable sees it).
	_, err = f.conn.OpenOutgoing(ctx, f.target(bob, delegation(bob)))
	assert.Equal(t, serversync.CodeNoPermission, code(t, err).Code)
}

func TestSendRefused(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	out, err := f.conn.OpenOutgoing(ctx, f.target(alice, password("alice", "alice-pw")))
	require.NoError(t, err)
	err = out.Send(ctx, serversync.Envelope{From: alice}, strings.NewReader("From: <alice@example.test>\r\nSubject: nobody\r\n\r\nx\r\n"))
	ce := code(t, err)
	assert.Equal(t, serversync.CodeRecipientRejected, ce.Code)
	assert.Equal(t, serversync.ScopeItem, ce.Scope)
}

func TestMoveToUndeliverableCreatedOnce(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	target := f.target(alice, password("alice", "alice-pw"))
	deliver(t, f.srv, alice, "one", "two", "three")
	g, _, err := f.fetch(t, target, nil)
	require.NoError(t, err)

	sess, err := f.conn.OpenIncoming(ctx, target)
	require.NoError(t, err)
	fs := sess.(serversync.FolderSession)
	require.NoError(t, fs.Move(ctx, "inbox", g.refs[0], "Undeliverable"))
	require.NoError(t, fs.Move(ctx, "inbox", g.refs[1], "Undeliverable"))
	require.NoError(t, sess.Close())
	// Another session finds the folder rather than creating a second one.
	sess, err = f.conn.OpenIncoming(ctx, target)
	require.NoError(t, err)
	require.NoError(t, sess.(serversync.FolderSession).Move(ctx, "inbox", g.refs[2], "Undeliverable"))

	assert.Equal(t, 1, f.srv.Count("CreateFolder"), "created once")
	assert.Len(t, f.srv.Messages(alice, "Undeliverable"), 3)
	assert.Empty(t, f.srv.Messages(alice, "inbox"))
	n := 0
	for _, name := range f.srv.Folders(alice) {
		if name == "Undeliverable" {
			n++
		}
	}
	assert.Equal(t, 1, n)
}

func TestDelete(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	target := f.target(alice, password("alice", "alice-pw"))
	deliver(t, f.srv, alice, "one", "two")
	g, res, err := f.fetch(t, target, nil)
	require.NoError(t, err)
	sess, err := f.conn.OpenIncoming(ctx, target)
	require.NoError(t, err)
	require.NoError(t, sess.Delete(ctx, "inbox", g.refs[0]))
	assert.Len(t, f.srv.Messages(alice, "inbox"), 1)
	assert.Len(t, f.srv.Messages(alice, "deleteditems"), 1)
	require.True(t, f.srv.Remove(alice, g.refs[0]))
	assert.NoError(t, sess.Delete(ctx, "inbox", g.refs[0]), "already gone counts as deleted")
	// The cursor still holds: the deletions are no new mail.
	g2, _, err := f.fetch(t, target, res.Cursor)
	require.NoError(t, err)
	assert.Empty(t, g2.refs)
}

func TestAppend(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	sess, err := f.conn.OpenIncoming(ctx, f.target(alice, password("alice", "alice-pw")))
	require.NoError(t, err)
	msg := "From: <alice@example.test>\r\nTo: <bob@example.test>\r\nSubject: kept\r\n\r\nx\r\n"
	require.NoError(t, sess.(serversync.FolderSession).Append(ctx, "Archive", time.Now(), strings.NewReader(msg), int64(len(msg))))
	require.Len(t, f.srv.Messages(alice, "Archive"), 1)
	assert.Equal(t, "kept", f.srv.Messages(alice, "Archive")[0].Subject)
	assert.Empty(t, f.srv.Sent(), "SaveOnly sends nothing")
}

func TestProbe(t *testing.T) {
	f := newFixture(t, nil)
	f.srv.AllowImpersonation(svc, alice)
	deliver(t, f.srv, alice, "one", "two")
	steps := f.conn.Probe(context.Background(), f.target(alice, impersonation(alice)))
	require.Len(t, steps, 3)
	for _, s := range steps {
		assert.True(t, s.OK, "%s: %s", s.Name, s.Detail)
	}
	assert.Equal(t, []string{"mailbox", "open-inbox", "sent-items"}, []string{steps[0].Name, steps[1].Name, steps[2].Name})
	assert.Contains(t, steps[0].Detail, "impersonating "+alice)
	assert.Contains(t, steps[1].Detail, "2 messages")

	steps = f.conn.Probe(context.Background(), f.target(bob, impersonation(bob)))
	require.Len(t, steps, 1)
	assert.False(t, steps[0].OK)
	assert.Contains(t, steps[0].Detail, "ApplicationImpersonation")

	steps = f.conn.Probe(context.Background(), f.target(alice, password("alice", "nope")))
	require.Len(t, steps, 1)
	assert.Equal(t, serversync.CodeAuthFailed, code(t, steps[0].Err).Code)
	assert.Len(t, f.srv.Messages(alice, "inbox"), 2, "nothing changed")
	for _, op := range []string{"CreateItem", "CreateFolder", "MoveItem", "DeleteItem"} {
		assert.Zero(t, f.srv.Count(op), op)
	}
}
