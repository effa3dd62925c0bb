package graphtest_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync/connector/graph/graphtest"
)

const actToken = "act-token"

// newACTEnv adds a token with the ACT permissions, and none for mail.
func newACTEnv(t *testing.T) *env {
	e := newEnv(t, nil)
	e.srv.AddToken(actToken, graphtest.Principal{AppOnly: true, TenantID: tenant,
		Permissions: []string{"Calendars.ReadWrite", "Contacts.ReadWrite", "Tasks.ReadWrite.All"}})
	return e
}

func (e *env) act(method, target string, headers map[string]string, body string) reply {
	e.t.Helper()
	h := map[string]string{"Authorization": "Bearer " + actToken, "Content-Type": "application/json"}
	for k, v := range headers {
		h[k] = v
	}
	return e.req(method, user(alice)+target, h, body)
}

const window = "?startDateTime=2026-01-01T00:00:00Z&endDateTime=2027-01-01T00:00:00Z"

func event(subject, day string) string {
	return `{"subject":"` + subject + `","start":{"dateTime":"` + day + `T10:00:00","timeZone":"Europe/Berlin"},` +
		`"end":{"dateTime":"` + day + `T11:00:00","timeZone":"Europe/Berlin"}}`
}

// A delta token holds its position: the next round lists what changed after
// it, deletions as @removed, and nothing else.
func TestACTDeltaPositions(t *testing.T) {
	e := newACTEnv(t)
	for _, c := range []struct{ list, create, body string }{
		{"/calendarView/delta" + window, "/events", event("%s", "2026-06-01")},
		{"/contacts/delta", "/contacts", `{"displayName":"%s"}`},
	} {
		mk := func(name string) string {
			r := e.act("POST", c.create, nil, strings.ReplaceAll(c.body, "%s", name))
			require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
			return r.json(t)["id"].(string)
		}
		keep, gone := mk("keep"), mk("gone")
		all, link, _ := e.drainACT(c.list)
		assert.Len(t, all, 2)
		same, link, _ := e.drainACT(link)
		assert.Empty(t, same)

		added := mk("added")
		require.Equal(t, http.StatusOK, e.act("PATCH", c.create+"/"+keep, nil, `{"subject":"kept","displayName":"kept"}`).status)
		require.Equal(t, http.StatusNoContent, e.act("DELETE", c.create+"/"+gone, nil, "").status)
		next, _, _ := e.drainACT(link)
		got := map[string]bool{}
		for _, it := range next {
			_, removed := it["@removed"]
			got[it["id"].(string)] = removed
		}
		assert.Equal(t, map[string]bool{keep: false, added: false, gone: true}, got, c.list)
	}
}

func (e *env) drainACT(target string) ([]map[string]any, string, int) {
	e.t.Helper()
	if u, err := url.Parse(target); err == nil && u.IsAbs() {
		return e.drain(target, map[string]string{"Authorization": "Bearer " + actToken})
	}
	return e.drain(user(alice)+target, map[string]string{"Authorization": "Bearer " + actToken})
}

// If-Match with another ETag is 412; a series' occurrences are listed by
// calendarView delta, not the master; expired tokens are 410.
func TestACTEventRules(t *testing.T) {
	e := newACTEnv(t)
	r := e.act("POST", "/events", nil, `{"subject":"weekly","start":{"dateTime":"2026-06-01T09:00:00","timeZone":"W. Europe Standard Time"},`+
		`"end":{"dateTime":"2026-06-01T09:30:00","timeZone":"W. Europe Standard Time"},`+
		`"recurrence":{"pattern":{"type":"weekly","interval":1,"daysOfWeek":["monday"]},"range":{"type":"numbered","startDate":"2026-06-01","numberOfOccurrences":3}},`+
		`"singleValueExtendedProperties":[{"id":"String {00020329-0000-0000-C000-000000000046} Name uid","value":"u-1"}]}`)
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
	master := r.json(t)
	id, etag := master["id"].(string), master["@odata.etag"].(string)
	assert.Equal(t, "seriesMaster", master["type"])
	assert.Equal(t, "W. Europe Standard Time", master["originalStartTimeZone"])
	assert.Equal(t, map[string]any{"dateTime": "2026-06-01T07:00:00.0000000", "timeZone": "UTC"}, master["start"])

	all, link, _ := e.drainACT("/calendarView/delta" + window)
	require.Len(t, all, 3)
	for _, it := range all {
		assert.Equal(t, "occurrence", it["type"])
		assert.Equal(t, id, it["seriesMasterId"])
	}

	stale := map[string]string{"If-Match": `W/"not-it"`}
	assert.Equal(t, http.StatusPreconditionFailed, e.act("PATCH", "/events/"+id, stale, `{"subject":"x"}`).status)
	assert.Equal(t, http.StatusPreconditionFailed, e.act("DELETE", "/events/"+id, stale, "").status)
	assert.Equal(t, http.StatusOK, e.act("PATCH", "/events/"+id, map[string]string{"If-Match": etag}, `{"subject":"renamed"}`).status)

	// The extended property filter finds it; another value does not.
	filter := func(v string) int {
		q := url.Values{"$filter": {"singleValueExtendedProperties/Any(ep: ep/id eq 'String {00020329-0000-0000-C000-000000000046} Name uid' and ep/value eq '" + v + "')"}}
		r := e.act("GET", "/events?"+q.Encode(), nil, "")
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		return len(r.json(t)["value"].([]any))
	}
	assert.Equal(t, 1, filter("u-1"))
	assert.Equal(t, 0, filter("u-2"))

	// Deleting an occurrence reports it @removed and changes the series.
	require.Equal(t, http.StatusNoContent, e.act("DELETE", "/events/"+all[1]["id"].(string), nil, "").status)
	next, _, _ := e.drainACT(link)
	removed := 0
	for _, it := range next {
		if _, ok := it["@removed"]; ok {
			removed++
			assert.Equal(t, all[1]["id"], it["id"])
		}
	}
	assert.Equal(t, 1, removed)
	assert.Len(t, next, 3, "the two occurrences left, changed with their series, and the removed one")

	e.srv.ExpireSyncState(alice)
	_, rr := e.delta(link, map[string]string{"Authorization": "Bearer " + actToken})
	assert.Equal(t, http.StatusGone, rr.status)
	assert.Equal(t, "SyncStateNotFound", rr.errorCode(t))
}

// To Do: the default list, tasks with an open extension, answered in UTC.
func TestACTTodo(t *testing.T) {
	e := newACTEnv(t)
	r := e.act("GET", "/todo/lists", nil, "")
	require.Equal(t, http.StatusOK, r.status)
	var list string
	for _, l := range r.json(t)["value"].([]any) {
		if l.(map[string]any)["wellknownListName"] == "defaultList" {
			list = l.(map[string]any)["id"].(string)
		}
	}
	require.NotEmpty(t, list)
	r = e.act("POST", "/todo/lists/"+list+"/tasks", nil, `{"title":"t","dueDateTime":{"dateTime":"2026-06-01T17:00:00","timeZone":"Europe/Berlin"},`+
		`"extensions":[{"@odata.type":"microsoft.graph.openTypeExtension","extensionName":"com.example","n":1}]}`)
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
	task := r.json(t)
	assert.Equal(t, map[string]any{"dateTime": "2026-06-01T15:00:00.0000000", "timeZone": "UTC"}, task["dueDateTime"])
	id := task["id"].(string)
	r = e.act("PATCH", "/todo/lists/"+list+"/tasks/"+id+"/extensions/com.example", nil, `{"n":2}`)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	r = e.act("GET", "/todo/lists/"+list+"/tasks/"+id+"?$expand=extensions", nil, "")
	ext := r.json(t)["extensions"].([]any)
	require.Len(t, ext, 1)
	assert.Equal(t, 2.0, ext[0].(map[string]any)["n"])
	assert.NotEqual(t, task["@odata.etag"], r.json(t)["@odata.etag"], "the extension changed the task")

	// Without Tasks permissions: 403.
	r = e.req("GET", user(alice)+"/todo/lists", nil, "")
	assert.Equal(t, http.StatusForbidden, r.status)
}
