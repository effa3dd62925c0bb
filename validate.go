package serversync

import (
	"cmp"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/serversync/serversync/auth"
)

// "Save" = normalize then validate (DESIGN §2). Normalizing fills what the user left
// to defaults; validating refuses what breaks a rule, naming the field. Both are pure
// functions of the record and the org settings, so the same rules hold whichever
// store or caller saves the record.

// NormalizeProfile fills defaults in place: TLS mode, ports from the server type and
// TLS mode, credential settings copied to outgoing, connection limits and timeouts.
func NormalizeProfile(p *Profile) {
	p.Name = strings.TrimSpace(p.Name)
	p.IncomingServer = strings.TrimSpace(p.IncomingServer)
	p.OutgoingServer = strings.TrimSpace(p.OutgoingServer)
	p.ACTServerURL = strings.TrimSpace(p.ACTServerURL)
	if p.AuthProtocol == "" {
		p.AuthProtocol = AuthAuto
	}
	if p.IncomingTLS == TLSDefault {
		p.IncomingTLS = TLSImplicit
	}
	if p.OutgoingTLS == TLSDefault {
		p.OutgoingTLS = TLSImplicit
	}
	if p.ServerType.IsExchangeOnline() {
		// Exchange Online is at one place for every tenant, reached through Graph.
		p.IncomingServer = cmp.Or(p.IncomingServer, GraphURLDefault)
		p.OutgoingServer = cmp.Or(p.OutgoingServer, GraphURLDefault)
	}
	if p.IncomingCredentialSource == "" {
		p.IncomingCredentialSource = CredentialsMailbox
		if p.ServerType.IsExchangeOnline() {
			p.IncomingCredentialSource = CredentialsServerToServer
		}
	}
	if p.UseSameSettingsForOutgoing() || p.OutgoingCredentialSource == "" {
		p.OutgoingCredentialSource = p.IncomingCredentialSource
	}
	if p.IncomingPort == 0 {
		p.IncomingPort = portOf(p.IncomingServer, defaultPort(p.IncomingProtocol(), p.IncomingTLS))
	}
	if p.OutgoingPort == 0 {
		p.OutgoingPort = portOf(p.OutgoingServer, defaultPort(p.OutgoingProtocol(), p.OutgoingTLS))
	}
	if p.MaxConcurrentConnections == 0 {
		p.MaxConcurrentConnections = MaxConcurrentConnectionsDefault
	}
	if p.ConnectionTimeout == 0 {
		p.ConnectionTimeout = ConnectionTimeoutDefault
	}
	if p.ImpersonationStyle == auth.ImpersonateMasterUser && p.MasterSeparator == "" {
		p.MasterSeparator = auth.MasterSeparatorDefault
	}
	p.CertificateNotAfter = time.Time{}
	if leaf := firstCertificate(p.CertificatePEM); leaf != nil {
		p.CertificateNotAfter = leaf.NotAfter
	}
}

// GraphURLDefault is where Exchange Online profiles reach Microsoft Graph.
const GraphURLDefault = "https://graph.microsoft.com"

// defaultPort is the well-known port of a protocol in a TLS mode (DESIGN §2).
func defaultPort(protocol string, mode TLSMode) int {
	implicit := mode == TLSImplicit || mode == TLSDefault
	switch protocol {
	case "imap":
		return pick(implicit, 993, 143)
	case "pop3":
		return pick(implicit, 995, 110)
	case "smtp":
		if implicit {
			return 465
		}
		return pick(mode == TLSStartTLS, 587, 25)
	}
	return pick(mode.UsesTLS(), 443, 80)
}

func pick(cond bool, a, b int) int {
	if cond {
		return a
	}
	return b
}

// portOf returns the port named in a "host:port" or URL server location, else def.
func portOf(server string, def int) int {
	if u, err := url.Parse(server); err == nil && u.Host != "" {
		if port, err := strconv.Atoi(u.Port()); err == nil {
			return port
		}
		return def
	}
	if _, port, err := net.SplitHostPort(server); err == nil {
		if n, err := strconv.Atoi(port); err == nil {
			return n
		}
	}
	return def
}

// ValidateProfile checks every rule of DESIGN §2 and returns the first violation as a
// *ValidationError. Call NormalizeProfile first; uniqueness of the name is the Store's.
func ValidateProfile(p *Profile, settings *OrgSettings) error {
	bad := func(field, reason string) error { return invalid("Profile", field, reason) }
	switch {
	case p.Name == "":
		return bad("Name", "is required")
	case len(p.Name) > 200:
		return bad("Name", "is longer than 200 characters")
	case !p.ServerType.valid():
		return bad("ServerType", fmt.Sprintf("%q is not one of ExchangeOnline, ExchangeOnlineHybrid, ExchangeServer, IMAPSMTP, POP3SMTP", p.ServerType))
	case p.AutoDiscover && !p.ServerType.IsExchange():
		return bad("AutoDiscover", "is only available for Exchange server types")
	case !p.AuthProtocol.valid():
		return bad("AuthProtocol", fmt.Sprintf("%q is not one of Auto, Basic, NTLM, Negotiate, OAuth", p.AuthProtocol))
	case p.AuthProtocol == AuthNTLM && !p.ServerType.IsExchange():
		// Negotiate is Kerberos, which IMAP, POP3 and SMTP carry as SASL GSSAPI;
		// NTLM only Exchange's HTTP takes here.
		return bad("AuthProtocol", string(p.AuthProtocol)+" is only available for Exchange server types (IMAP, POP3 and SMTP take Negotiate: Kerberos through SASL GSSAPI)")
	}
	for _, d := range []struct {
		server, serverField string
		port                int
		portField           string
		tls                 TLSMode
		tlsField            string
	}{
		{p.IncomingServer, "IncomingServer", p.IncomingPort, "IncomingPort", p.IncomingTLS, "IncomingTLS"},
		{p.OutgoingServer, "OutgoingServer", p.OutgoingPort, "OutgoingPort", p.OutgoingTLS, "OutgoingTLS"},
	} {
		if d.server == "" && !p.AutoDiscover {
			return bad(d.serverField, "is required unless AutoDiscover is on")
		}
		if d.server != "" {
			if err := checkServer(d.server, p.ServerType.IsExchange()); err != "" {
				return bad(d.serverField, err)
			}
		}
		if d.port < 1 || d.port > 65535 {
			return bad(d.portField, fmt.Sprintf("%d is not a TCP port (1–65535; 0 fills the default)", d.port))
		}
		if named := portOf(d.server, 0); named != 0 && named != d.port {
			return bad(d.portField, fmt.Sprintf("%d contradicts the port %d in %s", d.port, named, d.serverField))
		}
		switch {
		case !d.tls.valid():
			return bad(d.tlsField, fmt.Sprintf("%q is not one of Implicit, STARTTLS, None", d.tls))
		case d.tls == TLSNone && p.ServerType.IsExchangeOnline():
			return bad(d.tlsField, "TLS cannot be turned off for Exchange Online")
		case d.tls == TLSNone && (settings == nil || !settings.AllowNonSSLEmail):
			return bad(d.tlsField, "TLS can only be turned off when the organisation setting AllowNonSSLEmail is on")
		case d.tls == TLSStartTLS && p.ServerType.IsExchange():
			return bad(d.tlsField, "Exchange uses HTTPS: choose Implicit (or None where allowed)")
		}
	}
	if err := validateCredentialSource(p, p.IncomingCredentialSource, Incoming, "IncomingCredentialSource"); err != nil {
		return err
	}
	if err := validateCredentialSource(p, p.OutgoingCredentialSource, Outgoing, "OutgoingCredentialSource"); err != nil {
		return err
	}
	// The rules ResolveTarget applies when connecting, so that a profile that could
	// never connect is not saved (credentials over a connection left unencrypted).
	if conflicts := ProfileConflicts(p, settings); len(conflicts) > 0 {
		return bad(conflicts[0].Field, conflicts[0].Reason)
	}
	usesProfile := p.IncomingCredentialSource == CredentialsProfile || p.OutgoingCredentialSource == CredentialsProfile
	usesS2S := p.IncomingCredentialSource == CredentialsServerToServer || p.OutgoingCredentialSource == CredentialsServerToServer
	usesOAuth := p.IncomingCredentialSource == CredentialsOAuth || p.OutgoingCredentialSource == CredentialsOAuth
	switch {
	case p.UseImpersonation && !usesProfile:
		return bad("UseImpersonation", "needs Profile credentials (a service account to impersonate with)")
	case p.ImpersonationStyle != auth.ImpersonateAuthzID && p.ImpersonationStyle != auth.ImpersonateMasterUser:
		return bad("ImpersonationStyle", fmt.Sprintf("%q is not one of \"\" (SASL authorization identity) or MasterUser", p.ImpersonationStyle))
	case usesProfile && p.Username == "":
		return bad("Username", "is required with Profile credentials")
	case usesProfile && !p.Password.IsSet():
		return bad("Password", "is required with Profile credentials")
	case p.AuthProtocol == AuthOAuth && !usesOAuth && !usesS2S:
		return bad("AuthProtocol", "OAuth needs the OAuth or ServerToServer credential source")
	case usesOAuth && p.ClientID == "":
		return bad("ClientID", "is required with OAuth credentials (to refresh mailbox tokens)")
	case usesOAuth && p.TokenURL == "":
		return bad("TokenURL", "is required with OAuth credentials (to refresh mailbox tokens)")
	case usesS2S && p.ClientID == "":
		return bad("ClientID", "is required with server-to-server authentication")
	case usesS2S && p.TenantID == "" && !p.UseDefaultTenantID:
		return bad("TenantID", "is required with server-to-server authentication (or set UseDefaultTenantID)")
	case usesS2S && p.UseDefaultTenantID && (settings == nil || settings.DefaultTenantID == ""):
		return bad("UseDefaultTenantID", "the organisation has no DefaultTenantID")
	case usesS2S && p.CertificatePEM == "":
		return bad("CertificatePEM", "is required with server-to-server authentication")
	case usesS2S && !p.CertificateKey.IsSet():
		return bad("CertificateKey", "is required with server-to-server authentication")
	case !usesS2S && (p.TenantID != "" || p.UseDefaultTenantID):
		return bad("TenantID", "only applies to server-to-server authentication")
	case p.MaxConcurrentConnections < 1 || p.MaxConcurrentConnections > MaxConcurrentConnectionsMax:
		return bad("MaxConcurrentConnections", fmt.Sprintf("%d is outside 1–%d", p.MaxConcurrentConnections, MaxConcurrentConnectionsMax))
	case p.MinPollingInterval < 0 || p.MinPollingInterval > MinPollingIntervalMax:
		return bad("MinPollingInterval", fmt.Sprintf("%s is outside 0–1440 minutes", p.MinPollingInterval))
	case p.ConnectionTimeout < time.Second || p.ConnectionTimeout > ConnectionTimeoutMax:
		return bad("ConnectionTimeout", fmt.Sprintf("%s is outside 1 s–100 s", p.ConnectionTimeout))
	}
	if usesS2S {
		if err := validateClientCertificate(p, time.Now()); err != nil {
			return err
		}
	} else if p.CertificatePEM != "" {
		if _, err := parseCertificates(p.CertificatePEM); err != nil {
			return bad("CertificatePEM", err.Error())
		}
	}
	if p.ExtraRootCAsPEM != "" {
		if _, err := parseCertificates(p.ExtraRootCAsPEM); err != nil {
			return bad("ExtraRootCAsPEM", err.Error())
		}
	}
	if p.ACTServerURL != "" {
		if p.ServerType.IsExchange() {
			return bad("ACTServerURL", "only applies to IMAP and POP3 profiles: Exchange syncs appointments, contacts and tasks itself")
		}
		u, err := url.Parse(p.ACTServerURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return bad("ACTServerURL", "must be the http(s) URL of a CalDAV/CardDAV server, without credentials, query or fragment")
		}
	}
	return nil
}

// validateClientCertificate checks a server-to-server certificate the way the
// identity provider will: an RSA key that is the certificate's own, and a
// certificate valid now. A certificate that expires soon is saved: the Syncer
// warns the profile's owner ahead of time (Config.CertificateExpiryWarning).
func validateClientCertificate(p *Profile, now time.Time) error {
	leaf := firstCertificate(p.CertificatePEM)
	if leaf == nil {
		return invalid("Profile", "CertificatePEM", "holds no PEM certificate")
	}
	if _, rsa := leaf.PublicKey.(*rsa.PublicKey); !rsa {
		return invalid("Profile", "CertificatePEM", "is not an RSA certificate, which client assertions need (PS256/RS256)")
	}
	cert, err := auth.ParseClientCertificate(p.CertificatePEM, p.CertificateKey)
	switch {
	case errors.Is(err, auth.ErrCertificateKeyMismatch):
		return invalid("Profile", "CertificateKey", "is not the private key of CertificatePEM")
	case err != nil:
		return invalid("Profile", "CertificateKey", err.Error())
	}
	if err := cert.CheckValidAt(now); err != nil {
		return invalid("Profile", "CertificatePEM", err.Error())
	}
	return nil
}

// validateCredentialSource applies the source-per-server-type rules of DESIGN §2.
func validateCredentialSource(p *Profile, src CredentialSource, dir Direction, field string) error {
	bad := func(reason string) error { return invalid("Profile", field, reason) }
	smtp := dir == Outgoing && p.OutgoingProtocol() == "smtp"
	switch {
	case !src.valid():
		return bad(fmt.Sprintf("%q is not one of Mailbox, Profile, ServerToServer, WindowsIntegrated, Anonymous, OAuth", src))
	case src == CredentialsAnonymous && !smtp:
		return bad("Anonymous is only allowed for outgoing SMTP")
	case src == CredentialsServerToServer && p.ServerType == ServerTypeExchangeServer:
		return bad("ServerToServer is for Exchange Online (Graph, or its IMAP, POP3 and SMTP): Exchange Server uses Profile, Mailbox or WindowsIntegrated credentials")
	case src != CredentialsServerToServer && p.ServerType == ServerTypeExchangeOnlineHybrid:
		return bad("ExchangeOnlineHybrid authenticates server to server: use ServerToServer")
	case src != CredentialsServerToServer && src != CredentialsOAuth && p.ServerType == ServerTypeExchangeOnline:
		return bad("Exchange Online accepts only OAuth tokens (Microsoft turned basic authentication off): use ServerToServer (app-only) or OAuth (delegated, per mailbox)")
	case src == CredentialsWindowsIntegrated && !(p.ServerType == ServerTypeExchangeServer || smtp):
		return bad("WindowsIntegrated is only available for Exchange Server and SMTP")
	}
	return nil
}

// checkServer returns why a server location is unusable, or "".
func checkServer(server string, exchange bool) string {
	if strings.Contains(server, "://") {
		u, err := url.Parse(server)
		switch {
		case err != nil:
			return "is not a valid URL"
		case !exchange:
			return "must be a host name (with an optional :port), not a URL"
		case u.Scheme != "https" && u.Scheme != "http":
			return "must be an http(s) URL"
		case u.Hostname() == "":
			return "has no host"
		}
		return ""
	}
	host := server
	if h, _, err := net.SplitHostPort(server); err == nil {
		host = h
	}
	if host == "" || strings.ContainsAny(host, " /\\@") {
		return fmt.Sprintf("%q is not a host name", server)
	}
	return ""
}

func parseCertificates(pemText string) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(pemText)) {
		return nil, fmt.Errorf("holds no PEM certificate")
	}
	return pool, nil
}

// firstCertificate is the first certificate of a PEM bundle (the leaf), or nil.
func firstCertificate(pemText string) *x509.Certificate {
	for rest := []byte(pemText); ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			return nil
		}
		if block.Type == "CERTIFICATE" {
			cert, _ := x509.ParseCertificate(block.Bytes)
			return cert
		}
	}
}

// NormalizeMailbox fills defaults in place from the org settings: delivery methods,
// approval and test states, the incoming filter and the alert owner.
func NormalizeMailbox(m *Mailbox, settings *OrgSettings) {
	m.EmailAddress = strings.TrimSpace(m.EmailAddress)
	m.Name = strings.TrimSpace(m.Name)
	if m.IsForwardMailbox && m.OutgoingMethod == "" {
		m.OutgoingMethod = OutgoingNone
	}
	if m.IncomingMethod == "" {
		m.IncomingMethod = settings.DefaultIncomingMethod
	}
	if m.OutgoingMethod == "" {
		m.OutgoingMethod = settings.DefaultOutgoingMethod
	}
	if m.ACTMethod == "" {
		m.ACTMethod = settings.DefaultACTMethod
	}
	if m.Approval == "" {
		m.Approval = ApprovalEmpty
	}
	for _, s := range []*TestStatus{&m.IncomingStatus, &m.OutgoingStatus, &m.ACTStatus, &m.Status} {
		if *s == "" {
			*s = TestNotRun
		}
	}
	if m.IncomingFilter == "" {
		m.IncomingFilter = FilterAll
		if m.Regarding.Type == RegardingUser {
			m.IncomingFilter = FilterResponsesToCRM
		}
	}
	if m.Owner == "" && m.Regarding.Type == RegardingUser {
		m.Owner = m.Regarding.ID
	}
}

// ValidateMailbox checks the rules of DESIGN §3. profile is the mailbox's profile
// (nil when ProfileID is empty); uniqueness of address and regarding is the Store's.
func ValidateMailbox(m *Mailbox, profile *Profile) error {
	bad := func(field, reason string) error { return invalid("Mailbox", field, reason) }
	if m.EmailAddress == "" {
		return bad("EmailAddress", "is required")
	}
	if a, err := mail.ParseAddress(m.EmailAddress); err != nil || a.Address != m.EmailAddress || a.Name != "" {
		return bad("EmailAddress", fmt.Sprintf("%q is not a plain email address", m.EmailAddress))
	}
	switch {
	case m.IsForwardMailbox && !m.Regarding.IsZero():
		return bad("Regarding", "a forward mailbox belongs to no user or queue")
	case !m.IsForwardMailbox && m.Regarding.Type != RegardingUser && m.Regarding.Type != RegardingQueue:
		return bad("Regarding", "must name a User or a Queue (or mark the mailbox IsForwardMailbox)")
	case !m.IsForwardMailbox && m.Regarding.ID == "":
		return bad("Regarding", "the user or queue ID is required")
	case !m.IncomingMethod.valid():
		return bad("IncomingMethod", fmt.Sprintf("%q is not one of None, Outlook, ServerSideSync, ForwardMailbox", m.IncomingMethod))
	case !m.OutgoingMethod.valid():
		return bad("OutgoingMethod", fmt.Sprintf("%q is not one of None, Outlook, ServerSideSync", m.OutgoingMethod))
	case !m.ACTMethod.valid():
		return bad("ACTMethod", fmt.Sprintf("%q is not one of None, Outlook, ServerSideSync", m.ACTMethod))
	case m.IncomingMethod == IncomingForwardMailbox && m.Regarding.Type != RegardingUser:
		return bad("IncomingMethod", "ForwardMailbox is for user mailboxes whose mail is forwarded")
	case m.IsForwardMailbox && m.IncomingMethod != IncomingServerSideSync:
		return bad("IncomingMethod", "a forward mailbox receives through ServerSideSync")
	case m.IsForwardMailbox && m.OutgoingMethod != OutgoingNone:
		return bad("OutgoingMethod", "a forward mailbox sends nothing: use None")
	case !m.IncomingFilter.valid():
		return bad("IncomingFilter", fmt.Sprintf("%q is not a filtering option", m.IncomingFilter))
	case m.DeleteAfterProcessing && !m.IsForwardMailbox && m.Regarding.Type != RegardingQueue:
		return bad("DeleteAfterProcessing", "is only allowed for forward and queue mailboxes")
	case m.ProfileID == "" && !m.AllMethodsNone():
		return bad("ProfileID", "a mailbox needs a profile unless every delivery method is None")
	}
	switch m.Approval {
	case ApprovalEmpty, ApprovalPending, ApprovalApproved, ApprovalRejected:
	default:
		return bad("Approval", fmt.Sprintf("%q is not one of Empty, Pending, Approved, Rejected", m.Approval))
	}
	if profile != nil && m.ACTMethod == OutgoingServerSideSync && !profile.ServerType.IsExchange() && profile.ACTServerURL == "" {
		return bad("ACTMethod", "appointments, contacts and tasks sync needs an Exchange profile, or a profile with an ACTServerURL (a CalDAV/CardDAV server)")
	}
	return nil
}
