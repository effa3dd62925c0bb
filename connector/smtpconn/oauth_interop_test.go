package smtpconn

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
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
func appOnly(mailbox, token string) auth.Credentials {
	return auth.Credentials{
		Kind: auth.KindAppOnly, Username: mailbox,
		TokenSource: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: token, TokenType: "Bearer"}),
	}
}

// TestInteropAppOnlySubmission: one application token submits to Postfix (SASL
// through Dovecot) as two mailboxes of the domain, on both submission ports, and the
// mail arrives in Dovecot.
func TestInteropAppOnlySubmission(t *testing.T) {
	e := mailtest.Load(t)
	issuer := mailtest.LoadOAuth(t)
	token := issuer.Token(t, "serversync-app")
	for _, service := range []mailtest.Service{mailtest.Submission, mailtest.Submissions} {
		for _, from := range []string{oauthCid, oauthDot} {
			to := oauthDot
			if from == oauthDot {
				to = oauthCid
			}
			t.Run(string(service)+"/"+from, func(t *testing.T) {
				id := interopSend(t, e.Endpoint(service), appOnly(e.Login(from), token), e.Login(from), e.Login(to))
				got := waitForDelivery(t, e, e.Login(to), id)
				assert.Contains(t, string(got), "From: "+e.Login(from))
			})
		}
	}
}

// TestInteropAppOnlySubmissionRefused: Postfix, through Dovecot, refuses tokens
// Exchange Online would refuse, and the connector reports a refused login
// (ErrorAuth, auth_failed) without sending anything.
func TestInteropAppOnlySubmissionRefused(t *testing.T) {
	e := mailtest.Load(t)
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
			tok := sign(t, func(c map[string]any) { c["domain_principal"] = "serversync-app@other.test" })
			tampered, err := mailtest.Tamper(tok, issuer.Claims("serversync-app", time.Hour))
			require.NoError(t, err)
			return tampered
		},
		"other tenant": func(t *testing.T) string {
			return sign(t, func(c map[string]any) {
				c["iss"] = "https://sts.windows.net/99999999-8888-7777-6666-555555555555/"
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
	}
	for name, token := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			target := &serversync.Target{EmailAddress: e.Login(oauthCid), Endpoint: e.Endpoint(mailtest.Submissions),
				Credentials: appOnly(e.Login(oauthCid), token(t))}
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
			assert.NotContains(t, err.Error(), "Bearer", "the token must not show in the error")
		})
	}
}
