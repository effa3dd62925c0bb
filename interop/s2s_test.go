package interop_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/internal/mailtest"
)

// Exchange Online's mail protocols with server-to-server authentication, against
// real Dovecot and Postfix that accept the fake Entra ID's app-only tokens: an
// IMAP/SMTP profile with the app's certificate sends from one mailbox through
// Postfix (XOAUTH2) and tracks the email in the other through Dovecot (XOAUTH2),
// on one token for both mailboxes and both directions.
func TestServerToServerOnDovecotAndPostfix(t *testing.T) {
	h := newHarness(t)
	entra := mailtest.LoadOAuth(t).Entra(t, nil)
	p := h.profile(t, serversync.ServerTypeIMAPSMTP, func(p *serversync.Profile) {
		p.Name = "Exchange Online over IMAP and SMTP"
		p.IncomingCredentialSource = serversync.CredentialsServerToServer
		p.TenantID, p.ClientID = entra.TenantID, entra.ClientID
		p.CertificatePEM, p.CertificateKey = entra.Certificate.CertPEM, auth.NewSecret(entra.Certificate.KeyPEM)
		p.TokenURL = entra.Server.URL() + "/{tenant}/oauth2/v2.0/token"
		p.ExtraRootCAsPEM += entra.Server.RootCAsPEM()
	})
	a := h.mailbox(t, "oauth-ann", p)
	b := h.mailbox(t, "oauth-ben", p)
	s := h.syncer(t, nil)
	h.testAndEnable(t, s, a, b)
	h.run(t, s)

	queued, err := s.QueueEmail(context.Background(), &serversync.EmailActivity{
		MailboxID: a.ID, To: []serversync.Address{{Email: b.EmailAddress}},
		Subject: "Sent with an app-only token", TextBody: "No password was used.",
	})
	require.NoError(t, err)
	sent := h.waitSent(t, queued.ID)
	h.waitOnServer(t, "oauth-ben", "INBOX", sent.MessageID, "delivered to B by Postfix")
	h.pollAgain(t, b.ID)
	atB := h.waitTracked(t, b.ID, sent.MessageID)
	assert.Equal(t, sent.ID, atB.CorrelatedTo)
	assert.Equal(t, 1, entra.Server.TokenRequests(),
		"one token (scope %s) for two mailboxes, IMAP and SMTP, Test & Enable included", serversync.OutlookScopeDefault)

	// A certificate the app registration does not hold: the profile's mailboxes
	// fail with what to fix, and nothing reaches the mail servers' password checks.
	stranger := mailtest.LoadOAuth(t).Entra(t, nil)
	_, err = h.admin.UpdateProfile(context.Background(), p.ID, func(p *serversync.Profile) {
		p.CertificatePEM, p.CertificateKey = stranger.Certificate.CertPEM, auth.NewSecret(stranger.Certificate.KeyPEM)
	})
	require.NoError(t, err)
	got, err := s.TestAndEnable(context.Background(), a.ID)
	require.NoError(t, err)
	assert.Equal(t, serversync.TestFailure, got.IncomingStatus)
	assert.Equal(t, serversync.CodeTokenRefused, got.Stats.LastError.Code)
	assert.Contains(t, got.Stats.LastError.Message, "AADSTS700027")
}
