package serversync_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/auth/aadtest"
	"github.com/serversync/serversync/connector/graph/graphtest"
	"github.com/serversync/serversync/connector/standard"
	"github.com/serversync/serversync/internal/testcert"
)

const s2sTenant = "7c0e7b35-5a1e-4f6e-9d7e-3f1e2d4c5b6a"

// s2sEnv is a fake Entra ID with one app registered with a certificate, and a
// fake Graph that accepts the app's tokens.
type s2sEnv struct {
	entra *aadtest.Server
	graph *graphtest.Server
	cert  *testcert.ClientCert
}

func newS2SEnv(t *testing.T, notAfter time.Time, now func() time.Time) *s2sEnv {
	t.Helper()
	entra, err := aadtest.NewServer(&aadtest.Options{Now: now})
	require.NoError(t, err)
	t.Cleanup(entra.Close)
	entra.AddTenant(s2sTenant, "example.test")
	cert, err := testcert.NewClientCert("serversync-s2s", 2048, time.Now().Add(-time.Hour), notAfter)
	require.NoError(t, err)
	entra.RegisterApp(s2sTenant, "serversync-app", cert.Certificate, "Mail.ReadWrite", "Mail.Send")
	graph, err := graphtest.NewServer(&graphtest.Options{Authenticate: graphtest.EntraAuthenticator(entra)})
	require.NoError(t, err)
	t.Cleanup(graph.Close)
	return &s2sEnv{entra: entra, graph: graph, cert: cert}
}

// profile is an Exchange Online profile with server-to-server credentials for
// the fakes; its locations are left to the defaults when graph is false.
func (x *s2sEnv) profile(name string) *serversync.Profile {
	return &serversync.Profile{
		Name: name, Owner: "admin-user", ServerType: serversync.ServerTypeExchangeOnline,
		IncomingServer: x.graph.URL(), OutgoingServer: x.graph.URL(),
		ExtraRootCAsPEM:   x.graph.RootCAsPEM() + x.entra.RootCAsPEM(),
		ConnectionTimeout: 10 * time.Second,
		TenantID:          s2sTenant, ClientID: "serversync-app",
		CertificatePEM: x.cert.CertPEM, CertificateKey: auth.NewSecret(x.cert.KeyPEM),
		TokenURL: x.entra.URL() + "/{tenant}/oauth2/v2.0/token",
	}
}

// An Exchange Online profile with server-to-server authentication: Test &
// Enable, mail tracked and sent for three mailboxes, with one app-only token
// from the identity provider for all of them, and for a second Syncer (another
// process) sharing the store.
func TestServerToServerOnGraph(t *testing.T) {
	ctx := context.Background()
	e := newSyncEnv(t, nil)
	x := newS2SEnv(t, time.Now().Add(365*24*time.Hour), nil)
	p, err := e.admin.CreateProfile(ctx, x.profile("exchange-online-s2s"))
	require.NoError(t, err)
	assert.Equal(t, serversync.CredentialsServerToServer, p.IncomingCredentialSource, "the default for Exchange Online")
	assert.Equal(t, x.cert.Certificate.NotAfter.UTC(), p.CertificateNotAfter.UTC())

	var mailboxes []*serversync.Mailbox
	for _, name := range []string{"ann", "ben", "cat"} {
		x.graph.AddMailbox(name+"@example.test", s2sTenant)
		_, err := x.graph.Deliver(name+"@example.test", "inbox", message("dan@example.test", name+"@example.test", "hello "+name, "", "hi"), time.Now())
		require.NoError(t, err)
		mailboxes = append(mailboxes, approvedMailbox(t, e.admin, e.store, p.ID, name, func(m *serversync.Mailbox) { m.Password = auth.Secret{} }))
	}
	newSyncer := func() *serversync.Syncer {
		cfg := serversync.Config{Tick: 10 * time.Millisecond, ScanInterval: 20 * time.Millisecond, OutboxInterval: 20 * time.Millisecond,
			IdleConnections: -1, Now: e.clock.Now, Logger: testLogger(), OnEvent: e.onEvent}
		s, err := serversync.NewSyncer(e.store, standard.Connectors(&standard.Options{Logger: slog.New(slog.DiscardHandler)}), &cfg)
		require.NoError(t, err)
		return s
	}
	first := newSyncer()
	for _, m := range mailboxes {
		tested := testAndEnable(t, first, m)
		assert.Equal(t, serversync.TestSuccess, tested.IncomingStatus)
		assert.Equal(t, serversync.TestSuccess, tested.OutgoingStatus)
	}
	run(t, first)
	for _, m := range mailboxes {
		eventually(t, "tracked in "+m.Name, func() bool {
			return len(e.activities(t, serversync.ActivityFilter{MailboxID: m.ID, Direction: serversync.Incoming})) == 1
		})
	}
	sent, err := first.QueueEmail(ctx, &serversync.EmailActivity{MailboxID: mailboxes[0].ID,
		To: []serversync.Address{{Email: "ben@example.test"}}, Subject: "app-only sendMail"})
	require.NoError(t, err)
	eventually(t, "sent", func() bool {
		a, err := e.store.GetActivity(ctx, sent.ID)
		return err == nil && a.Status == serversync.StatusSent
	})
	assert.Len(t, x.graph.Messages("ann@example.test", "sentitems"), 1, "the server's Sent copy, and no other")
	assert.Equal(t, 1, x.entra.TokenRequests(), "one token for every mailbox, both directions, Test & Enable included")

	// Another process starts with an empty memory and finds the token in the store.
	second := newSyncer()
	run(t, second)
	_, err = x.graph.Deliver("cat@example.test", "inbox", message("dan@example.test", "cat@example.test", "again", "", "hi"), time.Now())
	require.NoError(t, err)
	eventually(t, "the new message tracked", func() bool {
		e.clock.Advance(time.Minute)
		return len(e.activities(t, serversync.ActivityFilter{MailboxID: mailboxes[2].ID, Direction: serversync.Incoming})) == 2
	})
	assert.Equal(t, 1, x.entra.TokenRequests(), "the second Syncer used the shared token")
}

// The owner of a profile whose certificate expires within
// CertificateExpiryWarning gets one Warning a day, until it is renewed.
func TestCertificateExpiryWarning(t *testing.T) {
	ctx := context.Background()
	e := newSyncEnv(t, nil)
	x := newS2SEnv(t, time.Now().Add(10*24*time.Hour), nil)
	p, err := e.admin.CreateProfile(ctx, x.profile("expiring"))
	require.NoError(t, err)
	x.graph.AddMailbox("ann@example.test", s2sTenant)
	m := approvedMailbox(t, e.admin, e.store, p.ID, "ann", func(m *serversync.Mailbox) { m.Password = auth.Secret{} })
	cfg := serversync.Config{Tick: 10 * time.Millisecond, ScanInterval: 20 * time.Millisecond, IdleConnections: -1,
		Now: e.clock.Now, Logger: testLogger(), OnEvent: e.onEvent}
	s, err := serversync.NewSyncer(e.store, standard.Connectors(&standard.Options{Logger: slog.New(slog.DiscardHandler)}), &cfg)
	require.NoError(t, err)
	testAndEnable(t, s, m)
	warnings := func() []*serversync.Alert {
		var found []*serversync.Alert
		for a, err := range e.store.ListAlerts(ctx, serversync.AlertFilter{ProfileID: p.ID, Level: serversync.AlertWarning}) {
			require.NoError(t, err)
			if a.Code == serversync.CodeCertificateExpiring {
				found = append(found, a)
			}
		}
		return found
	}
	run(t, s)
	eventually(t, "warned", func() bool { return len(warnings()) == 1 })
	w := warnings()[0]
	assert.Equal(t, "admin-user", w.Recipient, "the profile's owner")
	assert.Contains(t, w.Message, "expires on "+x.cert.Certificate.NotAfter.UTC().Format("2006-01-02"))
	assert.Contains(t, w.Message, "in 9 days", "whole days left")

	for range 10 { // polls within the day raise nothing more
		e.clock.Advance(5 * time.Minute)
		time.Sleep(20 * time.Millisecond)
	}
	assert.Len(t, warnings(), 1, "once a day")
	e.clock.Advance(24 * time.Hour)
	eventually(t, "warned again the next day", func() bool {
		e.clock.Advance(time.Second) // keep polls coming
		return len(warnings()) == 2
	})
}

// Saving a server-to-server profile checks its certificate the way the
// identity provider will.
func TestServerToServerCertificateChecks(t *testing.T) {
	ctx := context.Background()
	e := newSyncEnv(t, nil)
	x := newS2SEnv(t, time.Now().Add(time.Hour), nil)
	other, err := testcert.NewClientCert("other", 2048, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	require.NoError(t, err)
	expired, err := testcert.NewClientCert("expired", 2048, time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
	require.NoError(t, err)
	for _, tc := range []struct {
		name, field string
		change      func(*serversync.Profile)
	}{
		{"key of another certificate", "CertificateKey", func(p *serversync.Profile) { p.CertificateKey = auth.NewSecret(other.KeyPEM) }},
		{"expired certificate", "CertificatePEM", func(p *serversync.Profile) {
			p.CertificatePEM, p.CertificateKey = expired.CertPEM, auth.NewSecret(expired.KeyPEM)
		}},
		{"no key", "CertificateKey", func(p *serversync.Profile) { p.CertificateKey = auth.Secret{} }},
		{"garbage key", "CertificateKey", func(p *serversync.Profile) { p.CertificateKey = auth.NewSecret("not a key") }},
		{"basic authentication", "IncomingCredentialSource", func(p *serversync.Profile) {
			p.IncomingCredentialSource = serversync.CredentialsMailbox
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := x.profile("checked " + tc.name)
			tc.change(p)
			_, err := e.admin.CreateProfile(ctx, p)
			requireValidationError(t, err, "Profile", tc.field)
			for _, line := range strings.Split(x.cert.KeyPEM, "\n")[1:3] {
				assert.NotContains(t, err.Error(), line, "no key material in the error")
			}
		})
	}

	// Exchange Online needs no location: Graph is at one place for every tenant.
	p := x.profile("defaults")
	p.IncomingServer, p.OutgoingServer = "", ""
	saved, err := e.admin.CreateProfile(ctx, p)
	require.NoError(t, err)
	assert.Equal(t, serversync.GraphURLDefault, saved.IncomingServer)
	assert.Equal(t, serversync.GraphURLDefault, saved.OutgoingServer)
	assert.Equal(t, 443, saved.IncomingPort)
}

// ResolveTarget asks for the token of the resource each protocol talks to, at
// the tenant's token endpoint, and acts for the mailbox with it.
func TestResolveTargetServerToServer(t *testing.T) {
	ctx := context.Background()
	x := newS2SEnv(t, time.Now().Add(time.Hour), nil)
	settings := serversync.DefaultOrgSettings()
	settings.DefaultTenantID = s2sTenant
	mb := &serversync.Mailbox{ID: "m1", EmailAddress: "ann@example.test"}
	for _, tc := range []struct {
		name     string
		profile  func() *serversync.Profile
		audience string
	}{
		{"graph", func() *serversync.Profile { return x.profile("graph") }, "https://graph.microsoft.com"},
		{"imap with the org's tenant", func() *serversync.Profile {
			p := x.profile("imap")
			p.ServerType, p.IncomingServer, p.OutgoingServer = serversync.ServerTypeIMAPSMTP, "outlook.office365.com", "smtp.office365.com"
			p.OutgoingTLS = serversync.TLSStartTLS
			p.TenantID, p.UseDefaultTenantID = "", true
			p.IncomingCredentialSource = serversync.CredentialsServerToServer
			return p
		}, "https://outlook.office365.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.profile()
			serversync.NormalizeProfile(p)
			require.NoError(t, serversync.ValidateProfile(p, settings))
			for _, dir := range []serversync.Direction{serversync.Incoming, serversync.Outgoing} {
				target, err := serversync.ResolveTarget(ctx, p, mb, settings, dir)
				require.NoError(t, err)
				assert.Equal(t, auth.KindAppOnly, target.Credentials.Kind)
				assert.Equal(t, "ann@example.test", target.Credentials.Username, "XOAUTH2 user=<mailbox>, Graph /users/{mailbox}")
				token, err := target.Credentials.TokenSource.Token()
				require.NoError(t, err)
				claims, err := x.entra.VerifyAccessToken(token.AccessToken, tc.audience)
				require.NoError(t, err)
				assert.Equal(t, s2sTenant, claims.TenantID)
				assert.NotContains(t, target.Credentials.String(), token.AccessToken)
			}
		})
	}

	// A certificate the app registration does not know: the provider's refusal
	// says what to fix and concerns the whole profile.
	p := x.profile("unregistered")
	stranger, err := testcert.NewClientCert("stranger", 2048, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	require.NoError(t, err)
	p.CertificatePEM, p.CertificateKey = stranger.CertPEM, auth.NewSecret(stranger.KeyPEM)
	serversync.NormalizeProfile(p)
	target, err := serversync.ResolveTarget(ctx, p, mb, settings, serversync.Incoming)
	require.NoError(t, err)
	_, err = target.Credentials.TokenSource.Token()
	var refused *auth.TokenError
	require.ErrorAs(t, err, &refused)
	assert.Contains(t, refused.Description, "AADSTS700027")
}

// Deleting a profile deletes the app tokens shared for it.
func TestDeleteProfileForgetsAppTokens(t *testing.T) {
	ctx := context.Background()
	e := newSyncEnv(t, nil)
	x := newS2SEnv(t, time.Now().Add(time.Hour), nil)
	p, err := e.admin.CreateProfile(ctx, x.profile("short-lived"))
	require.NoError(t, err)
	tokens := e.store.(serversync.AppTokenStore)
	key := "s2s/" + p.ID + "/" + serversync.GraphScopeDefault + "#0123"
	_, err = tokens.PutAppToken(ctx, key, serversync.AppToken{AccessToken: auth.NewSecret("token"), TokenType: "Bearer", Expiry: time.Now().Add(time.Hour)})
	require.NoError(t, err)
	require.NoError(t, e.admin.DeleteProfile(ctx, p.ID))
	_, err = tokens.AppToken(ctx, key)
	require.ErrorIs(t, err, serversync.ErrNotFound)
}
