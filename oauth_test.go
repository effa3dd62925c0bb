package serversync_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
)

// newOAuthEnv makes a profile on OAuth credentials (IMAP and SMTP) refreshed at
// tokenURL, and the mailbox alice with an expired access token and refreshToken.
func newOAuthEnv(t *testing.T, tokenURL, refreshToken string) (*syncEnv, *serversync.Mailbox) {
	t.Helper()
	e := newSyncEnv(t, func(p *serversync.Profile) {
		p.IncomingCredentialSource, p.OutgoingCredentialSource = serversync.CredentialsOAuth, serversync.CredentialsOAuth
		p.ClientID, p.TokenURL = "serversync-test", tokenURL
	})
	alice := e.mailbox(t, "alice", func(m *serversync.Mailbox) {
		m.OAuthToken = serversync.OAuthToken{AccessToken: auth.NewSecret("access-1"), RefreshToken: auth.NewSecret(refreshToken),
			Expiry: time.Now().Add(-time.Minute)}
	})
	return e, alice
}

// A token the Syncer refreshes is stored on its mailbox: the next connection uses it
// instead of asking the provider again, and a rotated refresh token is kept.
func TestRefreshedOAuthTokenIsStored(t *testing.T) {
	var refreshes atomic.Int32
	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ParseForm() != nil || r.Form.Get("grant_type") != "refresh_token" || r.Form.Get("refresh_token") != "refresh-1" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":"invalid_grant"}`)
			return
		}
		refreshes.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"access-2","token_type":"Bearer","expires_in":3600,"refresh_token":"refresh-2"}`)
	}))
	defer provider.Close()
	e, alice := newOAuthEnv(t, provider.URL, "refresh-1")
	e.demo.AllowToken(alice.EmailAddress, "access-2")
	require.NoError(t, e.demo.Deliver(alice.EmailAddress, message("x@p.test", alice.EmailAddress, "first", "", "b")))
	s := e.syncer(t, nil)
	testAndEnable(t, s, alice) // connects with a refreshed token
	run(t, s)
	eventually(t, "first tracked", func() bool { return len(e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID})) == 1 })
	require.NoError(t, e.demo.AddUser("bob@example.test", "x"))
	sent, err := s.QueueEmail(context.Background(), &serversync.EmailActivity{MailboxID: alice.ID,
		To: []serversync.Address{{Email: "bob@example.test"}}, Subject: "over SMTP with the same token"})
	require.NoError(t, err)
	eventually(t, "sent", func() bool {
		a, err := e.store.GetActivity(context.Background(), sent.ID)
		return err == nil && a.Status == serversync.StatusSent
	})
	require.NoError(t, e.demo.Deliver(alice.EmailAddress, message("x@p.test", alice.EmailAddress, "second", "", "b")))
	eventually(t, "second tracked at the next poll", func() bool {
		e.clock.Advance(time.Minute)
		return len(e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID, Direction: serversync.Incoming})) == 2
	})

	assert.Equal(t, int32(1), refreshes.Load(), "IMAP and SMTP connections, one refresh")
	got, err := e.store.GetMailbox(context.Background(), alice.ID)
	require.NoError(t, err)
	assert.Equal(t, "access-2", got.OAuthToken.AccessToken.Reveal())
	assert.Equal(t, "refresh-2", got.OAuthToken.RefreshToken.Reveal(), "the rotated refresh token")
	assert.True(t, got.OAuthToken.Expiry.After(time.Now()))
}

// A refresh token the provider no longer accepts is an authentication failure of
// that mailbox: Test & Enable fails with an error its owner can act on.
func TestRevokedOAuthGrantFailsTestAndEnable(t *testing.T) {
	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":"invalid_grant","error_description":"the refresh token was revoked"}`)
	}))
	defer provider.Close()
	e, alice := newOAuthEnv(t, provider.URL, "revoked-refresh-token")
	s := e.syncer(t, nil)
	m, err := s.TestAndEnable(context.Background(), alice.ID)
	require.NoError(t, err)
	assert.Equal(t, serversync.TestFailure, m.IncomingStatus)
	assert.Equal(t, serversync.TestFailure, m.OutgoingStatus)
	assert.False(t, m.IncomingEnabled || m.OutgoingEnabled)
	assert.Equal(t, "auth_failed", m.Stats.LastError.Code)
	assert.Contains(t, m.Stats.LastError.Message, "invalid_grant")
	assert.NotContains(t, m.Stats.LastError.Message, "revoked-refresh-token")
	errs := e.alerts(t, serversync.AlertFilter{MailboxID: alice.ID, Level: serversync.AlertError})
	require.NotEmpty(t, errs)
	assert.Equal(t, "owner-alice", errs[0].Recipient)
}
