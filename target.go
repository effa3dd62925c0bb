package serversync

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"

	"golang.org/x/oauth2"

	"github.com/serversync/serversync/auth"
)

// ErrUnsupportedCredentials is returned for a credential source no connector of this
// library implements yet (server-to-server and Windows integrated authentication).
var ErrUnsupportedCredentials = errors.New("serversync: credential source not supported by the mail connectors")

// ResolveTarget turns a mailbox, its profile and the org settings into what a
// connector needs for one direction: the endpoint and the credentials the profile's
// credential source says to use. ctx is kept by the OAuth token source for refreshes.
func ResolveTarget(ctx context.Context, p *Profile, m *Mailbox, settings *OrgSettings, dir Direction) (*Target, error) {
	server, port, mode, source := p.IncomingServer, p.IncomingPort, p.IncomingTLS, p.credentialSource(dir)
	if dir == Outgoing {
		server, port, mode = p.OutgoingServer, p.OutgoingPort, p.OutgoingTLS
	}
	if p.AutoDiscover && m.DiscoveredServer != "" {
		server = m.DiscoveredServer
	}
	endpoint := Endpoint{
		Host:               hostOf(server),
		Port:               port,
		TLS:                mode,
		RootCAsPEM:         p.ExtraRootCAsPEM,
		Timeout:            p.ConnectionTimeout,
		AllowPlaintextAuth: settings.AllowCredentialsOverNonSecureChannels,
	}
	if endpoint.TLS == TLSDefault {
		endpoint.TLS = TLSImplicit
	}
	if endpoint.Timeout == 0 {
		endpoint.Timeout = ConnectionTimeoutDefault
	}
	login := m.Username
	if login == "" {
		login = m.EmailAddress
	}
	var creds auth.Credentials
	switch source {
	case CredentialsMailbox:
		creds = auth.Credentials{Kind: auth.KindPassword, Username: login, Password: m.Password}
	case CredentialsProfile:
		creds = auth.Credentials{Kind: auth.KindDelegation, Username: p.Username, Password: p.Password, Mailbox: m.EmailAddress}
		if p.UseImpersonation {
			creds.Kind, creds.Mailbox = auth.KindImpersonation, login
			creds.Impersonation, creds.MasterSeparator = p.ImpersonationStyle, p.MasterSeparator
		}
	case CredentialsOAuth:
		cfg := &oauth2.Config{
			ClientID:     p.ClientID,
			ClientSecret: p.ClientSecret.Reveal(),
			Endpoint:     oauth2.Endpoint{TokenURL: p.TokenURL},
			Scopes:       p.Scopes,
		}
		token := &oauth2.Token{
			AccessToken:  m.OAuthToken.AccessToken.Reveal(),
			RefreshToken: m.OAuthToken.RefreshToken.Reveal(),
			TokenType:    m.OAuthToken.TokenType,
			Expiry:       m.OAuthToken.Expiry,
		}
		creds = auth.Credentials{Kind: auth.KindOAuth, Username: login, TokenSource: cfg.TokenSource(ctx, token)}
	case CredentialsAnonymous:
		creds = auth.Credentials{Kind: auth.KindAnonymous}
	default:
		return nil, fmt.Errorf("%w: %s", ErrUnsupportedCredentials, source)
	}
	return &Target{
		ProfileID:    p.ID,
		MailboxID:    m.ID,
		EmailAddress: m.EmailAddress,
		Endpoint:     endpoint,
		Credentials:  creds,
	}, nil
}

// hostOf strips a port or URL down to the host name.
func hostOf(server string) string {
	if u, err := url.Parse(server); err == nil && u.Host != "" {
		return u.Hostname()
	}
	if h, _, err := net.SplitHostPort(server); err == nil {
		return h
	}
	return server
}
