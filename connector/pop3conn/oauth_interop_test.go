package pop3conn_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/pop3conn"
	"github.com/serversync/serversync/internal/mailtest"
)

// oauthEve is the mailbox of this package's app-only OAuth tests (scripts/mailservers
// makes it; no other package reads it).
const oauthEve = "oauth-eve"

// TestInteropAppOnlyPOP3, end to end: an app's own token from a (fake) Entra ID,
// through auth.AppTokenConfig, opens a mailbox on the real Dovecot's POP3 the way
// Exchange Online's POP takes it (XOAUTH2, user=<mailbox>), on both ports, and
// reads its mail; tokens Exchange would refuse are refused as auth_failed.
func TestInteropAppOnlyPOP3(t *testing.T) {
	e := mailtest.Load(t)
	issuer := mailtest.LoadOAuth(t)
	entra := issuer.Entra(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tokens := entra.Config(mailtest.MailScope).TokenSource(ctx)
	appOnly := func(service mailtest.Service, creds auth.Credentials) *serversync.Target {
		target := e.Target(service, oauthEve)
		target.Credentials = creds
		return target
	}

	c := e.IMAPClient(t, oauthEve)
	mailtest.Empty(t, c)
	raw := []byte(fmt.Sprintf("From: sender@example.test\r\nTo: %s\r\nSubject: app-only POP3\r\nMessage-ID: <pop3-oauth-%d@serversync.test>\r\n\r\nRead over POP3 with an app-only token.\r\n",
		e.Login(oauthEve), time.Now().UnixNano()))
	mailtest.Append(t, c, "INBOX", raw)
	for _, service := range []mailtest.Service{mailtest.POP3S, mailtest.POP3} {
		t.Run(string(service), func(t *testing.T) {
			s := open(t, appOnly(service, auth.Credentials{Kind: auth.KindAppOnly, Username: e.Login(oauthEve), TokenSource: tokens}))
			bodies, _, _ := fetchAll(t, s, serversync.FetchRequest{})
			require.Len(t, bodies, 1)
			assert.Contains(t, bodies[0], "Read over POP3 with an app-only token.")
		})
	}
	assert.Equal(t, 1, entra.Server.TokenRequests(), "the token is cached and reused")

	for name, token := range issuer.RefusedTokens(t) {
		t.Run("refused/"+name, func(t *testing.T) {
			creds := auth.Credentials{Kind: auth.KindAppOnly, Username: e.Login(oauthEve), TokenSource: mailtest.TokenSource(token)}
			_, err := pop3conn.New(nil).OpenIncoming(context.Background(), appOnly(mailtest.POP3S, creds))
			ce := requireCode(t, err, serversync.ErrorAuth, serversync.CodeAuthFailed)
			assert.Equal(t, serversync.ScopeMailbox, ce.Scope)
			assert.NotContains(t, err.Error(), token)
		})
	}
}
