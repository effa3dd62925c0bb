package smtpconn

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/internal/mailtest"
)

// Mailboxes of the app-only OAuth tests (scripts/mailservers makes them; the imapconn
// package's tests read oauth-ann and oauth-ben, never these).
const (
	oauthCid = "oauth-cid"
	oauthDot = "oauth-dot"
)

// appOnly are an application's credentials acting for mailbox, as Exchange Online's
// SMTP submission takes them: XOAUTH2 with user=<mailbox> and the app's token.
func appOnly(mailbox string, tokens oauth2.TokenSource) auth.Credentials {
	return auth.Credentials{Kind: auth.KindAppOnly, Username: mailbox, TokenSource: tokens}
}

// TestInteropAppOnlySubmission, end to end: an app registered in a (fake) Entra ID
// with a certificate gets its own token through auth.AppTokenConfig, and that one
// token submits to Postfix (SASL through Dovecot) as two mailboxes of the domain, on
// both submission ports; the mail arrives in Dovecot.
func TestInteropAppOnlySubmission(t *testing.T) {
	e := mailtest.Load(t)
	entra := mailtest.LoadOAuth(t).Entra(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tokens := entra.Config(mailtest.MailScope).TokenSource(ctx)
	for _, service := range []mailtest.Service{mailtest.Submission, mailtest.Submissions} {
		for _, from := range []string{oauthCid, oauthDot} {
			to := oauthDot
			if from == oauthDot {
				to = oauthCid
			}
			t.Run(string(service)+"/"+from, func(t *testing.T) {
				id := interopSend(t, e.Endpoint(service), appOnly(e.Login(from), tokens), e.Login(from), e.Login(to))
				got := waitForDelivery(t, e, e.Login(to), id)
				assert.Contains(t, string(got), "From: "+e.Login(from))
			})
		}
	}
	assert.Equal(t, 1, entra.Server.TokenRequests(), "one token serves every mailbox of the tenant")
}

// TestInteropAppOnlySubmissionRefused: Postfix, through Dovecot, refuses tokens
// Exchange Online would refuse, and the connector reports a refused login
// (ErrorAuth, auth_failed) without sending anything.
func TestInteropAppOnlySubmissionRefused(t *testing.T) {
	e := mailtest.Load(t)
	for name, token := range mailtest.LoadOAuth(t).RefusedTokens(t) {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			target := &serversync.Target{EmailAddress: e.Login(oauthCid), Endpoint: e.Endpoint(mailtest.Submissions),
				Credentials: appOnly(e.Login(oauthCid), mailtest.TokenSource(token))}
			s, err := New(nil).OpenOutgoing(ctx, target)
			if err == nil { // a connector may authenticate lazily, on the first message
				defer s.Close()
				msg := fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: refused\r\n\r\nnever sent\r\n", e.Login(oauthCid), e.Login(oauthDot))
				err = s.Send(ctx, serversync.Envelope{From: e.Login(oauthCid), To: []string{e.Login(oauthDot)}}, strings.NewReader(msg))
			}
			var ce *serversync.ConnectorError
			require.ErrorAs(t, err, &ce, "error %v", err)
			assert.Equal(t, serversync.ErrorAuth, ce.Kind, "kind of %v", err)
			assert.Equal(t, serversync.CodeAuthFailed, ce.Code, "code of %v", err)
			assert.Equal(t, serversync.ScopeMailbox, ce.Scope, "scope of %v", err)
			assert.NotContains(t, err.Error(), token, "the token must not show in the error")
		})
	}
}
