package interop_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/internal/mailtest"
)

// TestKerberosProfileSyncsAndSends, end to end on the real MIT KDC, Dovecot and
// Postfix: a profile whose service account logs in to IMAP with Kerberos
// (AuthProtocol Negotiate, Profile credentials with impersonation: SASL GSSAPI with
// the mailbox as authorization identity) and sends with the process's own identity
// (WindowsIntegrated outgoing, the keytab in Config.Kerberos). The mailbox's email
// goes out through Postfix and comes back into its inbox, where the incoming sync
// tracks it. No password mechanism could have done either: the service account's
// Kerberos password is no mail password, and the mailbox's own is never used.
func TestKerberosProfileSyncsAndSends(t *testing.T) {
	h := newHarness(t)
	krb := mailtest.LoadKerberos(t)
	krb.RequireMailServers(t)
	p := h.profile(t, serversync.ServerTypeIMAPSMTP, func(p *serversync.Profile) {
		p.AuthProtocol = serversync.AuthNegotiate
		p.IncomingCredentialSource, p.UseImpersonation = serversync.CredentialsProfile, true
		p.Username, p.Password = krb.ServiceAccount, auth.NewSecret(krb.Password(krb.ServiceAccount))
		p.SeparateOutgoingSettings, p.OutgoingCredentialSource = true, serversync.CredentialsWindowsIntegrated
	})
	m := h.mailbox(t, "krb-sync", p)
	s := h.syncer(t, &serversync.Config{Kerberos: krb.ServiceConfig()})
	h.testAndEnable(t, s, m)
	h.run(t, s)

	queued, err := s.QueueEmail(context.Background(), &serversync.EmailActivity{
		MailboxID: m.ID, To: []serversync.Address{{Email: m.EmailAddress}},
		Subject: "Kerberos round trip", TextBody: "Sent and read with tickets.",
	})
	require.NoError(t, err)
	sent := h.waitSent(t, queued.ID)
	h.waitOnServer(t, "krb-sync", "INBOX", sent.MessageID, "the email delivered back to the mailbox")

	h.pollAgain(t, m.ID)
	tracked := h.waitTracked(t, m.ID, sent.MessageID)
	assert.Equal(t, serversync.InboxFolder, tracked.ServerFolder)
	assert.True(t, strings.HasPrefix(tracked.Subject, "Kerberos round trip"), tracked.Subject)
}
