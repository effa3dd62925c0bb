package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
)

// realTenant describes the profile and mailbox the flags name, on Microsoft's
// own endpoints.
func realTenant(o options) (*setup, error) {
	var missing []string
	for _, f := range []struct{ name, value string }{
		{"-tenant", o.tenant}, {"-client-id", o.clientID}, {"-cert", o.certFile}, {"-key", o.keyFile}, {"-mailbox", o.mailbox},
	} {
		if f.value == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("a real tenant needs %s too (or no flags at all, for the fakes)", strings.Join(missing, ", "))
	}
	if !strings.Contains(o.mailbox, "@") {
		return nil, fmt.Errorf("-mailbox %q is not an email address", o.mailbox)
	}
	certPEM, err := os.ReadFile(o.certFile)
	if err != nil {
		return nil, fmt.Errorf("-cert: %w", err)
	}
	keyPEM, err := os.ReadFile(o.keyFile)
	if err != nil {
		return nil, fmt.Errorf("-key: %w", err)
	}
	key := auth.NewSecret(string(keyPEM))
	if _, err := auth.ParseClientCertificate(string(certPEM), key); err != nil {
		if errors.Is(err, auth.ErrCertificateKeyMismatch) {
			return nil, errors.New("-key is not the private key of -cert")
		}
		return nil, fmt.Errorf("-cert/-key: %w", err)
	}
	local := o.mailbox[:strings.IndexByte(o.mailbox, '@')]
	return &setup{
		profile: &serversync.Profile{
			Name:       "Exchange Online " + o.tenant,
			Owner:      "user-admin",
			ServerType: serversync.ServerTypeExchangeOnline,
			// Servers and token endpoint left empty: https://graph.microsoft.com and
			// https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token.
			IncomingCredentialSource: serversync.CredentialsServerToServer,
			OutgoingCredentialSource: serversync.CredentialsServerToServer,
			TenantID:                 o.tenant,
			ClientID:                 o.clientID,
			CertificatePEM:           string(certPEM),
			CertificateKey:           key,
			IncomingServer:           o.graphURL,
			OutgoingServer:           o.graphURL,
			TokenURL:                 o.tokenURL,
			ExtraRootCAsPEM:          o.extraRootCAs,
		},
		mailboxes: []*serversync.Mailbox{{
			Name: local, EmailAddress: o.mailbox,
			Regarding: serversync.Regarding{Type: serversync.RegardingUser, ID: "user-" + local},
			// A user mailbox tracks only responses to CRM email by default; this
			// example tracks all of it, but only the last day's.
			IncomingFilter:   serversync.FilterAll,
			ProcessEmailFrom: time.Now().Add(-24 * time.Hour),
		}},
		from:  o.mailbox,
		to:    o.to,
		close: func() {},
	}, nil
}
