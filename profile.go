package serversync

import (
	"strings"
	"time"

	"github.com/serversync/serversync/auth"
)

// ServerType is the kind of mail system a [Profile] reaches.
type ServerType string

// The server types of DESIGN §2.
const (
	ServerTypeExchangeOnline       ServerType = "ExchangeOnline"       // Microsoft Graph
	ServerTypeExchangeOnlineHybrid ServerType = "ExchangeOnlineHybrid" // server-to-server auth: certificate + tenant
	ServerTypeExchangeServer       ServerType = "ExchangeServer"       // on-premises EWS
	ServerTypeIMAPSMTP             ServerType = "IMAPSMTP"
	ServerTypePOP3SMTP             ServerType = "POP3SMTP"
)

// IsExchange reports whether t is one of the Exchange types (the ones with AutoDiscover,
// Windows integrated authentication and HTTPS locations).
func (t ServerType) IsExchange() bool {
	return t == ServerTypeExchangeOnline || t == ServerTypeExchangeOnlineHybrid || t == ServerTypeExchangeServer
}

// IsExchangeOnline reports whether t is hosted Exchange, for which TLS can never be turned off.
func (t ServerType) IsExchangeOnline() bool {
	return t == ServerTypeExchangeOnline || t == ServerTypeExchangeOnlineHybrid
}

func (t ServerType) valid() bool {
	switch t {
	case ServerTypeExchangeOnline, ServerTypeExchangeOnlineHybrid, ServerTypeExchangeServer,
		ServerTypeIMAPSMTP, ServerTypePOP3SMTP:
		return true
	}
	return false
}

// CredentialSource says whose credentials a profile's connections use.
type CredentialSource string

// The credential sources of DESIGN §2.
const (
	CredentialsMailbox           CredentialSource = "Mailbox"           // each mailbox's own username/password
	CredentialsProfile           CredentialSource = "Profile"           // the profile's service account
	CredentialsServerToServer    CredentialSource = "ServerToServer"    // Exchange Online hybrid: certificate + tenant
	CredentialsWindowsIntegrated CredentialSource = "WindowsIntegrated" // Exchange and SMTP only
	CredentialsAnonymous         CredentialSource = "Anonymous"         // SMTP outgoing only
	CredentialsOAuth             CredentialSource = "OAuth"             // per-mailbox tokens with refresh
)

func (c CredentialSource) valid() bool {
	switch c {
	case CredentialsMailbox, CredentialsProfile, CredentialsServerToServer,
		CredentialsWindowsIntegrated, CredentialsAnonymous, CredentialsOAuth:
		return true
	}
	return false
}

// UsesMailboxCredentials reports whether each mailbox brings its own credentials, which
// also decides that MaxConcurrentConnections counts per mailbox rather than per profile.
func (c CredentialSource) UsesMailboxCredentials() bool {
	return c == CredentialsMailbox || c == CredentialsOAuth
}

// AuthProtocol is the authentication protocol a profile asks for.
type AuthProtocol string

// The authentication protocols of DESIGN §2.
const (
	AuthAuto      AuthProtocol = "Auto" // the default: the best mechanism the server offers
	AuthBasic     AuthProtocol = "Basic"
	AuthNTLM      AuthProtocol = "NTLM"
	AuthNegotiate AuthProtocol = "Negotiate"
	AuthOAuth     AuthProtocol = "OAuth"
)

func (a AuthProtocol) valid() bool {
	switch a {
	case AuthAuto, AuthBasic, AuthNTLM, AuthNegotiate, AuthOAuth:
		return true
	}
	return false
}

// TLSMode says how a connection is encrypted. The zero value, TLSDefault, means the
// CRM's default "Use SSL: yes" and is normalized on save to [TLSImplicit].
type TLSMode string

// TLS modes. Only TLSNone is "UseSSL = false"; it needs OrgSettings.AllowNonSSLEmail
// and is always refused for Exchange Online.
const (
	TLSDefault  TLSMode = ""
	TLSImplicit TLSMode = "Implicit" // TLS from the first byte: IMAPS 993, POP3S 995, SMTPS 465, HTTPS 443
	TLSStartTLS TLSMode = "STARTTLS" // plaintext greeting upgraded before authentication, never skipped: 143, 110, 587
	TLSNone     TLSMode = "None"     // no encryption at all: 143, 110, 25
)

// UsesTLS reports whether the connection is encrypted (the CRM's UseSSL).
func (m TLSMode) UsesTLS() bool { return m != TLSNone }

func (m TLSMode) valid() bool {
	switch m {
	case TLSDefault, TLSImplicit, TLSStartTLS, TLSNone:
		return true
	}
	return false
}

// Defaults and limits of profile fields. They are the values a CRM administrator
// expects; each can be set per profile.
const (
	MaxConcurrentConnectionsDefault = 10
	MaxConcurrentConnectionsMax     = 300
	MinPollingIntervalMax           = 1440 * time.Minute
	ConnectionTimeoutDefault        = 100 * time.Second
	ConnectionTimeoutMax            = 100 * time.Second
)

// Profile is an email server profile: where and how to reach a mail system. Many
// mailboxes share one profile. Save it through [Admin], which normalizes and validates it.
//
// A Profile is a plain value: copy it freely; it is not safe for concurrent mutation.
// Secrets (Password, ClientSecret, CertificateKey) never print and are sealed at rest.
type Profile struct {
	ID          string
	Name        string // required, unique
	Description string
	Owner       string // principal ID that receives profile-level alerts

	ServerType ServerType

	// AutoDiscover lets Exchange types find their server; the discovered location is
	// cached on the mailbox (Mailbox.DiscoveredServer).
	AutoDiscover bool

	// IncomingServer and OutgoingServer are "host", "host:port" or, for Exchange, a URL.
	// A port given here wins over IncomingPort/OutgoingPort being 0.
	IncomingServer string
	OutgoingServer string
	// IncomingPort and OutgoingPort: 0 means "fill on save" from the server type and TLS mode.
	IncomingPort int
	OutgoingPort int
	// IncomingTLS and OutgoingTLS: the zero value is TLS (the CRM's UseSSL default true).
	IncomingTLS TLSMode
	OutgoingTLS TLSMode

	IncomingCredentialSource CredentialSource
	OutgoingCredentialSource CredentialSource
	// SeparateOutgoingSettings is the inverse of the CRM's UseSameSettingsForOutgoing so
	// that the zero value keeps its default: outgoing copies the incoming credential
	// settings. Set it to configure outgoing credentials on their own.
	SeparateOutgoingSettings bool

	// UseImpersonation, with Profile credentials: log in as the service account *for*
	// the mailbox (SASL authorization identity or a master-user login) rather than
	// opening the mailbox the account was delegated (shared namespace).
	UseImpersonation bool
	// ImpersonationStyle picks how impersonation logs in: SASL authorization identity
	// (the default) or a master-user login "mailbox<MasterSeparator>account" (Dovecot).
	ImpersonationStyle auth.ImpersonationStyle
	MasterSeparator    string // "" means "*"

	Username string      // service account, required with Profile credentials
	Password auth.Secret // sealed at rest

	AuthProtocol AuthProtocol // "" means AuthAuto

	// Server-to-server authentication (CredentialsServerToServer) is OAuth 2.0
	// client credentials with a certificate, as Microsoft Entra ID offers it: the
	// application ClientID of tenant TenantID signs a client assertion with
	// CertificateKey, and one app-only token per profile and resource serves every
	// mailbox (Graph /users/{mailbox}, or XOAUTH2 user=<mailbox> for IMAP/POP/SMTP).
	// Delegated OAuth (CredentialsOAuth) refreshes each mailbox's own token at
	// TokenURL with ClientID and ClientSecret.
	TenantID           string
	UseDefaultTenantID bool // take OrgSettings.DefaultTenantID
	ClientID           string
	ClientSecret       auth.Secret // sealed at rest
	CertificatePEM     string      // public certificate for server-to-server auth
	CertificateKey     auth.Secret // its RSA private key (PEM), sealed at rest
	// CertificateNotAfter is when CertificatePEM expires: filled on save, read only.
	// The profile's owner is warned Config.CertificateExpiryWarning ahead.
	CertificateNotAfter time.Time
	// TokenURL is the token endpoint: for delegated OAuth, where mailbox tokens
	// are refreshed (required); for server-to-server, "" means Entra ID's
	// https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token, and a URL
	// holding "{tenant}" gets the tenant put in.
	TokenURL string
	// Scopes: for delegated OAuth, the scopes asked for on refresh; for
	// server-to-server, "" means the resource's .default scope
	// (https://graph.microsoft.com/.default for Graph,
	// https://outlook.office365.com/.default for IMAP, POP3 and SMTP).
	Scopes []string

	// ACTServerURL is the CalDAV/CardDAV server for ACT (appointments, contacts,
	// tasks) on non-Exchange profiles: its http(s) URL, the context path of DAV
	// (https://dav.example.com/, https://cloud.example.com/remote.php/dav/). It
	// takes the incoming credentials. Exchange profiles reach ACT through their
	// own server and leave it empty.
	ACTServerURL string

	// ExtraRootCAsPEM adds certificate authorities trusted for this profile's servers,
	// on top of the system roots. Verification itself is never turned off.
	ExtraRootCAsPEM string

	// ProcessEmailFrom: mail received before it is not processed. Moving it earlier
	// pulls earlier mail for mailboxes associated afterwards. A mailbox may override it.
	ProcessEmailFrom time.Time

	MaxConcurrentConnections int           // 1–300; 0 means the default, 10
	MinPollingInterval       time.Duration // 0–1440 minutes; how often, at most, a mailbox is polled
	ConnectionTimeout        time.Duration // 0 means the default; at most 100 s

	MoveFailedToUndeliverable bool // move messages that can't be tracked to "Undeliverable"
	SendAlertOnMassFailure    bool // alert the owner when over half the mailboxes failed within an hour

	CreatedAt time.Time
	UpdatedAt time.Time
}

// IncomingUseSSL reports the CRM's IncomingUseSSL.
func (p *Profile) IncomingUseSSL() bool { return p.IncomingTLS.UsesTLS() }

// OutgoingUseSSL reports the CRM's OutgoingUseSSL.
func (p *Profile) OutgoingUseSSL() bool { return p.OutgoingTLS.UsesTLS() }

// UseSameSettingsForOutgoing reports the CRM's UseSameSettingsForOutgoing.
func (p *Profile) UseSameSettingsForOutgoing() bool { return !p.SeparateOutgoingSettings }

// credentialSource is whose credentials the profile uses in one direction.
func (p *Profile) credentialSource(dir Direction) CredentialSource {
	if dir == Outgoing {
		return p.OutgoingCredentialSource
	}
	return p.IncomingCredentialSource
}

// usesACTServerURL reports whether ACT connects to ACTServerURL rather than to
// the incoming server (an Exchange profile's ACT goes to its Exchange server).
func (p *Profile) usesACTServerURL() bool {
	return !p.ServerType.IsExchange() && p.ACTServerURL != ""
}

// actTLS is the TLS mode of ACTServerURL: None for an http:// URL.
func (p *Profile) actTLS() TLSMode {
	if strings.HasPrefix(strings.ToLower(p.ACTServerURL), "http://") {
		return TLSNone
	}
	return TLSImplicit
}

// IncomingProtocol names the protocol used to receive mail: "imap", "pop3", "graph" or "ews".
func (p *Profile) IncomingProtocol() string {
	switch p.ServerType {
	case ServerTypeIMAPSMTP:
		return "imap"
	case ServerTypePOP3SMTP:
		return "pop3"
	case ServerTypeExchangeServer:
		return "ews"
	}
	return "graph"
}

// OutgoingProtocol names the protocol used to send mail: "smtp", "graph" or "ews".
func (p *Profile) OutgoingProtocol() string {
	switch p.ServerType {
	case ServerTypeIMAPSMTP, ServerTypePOP3SMTP:
		return "smtp"
	case ServerTypeExchangeServer:
		return "ews"
	}
	return "graph"
}

// Clone returns a deep copy.
func (p *Profile) Clone() *Profile {
	c := *p
	c.Scopes = append([]string(nil), p.Scopes...)
	return &c
}
