package serversync

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/oauth2"

	"github.com/serversync/serversync/auth"
)

// ErrUnsupportedCredentials is returned for a credential source no connector of this
// library implements.
var ErrUnsupportedCredentials = errors.New("serversync: credential source not supported by the mail connectors")

// ResolveTarget turns a mailbox, its profile and the org settings into what a
// connector needs for one direction: the endpoint and the credentials the profile's
// credential source says to use. ctx is kept by the OAuth token source for refreshes.
//
// The security rules are checked here, against the settings as they are now, and
// not only when the profile was saved: a profile saved with TLS off while the
// organisation allowed it is refused once AllowNonSSLEmail is turned off (code
// [CodeTLSRequiredByOrg]), as are credentials that would travel unencrypted without
// AllowCredentialsOverNonSecureChannels ([CodePlaintextAuthRefused]). The error is a
// permanent, profile-scoped *ConnectorError wrapping [ErrConnectionForbidden] that
// names the profile field and the org setting to change; nothing is sent anywhere.
//
// WindowsIntegrated credentials are the process's own Kerberos identity, found as MIT
// Kerberos finds it (KRB5_CLIENT_KTNAME, KRB5CCNAME, KRB5_CONFIG); the Syncer uses
// its Config.Kerberos instead. Without one the error wraps auth.ErrNoKerberosIdentity.
func ResolveTarget(ctx context.Context, p *Profile, m *Mailbox, settings *OrgSettings, dir Direction) (*Target, error) {
	return resolveTarget(ctx, p, m, settings, dir, nil, func(cfg *auth.AppTokenConfig, _ string) oauth2.TokenSource {
		return cfg.TokenSource(ctx)
	})
}

// resolveTarget is ResolveTarget with the token source of server-to-server
// credentials made by appToken, from the request and the key it is shared under, and
// Kerberos where the realm and the process's own identity are (nil: MIT's defaults).
func resolveTarget(ctx context.Context, p *Profile, m *Mailbox, settings *OrgSettings, dir Direction,
	kerberos *auth.KerberosConfig, appToken func(cfg *auth.AppTokenConfig, key string) oauth2.TokenSource) (*Target, error) {
	if settings == nil {
		settings = DefaultOrgSettings()
	}
	if c := connectConflict(p, settings, dir); c != nil {
		return nil, c.err()
	}
	server, port, mode, source := p.IncomingServer, p.IncomingPort, p.IncomingTLS, p.credentialSource(dir)
	if dir == Outgoing {
		server, port, mode = p.OutgoingServer, p.OutgoingPort, p.OutgoingTLS
	}
	if p.AutoDiscover && m.DiscoveredServer != "" {
		server = m.DiscoveredServer
	}
	if dir == ACT && p.usesACTServerURL() {
		server, port, mode = p.ACTServerURL, portOf(p.ACTServerURL, 0), p.actTLS()
		if port == 0 {
			port = map[bool]int{true: 443, false: 80}[mode.UsesTLS()]
		}
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
	protocol := p.IncomingProtocol()
	if dir == Outgoing {
		protocol = p.OutgoingProtocol()
	}
	if protocol == "graph" || protocol == "ews" {
		endpoint.URL = baseURL(server, endpoint)
	}
	if dir == ACT && p.usesACTServerURL() {
		endpoint.URL = p.ACTServerURL
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
	case CredentialsServerToServer:
		cfg, key, err := appTokenConfig(p, settings, dir)
		if err != nil {
			return nil, err
		}
		creds = auth.Credentials{Kind: auth.KindAppOnly, Username: m.EmailAddress, TokenSource: appToken(cfg, key)}
	case CredentialsAnonymous:
		creds = auth.Credentials{Kind: auth.KindAnonymous}
	case CredentialsWindowsIntegrated:
		// The process's own identity acts for the mailbox; the profile's Username,
		// when set, names the principal in the keytab.
		if err := kerberos.CheckIdentity(); err != nil {
			return nil, &ConnectorError{Op: "credentials", Kind: ErrorPermanent, Scope: ScopeProfile, Code: CodeUnsupportedCredentials,
				Err: fmt.Errorf("%w: %w", ErrUnsupportedCredentials, err)}
		}
		creds = auth.Credentials{Kind: auth.KindIntegrated, Username: p.Username, Mailbox: m.EmailAddress}
	default:
		return nil, &ConnectorError{Op: "credentials", Kind: ErrorPermanent, Scope: ScopeProfile, Code: CodeUnsupportedCredentials,
			Err: fmt.Errorf("%w: %s", ErrUnsupportedCredentials, source)}
	}
	creds.Protocol, creds.Kerberos = auth.ParseProtocol(string(p.AuthProtocol)), kerberos
	return &Target{
		ProfileID:    p.ID,
		MailboxID:    m.ID,
		EmailAddress: m.EmailAddress,
		Endpoint:     endpoint,
		Credentials:  creds,
	}, nil
}

// baseURL is the URL of an HTTP API at server: server itself when it is a URL,
// else https:// (http:// with TLS off) and the host and port.
func baseURL(server string, e Endpoint) string {
	if u, err := url.Parse(server); err == nil && u.Host != "" {
		return strings.TrimSuffix(u.String(), "/")
	}
	scheme := "https"
	if !e.TLS.UsesTLS() {
		scheme = "http"
	}
	return (&url.URL{Scheme: scheme, Host: net.JoinHostPort(e.Host, strconv.Itoa(e.Port))}).String()
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

// ErrConnectionForbidden is wrapped by the error ResolveTarget returns for a
// profile that the current security settings forbid to connect.
var ErrConnectionForbidden = errors.New("serversync: connection forbidden by the security settings")

// ProfileConflict is a saved profile that the org settings (or its server type)
// forbid to connect in one direction, and what to change about it.
type ProfileConflict struct {
	ProfileID string
	Name      string // the profile's name
	Direction Direction
	Field     string // the profile field at fault: "IncomingTLS" or "OutgoingTLS"
	Setting   string // the org setting that would allow it ("AllowNonSSLEmail", …), "" when none can
	Code      string // CodeTLSRequiredByOrg, CodeTLSRequired or CodePlaintextAuthRefused
	Reason    string // what is wrong and how to fix it, for a person
}

// ProfileConflicts returns the rules of settings that p breaks, at most one per
// direction: a profile listed here cannot connect in that direction until the
// profile or the settings change. Call NormalizeProfile first.
func ProfileConflicts(p *Profile, settings *OrgSettings) []ProfileConflict {
	if settings == nil {
		settings = DefaultOrgSettings()
	}
	var conflicts []ProfileConflict
	for _, dir := range []Direction{Incoming, Outgoing, ACT} {
		if dir == ACT && !p.usesACTServerURL() {
			continue // ACT goes to the incoming server, checked already
		}
		if c := connectConflict(p, settings, dir); c != nil {
			conflicts = append(conflicts, *c)
		}
	}
	return conflicts
}

// connectConflict is the one place the TLS and plaintext-credential rules live:
// saving a profile (ValidateProfile), connecting (ResolveTarget) and changing the
// org settings (Admin.UpdateOrgSettings) all ask it.
func connectConflict(p *Profile, settings *OrgSettings, dir Direction) *ProfileConflict {
	mode, field := p.IncomingTLS, "IncomingTLS"
	what, fix := field+" is None", fmt.Sprintf("set the profile's %s to Implicit or STARTTLS", field)
	switch {
	case dir == Outgoing:
		mode, field = p.OutgoingTLS, "OutgoingTLS"
		what, fix = field+" is None", fmt.Sprintf("set the profile's %s to Implicit or STARTTLS", field)
	case dir == ACT && p.usesACTServerURL():
		mode, field = p.actTLS(), "ACTServerURL"
		what, fix = "ACTServerURL is an http:// URL", "use an https:// ACTServerURL"
	}
	if mode != TLSNone {
		return nil
	}
	c := &ProfileConflict{ProfileID: p.ID, Name: p.Name, Direction: dir, Field: field}
	source := p.credentialSource(dir)
	switch {
	case p.ServerType.IsExchangeOnline():
		c.Code = CodeTLSRequired
		c.Reason = fmt.Sprintf("%s is None, but Exchange Online always needs TLS: set %s to Implicit", field, field)
	case !settings.AllowNonSSLEmail:
		c.Code, c.Setting = CodeTLSRequiredByOrg, "AllowNonSSLEmail"
		c.Reason = fmt.Sprintf("%s (no encryption), which the organisation setting AllowNonSSLEmail does not allow: "+
			"%s, or turn AllowNonSSLEmail on", what, fix)
	case source != CredentialsAnonymous && !settings.AllowCredentialsOverNonSecureChannels:
		c.Code, c.Setting = CodePlaintextAuthRefused, "AllowCredentialsOverNonSecureChannels"
		c.Reason = fmt.Sprintf("%s, so the %s credentials would be sent unencrypted, which the organisation setting "+
			"AllowCredentialsOverNonSecureChannels does not allow: %s, "+
			"or turn AllowCredentialsOverNonSecureChannels on", what, source, fix)
	default:
		return nil
	}
	return c
}

// err is the error ResolveTarget returns for c: permanent and profile-scoped, as
// every mailbox of the profile is refused alike.
func (c *ProfileConflict) err() error {
	return &ConnectorError{Op: "connect", Kind: ErrorPermanent, Scope: ScopeProfile, Code: c.Code,
		Err: fmt.Errorf("%w: profile %q: %s", ErrConnectionForbidden, c.Name, c.Reason)}
}
