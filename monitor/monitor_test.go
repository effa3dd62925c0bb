package monitor_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/monitor"
	"github.com/serversync/serversync/store/storetest"
)

// seed stores what the pages show: activities, an alert, a last error, a lease.
func (e *env) seed(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	a := storetest.NewActivity(e.mailbox.ID, "k1")
	a.Subject = "Quote for 40 chairs"
	failed := storetest.NewActivity(e.mailbox.ID, "k2")
	failed.Status, failed.LastError = serversync.StatusFailed, "the CRM refused it"
	_, err := e.store.SaveTracked(ctx, nil, []*serversync.EmailActivity{a, failed})
	require.NoError(t, err)
	require.NoError(t, e.store.QueueOutgoing(ctx, storetest.NewOutgoing(e.mailbox.ID, "o1")))
	for _, al := range []*serversync.Alert{
		{ID: serversync.NewID(), Level: serversync.AlertError, Scope: serversync.ScopeMailbox, Recipient: "user-alice",
			MailboxID: e.mailbox.ID, ProfileID: e.profile.ID, Code: serversync.CodeAuthFailed, Message: "Incoming email was disabled: authentication failed", CreatedAt: now},
		{ID: serversync.NewID(), Level: serversync.AlertError, Scope: serversync.ScopeProfile, Recipient: "admin-user",
			ProfileID: e.profile.ID, MailboxID: e.mailbox.ID, Code: serversync.CodeMassFailure, Message: "Over half of the mailboxes of Contoso mail failed", CreatedAt: now},
	} {
		require.NoError(t, e.store.AddAlert(ctx, al))
	}
	_, err = e.store.UpdateMailbox(ctx, e.mailbox.ID, func(m *serversync.Mailbox) error {
		m.Stats.LastError = serversync.LastError{Workload: serversync.Incoming, Code: serversync.CodeAuthFailed,
			Message: "the server refused the credentials", Count: 2, Host: "host-b", At: now}
		m.Stats.Filtered, m.Stats.FilteredLastSync = 12, 3
		m.Stats.DuplicatesSkipped = 4
		m.Stats.LastSyncSucceededAt, m.Stats.LastSyncDuration = now, 40*time.Second
		return nil
	})
	require.NoError(t, err)
	e.recorder.Record(serversync.Event{Kind: serversync.EventMailTracked, Time: now})
	e.recorder.Record(serversync.Event{Kind: serversync.EventEmailSent, Time: now})
	e.recorder.Record(serversync.Event{Kind: serversync.EventItemFailed, Time: now.Add(-5 * time.Minute)})
}

func TestPagesRender(t *testing.T) {
	e := newEnv(t, monitor.Options{}, nil)
	e.seed(t)

	status, body := e.get(t, "/")
	require.Equal(t, http.StatusOK, status, body)
	for _, want := range []string{
		`id="mailbox-count">1<`, `id="failures-hour">2<`, `id="backlog">1<`, // two failures: the auth alert and the mass failure
		"More than half of a profile's mailboxes failed", // the >50% alert
		"expires in 9 days", "s2s.contoso.test", // the certificate
		`<svg class="chart" id="throughput"`, `class="tracked"`, `class="sent"`, `class="failed"`,
		`<svg class="chart" id="latency"`, ">30 s–2 min</text>", "<title>30 s–2 min: 1 mailbox</title>",
		"alice@contoso.test", "Contoso mail", "auth_failed",
	} {
		assert.Contains(t, body, want)
	}

	status, body = e.get(t, "/profiles/"+e.profile.ID)
	require.Equal(t, http.StatusOK, status, body)
	assert.Contains(t, body, `id="profile-name">Contoso mail<`)
	assert.Contains(t, body, "alice@contoso.test")
	assert.Contains(t, body, `id="profile-test-enable"`)
	assert.Contains(t, body, `id="certificate"`)

	status, body = e.get(t, "/mailboxes/"+e.mailbox.ID)
	require.Equal(t, http.StatusOK, status, body)
	for _, want := range []string{
		`id="mailbox-address">alice@contoso.test<`, `id="count-tracked">1<`, `id="count-failed">1<`,
		`id="count-filtered">12 (3 in the last sync)<`, `id="count-duplicates">4 (0 in the last sync)<`, `id="count-pending">1<`,
		"Quote for 40 chairs", "the CRM refused it", // recent activities, newest first
		`<code>auth_failed</code> (Incoming, 2× in a row`, "on <code>host-b</code>",
		"What to do:</strong> " + serversync.CodeAdvice(serversync.CodeAuthFailed)[:20],
		`id="test-enable"`, `id="approve"`, `id="change-filter"`,
	} {
		assert.Contains(t, body, want)
	}
	assert.Less(t, strings.Index(body, "the CRM refused it"), strings.Index(body, "Quote for 40 chairs"), "newest first")

	for path, wantType := range map[string]string{"/static/monitor.css": "text/css", "/static/poll.js": "javascript"} {
		resp, err := http.Get(e.url(path))
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, path)
		assert.Contains(t, resp.Header.Get("Content-Type"), wantType, path)
	}

	resp, err := http.Get(e.url("/"))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'none'")
	assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "script-src 'self'")
	assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))

	status, body = e.get(t, "/mailboxes/no-such-mailbox")
	assert.Equal(t, http.StatusNotFound, status)
	assert.Contains(t, body, `id="error-message"`)
	status, _ = e.get(t, "/profiles/no-such-profile")
	assert.Equal(t, http.StatusNotFound, status)
	status, _ = e.get(t, "/nothing-here")
	assert.Equal(t, http.StatusNotFound, status)
}

// Every page, in every mode, for a profile and mailbox full of secrets, never
// shows one.
func TestNoSecretIsRendered(t *testing.T) {
	for _, readOnly := range []bool{false, true} {
		e := newEnv(t, monitor.Options{ReadOnly: readOnly}, nil)
		e.seed(t)
		pages := []string{"/", "/profiles/" + e.profile.ID, "/mailboxes/" + e.mailbox.ID, "/mailboxes/missing",
			"/mailboxes/" + e.mailbox.ID + "?done=tested", "/static/poll.js", "/static/monitor.css"}
		var bodies []string
		for _, p := range pages {
			_, body := e.get(t, p)
			bodies = append(bodies, body)
		}
		if !readOnly {
			// An action's error page too: a filter that does not exist.
			_, _, body := e.post(t, "/mailboxes/"+e.mailbox.ID+"/filter",
				url.Values{"csrf": {e.token(t, "/mailboxes/"+e.mailbox.ID)}, "filter": {"Everything"}}, nil)
			bodies = append(bodies, body)
		}
		for i, body := range bodies {
			for _, secret := range secrets {
				assert.NotContains(t, body, secret, "page %d (read-only %v)", i, readOnly)
			}
		}
	}
}

func TestActionsNeedTheTokenAndTheSameOrigin(t *testing.T) {
	e := newEnv(t, monitor.Options{}, nil)
	path := "/mailboxes/" + e.mailbox.ID + "/approve"
	token := e.token(t, "/mailboxes/"+e.mailbox.ID)

	status, _, body := e.post(t, path, url.Values{}, nil)
	assert.Equal(t, http.StatusForbidden, status, "no token")
	assert.Contains(t, body, "no token")
	status, _, _ = e.post(t, path, url.Values{"csrf": {token[:len(token)-2] + "AA"}}, nil)
	assert.Equal(t, http.StatusForbidden, status, "a forged token")
	status, _, _ = e.post(t, path, url.Values{"csrf": {token}}, map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"})
	assert.Equal(t, http.StatusForbidden, status, "another site")
	status, _, _ = e.post(t, path, url.Values{"csrf": {token}}, map[string]string{"Sec-Fetch-Site": "", "Origin": "https://evil.example"})
	assert.Equal(t, http.StatusForbidden, status, "another origin, an older browser")
	m, err := e.store.GetMailbox(context.Background(), e.mailbox.ID)
	require.NoError(t, err)
	assert.NotEqual(t, serversync.ApprovalApproved, m.Approval, "nothing was done")

	status, location, body := e.post(t, path, url.Values{"csrf": {token}}, nil)
	require.Equal(t, http.StatusSeeOther, status, body)
	assert.Equal(t, prefix+"/mailboxes/"+e.mailbox.ID+"?done=approved", location)
	m, err = e.store.GetMailbox(context.Background(), e.mailbox.ID)
	require.NoError(t, err)
	assert.Equal(t, serversync.ApprovalApproved, m.Approval)
	_, page := e.get(t, "/mailboxes/"+e.mailbox.ID+"?done=approved")
	assert.Contains(t, page, "The mailbox was approved.")
	assert.NotContains(t, page, `id="approve"`, "approved: the button is gone")
}

func TestTokens(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	user := "u1"
	e := newEnv(t, monitor.Options{Now: clock, CSRFKey: []byte(strings.Repeat("k", 32)),
		CSRFBinding: func(*http.Request) string { return user }}, nil)
	token := e.token(t, "/mailboxes/"+e.mailbox.ID)
	path := "/mailboxes/" + e.mailbox.ID + "/approve"

	user = "u2"
	status, _, _ := e.post(t, path, url.Values{"csrf": {token}}, nil)
	assert.Equal(t, http.StatusForbidden, status, "bound to another user")
	user = "u1"
	now = now.Add(13 * time.Hour)
	status, _, body := e.post(t, path, url.Values{"csrf": {token}}, nil)
	assert.Equal(t, http.StatusForbidden, status, "expired")
	assert.Contains(t, body, "expired")
	now = now.Add(-2 * time.Hour)
	status, _, _ = e.post(t, path, url.Values{"csrf": {token}}, nil)
	assert.Equal(t, http.StatusSeeOther, status, "still valid")

	_, err := monitor.New(e.store, monitor.Options{CSRFKey: []byte("short")})
	assert.ErrorContains(t, err, "32 bytes")
	_, err = monitor.New(e.store, monitor.Options{Prefix: "ops"})
	assert.ErrorContains(t, err, "must start with /")
	_, err = monitor.New(nil, monitor.Options{})
	assert.Error(t, err)
}

func TestReadOnlyHidesAndRefusesActions(t *testing.T) {
	e := newEnv(t, monitor.Options{ReadOnly: true}, nil)
	_, body := e.get(t, "/mailboxes/"+e.mailbox.ID)
	assert.Contains(t, body, `id="read-only"`)
	for _, id := range []string{`id="test-enable"`, `id="approve"`, `id="disable"`, `id="change-filter"`, `name="csrf"`} {
		assert.NotContains(t, body, id)
	}
	_, body = e.get(t, "/profiles/"+e.profile.ID)
	assert.NotContains(t, body, `id="profile-test-enable"`)
	for _, action := range []string{"approve", "test-enable", "disable", "filter"} {
		status, _, _ := e.post(t, "/mailboxes/"+e.mailbox.ID+"/"+action, url.Values{"csrf": {"x"}}, nil)
		assert.Equal(t, http.StatusForbidden, status, action)
	}
	m, err := e.store.GetMailbox(context.Background(), e.mailbox.ID)
	require.NoError(t, err)
	assert.NotEqual(t, serversync.ApprovalApproved, m.Approval)

	// Without an Admin there is nothing to act with: read-only too.
	h, err := monitor.New(e.store, monitor.Options{})
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/mailboxes/"+e.mailbox.ID, nil))
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.NotContains(t, rec.Body.String(), `name="csrf"`)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/mailboxes/"+e.mailbox.ID+"/approve", nil))
	assert.Equal(t, http.StatusForbidden, rec.Code)
}

func TestTestAndEnableDisableAndFilterActions(t *testing.T) {
	e := newEnv(t, monitor.Options{}, func(m *serversync.Mailbox) { m.OAuthToken = serversync.OAuthToken{} })
	ctx := context.Background()
	require.NoError(t, e.admin.Approve(ctx, "admin", e.mailbox.ID))
	page := "/mailboxes/" + e.mailbox.ID

	status, _, body := e.post(t, page+"/test-enable", url.Values{"csrf": {e.token(t, page)}}, nil)
	require.Equal(t, http.StatusSeeOther, status, body)
	m, err := e.store.GetMailbox(ctx, e.mailbox.ID)
	require.NoError(t, err)
	assert.Equal(t, serversync.TestSuccess, m.Status, "%+v", m.Stats.LastError)
	assert.True(t, m.IncomingEnabled)
	_, body = e.get(t, page+"?done=tested")
	assert.Contains(t, body, "Test &amp; Enable finished.")
	assert.Contains(t, body, `<span class="badge ok">enabled</span>`)

	status, _, body = e.post(t, page+"/disable", url.Values{"csrf": {e.token(t, page)}}, nil)
	require.Equal(t, http.StatusSeeOther, status, body)
	m, err = e.store.GetMailbox(ctx, e.mailbox.ID)
	require.NoError(t, err)
	assert.False(t, m.AnyEnabled())

	status, _, body = e.post(t, page+"/filter", url.Values{"csrf": {e.token(t, page)}, "filter": {string(serversync.FilterNone)}}, nil)
	require.Equal(t, http.StatusSeeOther, status, body)
	m, err = e.store.GetMailbox(ctx, e.mailbox.ID)
	require.NoError(t, err)
	assert.Equal(t, serversync.FilterNone, m.IncomingFilter)

	status, _, body = e.post(t, page+"/filter", url.Values{"csrf": {e.token(t, page)}, "filter": {"Everything"}}, nil)
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Contains(t, body, "is not a filter")

	status, location, body := e.post(t, "/profiles/"+e.profile.ID+"/test-enable", url.Values{"csrf": {e.token(t, page)}}, nil)
	require.Equal(t, http.StatusSeeOther, status, body)
	assert.Contains(t, location, "done=scheduled")
	m, err = e.store.GetMailbox(ctx, e.mailbox.ID)
	require.NoError(t, err)
	assert.True(t, m.TestAndEnablePending)

	status, _, _ = e.post(t, page+"/explode", url.Values{"csrf": {e.token(t, page)}}, nil)
	assert.Equal(t, http.StatusNotFound, status)
}

// The overview shows an initial sync's progress from the server's count and the
// activities stored.
func TestInitialSyncProgressIsShown(t *testing.T) {
	e := newEnv(t, monitor.Options{}, nil)
	ctx := context.Background()
	_, err := e.store.UpdateMailbox(ctx, e.mailbox.ID, func(m *serversync.Mailbox) error {
		m.IncomingEnabled = true
		m.Stats.InitialSyncTotal = 4
		return nil
	})
	require.NoError(t, err)
	_, err = e.store.SaveTracked(ctx, nil, []*serversync.EmailActivity{storetest.NewActivity(e.mailbox.ID, "k1")})
	require.NoError(t, err)
	_, body := e.get(t, "/")
	assert.Contains(t, body, "Initial syncs in progress")
	assert.Contains(t, body, `<progress value="1" max="4">25%</progress>`)
	_, body = e.get(t, "/mailboxes/"+e.mailbox.ID)
	assert.Contains(t, body, `id="initial-sync"`)
}

func TestRecorderKeepsTheLastHour(t *testing.T) {
	r := monitor.NewRecorder()
	now := time.Date(2026, 12, 3, 10, 30, 15, 0, time.UTC)
	r.Record(serversync.Event{Kind: serversync.EventMailTracked, Time: now})
	r.Record(serversync.Event{Kind: serversync.EventMailTracked, Time: now})
	r.Record(serversync.Event{Kind: serversync.EventEmailSent, Time: now.Add(-59 * time.Minute)})
	r.Record(serversync.Event{Kind: serversync.EventSyncFinished, Time: now, Err: context.Canceled})
	r.Record(serversync.Event{Kind: serversync.EventSyncFinished, Time: now})
	r.Record(serversync.Event{Kind: serversync.EventMailTracked, Time: now.Add(-2 * time.Hour)}) // same slot, older hour
	hour := r.LastHour(now)
	require.Len(t, hour, 60)
	assert.Equal(t, 2, hour[59].Tracked)
	assert.Equal(t, 1, hour[59].SyncFailures)
	assert.Equal(t, 1, hour[0].Sent)
	assert.Equal(t, now.Truncate(time.Minute), hour[59].Start.UTC())
	later := r.LastHour(now.Add(61 * time.Minute))
	for _, m := range later {
		assert.Zero(t, m.Tracked+m.Sent+m.SyncFailures)
	}
}

// The overview reuses the store-wide counts for CountsMaxAge; a mailbox's page
// counts afresh.
func TestOverviewCountsAreReusedBriefly(t *testing.T) {
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	e := newEnv(t, monitor.Options{Now: clock, CountsMaxAge: 10 * time.Second}, nil)
	ctx := context.Background()
	save := func(key string) {
		_, err := e.store.SaveTracked(ctx, nil, []*serversync.EmailActivity{storetest.NewActivity(e.mailbox.ID, key)})
		require.NoError(t, err)
	}
	save("k1")
	_, body := e.get(t, "/")
	assert.Contains(t, body, `class="tracked-count">1<`) // the mailbox row's tracked count
	save("k2")
	_, body = e.get(t, "/")
	assert.Contains(t, body, `class="tracked-count">1<`, "reused")
	_, body = e.get(t, "/mailboxes/"+e.mailbox.ID)
	assert.Contains(t, body, `id="count-tracked">2<`, "the mailbox page counts afresh")
	mu.Lock()
	now = now.Add(11 * time.Second)
	mu.Unlock()
	_, body = e.get(t, "/")
	assert.Contains(t, body, `class="tracked-count">2<`, "counted again")
}

// The overview counts mailboxes the servers throttled within the hour, and the
// slow-down answers this process waited out when the host reports them.
func TestOverviewShowsThrottling(t *testing.T) {
	e := newEnv(t, monitor.Options{Throttling: func() monitor.Throttling {
		return monitor.Throttling{Answers: 7, Waited: 12 * time.Second}
	}}, func(m *serversync.Mailbox) {
		m.Stats.LastError = serversync.LastError{Workload: serversync.Incoming, Code: serversync.CodeThrottled,
			Message: "throttled", At: time.Now().Add(-10 * time.Minute)}
	})
	status, body := e.get(t, "/")
	require.Equal(t, http.StatusOK, status, body)
	assert.Contains(t, body, `id="throttled">1<`)
	assert.Contains(t, body, "7 slow-down answers waited out here, 12s")
}
