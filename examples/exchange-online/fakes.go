package main

import (
	"fmt"
	"io"
	"time"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/auth/aadtest"
	"github.com/serversync/serversync/connector/graph/graphtest"
	"github.com/serversync/serversync/internal/testcert"
)

// The fake tenant and its app registration.
const (
	fakeTenantID = "6f1c2a4e-0b7d-4c55-9a31-2d8e5f3b7c10"
	fakeDomain   = "contoso.test"
	fakeClientID = "3e9d1b52-7a40-4f0e-8c6b-91d2a5e4f7a8"
	alice        = "alice@" + fakeDomain
	bob          = "bob@" + fakeDomain
)

// fakes are the identity provider and the Graph server of the fakes mode.
type fakes struct {
	aad   *aadtest.Server
	graph *graphtest.Server
}

// inboxSample is what the fake delivers to alice before the sync.
var inboxSample = []struct{ from, subject, body string }{
	{"carol@fabrikam.test", "Quote request for 40 chairs", "Hello Alice,\r\n\r\ncould you send us a quote for 40 office chairs?\r\n\r\nCarol\r\n"},
	{"dave@northwind.test", "Invoice INV-2291", "Hi,\r\n\r\nplease find our invoice INV-2291 attached.\r\n"},
	{"erin@fabrikam.test", "Re: Delivery date", "Thursday works for us.\r\n"},
}

// startFakes starts the fake Entra ID and Graph, registers the app and seeds
// alice's inbox, and describes the profile and mailboxes that use them.
func startFakes(out io.Writer) (*setup, error) {
	aad, err := aadtest.NewServer(nil)
	if err != nil {
		return nil, fmt.Errorf("start the fake Entra ID: %w", err)
	}
	// The app registration: a certificate (its key never leaves this process; the
	// token endpoint only ever sees the public certificate) and two application
	// permissions with admin consent.
	cc, err := testcert.NewClientCert("serversync-exchange-online-example", 2048, time.Now().Add(-time.Hour), time.Now().AddDate(1, 0, 0))
	if err != nil {
		aad.Close()
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	aad.AddTenant(fakeTenantID, fakeDomain)
	aad.RegisterApp(fakeTenantID, fakeClientID, cc.Certificate, "Mail.ReadWrite", "Mail.Send")

	// Graph trusts what the identity provider signed, for its own audience only,
	// and lets the app act on the mailboxes of its tenant with its roles.
	srv, err := graphtest.NewServer(&graphtest.Options{
		Authenticate: graphtest.EntraAuthenticator(aad),
	})
	if err != nil {
		aad.Close()
		return nil, fmt.Errorf("start the fake Graph: %w", err)
	}
	srv.AddMailbox(alice, fakeTenantID)
	srv.AddMailbox(bob, fakeTenantID)
	received := time.Now().Add(-time.Hour)
	for i, m := range inboxSample {
		mime := fmt.Appendf(nil, "From: <%s>\r\nTo: Alice <%s>\r\nSubject: %s\r\nMessage-ID: <sample-%d@%s>\r\nDate: %s\r\n"+
			"Content-Type: text/plain; charset=utf-8\r\n\r\n%s",
			m.from, alice, m.subject, i+1, "example.test", received.Format(time.RFC1123Z), m.body)
		if _, err := srv.Deliver(alice, "inbox", mime, received.Add(time.Duration(i)*time.Minute)); err != nil {
			srv.Close()
			aad.Close()
			return nil, fmt.Errorf("seed the fake Graph: %w", err)
		}
	}
	fmt.Fprintf(out, "entra id  %s (fake): tenant %s (%s), app %s with Mail.ReadWrite and Mail.Send\n",
		aad.URL(), fakeTenantID, fakeDomain, fakeClientID)
	fmt.Fprintf(out, "graph     %s (fake): mailboxes %s and %s, %d messages in %s's inbox\n",
		srv.URL(), alice, bob, len(inboxSample), alice)

	user := func(name, address string) *serversync.Mailbox {
		return &serversync.Mailbox{Name: name, EmailAddress: address,
			Regarding: serversync.Regarding{Type: serversync.RegardingUser, ID: "user-" + name},
			// A user mailbox tracks only responses to CRM email by default, and
			// nothing here was sent by the CRM before the sync: track all mail so the
			// seeded messages show up.
			IncomingFilter: serversync.FilterAll}
	}
	return &setup{
		profile: &serversync.Profile{
			Name:        "Contoso Exchange Online (fake)",
			Description: "The example's fake Entra ID and Graph",
			Owner:       "user-admin",
			ServerType:  serversync.ServerTypeExchangeOnline,
			// Server-to-server: the app's own token, one for every mailbox of the
			// profile (no mailbox passwords or per-user tokens).
			IncomingCredentialSource: serversync.CredentialsServerToServer,
			OutgoingCredentialSource: serversync.CredentialsServerToServer,
			TenantID:                 fakeTenantID,
			ClientID:                 fakeClientID,
			CertificatePEM:           cc.CertPEM,
			CertificateKey:           auth.NewSecret(cc.KeyPEM),
			// Where a real profile leaves these empty: https://graph.microsoft.com and
			// https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token.
			IncomingServer: srv.URL(),
			OutgoingServer: srv.URL(),
			TokenURL:       aad.URL() + "/{tenant}/oauth2/v2.0/token",
			// The fakes' own CAs, trusted on top of the system roots: TLS stays verified.
			ExtraRootCAsPEM: aad.RootCAsPEM() + srv.RootCAsPEM(),
		},
		mailboxes: []*serversync.Mailbox{user("alice", alice), user("bob", bob)},
		from:      alice,
		to:        bob,
		fakes:     &fakes{aad: aad, graph: srv},
		close: func() {
			srv.Close()
			aad.Close()
		},
	}, nil
}
