package imapconn_test

import (
	"context"
	"fmt"
	"net/smtp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/imapconn"
	"github.com/serversync/serversync/internal/mailtest"
)

// Mailboxes of the app-only OAuth tests (scripts/mailservers makes them; the smtpconn
// package's tests deliver to oauth-cid and oauth-dot, never to these).
const (
	oauthAnn = "oauth-ann"
	oauthBen = "oauth-ben"
)

// appOnlyTarget is user's mailbox on Dovecot's implicit-TLS IMAP port, logged in to
// with an application's token the way Exchange Online takes one: XOAUTH2, user=<mailbox>.
func appOnlyTarget(e *interop, user string, ts oauth2.TokenSource) *serversync.Target {
	target := e.target(user, serversync.TLSImplicit)
	target.Credentials = auth.Credentials{Kind: auth.KindAppOnly, Username: e.login(user), TokenSource: ts}
	return target
}

// deliver hands a message for user to Postfix, which delivers it to Dovecot over LMTP.
func deliver(t *testing.T, e *interop, user string) string {
	t.Helper()
	id := fmt.Sprintf("<oauth-%d@serversync.test>", time.Now().UnixNano())
	msg := "From: sender@example.test\r\nTo: " + e.login(user) + "\r\nSubject: app-only\r\nMessage-ID: " + id +
		"\r\n\r\nDelivered by Postfix, read with an app-only token.\r\n"
	// The port without STARTTLS: net/smtp would verify Postfix against the system roots.
	addr := fmt.Sprintf("%s:%d", e.host, e.env.Port(mailtest.SMTPNoTLS))
	require.NoError(t, smtp.SendMail(addr, nil, "sender@example.test", []string{e.login(user)}, []byte(msg)))
	return id
}

// awaitMessage fetches from the cursor on until the message id arrives.
func awaitMessage(t *testing.T, sess serversync.IncomingSession, cursor []byte, id string) fetched {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got, res := fetchAll(t, sess, serversync.FetchRequest{Cursor: cursor})
		for _, m := range got {
			if strings.Contains(string(m.body), id) {
				return m
			}
		}
		cursor = res.Cursor
		if time.Now().After(deadline) {
			t.Fatalf("message %s never arrived", id)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestInteropAppOnlyToken, end to end: an app registered in a (fake) Entra ID with a
// certificate gets its own token through auth.AppTokenConfig, and that one token
// opens two mailboxes of the domain on the real Dovecot, as Exchange Online's IMAP
// takes it; each reads mail Postfix delivered to it.
func TestInteropAppOnlyToken(t *testing.T) {
	e := interopEnv(t)
	entra := mailtest.LoadOAuth(t).Entra(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tokens := entra.Config(mailtest.MailScope).TokenSource(ctx) // one per profile, shared by its mailboxes
	for _, user := range []string{oauthAnn, oauthBen} {
		t.Run(user, func(t *testing.T) {
			sess := e.open(t, appOnlyTarget(e, user, tokens), nil)
			start := cursorNow(t, sess, "")
			id := deliver(t, e, user)
			m := awaitMessage(t, sess, start, id)
			assert.Contains(t, string(m.body), "read with an app-only token")
		})
	}
	assert.Equal(t, 1, entra.Server.TokenRequests(), "one token serves every mailbox of the tenant")

	// The servers take the same token with OAUTHBEARER (RFC 7628), which the
	// connectors fall back to where XOAUTH2 is not offered.
	token, err := tokens.Token()
	require.NoError(t, err)
	c, err := imapclient.DialTLS(fmt.Sprintf("%s:%d", e.host, e.imapsPort), &imapclient.Options{TLSConfig: e.env.TLSConfig()})
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.Authenticate(sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{Username: e.login(oauthBen), Token: token.AccessToken})))
	_, err = c.Select("INBOX", nil).Wait()
	require.NoError(t, err)
}

// TestInteropAppOnlyTokenRefused: Dovecot refuses tokens Exchange Online would refuse,
// and the connector reports each as a refused login (ErrorAuth, auth_failed), never as
// a network or server fault that a retry would fix.
func TestInteropAppOnlyTokenRefused(t *testing.T) {
	e := interopEnv(t)
	for name, token := range mailtest.LoadOAuth(t).RefusedTokens(t) {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err := imapconn.New(nil).OpenIncoming(ctx, appOnlyTarget(e, oauthAnn, mailtest.TokenSource(token)))
			ce := requireConnectorError(t, err, serversync.ErrorAuth, serversync.CodeAuthFailed)
			assert.Equal(t, "authenticate", ce.Op)
			assert.Equal(t, serversync.ScopeMailbox, ce.Scope)
			assert.NotContains(t, err.Error(), token, "the token must not show in the error")
		})
	}
}

// TestInteropTokensAndPasswordsKeptApart: the servers take a token only through the
// token mechanisms and a password only through PLAIN/LOGIN, so neither stands in for
// the other.
func TestInteropTokensAndPasswordsKeptApart(t *testing.T) {
	e := interopEnv(t)
	token := mailtest.LoadOAuth(t).Entra(t, nil).Token(t, mailtest.MailScope)

	asPassword := e.target(oauthAnn, serversync.TLSImplicit)
	asPassword.Credentials.Password = auth.NewSecret(token)
	_, err := imapconn.New(nil).OpenIncoming(context.Background(), asPassword)
	requireConnectorError(t, err, serversync.ErrorAuth, serversync.CodeAuthFailed)

	passwordAsToken := appOnlyTarget(e, oauthAnn, mailtest.TokenSource(mailtest.Password(oauthAnn)))
	_, err = imapconn.New(nil).OpenIncoming(context.Background(), passwordAsToken)
	requireConnectorError(t, err, serversync.ErrorAuth, serversync.CodeAuthFailed)

	// The password itself still works, through PLAIN.
	e.open(t, e.target(oauthAnn, serversync.TLSImplicit), nil)
}
