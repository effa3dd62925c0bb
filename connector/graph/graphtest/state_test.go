package graphtest_test

import (
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"

	"github.com/serversync/serversync/connector/graph/graphtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDeltaLosesNothingUnderConcurrentChanges: a client following the links
// while messages arrive sees every one of them, whatever page they land on.
func TestDeltaLosesNothingUnderConcurrentChanges(t *testing.T) {
	e := newEnv(t, nil)
	const n = 200
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range n {
			_, err := e.srv.Deliver(alice, "inbox", mimeOf(fmt.Sprintf("m%03d", i), fmt.Sprintf("m%03d@x.test", i)), t0)
			assert.NoError(t, err)
		}
	})
	seen := map[string]int{}
	size := map[string]string{"Prefer": `IdType="ImmutableId", odata.maxpagesize=7`}
	link := inboxDelta(alice)
	collect := func() {
		items, next, _ := e.drain(link, size)
		for _, s := range subjects(items) {
			seen[s]++
		}
		link = next
	}
	for len(seen) < n/2 {
		collect()
	}
	wg.Wait()
	collect()
	assert.Len(t, seen, n)
}

func TestPatchIsRead(t *testing.T) {
	e := newEnv(t, nil)
	id := e.deliver(alice, "inbox", "m", t0)
	_, deltaLink, _ := e.drain(inboxDelta(alice), nil)
	r := e.req("PATCH", user(alice)+"/messages/"+id, map[string]string{"Content-Type": "application/json"}, `{"isRead":true}`)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	assert.Equal(t, true, r.json(t)["isRead"])
	items, deltaLink, _ := e.drain(deltaLink, nil)
	assert.Equal(t, []string{"m"}, subjects(items))
	// Setting what is already set is no change.
	e.req("PATCH", user(alice)+"/messages/"+id, nil, `{"isRead":true}`)
	items, _, _ = e.drain(deltaLink, nil)
	assert.Empty(t, items)
}

func TestAdministrationErrors(t *testing.T) {
	e := newEnv(t, nil)
	_, err := e.srv.Deliver("nobody@contoso.test", "inbox", mimeOf("x", "x@x"), t0)
	assert.ErrorIs(t, err, graphtest.ErrNoMailbox)
	_, err = e.srv.Deliver(alice, "Archive", mimeOf("x", "x@x"), t0)
	assert.ErrorIs(t, err, graphtest.ErrNoFolder)
	_, err = e.srv.Deliver(alice, "inbox", []byte("not a message"), t0)
	assert.Error(t, err)
	assert.ErrorIs(t, e.srv.Update(alice, "AAMkAGMsgnope"), graphtest.ErrNoMessage)
	assert.ErrorIs(t, e.srv.Move(alice, "AAMkAGMsgnope", "inbox"), graphtest.ErrNoMessage)
	assert.ErrorIs(t, e.srv.Remove(alice, "AAMkAGMsgnope"), graphtest.ErrNoMessage)
	id := e.deliver(alice, "inbox", "m", t0)
	assert.ErrorIs(t, e.srv.Move(alice, id, "Archive"), graphtest.ErrNoFolder)
	assert.Nil(t, e.srv.Messages("nobody@contoso.test", "inbox"))
	assert.Zero(t, e.srv.Requests("nobody@contoso.test"))

	_, err = graphtest.NewServer(&graphtest.Options{DefaultPageSize: graphtest.MaxPageSize + 1})
	assert.Error(t, err)

	// Remove is a hard delete: @removed in the next round.
	_, deltaLink, _ := e.drain(inboxDelta(alice), nil)
	require.NoError(t, e.srv.Remove(alice, id))
	items, _, _ := e.drain(deltaLink, nil)
	assert.Equal(t, []string{"removed:" + id}, subjects(items))
	assert.Empty(t, e.srv.Messages(alice, "deleteditems"))
}

func TestMessageFields(t *testing.T) {
	e := newEnv(t, nil)
	id, err := e.srv.Deliver(alice, "inbox", []byte("Subject: no sender\r\nDate: Mon, 02 Nov 2026 10:00:00 +0100\r\n\r\nx\r\n"), t0)
	require.NoError(t, err)
	r := e.get(user(alice) + "/messages/" + id)
	require.Equal(t, http.StatusOK, r.status)
	m := r.json(t)
	assert.Nil(t, m["from"])
	assert.Contains(t, m, "from")
	assert.Equal(t, "2026-11-02T09:00:00Z", m["sentDateTime"])
	assert.Equal(t, "2026-01-02T03:04:05Z", m["receivedDateTime"])
	assert.Equal(t, false, m["isRead"])
	folder := e.get(user(alice) + "/mailFolders/inbox").json(t)
	assert.Equal(t, folder["id"], m["parentFolderId"])
}

func TestAddrAndClient(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	srv, err := graphtest.NewServer(&graphtest.Options{Addr: addr})
	require.NoError(t, err)
	defer srv.Close()
	assert.Equal(t, "https://"+addr, srv.URL())
	resp, err := srv.Client().Get(srv.URL() + "/v1.0/me")
	require.NoError(t, err, "the client trusts the server")
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}
