package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/emersion/go-sasl"
	"golang.org/x/oauth2"
)

// Kind is how a connection authenticates.
type Kind string

// Credential kinds. Which one a mailbox uses follows from its profile's credential
// source (see serversync.ResolveTarget).
const (
	// KindPassword: log in as the mailbox's own user with its password.
	KindPassword Kind = "Password"
	// KindImpersonation: a service account logs in *for* the mailbox, either as the
	// SASL authorization identity or with a master-user login ("user*master").
	KindImpersonation Kind = "Impersonation"
	// KindDelegation: a service account logs in as itself and opens the mailbox it was
	// granted (IMAP other-users/shared namespace).
	KindDelegation Kind = "Delegation"
	// KindOAuth: a bearer token from TokenSource (SASL XOAUTH2 or OAUTHBEARER).
	KindOAuth Kind = "OAuth"
	// KindAppOnly: an application's own token from TokenSource (server-to-server
	// authentication), acting for the mailbox named in Username: SASL XOAUTH2 or
	// OAUTHBEARER with user=<mailbox>, or Graph's /users/{mailbox} rather than /me.
	KindAppOnly Kind = "AppOnly"
	// KindAnonymous: no authentication (SMTP relays only).
	KindAnonymous Kind = "Anonymous"
	// KindIntegrated: Windows-integrated authentication, as the process's own
	// Kerberos identity (a keytab or credential cache, see KerberosConfig) — what a
	// Windows service running as a service account would use. Mailbox is the mailbox
	// acted for; Username, when set, picks the principal in the keytab.
	KindIntegrated Kind = "WindowsIntegrated"
)

// ImpersonationStyle is how a service account logs in for another mailbox.
type ImpersonationStyle string

// Impersonation styles. The zero value is ImpersonateAuthzID.
const (
	// ImpersonateAuthzID sends the mailbox as the SASL PLAIN authorization identity.
	ImpersonateAuthzID ImpersonationStyle = ""
	// ImpersonateMasterUser logs in as "<mailbox><separator><service account>", the
	// form Dovecot master users accept.
	ImpersonateMasterUser ImpersonationStyle = "MasterUser"
)

// MasterSeparatorDefault joins mailbox and master user in a master-user login.
const MasterSeparatorDefault = "*"

// ErrMechanismUnavailable is returned when the server offers no mechanism the
// credentials can use.
var ErrMechanismUnavailable = errors.New("auth: the server offers no usable authentication mechanism")

// Credentials are resolved, ready-to-use login data for one connection. They never
// print secrets. Safe to copy; the TokenSource must be safe for concurrent use.
type Credentials struct {
	Kind     Kind
	Username string // the identity that authenticates: the user, or the service account
	Password Secret
	// Mailbox is the mailbox acted for with impersonation, or the mailbox opened in
	// the shared namespace with delegation.
	Mailbox         string
	Impersonation   ImpersonationStyle
	MasterSeparator string // "" means MasterSeparatorDefault
	// TokenSource yields OAuth access tokens, refreshing them as needed (KindOAuth,
	// KindAppOnly).
	TokenSource oauth2.TokenSource
	// Protocol restricts the mechanisms these credentials may use (the profile's
	// AuthProtocol); ProtocolAuto lets the server's offer decide.
	Protocol Protocol
	// Kerberos is where the realm's configuration and, for KindIntegrated, the
	// process's identity are; nil means MIT's environment defaults. With Protocol
	// Auto, password credentials try Kerberos (GSSAPI, Negotiate) only when it is set.
	Kerberos *KerberosConfig
}

// String describes the credentials without their secrets.
func (c Credentials) String() string {
	return fmt.Sprintf("auth.Credentials{Kind: %s, Username: %q, Mailbox: %q, Password: %s, Protocol: %q}",
		c.Kind, c.Username, c.Mailbox, c.Password, c.Protocol)
}

// GoString keeps %#v from printing the fields one by one.
func (c Credentials) GoString() string { return c.String() }

// LoginName is the user name for a plain LOGIN/USER command: the user itself, or the
// master-user form for impersonation.
func (c Credentials) LoginName() string {
	if c.Kind == KindImpersonation && c.Impersonation == ImpersonateMasterUser {
		return c.Mailbox + cmpOr(c.MasterSeparator, MasterSeparatorDefault) + c.Username
	}
	return c.Username
}

// CanUsePlainLogin reports whether a LOGIN/USER+PASS command can carry these
// credentials (it cannot carry an authorization identity or a token).
func (c Credentials) CanUsePlainLogin() bool {
	if c.Protocol != ProtocolAuto && c.Protocol != ProtocolBasic {
		return false
	}
	switch c.Kind {
	case KindPassword, KindDelegation:
		return true
	case KindImpersonation:
		return c.Impersonation == ImpersonateMasterUser
	}
	return false
}

// SASLClient picks the best mechanism among those the server offers for these
// credentials and returns it with a ready client. OAuth tokens are fetched (and
// refreshed) here, so ctx bounds the token request. It never picks GSSAPI, which
// needs the server's name: see SASLClientFor.
func (c Credentials) SASLClient(ctx context.Context, offered []string) (string, sasl.Client, error) {
	return c.SASLClientFor(ctx, "", "", offered)
}

// SASLClientFor is SASLClient for a connection to host, whose Kerberos service
// name is service ("imap", "smtp", "pop"): with it GSSAPI (RFC 4752) is possible.
// GSSAPI is chosen when Protocol is Negotiate, or Auto with a Kerberos identity
// (KindIntegrated, or a Kerberos configuration set on password credentials) and the
// server offers it; the KDC is asked for tickets here. Protocol Negotiate never falls
// back to a password mechanism, and Basic never tries Kerberos.
func (c Credentials) SASLClientFor(ctx context.Context, service, host string, offered []string) (string, sasl.Client, error) {
	has := func(mech string) bool {
		return slices.ContainsFunc(offered, func(m string) bool { return strings.EqualFold(m, mech) })
	}
	kerberos := c.Kind == KindIntegrated || c.Protocol == ProtocolNegotiate ||
		c.Protocol == ProtocolAuto && c.Kerberos != nil
	switch c.Kind {
	case KindPassword, KindDelegation, KindImpersonation, KindIntegrated:
		authzid := ""
		if c.Kind == KindImpersonation && c.Impersonation == ImpersonateAuthzID || c.Kind == KindIntegrated {
			authzid = c.Mailbox
		}
		if c.Kind == KindImpersonation && c.Impersonation == ImpersonateMasterUser {
			authzid = c.Mailbox // GSSAPI has no master-user form; the principal acts for the mailbox
		}
		if kerberos && service != "" && has(GSSAPI) && c.Protocol != ProtocolBasic && c.Protocol != ProtocolNTLM {
			client, err := c.newGSSAPIClient(ctx, service, host, authzid)
			if err != nil {
				return "", nil, err
			}
			return GSSAPI, client, nil
		}
		if c.Kind == KindIntegrated || c.Protocol == ProtocolNegotiate || c.Protocol == ProtocolNTLM {
			break // no password mechanism for these
		}
		if c.Kind == KindImpersonation && c.Impersonation == ImpersonateMasterUser {
			authzid = ""
		}
		if has(sasl.Plain) {
			return sasl.Plain, sasl.NewPlainClient(authzid, c.LoginName(), c.Password.Reveal()), nil
		}
		if has(sasl.Login) && authzid == "" {
			return sasl.Login, sasl.NewLoginClient(c.LoginName(), c.Password.Reveal()), nil
		}
	case KindOAuth, KindAppOnly:
		if c.TokenSource == nil {
			return "", nil, errors.New("auth: OAuth credentials without a token source")
		}
		if !has(sasl.OAuthBearer) && !has(Xoauth2) {
			break
		}
		// Straight from the source: it caches, and oauth2.ReuseTokenSource would
		// write to the token it returns, which a shared source hands to every caller.
		token, err := contextTokenSource{ctx, c.TokenSource}.Token()
		if err != nil {
			return "", nil, fmt.Errorf("auth: get OAuth token: %w", err)
		}
		if has(Xoauth2) { // the one Google and Microsoft implement
			return Xoauth2, NewXoauth2Client(c.Username, token.AccessToken), nil
		}
		return sasl.OAuthBearer, sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{
			Username: c.Username, Token: token.AccessToken,
		}), nil
	case KindAnonymous:
		return "", nil, nil
	}
	return "", nil, fmt.Errorf("%w for %s credentials with protocol %s (offered: %s)", ErrMechanismUnavailable,
		c.Kind, cmpOr(string(c.Protocol), "Auto"), strings.Join(offered, " "))
}

// contextTokenSource lets a token refresh honour the caller's context when the
// underlying source supports it (the oauth2 package's sources take it at creation).
type contextTokenSource struct {
	ctx context.Context
	ts  oauth2.TokenSource
}

func (s contextTokenSource) Token() (*oauth2.Token, error) {
	if err := s.ctx.Err(); err != nil {
		return nil, err
	}
	return s.ts.Token()
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
