package graphtest_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/serversync/serversync/connector/graph/graphtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func inboxDelta(address string) string { return user(address) + "/mailFolders/inbox/messages/delta" }

func TestDeltaPagesAndDeltaLink(t *testing.T) {
	e := newEnv(t, nil)
	var want []string
	for i := range 25 {
		subject := fmt.Sprintf("m%02d", i)
		e.deliver(alice, "inbox", subject, t0.Add(time.Duration(i)*time.Minute))
		want = append(want, subject)
	}
	e.deliver(alice, "sentitems", "not in inbox", t0)

	// Default page size 10: three pages.
	items, deltaLink, pages := e.drain(inboxDelta(alice), nil)
	assert.Equal(t, 3, pages)
	assert.Equal(t, want, subjects(items))
	assert.True(t, strings.HasPrefix(deltaLink, e.srv.URL()+"/v1.0/"), deltaLink)
	assert.Contains(t, deltaLink, "$deltatoken=")

	// odata.maxpagesize is honoured and said so.
	p, r := e.delta(inboxDelta(alice), map[string]string{"Prefer": `IdType="ImmutableId", odata.maxpagesize=20`})
	require.Equal(t, http.StatusOK, r.status)
	assert.Len(t, p.items, 20)
	assert.Contains(t, r.header.Get("Preference-Applied"), "odata.maxpagesize=20")
	assert.Contains(t, p.nextLink, "$skiptoken=")

	// A nextLink requested again gives the same page.
	again, r := e.delta(p.nextLink, nil)
	require.Equal(t, http.StatusOK, r.status)
	once, _ := e.delta(p.nextLink, nil)
	assert.Equal(t, subjects(once.items), subjects(again.items))
	assert.Equal(t, want[20:], subjects(again.items))

	// Nothing changed: the deltaLink gives an empty page and a new deltaLink.
	empty, r := e.delta(deltaLink, nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Empty(t, empty.items)
	assert.NotEmpty(t, empty.deltaLink)

	// Items carry what the connector reads.
	first := items[0]
	for _, field := range []string{"id", "receivedDateTime", "internetMessageId", "subject", "from"} {
		assert.Contains(t, first, field)
	}
	assert.Equal(t, "2026-01-02T03:04:05Z", first["receivedDateTime"])
	assert.Equal(t, "<m00@fabrikam.test>", first["internetMessageId"])
	assert.Equal(t, "carol@fabrikam.test", first["from"].(map[string]any)["emailAddress"].(map[string]any)["address"])
}

func TestDeltaChangesSince(t *testing.T) {
	e := newEnv(t, nil)
	keep := e.deliver(alice, "inbox", "keep", t0)
	moved := e.deliver(alice, "inbox", "moved", t0)
	deleted := e.deliver(alice, "inbox", "deleted", t0)
	read := e.deliver(alice, "inbox", "read", t0)
	_, deltaLink, _ := e.drain(inboxDelta(alice), nil)

	e.deliver(alice, "inbox", "new", t0.Add(time.Hour))
	require.NoError(t, e.srv.Update(alice, read))
	r := e.req("POST", user(alice)+"/messages/"+moved+"/move", nil, `{"destinationId":"drafts"}`)
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
	r = e.req("DELETE", user(alice)+"/messages/"+deleted, nil, "")
	require.Equal(t, http.StatusNoContent, r.status, "%s", r.body)
	e.deliver(alice, "sentitems", "elsewhere", t0)

	items, next, _ := e.drain(deltaLink, nil)
	assert.ElementsMatch(t, []string{"new", "read", "removed:" + moved, "removed:" + deleted}, subjects(items))
	for _, it := range items {
		if rm, ok := it["@removed"].(map[string]any); ok {
			assert.Equal(t, "deleted", rm["reason"])
		}
		if it["subject"] == "read" {
			assert.Equal(t, true, it["isRead"])
		}
	}
	_ = keep

	// The moved and the deleted message appear in their new folders' rounds.
	drafts, _, _ := e.drain(user(alice)+"/mailFolders/drafts/messages/delta", nil)
	assert.Equal(t, []string{"moved"}, subjects(drafts))
	assert.Equal(t, moved, drafts[0]["id"], "immutable ids survive a move")
	trash, _, _ := e.drain(user(alice)+"/mailFolders/deleteditems/messages/delta", nil)
	assert.Equal(t, []string{"deleted"}, subjects(trash))

	// A message moved back comes back as a full item, and the next round is empty.
	require.NoError(t, e.srv.Move(alice, moved, "inbox"))
	items, next, _ = e.drain(next, nil)
	assert.Equal(t, []string{"moved"}, subjects(items))
	items, _, _ = e.drain(next, nil)
	assert.Empty(t, items)
}

func TestDeltaReplayNextPage(t *testing.T) {
	e := newEnv(t, nil)
	for i := range 6 {
		e.deliver(alice, "inbox", fmt.Sprintf("m%d", i), t0)
	}
	size := map[string]string{"Prefer": `IdType="ImmutableId", odata.maxpagesize=2`}
	p1, _ := e.delta(inboxDelta(alice), size)
	assert.Equal(t, []string{"m0", "m1"}, subjects(p1.items))
	e.srv.ReplayNextPage(alice)
	p2, _ := e.delta(p1.nextLink, size)
	assert.Equal(t, []string{"m0", "m1", "m2", "m3"}, subjects(p2.items))
	p3, _ := e.delta(p2.nextLink, size)
	assert.Equal(t, []string{"m4", "m5"}, subjects(p3.items), "the replay happens once")
	assert.NotEmpty(t, p3.deltaLink)
}

func TestDeltaExpiredSyncState(t *testing.T) {
	e := newEnv(t, nil)
	for i := range 3 {
		e.deliver(alice, "inbox", fmt.Sprintf("m%d", i), t0)
	}
	size := map[string]string{"Prefer": `IdType="ImmutableId", odata.maxpagesize=2`}
	p1, _ := e.delta(inboxDelta(alice), size)
	_, deltaLink, _ := e.drain(inboxDelta(alice), nil)
	bobItems, bobLink, _ := e.drain(inboxDelta(bob), nil)
	assert.Empty(t, bobItems)

	e.srv.ExpireSyncState(alice)
	for _, link := range []string{p1.nextLink, deltaLink} {
		_, r := e.delta(link, size)
		assert.Equal(t, http.StatusGone, r.status, "%s", r.body)
		assert.Equal(t, "SyncStateNotFound", r.errorCode(t))
	}
	_, r := e.delta(bobLink, nil)
	assert.Equal(t, http.StatusOK, r.status, "another mailbox's tokens stay valid")

	// An unknown token is expired too; a fresh round works.
	_, r = e.delta(inboxDelta(alice)+"?$deltatoken=bogus", nil)
	assert.Equal(t, http.StatusGone, r.status)
	items, _, _ := e.drain(inboxDelta(alice), nil)
	assert.Len(t, items, 3)
}

func TestDeltaFilterAndSelect(t *testing.T) {
	e := newEnv(t, nil)
	e.deliver(alice, "inbox", "old", t0.Add(-time.Second))
	e.deliver(alice, "inbox", "edge", t0)
	e.deliver(alice, "inbox", "late", t0.Add(time.Hour))
	q := "?$select=receivedDateTime,internetMessageId,subject,from&$filter=receivedDateTime%20ge%20" + t0.Format(time.RFC3339)
	items, deltaLink, _ := e.drain(inboxDelta(alice)+q, nil)
	assert.Equal(t, []string{"edge", "late"}, subjects(items))
	assert.NotContains(t, items[0], "isRead", "$select is honoured")
	assert.Contains(t, items[0], "from")

	// The filter applies to the first round only.
	e.deliver(alice, "inbox", "older still", t0.Add(-time.Hour))
	items, _, _ = e.drain(deltaLink, nil)
	assert.Equal(t, []string{"older still"}, subjects(items))
	assert.NotContains(t, items[0], "isRead", "the $select sticks to the tokens")

	r := e.get(inboxDelta(alice) + "?$filter=subject%20eq%20'x'")
	assert.Equal(t, http.StatusBadRequest, r.status)
}

func TestIDsImmutableOrNot(t *testing.T) {
	e := newEnv(t, nil)
	id := e.deliver(alice, "inbox", "m", t0)
	regular := map[string]string{"Prefer": ""}

	items, _, _ := e.drain(inboxDelta(alice), regular)
	require.Len(t, items, 1)
	oldID := items[0]["id"].(string)
	assert.NotEqual(t, id, oldID, "without the Prefer header ids are not the immutable ones")
	r := e.req("GET", user(alice)+"/messages/"+oldID+"/$value", regular, "")
	require.Equal(t, http.StatusOK, r.status)

	r = e.req("POST", user(alice)+"/messages/"+oldID+"/move", regular, `{"destinationId":"drafts"}`)
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
	newID := r.json(t)["id"].(string)
	assert.NotEqual(t, oldID, newID, "a regular id changes on move")
	r = e.req("GET", user(alice)+"/messages/"+oldID+"/$value", regular, "")
	assert.Equal(t, http.StatusNotFound, r.status, "the id from before the move is gone")
	assert.Equal(t, "ErrorItemNotFound", r.errorCode(t))
	r = e.req("GET", user(alice)+"/messages/"+newID+"/$value", regular, "")
	assert.Equal(t, http.StatusOK, r.status)

	// With the header the id is stable across moves.
	r = e.req("POST", user(alice)+"/messages/"+id+"/move", nil, `{"destinationId":"inbox"}`)
	require.Equal(t, http.StatusCreated, r.status)
	assert.Equal(t, id, r.json(t)["id"])
	assert.Contains(t, r.header.Get("Preference-Applied"), `IdType="ImmutableId"`)
	r = e.get(user(alice) + "/messages/" + id + "/$value")
	assert.Equal(t, http.StatusOK, r.status)
}

func TestValueIsExactMIME(t *testing.T) {
	e := newEnv(t, nil)
	raw := []byte("Subject: =?utf-8?q?caf=C3=A9?=\nFrom: a@b.test\n\nline one\r\nno final newline")
	id, err := e.srv.Deliver(alice, "Inbox", raw, t0)
	require.NoError(t, err)
	r := e.get(user(alice) + "/messages/" + id + "/$value")
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, raw, r.body)
	assert.Equal(t, "text/plain", r.header.Get("Content-Type"))
	assert.Equal(t, "café", e.srv.Messages(alice, "inbox")[0].Subject)

	r = e.get(user(alice) + "/messages/AAMkAGMsgnope/$value")
	assert.Equal(t, http.StatusNotFound, r.status)
	assert.Equal(t, "ErrorItemNotFound", r.errorCode(t))
}

func TestInvalidateSyncStateCodes(t *testing.T) {
	for _, tc := range []struct {
		status int
		code   string
	}{{http.StatusGone, "SyncStateInvalid"}, {http.StatusBadRequest, "resyncRequired"}} {
		t.Run(tc.code, func(t *testing.T) {
			e := newEnv(t, nil)
			e.deliver(alice, "inbox", "m", t0)
			_, deltaLink, _ := e.drain(inboxDelta(alice), nil)
			e.srv.InvalidateSyncState(alice, tc.status, tc.code)
			_, r := e.delta(deltaLink, nil)
			assert.Equal(t, tc.status, r.status)
			assert.Equal(t, tc.code, r.errorCode(t))
			// Tokens handed out later are good.
			_, fresh, _ := e.drain(inboxDelta(alice), nil)
			_, r = e.delta(fresh, nil)
			assert.Equal(t, http.StatusOK, r.status)
		})
	}
}

func TestDeltaTokenLatest(t *testing.T) {
	e := newEnv(t, nil)
	e.deliver(alice, "inbox", "before", t0)
	items, deltaLink, _ := e.drain(inboxDelta(alice)+"?$deltatoken=latest", nil)
	assert.Empty(t, items)
	e.deliver(alice, "inbox", "after", t0)
	items, _, _ = e.drain(deltaLink, nil)
	assert.Equal(t, []string{"after"}, subjects(items))
}

// TestRemovedCarriesTheIDTheClientKnew: without immutable ids, a message moved
// away is reported @removed under the id it had in the folder, and it comes in
// its new folder under a new id.
func TestRemovedCarriesTheIDTheClientKnew(t *testing.T) {
	e := newEnv(t, nil)
	e.deliver(alice, "inbox", "m", t0)
	regular := map[string]string{"Prefer": ""}
	items, deltaLink, _ := e.drain(inboxDelta(alice), regular)
	require.Len(t, items, 1)
	known := items[0]["id"].(string)
	r := e.req("POST", user(alice)+"/messages/"+known+"/move", regular, `{"destinationId":"drafts"}`)
	require.Equal(t, http.StatusCreated, r.status)
	items, _, _ = e.drain(deltaLink, regular)
	assert.Equal(t, []string{"removed:" + known}, subjects(items))
	drafts, _, _ := e.drain(user(alice)+"/mailFolders/drafts/messages/delta", regular)
	require.Len(t, drafts, 1)
	assert.NotEqual(t, known, drafts[0]["id"])
}

func TestOldSyncStatesExpire(t *testing.T) {
	e := newEnv(t, &graphtest.Options{MaxSyncStates: 2})
	e.deliver(alice, "inbox", "m", t0)
	_, first, _ := e.drain(inboxDelta(alice), nil)
	_, second, _ := e.drain(inboxDelta(alice), nil)
	_, r := e.delta(second, nil) // hands out a third token: the first is forgotten
	require.Equal(t, http.StatusOK, r.status)
	_, r = e.delta(first, nil)
	assert.Equal(t, http.StatusGone, r.status)
	assert.Equal(t, "SyncStateNotFound", r.errorCode(t))
	_, r = e.delta(second, nil)
	assert.Equal(t, http.StatusOK, r.status, "the second is still known")
}
