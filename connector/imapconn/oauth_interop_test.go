package imapconn_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"net/smtp"
	"strings"
	"testing"
	"time"

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

func staticToken(token string) oauth2.TokenSource {
	return oauth2.StaticTokenSource(&oauth2.Token{AccessToken: token, TokenType: "Bearer"})
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

// TestInteropAppOnlyToken: one application token, as Exchange Online's IMAP takes it,
// opens two mailboxes of the domain on the real Dovecot; each reads mail Postfix
// delivered to it.
func TestInteropAppOnlyToken(t *testing.T) {
	e := interopEnv(t)
	issuer := mailtest.LoadOAuth(t)
	token := issuer.Token(t, "serversync-app")
	for _, user := range []string{oauthAnn, oauthBen} {
		t.Run(user, func(t *testing.T) {
			sess := e.open(t, appOnlyTarget(e, user, staticToken(token)), nil)
			start := cursorNow(t, sess, "")
			id := deliver(t, e, user)
			m := awaitMessage(t, sess, start, id)
			assert.Contains(t, string(m.body), "read with an app-only token")
		})
	}
}

// TestInteropAppOnlyTokenRefused: Dovecot refuses tokens Exchange Online would refuse,
// and the connector reports each as a refused login (ErrorAuth, auth_failed), never as
// a network or server fault that a retry would fix.
func TestInteropAppOnlyTokenRefused(t *testing.T) {
	e := interopEnv(t)
	issuer := mailtest.LoadOAuth(t)
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)

	sign := func(t *testing.T, change func(map[string]any)) string {
		claims := issuer.Claims("serversync-app", time.Hour)
		change(claims)
		tok, err := issuer.Sign(claims)
		require.NoError(t, err)
		return tok
	}
	cases := map[string]func(t *testing.T) string{
		"expired": func(t *testing.T) string {
			return sign(t, func(c map[string]any) {
				c["iat"], c["nbf"], c["exp"] = time.Now().Add(-2*time.Hour).Unix(), time.Now().Add(-2*time.Hour).Unix(), time.Now().Add(-time.Minute).Unix()
			})
		},
		"tampered": func(t *testing.T) string {
			// A token for another domain whose claims were rewritten to this one's.
			forged := issuer.Claims("serversync-app", time.Hour)
			tok := sign(t, func(c map[string]any) { c["domain_principal"] = "serversync-app@other.test" })
			tampered, err := mailtest.Tamper(tok, forged)
			require.NoError(t, err)
			return tampered
		},
		"other tenant": func(t *testing.T) string {
			return sign(t, func(c map[string]any) {
				c["iss"] = "https://sts.windows.net/99999999-8888-7777-6666-555555555555/"
				c["tid"] = "99999999-8888-7777-6666-555555555555"
			})
		},
		"other tenant's key": func(t *testing.T) string {
			tok, err := mailtest.SignJWT(otherKey, issuer.KeyID, issuer.Claims("serversync-app", time.Hour))
			require.NoError(t, err)
			return tok
		},
		"other domain": func(t *testing.T) string {
			return sign(t, func(c map[string]any) { c["domain_principal"] = "serversync-app@other.test" })
		},
		"for Graph, not mail": func(t *testing.T) string {
			return sign(t, func(c map[string]any) { c["aud"] = "https://graph.microsoft.com" })
		},
	}
	for name, token := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel() // Dovecot delays each refusal by two seconds
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err := imapconn.New(nil).OpenIncoming(ctx, appOnlyTarget(e, oauthAnn, staticToken(token(t))))
			ce := requireConnectorError(t, err, serversync.ErrorAuth, serversync.CodeAuthFailed)
			assert.Equal(t, "authenticate", ce.Op)
			assert.NotContains(t, err.Error(), "Bearer", "the token must not show in the error")
		})
	}
}
