package graphtest_test

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/serversync/serversync/connector/graph/graphtest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFolders(t *testing.T) {
	e := newEnv(t, nil)
	e.deliver(alice, "inbox", "unread", t0)

	r := e.get(user(alice) + "/mailFolders/inbox")
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	inbox := r.json(t)
	assert.Equal(t, "Inbox", inbox["displayName"])
	assert.EqualValues(t, 1, inbox["totalItemCount"])
	assert.EqualValues(t, 1, inbox["unreadItemCount"])
	root := e.get(user(alice) + "/mailFolders/msgfolderroot").json(t)
	assert.Equal(t, root["id"], inbox["parentFolderId"])
	// By id, and in Graph's own link form, with any case.
	byID := e.get(user(alice) + "/MailFolders('" + inbox["id"].(string) + "')").json(t)
	assert.Equal(t, inbox["id"], byID["id"])

	r = e.get(user(alice) + "/mailFolders/nope")
	assert.Equal(t, http.StatusNotFound, r.status)
	assert.Equal(t, "ErrorItemNotFound", r.errorCode(t))

	filter := "?$filter=" + url.QueryEscape("displayName eq 'Undeliverable'")
	r = e.get(user(alice) + "/mailFolders" + filter)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	assert.Empty(t, r.json(t)["value"])

	r = e.req("POST", user(alice)+"/mailFolders", map[string]string{"Content-Type": "application/json"}, `{"displayName":"Undeliverable"}`)
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
	created := r.json(t)
	assert.Equal(t, "Undeliverable", created["displayName"])
	assert.Equal(t, root["id"], created["parentFolderId"])

	r = e.req("POST", user(alice)+"/mailFolders", nil, `{"displayName":"undeliverable"}`)
	assert.Equal(t, http.StatusConflict, r.status)
	assert.Equal(t, "ErrorFolderExists", r.errorCode(t))

	r = e.get(user(alice) + "/mailFolders" + filter)
	values := r.json(t)["value"].([]any)
	require.Len(t, values, 1)
	assert.Equal(t, created["id"], values[0].(map[string]any)["id"])
	f, ok := e.srv.FolderByName(alice, "Undeliverable")
	require.True(t, ok)
	assert.Equal(t, created["id"], f.ID)

	// Messages can be moved to it by id, and created in it from MIME.
	id := e.deliver(alice, "inbox", "bounce", t0)
	r = e.req("POST", user(alice)+"/messages/"+id+"/move", nil, fmt.Sprintf(`{"destinationId":%q}`, created["id"]))
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
	assert.Equal(t, created["id"], r.json(t)["parentFolderId"])
	raw := mimeOf("appended", "appended@x.test")
	r = e.req("POST", user(alice)+"/mailFolders/"+created["id"].(string)+"/messages", map[string]string{"Content-Type": "text/plain"}, b64(raw))
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
	msgs := e.srv.Messages(alice, "Undeliverable")
	require.Len(t, msgs, 2)
	assert.Equal(t, "bounce", msgs[0].Subject)
	assert.Equal(t, raw, msgs[1].MIME)

	// Move to a folder that does not exist creates nothing.
	r = e.req("POST", user(alice)+"/messages/"+id+"/move", nil, `{"destinationId":"Archive"}`)
	assert.Equal(t, http.StatusNotFound, r.status)
	_, ok = e.srv.FolderByName(alice, "Archive")
	assert.False(t, ok)

	// The folder list pages by $top/$skip.
	for i := range 12 {
		r = e.req("POST", user(alice)+"/mailFolders", nil, fmt.Sprintf(`{"displayName":"F%d"}`, i))
		require.Equal(t, http.StatusCreated, r.status)
	}
	var names []string
	for next := user(alice) + "/mailFolders"; next != ""; {
		page := e.get(next).json(t)
		for _, v := range page["value"].([]any) {
			names = append(names, v.(map[string]any)["displayName"].(string))
		}
		next, _ = page["@odata.nextLink"].(string)
	}
	assert.Len(t, names, 4+1+12) // inbox, sentitems, drafts, deleteditems, Undeliverable, F0…F11
}

func TestDeleteMovesToDeletedItems(t *testing.T) {
	e := newEnv(t, nil)
	id := e.deliver(alice, "inbox", "m", t0)
	r := e.req("DELETE", user(alice)+"/messages/"+id, nil, "")
	require.Equal(t, http.StatusNoContent, r.status)
	assert.Empty(t, e.srv.Messages(alice, "inbox"))
	require.Len(t, e.srv.Messages(alice, "deleteditems"), 1)

	// Deleting from Deleted Items removes it for good.
	r = e.req("DELETE", user(alice)+"/messages/"+id, nil, "")
	require.Equal(t, http.StatusNoContent, r.status)
	assert.Empty(t, e.srv.Messages(alice, "deleteditems"))
	r = e.req("DELETE", user(alice)+"/messages/"+id, nil, "")
	assert.Equal(t, http.StatusNotFound, r.status)
	assert.Equal(t, "ErrorItemNotFound", r.errorCode(t))
}

func TestListMessagesAndAddFolder(t *testing.T) {
	e := newEnv(t, nil)
	for i := range 12 {
		e.deliver(alice, "inbox", fmt.Sprintf("m%02d", i), t0.Add(time.Duration(i)*time.Minute))
	}
	var got []string
	pages := 0
	for next := user(alice) + "/mailFolders/inbox/messages?$select=subject"; next != ""; pages++ {
		page := e.get(next).json(t)
		for _, v := range page["value"].([]any) {
			item := v.(map[string]any)
			assert.NotContains(t, item, "isRead")
			got = append(got, item["subject"].(string))
		}
		next, _ = page["@odata.nextLink"].(string)
	}
	assert.Equal(t, 2, pages)
	require.Len(t, got, 12)
	assert.Equal(t, "m11", got[0], "newest first")

	f, err := e.srv.AddFolder(alice, "CRM")
	require.NoError(t, err)
	_, err = e.srv.AddFolder(alice, "crm")
	assert.ErrorIs(t, err, graphtest.ErrFolderExists)
	r := e.get(user(alice) + "/mailFolders/" + f.ID)
	assert.Equal(t, "CRM", r.json(t)["displayName"])

	// Messages keeps the order of arrival when a message changes.
	first := e.srv.Messages(alice, "inbox")[0]
	require.NoError(t, e.srv.Update(alice, first.ID))
	assert.Equal(t, first.ID, e.srv.Messages(alice, "inbox")[0].ID)
	assert.True(t, e.srv.Messages(alice, "inbox")[0].IsRead)
}
