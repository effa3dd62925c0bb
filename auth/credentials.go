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
}

// String describes the credentials without their secrets.
func (c Credentials) String() string {
	return fmt.Sprintf("auth.Credentials{Kind: %s, Username: %q, Mailbox: %q, Password: %s}",
		c.Kind, c.Username, c.Mailbox, c.Password)
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
// refreshed) here, so ctx bounds the token request.
func (c Credentials) SASLClient(ctx context.Context, offered []string) (string, sasl.Client, error) {
	has := func(mech string) bool {
		return slices.ContainsFunc(offered, func(m string) bool { return strings.EqualFold(m, mech) })
	}
	switch c.Kind {
	case KindPassword, KindDelegation, KindImpersonation:
		authzid := ""
		if c.Kind == KindImpersonation && c.Impersonation == ImpersonateAuthzID {
			authzid = c.Mailbox
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
	return "", nil, fmt.Errorf("%w for %s credentials (offered: %s)", ErrMechanismUnavailable, c.Kind, strings.Join(offered, " "))
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
