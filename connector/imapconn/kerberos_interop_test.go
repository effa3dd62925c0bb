package imapconn_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/imapconn"
	"github.com/serversync/serversync/internal/mailtest"
)

// The Kerberos user whose mailbox these tests read (scripts/kdc makes it and
// scripts/mailservers its mailbox; no other package delivers to it).
const krbIMAP = "krb-imap"

// kerberosTarget is user's mailbox on Dovecot's implicit-TLS port, logged in to with
// SASL GSSAPI: creds say whose ticket.
func kerberosTarget(e *interop, user string, creds auth.Credentials) *serversync.Target {
	target := e.target(user, serversync.TLSImplicit)
	target.Credentials = creds
	return target
}

// TestInteropGSSAPI logs in to the real Dovecot with tickets from the real MIT KDC:
// the user's Kerberos password (which is not its IMAP password, so PLAIN could not
// have done it) or the process's own keytab, then selects and reads the INBOX.
func TestInteropGSSAPI(t *testing.T) {
	e := interopEnv(t)
	krb := mailtest.LoadKerberos(t)
	krb.RequireMailServers(t)
	login := e.login(krbIMAP)

	// A message to read once logged in, put there with the IMAP password.
	c := e.client(t, krbIMAP)
	id := fmt.Sprintf("<gssapi-%d@serversync.test>", time.Now().UnixNano())
	mailtest.Append(t, c, "INBOX", []byte("From: a@example.test\r\nTo: "+login+"\r\nSubject: kerberos\r\nMessage-ID: "+id+"\r\n\r\nhi\r\n"))

	for _, tc := range []struct {
		name  string
		creds auth.Credentials
	}{
		{"password, Negotiate", auth.Credentials{Kind: auth.KindPassword, Username: login,
			Password: auth.NewSecret(krb.Password(krbIMAP)), Protocol: auth.ProtocolNegotiate, Kerberos: krb.Config()}},
		{"password, Auto with Kerberos configured", auth.Credentials{Kind: auth.KindPassword, Username: login,
			Password: auth.NewSecret(krb.Password(krbIMAP)), Kerberos: krb.Config()}},
		// The service account acts for the mailbox as its authorization identity;
		// Dovecot allows it through the mailbox's k5principals.
		{"Windows-integrated service account for the mailbox", auth.Credentials{Kind: auth.KindIntegrated,
			Mailbox: login, Kerberos: krb.ServiceConfig()}},
		{"Windows-integrated, ticket cache absent: keytab logs in again", auth.Credentials{Kind: auth.KindIntegrated,
			Mailbox: login, Kerberos: &auth.KerberosConfig{Krb5Conf: krb.Conf, Keytab: krb.ServiceKeytab,
				CCache: filepath.Join(t.TempDir(), "absent")}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sess := e.open(t, kerberosTarget(e, krbIMAP, tc.creds), nil)
			awaitMessage(t, sess, nil, id)
		})
	}
}

// TestInteropGSSAPIRefused: a wrong Kerberos password is refused by the KDC before
// Dovecot sees anything, as an authentication failure of the mailbox; Negotiate
// never falls back to sending the password with PLAIN.
func TestInteropGSSAPIRefused(t *testing.T) {
	e := interopEnv(t)
	krb := mailtest.LoadKerberos(t)
	krb.RequireMailServers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	wrong := auth.Credentials{Kind: auth.KindPassword, Username: e.login(krbIMAP), Password: auth.NewSecret("wrong-password"),
		Protocol: auth.ProtocolNegotiate, Kerberos: krb.Config()}
	_, err := imapconn.New(nil).OpenIncoming(ctx, kerberosTarget(e, krbIMAP, wrong))
	var ce *serversync.ConnectorError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, serversync.ErrorAuth, ce.Kind)
	assert.Equal(t, serversync.CodeAuthFailed, ce.Code)
	assert.Equal(t, serversync.ScopeMailbox, ce.Scope)
	var kerr *auth.KerberosError
	require.ErrorAs(t, err, &kerr)
	assert.True(t, kerr.Refused)
	assert.NotContains(t, err.Error(), "wrong-password")

	// The IMAP password is right for PLAIN, but Negotiate must not use it.
	plainOnly := auth.Credentials{Kind: auth.KindPassword, Username: e.login(krbIMAP), Password: auth.NewSecret(krbIMAP + "-pass"),
		Protocol: auth.ProtocolNegotiate, Kerberos: krb.Config()}
	_, err = imapconn.New(nil).OpenIncoming(ctx, kerberosTarget(e, krbIMAP, plainOnly))
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, serversync.ErrorAuth, ce.Kind, "%v", err)

	// Windows-integrated credentials with no keytab and no ticket: a clear,
	// permanent configuration error.
	none := auth.Credentials{Kind: auth.KindIntegrated, Mailbox: e.login(krbIMAP),
		Kerberos: &auth.KerberosConfig{Krb5Conf: krb.Conf, Keytab: filepath.Join(t.TempDir(), "none")}}
	_, err = imapconn.New(nil).OpenIncoming(ctx, kerberosTarget(e, krbIMAP, none))
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, serversync.CodeAuthUnavailable, ce.Code, "%v", err)
	assert.ErrorIs(t, err, auth.ErrNoKerberosIdentity)
}
