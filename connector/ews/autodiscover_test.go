package ews_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector/ews"
	"github.com/serversync/serversync/connector/ews/ewstest"
)

// adFixture is a fake serving Autodiscover for example.test and other.test.
func adFixture(t *testing.T) *fixture {
	t.Helper()
	srv, err := ewstest.NewServer(&ewstest.Options{Domains: []string{"example.test", "other.test", "evil.test"}})
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	srv.AddUser("alice", "alice-pw", alice)
	client := srv.Client()
	t.Cleanup(client.CloseIdleConnections)
	return &fixture{srv: srv, conn: ews.New(&ews.Options{HTTPClient: client})}
}

func (f *fixture) discover(t *testing.T) (string, error) {
	t.Helper()
	target := f.target(alice, password("alice", "alice-pw"))
	target.Endpoint.URL = "" // nothing configured: that is why we discover
	return f.conn.Discover(context.Background(), target)
}

func TestAutodiscoverJSON(t *testing.T) {
	f := adFixture(t)
	f.srv.SetAutodiscover("example.test", ewstest.AutodiscoverConfig{JSON: true, EWSURL: "https://mail.example.test/EWS/Exchange.asmx"})
	got, err := f.discover(t)
	require.NoError(t, err)
	assert.Equal(t, "https://mail.example.test/EWS/Exchange.asmx", got)
	reqs := f.srv.AutodiscoverRequests()
	require.Len(t, reqs, 1)
	assert.Equal(t, "autodiscover.example.test", reqs[0].Host)
	assert.Equal(t, "/autodiscover/autodiscover.json/v1.0/"+alice, reqs[0].Path)
	assert.False(t, reqs[0].WithCredentials, "the JSON endpoint is anonymous")
}

func TestAutodiscoverJSONMissThenPOX(t *testing.T) {
	f := adFixture(t)
	f.srv.SetAutodiscover("example.test", ewstest.AutodiscoverConfig{POX: true})
	got, err := f.discover(t)
	require.NoError(t, err)
	assert.Equal(t, f.srv.EWSURL(), got)
	var hosts []string
	for _, r := range f.srv.AutodiscoverRequests() {
		hosts = append(hosts, r.Method+" "+r.Host)
		if r.WithCredentials {
			assert.Contains(t, []string{"autodiscover.example.test", "example.test"}, r.Host)
		}
	}
	assert.Equal(t, []string{"GET autodiscover.example.test", "GET example.test", "POST autodiscover.example.test"}, hosts)

	// The discovered URL works.
	target := f.target(alice, password("alice", "alice-pw"))
	target.Endpoint.URL = got
	_, _, err = f.fetch(t, target, nil)
	require.NoError(t, err)
}

func TestAutodiscoverPOXRedirectAddr(t *testing.T) {
	f := adFixture(t)
	f.srv.SetAutodiscover("example.test", ewstest.AutodiscoverConfig{RedirectAddr: "alice@other.test"})
	f.srv.SetAutodiscover("other.test", ewstest.AutodiscoverConfig{POX: true, EWSURL: "https://mail.other.test/EWS/Exchange.asmx"})
	got, err := f.discover(t)
	require.NoError(t, err)
	assert.Equal(t, "https://mail.other.test/EWS/Exchange.asmx", got)
}

func TestAutodiscoverRedirectLoopBounded(t *testing.T) {
	f := adFixture(t)
	f.srv.SetAutodiscover("example.test", ewstest.AutodiscoverConfig{RedirectURL: "https://autodiscover.example.test/autodiscover/autodiscover.xml"})
	_, err := f.discover(t)
	ce := code(t, err)
	assert.Equal(t, serversync.CodeProtocolError, ce.Code)
	assert.Contains(t, err.Error(), "redirected more than 10 times")
	posts := 0
	for _, r := range f.srv.AutodiscoverRequests() {
		if r.Method == "POST" {
			posts++
		}
	}
	assert.Equal(t, ews.MaxAutodiscoverHops+1, posts)
}

func TestAutodiscoverRedirectToHTTPRefused(t *testing.T) {
	f := adFixture(t)
	f.srv.SetAutodiscover("example.test", ewstest.AutodiscoverConfig{HTTPRedirect: "http://autodiscover.example.test/autodiscover/autodiscover.xml"})
	_, err := f.discover(t)
	ce := code(t, err)
	assert.Equal(t, serversync.CodePlaintextAuthRefused, ce.Code)
	for _, r := range f.srv.AutodiscoverRequests() {
		assert.False(t, r.WithCredentials)
	}
}

func TestAutodiscoverCredentialsStayInTheDomain(t *testing.T) {
	f := adFixture(t)
	f.srv.SetAutodiscover("example.test", ewstest.AutodiscoverConfig{RedirectURL: "https://autodiscover.evil.test/autodiscover/autodiscover.xml"})
	f.srv.SetAutodiscover("evil.test", ewstest.AutodiscoverConfig{POX: true})
	_, err := f.discover(t)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "credentials are not sent there")
	for _, r := range f.srv.AutodiscoverRequests() {
		assert.NotEqual(t, "autodiscover.evil.test", r.Host, "never asked")
	}

	// An HTTP redirect of the POX endpoint elsewhere is refused alike.
	f2 := adFixture(t)
	f2.srv.SetAutodiscover("example.test", ewstest.AutodiscoverConfig{HTTPRedirect: "https://autodiscover.evil.test/autodiscover/autodiscover.xml"})
	f2.srv.SetAutodiscover("evil.test", ewstest.AutodiscoverConfig{POX: true, JSON: false})
	_, err = f2.discover(t)
	require.Error(t, err)
	for _, r := range f2.srv.AutodiscoverRequests() {
		if r.Host == "autodiscover.evil.test" {
			assert.False(t, r.WithCredentials, "a JSON redirect may go there, anonymously")
		}
	}
}

func TestAutodiscoverNothingFound(t *testing.T) {
	f := adFixture(t)
	_, err := f.discover(t)
	ce := code(t, err)
	assert.Equal(t, serversync.CodeBadTarget, ce.Code)
	assert.Contains(t, err.Error(), "found no EWS URL")

	f.srv.SetAutodiscover("example.test", ewstest.AutodiscoverConfig{POX: true})
	target := f.target(alice, password("alice", "wrong"))
	_, err = f.conn.Discover(context.Background(), target)
	assert.Equal(t, serversync.CodeAuthFailed, code(t, err).Code)
	assert.NotContains(t, err.Error(), "wrong")
}
