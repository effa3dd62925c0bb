package smtpconn

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/internal/mailtest"
)

// The Kerberos user these tests send as and to (scripts/kdc and scripts/mailservers
// make it; the imapconn tests read krb-imap, never this one).
const krbSMTP = "krb-smtp"

// TestInteropGSSAPISubmission: SMTP AUTH GSSAPI to Postfix, which hands the
// exchange to Dovecot SASL, which checks the ticket from the real MIT KDC with the
// smtp/ key; the message is delivered. The user's Kerberos password is not its
// mail password, so no password mechanism could have done it.
func TestInteropGSSAPISubmission(t *testing.T) {
	e := mailtest.Load(t)
	krb := mailtest.LoadKerberos(t)
	krb.RequireMailServers(t)
	for _, tc := range []struct {
		name  string
		creds auth.Credentials
	}{
		{"password, Negotiate", auth.Credentials{Kind: auth.KindPassword, Username: e.Login(krbSMTP),
			Password: auth.NewSecret(krb.Password(krbSMTP)), Protocol: auth.ProtocolNegotiate, Kerberos: krb.Config()}},
		{"Windows-integrated service account for the mailbox", auth.Credentials{Kind: auth.KindIntegrated,
			Mailbox: e.Login(krbSMTP), Kerberos: krb.ServiceConfig()}},
	} {
		for _, service := range []mailtest.Service{mailtest.Submission, mailtest.Submissions} {
			t.Run(tc.name+"/"+string(service), func(t *testing.T) {
				id := interopSend(t, e.Endpoint(service), tc.creds, e.Login(krbSMTP), e.Login(krbSMTP))
				waitForDelivery(t, e, e.Login(krbSMTP), id)
			})
		}
	}
}

// TestInteropGSSAPISubmissionRefused: a wrong Kerberos password is refused by the
// KDC, and reported as the mailbox's failed login, before Postfix sees a command.
func TestInteropGSSAPISubmissionRefused(t *testing.T) {
	e := mailtest.Load(t)
	krb := mailtest.LoadKerberos(t)
	krb.RequireMailServers(t)
	creds := auth.Credentials{Kind: auth.KindPassword, Username: e.Login(krbSMTP), Password: auth.NewSecret("wrong-krb-password"),
		Protocol: auth.ProtocolNegotiate, Kerberos: krb.Config()}
	_, err := New(nil).OpenOutgoing(context.Background(), &serversync.Target{Endpoint: e.Endpoint(mailtest.Submissions), Credentials: creds})
	var ce *serversync.ConnectorError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, serversync.ErrorAuth, ce.Kind)
	assert.Equal(t, serversync.CodeAuthFailed, ce.Code)
	var kerr *auth.KerberosError
	assert.ErrorAs(t, err, &kerr)
	assert.NotContains(t, err.Error(), "wrong-krb-password")
}
