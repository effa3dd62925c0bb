package graphtest_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/serversync/serversync/connector/graph/graphtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestConcurrencyLimit holds four requests for a mailbox in OnRequest: a fifth
// concurrent one is refused 429 with Retry-After: 1; another mailbox is not.
func TestConcurrencyLimit(t *testing.T) {
	arrived := make(chan string, 8)
	release := make(chan struct{})
	e := newEnv(t, &graphtest.Options{OnRequest: func(ctx context.Context, address, _, path string) {
		if !strings.HasSuffix(path, "/inbox") {
			return
		}
		arrived <- address
		select {
		case <-release:
		case <-ctx.Done():
		}
	}})
	var wg sync.WaitGroup
	statuses := make(chan int, 4)
	for range graphtest.ConcurrencyLimit {
		wg.Go(func() { statuses <- e.get(user(alice) + "/mailFolders/inbox").status })
	}
	for range graphtest.ConcurrencyLimit {
		<-arrived
	}
	r := e.get(user(alice) + "/mailFolders/sentitems")
	assert.Equal(t, http.StatusTooManyRequests, r.status)
	assert.Equal(t, "1", r.header.Get("Retry-After"))
	assert.Equal(t, "ApplicationThrottled", r.errorCode(t))
	assert.Equal(t, http.StatusOK, e.get(user(bob)+"/mailFolders/sentitems").status, "the limit is per mailbox")
	e.srv.AddToken("other-app", graphtest.Principal{AppOnly: true, AppID: "app-2", TenantID: tenant, Permissions: []string{"Mail.Read"}})
	r = e.req("GET", user(alice)+"/mailFolders/sentitems", map[string]string{"Authorization": "Bearer other-app"}, "")
	assert.Equal(t, http.StatusOK, r.status, "and per application")

	close(release)
	wg.Wait()
	close(statuses)
	for s := range statuses {
		assert.Equal(t, http.StatusOK, s)
	}
	assert.Equal(t, graphtest.ConcurrencyLimit, e.srv.MaxConcurrent(alice))
	assert.Equal(t, 1, e.srv.MaxConcurrent(bob))
	assert.Equal(t, 1, e.srv.Throttled())
	assert.Equal(t, 6, e.srv.Requests(alice))
	assert.Equal(t, http.StatusOK, e.get(user(alice)+"/mailFolders/sentitems").status, "free again")
}

func TestInjectedThrottleAndUnavailable(t *testing.T) {
	e := newEnv(t, nil)
	e.srv.Throttle(alice, 1, 2500*time.Millisecond)
	r := e.get(user(alice) + "/mailFolders/inbox")
	assert.Equal(t, http.StatusTooManyRequests, r.status)
	assert.Equal(t, "3", r.header.Get("Retry-After"), "whole seconds, rounded up")
	assert.Equal(t, http.StatusOK, e.get(user(alice)+"/mailFolders/inbox").status)

	e.srv.Unavailable(alice, 2, 0)
	r = e.get(user(alice) + "/mailFolders/inbox")
	assert.Equal(t, http.StatusServiceUnavailable, r.status)
	assert.Empty(t, r.header.Get("Retry-After"))
	e.srv.Unavailable(alice, 1, 5*time.Second)
	r = e.get(user(alice) + "/mailFolders/inbox")
	assert.Equal(t, http.StatusServiceUnavailable, r.status)
	assert.Equal(t, "5", r.header.Get("Retry-After"))
	assert.Equal(t, http.StatusOK, e.get(user(alice)+"/mailFolders/inbox").status)
	assert.Equal(t, 1, e.srv.Throttled())
}

func TestAuth(t *testing.T) {
	e := newEnv(t, &graphtest.Options{Authenticate: func(_ context.Context, tok string) (graphtest.Principal, error) {
		if tok == "jwt-for-bob" {
			return graphtest.Principal{User: bob, TenantID: tenant, Permissions: []string{"Mail.ReadWrite Mail.Send"}}, nil
		}
		return graphtest.Principal{}, errors.New("bad signature")
	}})
	e.srv.AddMailbox("zed@other.test", "tenant-other")
	e.srv.AddToken("read-only", graphtest.Principal{AppOnly: true, TenantID: tenant, Permissions: []string{"Mail.Read"}})
	e.srv.AddToken("delegated-alice", graphtest.Principal{User: alice, TenantID: tenant, Permissions: []string{"Mail.ReadWrite"}})
	auth := func(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }
	text := map[string]string{"Authorization": "Bearer delegated-alice", "Content-Type": "text/plain"}
	sendBody := b64([]byte("To: bob@contoso.test\r\n\r\nx\r\n"))

	cases := []struct {
		name, method, path string
		headers            map[string]string
		body               string
		status             int
		code               string
	}{
		{"no token", "GET", user(alice) + "/mailFolders/inbox", map[string]string{"Authorization": ""}, "", 401, "InvalidAuthenticationToken"},
		{"unknown token", "GET", user(alice) + "/mailFolders/inbox", auth("forged"), "", 401, "InvalidAuthenticationToken"},
		{"not bearer", "GET", user(alice) + "/mailFolders/inbox", map[string]string{"Authorization": "Basic " + token}, "", 401, "InvalidAuthenticationToken"},
		{"app token on /me", "GET", "/me/mailFolders/inbox", nil, "", 400, "BadRequest"},
		{"unknown mailbox", "GET", user("nobody@contoso.test") + "/mailFolders/inbox", nil, "", 404, "ErrorInvalidUser"},
		{"other tenant", "GET", user("zed@other.test") + "/mailFolders/inbox", nil, "", 403, "ErrorAccessDenied"},
		{"read-only may read", "GET", user(alice) + "/mailFolders/inbox", auth("read-only"), "", 200, ""},
		{"read-only may not write", "POST", user(alice) + "/mailFolders", auth("read-only"), `{"displayName":"X"}`, 403, "ErrorAccessDenied"},
		{"delegated on /me", "GET", "/me/mailFolders/inbox", auth("delegated-alice"), "", 200, ""},
		{"scp as one string", "POST", "/me/sendMail", map[string]string{"Authorization": "Bearer jwt-for-bob", "Content-Type": "text/plain"}, sendBody, 202, ""},
		{"delegated on itself", "GET", user(alice) + "/mailFolders/inbox", auth("delegated-alice"), "", 200, ""},
		{"delegated on another", "GET", user(bob) + "/mailFolders/inbox", auth("delegated-alice"), "", 403, "ErrorAccessDenied"},
		{"delegated without Mail.Send", "POST", "/me/sendMail", text, sendBody, 403, "ErrorAccessDenied"},
		{"Authenticate hook", "GET", "/me/mailFolders/inbox", auth("jwt-for-bob"), "", 200, ""},
		{"unknown route", "GET", user(alice) + "/calendars", nil, "", 400, "BadRequest"},
		{"wrong method", "PUT", user(alice) + "/mailFolders/inbox", nil, "", 405, "BadRequest"},
		{"body too large", "POST", user(alice) + "/mailFolders", nil, `{"displayName":"` + strings.Repeat("x", graphtest.MaxRequestBody) + `"}`, 413, "ErrorRequestEntityTooLarge"},
		{"batch too large", "POST", "/$batch", nil, strings.Repeat(" ", graphtest.MaxRequestBody+1), 413, "ErrorRequestEntityTooLarge"},
		{"no version", "GET", "https://unused", nil, "", 404, "BadRequest"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.path
			if path == "https://unused" {
				path = e.srv.URL() + "/beta/me"
			}
			r := e.req(tc.method, path, tc.headers, tc.body)
			require.Equal(t, tc.status, r.status, "%s", r.body)
			if tc.code != "" {
				assert.Equal(t, tc.code, r.errorCode(t))
			}
			if tc.status == 401 {
				assert.Contains(t, r.header.Get("WWW-Authenticate"), "Bearer")
			}
		})
	}
	require.Len(t, e.srv.Sent(), 1, "only bob's")
	assert.Equal(t, bob, e.srv.Sent()[0].From)
}

func TestRequestLimit(t *testing.T) {
	var mu sync.Mutex
	now := t0
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); now = now.Add(d) }
	e := newEnv(t, &graphtest.Options{RequestLimit: 3, Now: clock})
	for range 3 {
		require.Equal(t, http.StatusOK, e.get(user(alice)+"/mailFolders/inbox").status)
		advance(time.Minute)
	}
	r := e.get(user(alice) + "/mailFolders/inbox")
	assert.Equal(t, http.StatusTooManyRequests, r.status)
	assert.Equal(t, "420", r.header.Get("Retry-After"), "until the first request leaves the 10-minute window")
	assert.Equal(t, http.StatusOK, e.get(user(bob)+"/mailFolders/inbox").status)
	advance(7 * time.Minute)
	assert.Equal(t, http.StatusOK, e.get(user(alice)+"/mailFolders/inbox").status)
	assert.Equal(t, http.StatusTooManyRequests, e.get(user(alice)+"/mailFolders/inbox").status)
}

func TestMailboxNotEnabledForREST(t *testing.T) {
	e := newEnv(t, nil)
	e.srv.DisableREST(alice)
	r := e.get(user(alice) + "/mailFolders/inbox")
	assert.Equal(t, http.StatusNotFound, r.status)
	assert.Equal(t, "MailboxNotEnabledForRESTAPI", r.errorCode(t))
}

// TestCloseEndsHeldRequests: Close returns while a request is held in
// OnRequest, whose context it ends; goleak checks nothing is left behind.
func TestCloseEndsHeldRequests(t *testing.T) {
	held := make(chan struct{})
	ended := make(chan struct{})
	e := newEnv(t, &graphtest.Options{OnRequest: func(ctx context.Context, _, _, _ string) {
		close(held)
		<-ctx.Done()
		close(ended)
	}})
	done := make(chan error, 1)
	go func() {
		r, err := http.NewRequest("GET", e.srv.URL()+"/v1.0"+user(alice)+"/mailFolders/inbox", nil)
		if err == nil {
			r.Header.Set("Authorization", "Bearer "+token)
			var resp *http.Response
			if resp, err = e.client.Do(r); err == nil {
				resp.Body.Close()
			}
		}
		done <- err
	}()
	<-held
	e.srv.Close()
	<-ended
	assert.Error(t, <-done, "the connection was closed under the request")
	e.srv.Close() // twice is fine
}
