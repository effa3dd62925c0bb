package graph_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector/graph"
	"github.com/serversync/serversync/connector/graph/graphtest"
)

func TestMoveToCreatedFolder(t *testing.T) {
	e := newEnv(t, nil)
	ids := e.deliver(t, 1, 3)
	c := graph.New(nil)
	ctx := context.Background()
	s, err := c.OpenIncoming(ctx, e.target)
	require.NoError(t, err)
	defer s.Close()
	folders := s.(serversync.FolderSession)
	require.NoError(t, folders.Move(ctx, "inbox", ids[0], "Undeliverable"))
	f, ok := e.srv.FolderByName(alice, "Undeliverable")
	require.True(t, ok, "the folder is created")
	moved := e.srv.Messages(alice, "Undeliverable")
	require.Len(t, moved, 1)
	assert.Equal(t, ids[0], moved[0].ID, "immutable ids survive the move")
	assert.Equal(t, f.ID, moved[0].FolderID)

	// Another session finds the folder instead of creating it again.
	s2, err := c.OpenIncoming(ctx, e.target)
	require.NoError(t, err)
	defer s2.Close()
	require.NoError(t, s2.(serversync.FolderSession).Move(ctx, "inbox", ids[1], "undeliverable"))
	assert.Len(t, e.srv.Messages(alice, "Undeliverable"), 2)
	assert.Len(t, e.srv.Messages(alice, "inbox"), 1)

	// The moved messages are read from their folder by name.
	got, _, err := fetch(t, c, e.target, serversync.FetchRequest{Folder: "Undeliverable"}, 0)
	require.NoError(t, err)
	assert.Equal(t, []int{1, 2}, subjects(got))
	assert.Equal(t, "Undeliverable", got[0].folder)

	err = folders.Move(ctx, "inbox", "AAMkADnosuchmessage", "Undeliverable")
	var ce *serversync.ConnectorError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, serversync.CodeBadRef, ce.Code)
}

func TestDelete(t *testing.T) {
	e := newEnv(t, nil)
	ids := e.deliver(t, 1, 2)
	c := graph.New(nil)
	ctx := context.Background()
	s, err := c.OpenIncoming(ctx, e.target)
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Delete(ctx, "inbox", ids[1]))
	left := e.srv.Messages(alice, "inbox")
	require.Len(t, left, 1)
	assert.Equal(t, ids[0], left[0].ID)
	assert.Len(t, e.srv.Messages(alice, "deleteditems"), 1, "Graph moves deleted mail to Deleted Items")
	require.NoError(t, s.Delete(ctx, "inbox", ids[1]), "already gone counts as deleted")
}

func TestAppendCreatesFolder(t *testing.T) {
	e := newEnv(t, nil)
	c := graph.New(nil)
	ctx := context.Background()
	s, err := c.OpenIncoming(ctx, e.target)
	require.NoError(t, err)
	defer s.Close()
	raw := message(7)
	require.NoError(t, s.(serversync.FolderSession).Append(ctx, "Archive", time.Now(), bytes.NewReader(raw), int64(len(raw))))
	got := e.srv.Messages(alice, "Archive")
	require.Len(t, got, 1)
	assert.Equal(t, string(raw), string(got[0].MIME))
}

func TestSendWithBcc(t *testing.T) {
	e := newEnv(t, nil)
	c := graph.New(nil)
	assert.True(t, c.KeepsSentCopy())
	ctx := context.Background()
	s, err := c.OpenOutgoing(ctx, e.target)
	require.NoError(t, err)
	defer s.Close()
	raw := "From: Alice <alice@contoso.test>\r\nTo: Bob <bob@example.test>\r\nSubject: hello\r\nMessage-ID: <s1@contoso.test>\r\n\r\nHi Bob\r\n"
	env := serversync.Envelope{From: alice, To: []string{"bob@example.test", "eve@example.test"}}
	require.NoError(t, s.Send(ctx, env, strings.NewReader(raw)))
	sent := e.srv.Sent()
	require.Len(t, sent, 1)
	assert.ElementsMatch(t, []string{"bob@example.test", "eve@example.test"}, lower(sent[0].To), "the envelope-only recipient gets it as Bcc")
	assert.NotContains(t, string(sent[0].MIME), "eve@example.test", "Bcc is not shown to the others")
	assert.Contains(t, string(sent[0].MIME), "Hi Bob")
	assert.Len(t, e.srv.Messages(alice, "sentitems"), 1, "Graph keeps the Sent copy itself")

	before := c.Stats().Requests
	big := "From: alice@contoso.test\r\nTo: bob@example.test\r\nSubject: big\r\n\r\n" + strings.Repeat("0123456789abcdef\r\n", 150_000)
	err = s.Send(ctx, env, strings.NewReader(big))
	var ce *serversync.ConnectorError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, serversync.CodeMessageTooLarge, ce.Code)
	assert.Equal(t, serversync.ScopeItem, ce.Scope)
	assert.Equal(t, before, c.Stats().Requests, "refused before sending")
	assert.Len(t, e.srv.Sent(), 1)
}

func lower(list []string) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = strings.ToLower(s)
	}
	return out
}

func TestProbe(t *testing.T) {
	e := newEnv(t, nil)
	e.deliver(t, 1, 2)
	c := graph.New(nil)
	ctx := context.Background()
	names := func(steps []serversync.TestStep) []string {
		var out []string
		for _, s := range steps {
			out = append(out, s.Name)
		}
		return out
	}
	steps := c.Probe(ctx, e.target)
	require.Equal(t, []string{"token", "mailbox", "open-inbox", "send-permission"}, names(steps))
	for _, s := range steps {
		assert.True(t, s.OK, "%s: %s", s.Name, s.Detail)
		assert.NotContains(t, s.Detail, appToken)
	}
	assert.Contains(t, steps[0].Detail, "Mail.ReadWrite, Mail.Send")
	assert.Contains(t, steps[2].Detail, "2 messages")

	// A token without Mail.Send.
	readOnly := jwt(`{"roles":["Mail.ReadWrite"],"tid":"tenant-1"}`)
	e.srv.AddToken(readOnly, graphtest.Principal{AppOnly: true, TenantID: tenant, Permissions: []string{"Mail.ReadWrite"}})
	steps = c.Probe(ctx, fakeTarget(e.srv, alice, readOnly))
	require.Len(t, steps, 4)
	assert.False(t, steps[3].OK)
	assert.Contains(t, steps[3].Detail, "application permission Mail.Send")

	// A mailbox the fake does not have.
	steps = c.Probe(ctx, fakeTarget(e.srv, "nobody@contoso.test", appToken))
	require.Equal(t, []string{"token", "mailbox"}, names(steps))
	assert.False(t, steps[1].OK)
	var ce *serversync.ConnectorError
	require.ErrorAs(t, steps[1].Err, &ce)
	assert.Equal(t, serversync.CodeMailboxNotFound, ce.Code)

	// A token Graph refuses.
	steps = c.Probe(ctx, fakeTarget(e.srv, alice, jwt(`{"roles":["Mail.Send"]}`)))
	require.Equal(t, []string{"token", "mailbox"}, names(steps))
	require.ErrorAs(t, steps[1].Err, &ce)
	assert.Equal(t, serversync.CodeAuthFailed, ce.Code)
	assert.NotContains(t, steps[1].Detail, "c2lnbmF0dXJl")
}

// TestMoveFolderCreatedMeanwhile has the folder appear between the lookup and
// the create (another process made it): the 409 leads to a second lookup.
func TestMoveFolderCreatedMeanwhile(t *testing.T) {
	var srv *graphtest.Server
	e := newEnv(t, &graphtest.Options{OnRequest: func(ctx context.Context, address, method, path string) {
		if method == "POST" && strings.HasSuffix(strings.ToLower(path), "/mailfolders") {
			_, _ = srv.AddFolder(alice, "Undeliverable")
		}
	}})
	srv = e.srv
	ids := e.deliver(t, 1, 1)
	var logged bytes.Buffer
	c := graph.New(&graph.Options{Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	s, err := c.OpenIncoming(context.Background(), e.target)
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.(serversync.FolderSession).Move(context.Background(), "inbox", ids[0], "Undeliverable"))
	moved := e.srv.Messages(alice, "Undeliverable")
	require.Len(t, moved, 1)
	assert.NotContains(t, logged.String(), "created folder", "the other process's folder is used")
}

// Opening a sending session asks for the token and reads its permissions, so
// Test & Enable fails for an app that may not send rather than the first email.
func TestOpenOutgoingChecksSendPermission(t *testing.T) {
	e := newEnv(t, nil)
	readOnly := jwt(`{"roles":["Mail.ReadWrite"],"tid":"tenant-1","appid":"app-1"}`)
	e.srv.AddToken(readOnly, graphtest.Principal{AppOnly: true, TenantID: tenant, Permissions: []string{"Mail.ReadWrite"}})
	c := graph.New(&graph.Options{Logger: slog.New(slog.DiscardHandler)})

	_, err := c.OpenOutgoing(context.Background(), fakeTarget(e.srv, alice, readOnly))
	class := serversync.ClassifyError(err)
	assert.Equal(t, serversync.CodeNoPermission, class.Code)
	assert.Equal(t, serversync.ErrorAuth, class.Kind)
	assert.Contains(t, err.Error(), "application permission Mail.Send")

	session, err := c.OpenOutgoing(context.Background(), e.target)
	require.NoError(t, err, "a token with Mail.Send")
	require.NoError(t, session.Close())
}
