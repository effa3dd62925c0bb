package ews_test

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/ews"
	"github.com/serversync/serversync/connector/ews/ewstest"
	"github.com/serversync/serversync/internal/mailtest"
)

// krbUser is the Kerberos user of scripts/kdc this package logs in as; its mailbox
// lives in the fake only, so no other package's mail is touched.
const (
	krbUser    = "krb-http"
	krbMailbox = "krb-http@example.test"
)

// kerberosFixture is the EWS fake taking Kerberos with the real KDC's HTTP/ keys
// (and Basic only when alsoBasic), the KDC's user with its own mailbox, the
// service account allowed to impersonate every mailbox, and carol, a mailbox
// without a login; its connector authenticates as connector/standard's does.
func kerberosFixture(t *testing.T, alsoBasic bool) (*fixture, *mailtest.Kerberos) {
	t.Helper()
	krb := mailtest.LoadKerberos(t)
	srv, err := ewstest.NewServer(&ewstest.Options{Keytab: krb.HTTPKeytab, AlsoBasic: alsoBasic})
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	srv.AddUser(krbUser, "basic-pw", krbMailbox)
	srv.AddUser(krb.ServiceAccount, "", "")
	srv.AllowImpersonation(krb.ServiceAccount, "*")
	srv.AddMailbox(carol)
	client := srv.Client()
	t.Cleanup(client.CloseIdleConnections)
	conn := ews.New(&ews.Options{HTTPClient: client, Authenticator: ews.HTTPAuth, Logger: slog.New(slog.DiscardHandler)})
	return &fixture{srv: srv, conn: conn}, krb
}

// fetchAndSend reads the mailbox's inbox and sends an email from it, as the
// target's credentials allow, and returns what the server saw.
func (f *fixture) fetchAndSend(t *testing.T, target *serversync.Target, subject string) []ewstest.Request {
	t.Helper()
	deliver(t, f.srv, target.EmailAddress, subject)
	g, _, err := f.fetch(t, target, nil)
	require.NoError(t, err)
	assert.Equal(t, []string{subject}, g.subjects())

	ctx := context.Background()
	out, err := f.conn.OpenOutgoing(ctx, target)
	require.NoError(t, err)
	defer out.Close()
	msg := "From: <" + target.EmailAddress + ">\r\nTo: <bob@example.test>\r\nSubject: re " + subject + "\r\n\r\nanswer\r\n"
	require.NoError(t, out.Send(ctx, serversync.Envelope{From: target.EmailAddress, To: []string{bob}}, strings.NewReader(msg)))
	sent := f.srv.Sent()
	require.NotEmpty(t, sent)
	assert.Equal(t, target.EmailAddress, sent[len(sent)-1].Mailbox)
	assert.Len(t, f.srv.Messages(target.EmailAddress, "sentitems"), 1)
	return f.srv.Requests()
}

func TestNegotiateAgainstRealKDC(t *testing.T) {
	t.Run("the mailbox's own user and password", func(t *testing.T) {
		f, krb := kerberosFixture(t, false)
		creds := auth.Credentials{Kind: auth.KindPassword, Username: krbUser, Password: auth.NewSecret(krb.Password(krbUser)),
			Protocol: auth.ProtocolNegotiate, Kerberos: krb.Config()}
		requests := f.fetchAndSend(t, f.target(krbMailbox, creds), "own login")
		require.NotEmpty(t, requests)
		for _, r := range requests {
			assert.Equal(t, "Negotiate", r.Auth, r.Op)
			assert.Equal(t, krbUser, r.Login, "the principal krb-http@REALM is the user krb-http")
			assert.Empty(t, r.Impersonated)
		}
	})

	t.Run("service account's password, impersonating the mailbox", func(t *testing.T) {
		f, krb := kerberosFixture(t, false)
		creds := auth.Credentials{Kind: auth.KindImpersonation, Username: krb.ServiceAccount,
			Password: auth.NewSecret(krb.Password(krb.ServiceAccount)), Mailbox: carol,
			Protocol: auth.ProtocolNegotiate, Kerberos: krb.Config()}
		for _, r := range f.fetchAndSend(t, f.target(carol, creds), "impersonated") {
			assert.Equal(t, "Negotiate", r.Auth, r.Op)
			assert.Equal(t, krb.ServiceAccount, r.Login)
			assert.Equal(t, carol, r.Impersonated)
		}
	})

	t.Run("Windows-integrated: the process's keytab, impersonating the mailbox", func(t *testing.T) {
		f, krb := kerberosFixture(t, false)
		creds := auth.Credentials{Kind: auth.KindIntegrated, Mailbox: carol, Kerberos: krb.ServiceConfig()}
		target := f.target(carol, creds)
		for _, r := range f.fetchAndSend(t, target, "integrated") {
			assert.Equal(t, "Negotiate", r.Auth, r.Op)
			assert.Equal(t, krb.ServiceAccount, r.Login, "no password anywhere: the keytab's identity")
			assert.Equal(t, carol, r.Impersonated)
		}
		steps := f.conn.Probe(context.Background(), target)
		require.Len(t, steps, 3)
		for _, s := range steps {
			assert.True(t, s.OK, "%s: %v", s.Name, s.Err)
		}
		assert.Contains(t, steps[0].Detail, "impersonating "+carol)
	})

	t.Run("Auto picks Negotiate over Basic when offered", func(t *testing.T) {
		f, krb := kerberosFixture(t, true)
		creds := auth.Credentials{Kind: auth.KindPassword, Username: krbUser, Password: auth.NewSecret(krb.Password(krbUser)),
			Kerberos: krb.Config()}
		require.Equal(t, auth.ProtocolAuto, creds.Protocol)
		for _, r := range f.fetchAndSend(t, f.target(krbMailbox, creds), "auto") {
			assert.Equal(t, "Negotiate", r.Auth, r.Op)
			assert.Equal(t, krbUser, r.Login)
		}
	})

	t.Run("a wrong password is refused by the KDC, classified, never quoted", func(t *testing.T) {
		f, krb := kerberosFixture(t, false)
		const wrong = "not-the-krb-password"
		creds := auth.Credentials{Kind: auth.KindPassword, Username: krbUser, Password: auth.NewSecret(wrong),
			Protocol: auth.ProtocolNegotiate, Kerberos: krb.Config()}
		_, _, err := f.fetch(t, f.target(krbMailbox, creds), nil)
		ce := code(t, err)
		assert.Equal(t, serversync.ErrorAuth, ce.Kind)
		assert.Equal(t, serversync.CodeAuthFailed, ce.Code)
		assert.Equal(t, serversync.ScopeMailbox, ce.Scope, "the mailbox's own password")
		assert.NotContains(t, err.Error(), wrong)

		creds = auth.Credentials{Kind: auth.KindImpersonation, Username: krb.ServiceAccount, Password: auth.NewSecret(wrong),
			Mailbox: carol, Protocol: auth.ProtocolNegotiate, Kerberos: krb.Config()}
		_, _, err = f.fetch(t, f.target(carol, creds), nil)
		ce = code(t, err)
		assert.Equal(t, serversync.CodeAuthFailed, ce.Code)
		assert.Equal(t, serversync.ScopeProfile, ce.Scope, "the service account's password concerns every mailbox")
		assert.NotContains(t, err.Error(), wrong)
		assert.Empty(t, f.srv.Requests(), "nothing reached EWS")
	})

	t.Run("a server taking Negotiate only refuses Basic", func(t *testing.T) {
		f, _ := kerberosFixture(t, false)
		req, err := http.NewRequest(http.MethodPost, f.srv.EWSURL(), strings.NewReader("<soap/>"))
		require.NoError(t, err)
		req.SetBasicAuth(krbUser, "basic-pw")
		client := f.srv.Client()
		defer client.CloseIdleConnections()
		resp, err := client.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		assert.Equal(t, []string{"Negotiate"}, resp.Header.Values("WWW-Authenticate"))

		creds := password(krbUser, "basic-pw")
		creds.Protocol = auth.ProtocolBasic
		_, _, err = f.fetch(t, f.target(krbMailbox, creds), nil)
		assert.Equal(t, serversync.CodeAuthFailed, code(t, err).Code)
	})

	t.Run("a fake without the HTTP/ keys cannot read the ticket", func(t *testing.T) {
		krb := mailtest.LoadKerberos(t)
		// The mail keytab holds imap/, pop/ and smtp/ keys only: the ticket for
		// HTTP/127.0.0.1 does not decrypt, as it would not for an impostor.
		srv, err := ewstest.NewServer(&ewstest.Options{Keytab: os.Getenv("SERVERSYNC_KRB5_MAIL_KEYTAB")})
		require.NoError(t, err)
		defer srv.Close()
		srv.AddUser(krbUser, "", krbMailbox)
		client := srv.Client()
		defer client.CloseIdleConnections()
		f := &fixture{srv: srv, conn: ews.New(&ews.Options{HTTPClient: client, Authenticator: ews.HTTPAuth, Logger: slog.New(slog.DiscardHandler)})}
		creds := auth.Credentials{Kind: auth.KindPassword, Username: krbUser, Password: auth.NewSecret(krb.Password(krbUser)),
			Protocol: auth.ProtocolNegotiate, Kerberos: krb.Config()}
		_, _, err = f.fetch(t, f.target(krbMailbox, creds), nil)
		ce := code(t, err)
		assert.Equal(t, serversync.CodeAuthFailed, ce.Code)
		assert.Equal(t, serversync.ScopeMailbox, ce.Scope)

		srv.AddUser(krb.ServiceAccount, "", "")
		srv.AllowImpersonation(krb.ServiceAccount, "*")
		integrated := auth.Credentials{Kind: auth.KindIntegrated, Mailbox: krbMailbox, Kerberos: krb.ServiceConfig()}
		_, _, err = f.fetch(t, f.target(krbMailbox, integrated), nil)
		ce = code(t, err)
		assert.Equal(t, serversync.CodeAuthFailed, ce.Code)
		assert.Equal(t, serversync.ScopeProfile, ce.Scope, "the process's own identity concerns every mailbox")
		assert.Empty(t, srv.Requests())
	})

	t.Run("a valid ticket of a principal without an account is refused", func(t *testing.T) {
		f, krb := kerberosFixture(t, false)
		creds := auth.Credentials{Kind: auth.KindPassword, Username: "krb-auth", Password: auth.NewSecret(krb.Password("krb-auth")),
			Protocol: auth.ProtocolNegotiate, Kerberos: krb.Config()}
		_, _, err := f.fetch(t, f.target(krbMailbox, creds), nil)
		assert.Equal(t, serversync.CodeAuthFailed, code(t, err).Code)
	})
}

// Basic users of a Kerberos fake with AlsoBasic still log in with their password.
func TestNegotiateFakeKeepsBasicWhenAsked(t *testing.T) {
	f, _ := kerberosFixture(t, true)
	creds := password(krbUser, "basic-pw")
	creds.Protocol = auth.ProtocolBasic
	target := f.target(krbMailbox, creds)
	target.Endpoint.Timeout = 10 * time.Second
	for _, r := range f.fetchAndSend(t, target, "basic") {
		assert.Equal(t, "Basic", r.Auth)
	}
}
