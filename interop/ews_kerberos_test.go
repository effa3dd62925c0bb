package interop_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/ews"
	"github.com/serversync/serversync/connector/ews/ewstest"
	"github.com/serversync/serversync/connector/standard"
	"github.com/serversync/serversync/internal/mailtest"
)

// TestExchangeServerOverKerberos, end to end on the real MIT KDC and the EWS fake
// validating SPNEGO tokens with gokrb5's service side and the KDC's HTTP/ keys
// (the fake takes no Basic at all): two Exchange Server profiles with
// AutoDiscover, one with WindowsIntegrated credentials (the process's keytab in
// Config.Kerberos) and one whose service account logs in with its Kerberos
// password (Profile credentials, UseImpersonation, AuthProtocol Negotiate). Test &
// Enable passes, a delivered message is tracked once however often the mailbox is
// polled, and an email queued for the mailbox is sent through EWS, every request
// by the service account impersonating the mailbox.
func TestExchangeServerOverKerberos(t *testing.T) {
	krb := mailtest.LoadKerberos(t)
	srv, err := ewstest.NewServer(&ewstest.Options{Keytab: krb.HTTPKeytab})
	require.NoError(t, err)
	defer srv.Close()
	// The Autodiscover JSON endpoint is anonymous; it answers the EWS URL on
	// 127.0.0.1, whose HTTP/ key the fake holds.
	srv.SetAutodiscover("example.test", ewstest.AutodiscoverConfig{JSON: true})
	srv.AddUser(krb.ServiceAccount, "", "") // Kerberos only: no password Basic could use
	srv.AllowImpersonation(krb.ServiceAccount, "*")

	h := newStoreHarness(t)
	integrated := h.exchangeProfile(t, srv, "Windows-integrated", func(p *serversync.Profile) {
		p.IncomingCredentialSource = serversync.CredentialsWindowsIntegrated
	})
	negotiate := h.exchangeProfile(t, srv, "service account over Negotiate", func(p *serversync.Profile) {
		p.IncomingCredentialSource, p.UseImpersonation = serversync.CredentialsProfile, true
		p.AuthProtocol = serversync.AuthNegotiate
		p.Username, p.Password = krb.ServiceAccount, auth.NewSecret(krb.Password(krb.ServiceAccount))
	})
	boxes := []*serversync.Mailbox{
		h.exchangeMailbox(t, srv, "integrated@example.test", integrated),
		h.exchangeMailbox(t, srv, "negotiate@example.test", negotiate),
	}
	delivered := map[string]string{} // mailbox ID → Message-ID
	for _, m := range boxes {
		delivered[m.ID] = serversync.NewID() + "@interop.serversync.test"
		raw := fmt.Sprintf("From: <dave@example.test>\r\nTo: <%s>\r\nSubject: order for %s\r\nMessage-ID: <%s>\r\n\r\nhello\r\n",
			m.EmailAddress, m.Name, delivered[m.ID])
		_, err := srv.Deliver(m.EmailAddress, "inbox", []byte(raw), time.Now())
		require.NoError(t, err)
	}

	client := srv.Client()
	defer client.CloseIdleConnections()
	conns := standard.Connectors(&standard.Options{EWS: &ews.Options{HTTPClient: client}, Logger: h.log})
	s, err := serversync.NewSyncer(h.store, conns, &serversync.Config{
		Kerberos: krb.ServiceConfig(), Tick: 10 * time.Millisecond, ScanInterval: 20 * time.Millisecond,
		OutboxInterval: 20 * time.Millisecond, IdleConnections: -1, Now: h.clock.Now, Logger: h.log, OnEvent: h.record,
	})
	require.NoError(t, err)
	h.testAndEnable(t, s, boxes...)
	for _, m := range boxes {
		assert.Equal(t, srv.EWSURL(), h.getMailbox(t, m.ID).DiscoveredServer, "AutoDiscover found the fake")
	}
	h.run(t, s)

	ids := []string{boxes[0].ID, boxes[1].ID}
	for _, m := range boxes {
		tracked := h.waitTracked(t, m.ID, delivered[m.ID])
		assert.Equal(t, "order for "+m.Name, tracked.Subject)
	}
	again := h.pollAgain(t, ids...)
	for _, m := range boxes {
		h.waitSynced(t, m.ID, again)
		assert.Len(t, h.activities(t, serversync.ActivityFilter{MailboxID: m.ID, Direction: serversync.Incoming}), 1,
			"polling again tracks nothing twice")
	}
	for _, m := range boxes {
		queued, err := s.QueueEmail(context.Background(), &serversync.EmailActivity{
			MailboxID: m.ID, To: []serversync.Address{{Email: "dave@example.test"}},
			Subject: "answer from " + m.Name, TextBody: "Sent with a Kerberos ticket.",
		})
		require.NoError(t, err)
		h.waitSent(t, queued.ID)
		require.Len(t, srv.Messages(m.EmailAddress, "sentitems"), 1, "Exchange sent it and kept the copy")
		assert.Contains(t, srv.Messages(m.EmailAddress, "sentitems")[0].Subject, "answer from "+m.Name)
	}
	require.Len(t, srv.Sent(), len(boxes))

	ops := map[string]int{}
	for _, r := range srv.Requests() {
		ops[r.Op]++
		assert.Equal(t, "Negotiate", r.Auth, r.Op)
		assert.Equal(t, krb.ServiceAccount, r.Login, "the service account's ticket")
		assert.Contains(t, []string{boxes[0].EmailAddress, boxes[1].EmailAddress}, r.Impersonated, "every request impersonates its mailbox")
	}
	assert.Positive(t, ops["SyncFolderItems"])
	assert.Equal(t, len(boxes), ops["CreateItem"])
}

// exchangeProfile stores an Exchange Server profile with AutoDiscover, trusting
// the fake's certificate; configure sets its credentials.
func (h *harness) exchangeProfile(t *testing.T, srv *ewstest.Server, name string, configure func(*serversync.Profile)) *serversync.Profile {
	t.Helper()
	p := &serversync.Profile{
		Name: name, Owner: "admin-user", ServerType: serversync.ServerTypeExchangeServer, AutoDiscover: true,
		ExtraRootCAsPEM: srv.RootCAsPEM(), ConnectionTimeout: 20 * time.Second,
	}
	configure(p)
	p, err := h.admin.CreateProfile(context.Background(), p)
	require.NoError(t, err)
	return p
}

// exchangeMailbox makes address's mailbox in the fake and stores it approved.
func (h *harness) exchangeMailbox(t *testing.T, srv *ewstest.Server, address string, p *serversync.Profile) *serversync.Mailbox {
	t.Helper()
	srv.AddMailbox(address)
	ctx := context.Background()
	m, err := h.admin.CreateMailbox(ctx, &serversync.Mailbox{
		Name: address, EmailAddress: address, ProfileID: p.ID, Owner: "owner-" + address,
		Regarding:      serversync.Regarding{Type: serversync.RegardingUser, ID: "user-" + address},
		IncomingFilter: serversync.FilterAll,
	})
	require.NoError(t, err)
	require.NoError(t, h.admin.Approve(ctx, "admin-user", m.ID))
	return h.getMailbox(t, m.ID)
}
