package auth

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jcmturner/gokrb5/v8/client"
	"github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/credentials"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/jcmturner/gokrb5/v8/types"
)

// Protocol is the authentication protocol a profile asks for (its AuthProtocol):
// which of the mechanisms a server offers the credentials may use.
type Protocol string

// Protocols. The zero value is ProtocolAuto.
const (
	// ProtocolAuto: the best the server offers that the credentials can use —
	// Negotiate (Kerberos) when a Kerberos identity is there, then NTLM, then Basic
	// or SASL PLAIN/LOGIN.
	ProtocolAuto Protocol = ""
	// ProtocolBasic: the password itself (HTTP Basic, SASL PLAIN or LOGIN).
	ProtocolBasic Protocol = "Basic"
	// ProtocolNTLM: NTLMv2 over HTTP (Exchange Server).
	ProtocolNTLM Protocol = "NTLM"
	// ProtocolNegotiate: Kerberos — HTTP Negotiate (SPNEGO) or SASL GSSAPI.
	ProtocolNegotiate Protocol = "Negotiate"
	// ProtocolOAuth: bearer tokens (SASL XOAUTH2/OAUTHBEARER, HTTP Bearer).
	ProtocolOAuth Protocol = "OAuth"
)

// ParseProtocol maps a profile's AuthProtocol ("Auto", "Basic", "NTLM",
// "Negotiate", "OAuth"; "" is Auto) to a Protocol.
func ParseProtocol(s string) Protocol {
	if strings.EqualFold(s, "Auto") {
		return ProtocolAuto
	}
	return Protocol(s)
}

// KerberosConfig says where this process finds Kerberos: the realm's configuration
// and, for Windows-integrated credentials, its own identity — a keytab (what a
// Windows service account is to a Windows service) or a credential cache filled by
// kinit. Empty fields default as MIT Kerberos does: KRB5_CONFIG (else
// /etc/krb5.conf), KRB5_CLIENT_KTNAME, KRB5CCNAME.
//
// A KerberosConfig is only read; it is safe for concurrent use.
type KerberosConfig struct {
	// Krb5Conf is the path of a krb5.conf; Krb5ConfText its content instead.
	Krb5Conf     string
	Krb5ConfText string
	// Keytab is the path of the keytab holding this process's keys.
	Keytab string
	// Principal is the identity in Keytab ("name" or "name@REALM"); "" means the
	// keytab's first principal.
	Principal string
	// CCache is the path of a credential cache (FILE: caches only) whose
	// ticket-granting ticket is used while it is valid; past it, or without one, the
	// Keytab logs in again.
	CCache string
}

// ErrNoKerberosIdentity is returned for Windows-integrated credentials when neither a
// keytab nor a credential cache with a valid ticket is configured.
var ErrNoKerberosIdentity = errors.New("auth: no Kerberos identity for Windows-integrated authentication: " +
	"configure a keytab or a credential cache (KerberosConfig, or KRB5_CLIENT_KTNAME / KRB5CCNAME)")

// KerberosError is a failure to get a Kerberos ticket: the KDC refused the login
// (wrong password, unknown principal, expired account) or the service principal, or
// could not be reached. Login says which: a refused login is an authentication
// failure of the credentials, an unreachable KDC a transient network error.
type KerberosError struct {
	Principal string // the client principal, never a secret
	Refused   bool   // the KDC answered and refused; false: no answer, or no configuration
	Err       error
}

func (e *KerberosError) Error() string {
	return fmt.Sprintf("auth: Kerberos login as %q: %v", e.Principal, e.Err)
}

func (e *KerberosError) Unwrap() error { return e.Err }

// withDefaults fills the empty fields from the environment as MIT Kerberos would.
func (k *KerberosConfig) withDefaults() KerberosConfig {
	var c KerberosConfig
	if k != nil {
		c = *k
	}
	if c.Krb5Conf == "" && c.Krb5ConfText == "" {
		c.Krb5Conf = cmp.Or(os.Getenv("KRB5_CONFIG"), "/etc/krb5.conf")
	}
	c.Keytab = strings.TrimPrefix(cmp.Or(c.Keytab, os.Getenv("KRB5_CLIENT_KTNAME")), "FILE:")
	c.CCache = strings.TrimPrefix(cmp.Or(c.CCache, os.Getenv("KRB5CCNAME")), "FILE:")
	return c
}

// CheckIdentity reports ErrNoKerberosIdentity unless a keytab or a credential cache
// is configured and readable: what Windows-integrated credentials need.
func (k *KerberosConfig) CheckIdentity() error {
	c := k.withDefaults()
	for _, path := range []string{c.Keytab, c.CCache} {
		if path == "" {
			continue
		}
		if _, err := os.Stat(path); err == nil {
			return nil
		}
	}
	return ErrNoKerberosIdentity
}

func (c KerberosConfig) load() (*config.Config, error) {
	if c.Krb5ConfText != "" {
		return config.NewFromString(c.Krb5ConfText)
	}
	return config.Load(c.Krb5Conf)
}

// kerberosClient logs in to the KDC as the credentials say — the user and password
// (Password, Delegation, Impersonation kinds) or the process's own identity
// (KindIntegrated) — and returns the client, holding a ticket-granting ticket. The
// caller must Destroy it: a client started from a password or keytab renews its
// ticket in a goroutine until then.
//
// gokrb5 takes no context; ctx is checked before and after, and the KDC exchange is
// bounded by gokrb5's own network timeouts.
func (c Credentials) kerberosClient(ctx context.Context) (*client.Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	k := c.Kerberos.withDefaults()
	cfg, err := k.load()
	if err != nil {
		return nil, &KerberosError{Principal: c.Username, Err: fmt.Errorf("read krb5.conf: %w", err)}
	}
	var cl *client.Client
	var principal string
	switch c.Kind {
	case KindPassword, KindDelegation, KindImpersonation:
		name, realm := splitPrincipal(c.Username, cfg)
		principal = name + "@" + realm
		cl = client.NewWithPassword(name, realm, c.Password.Reveal(), cfg, client.DisablePAFXFAST(true))
	case KindIntegrated:
		if cl, principal = fromCCache(k, cfg); cl != nil {
			return cl, nil
		}
		if _, err := os.Stat(k.Keytab); k.Keytab == "" || err != nil {
			return nil, ErrNoKerberosIdentity
		}
		kt, err := keytab.Load(k.Keytab)
		if err != nil {
			return nil, &KerberosError{Principal: k.Principal, Err: fmt.Errorf("read keytab: %w", err)}
		}
		name, realm := splitPrincipal(cmp.Or(k.Principal, c.Username), cfg)
		if name == "" {
			if len(kt.Entries) == 0 {
				return nil, &KerberosError{Err: errors.New("the keytab holds no key")}
			}
			p := kt.Entries[0].Principal
			name, realm = strings.Join(p.Components, "/"), p.Realm
		}
		principal = name + "@" + realm
		cl = client.NewWithKeytab(name, realm, kt, cfg, client.DisablePAFXFAST(true))
	default:
		return nil, fmt.Errorf("%w: Kerberos for %s credentials", ErrMechanismUnavailable, c.Kind)
	}
	if err := cl.Login(); err != nil {
		cl.Destroy()
		return nil, &KerberosError{Principal: principal, Refused: kdcRefused(err), Err: err}
	}
	if err := ctx.Err(); err != nil {
		cl.Destroy()
		return nil, err
	}
	return cl, nil
}

// fromCCache is a client from the configured credential cache when it holds a
// ticket-granting ticket valid for a while yet; nil otherwise, so that the keytab
// logs in again (an expired or absent ticket is not an error while a keytab is there).
func fromCCache(k KerberosConfig, cfg *config.Config) (*client.Client, string) {
	if k.CCache == "" {
		return nil, ""
	}
	cc, err := credentials.LoadCCache(k.CCache)
	if err != nil {
		return nil, ""
	}
	tgt, ok := cc.GetEntry(types.PrincipalName{NameType: 2, NameString: []string{"krbtgt", cc.GetClientRealm()}})
	if !ok || time.Until(tgt.EndTime) < time.Minute {
		return nil, ""
	}
	cl, err := client.NewFromCCache(cc, cfg, client.DisablePAFXFAST(true))
	if err != nil {
		return nil, ""
	}
	return cl, cc.GetClientPrincipalName().PrincipalNameString() + "@" + cc.GetClientRealm()
}

// splitPrincipal turns a login name into a Kerberos principal name and realm:
// "name@REALM" or "name@mail.domain" (the realm the krb5.conf maps the domain to,
// else the domain in upper case, as Active Directory's UPNs go), "DOMAIN\name" (the
// default realm when DOMAIN is its first label), or a bare name in the default realm.
func splitPrincipal(login string, cfg *config.Config) (name, realm string) {
	if domain, user, ok := strings.Cut(login, `\`); ok {
		// A NetBIOS domain name is the first label of its realm, as Windows names
		// them (CORP for CORP.EXAMPLE.COM).
		if first, _, _ := strings.Cut(cfg.LibDefaults.DefaultRealm, "."); strings.EqualFold(first, domain) {
			return user, cfg.LibDefaults.DefaultRealm
		}
		return user, strings.ToUpper(domain)
	}
	name, domain, ok := strings.Cut(login, "@")
	if !ok {
		return login, cfg.LibDefaults.DefaultRealm
	}
	lower := strings.ToLower(domain)
	for d, r := range cfg.DomainRealm {
		if d == lower || d == "."+lower {
			return name, r
		}
	}
	return name, strings.ToUpper(domain)
}

// kdcRefused reports whether a gokrb5 login error is the KDC's answer (a
// KRB-ERROR: wrong password, unknown or locked principal; or, for a principal
// without pre-authentication, an AS-REP the password does not decrypt) rather than
// no answer. gokrb5 reports both as text only.
func kdcRefused(err error) bool {
	s := err.Error()
	return strings.Contains(s, "KRB Error") || strings.Contains(s, "KDC_ERR") || strings.Contains(s, "KRB_AP_ERR") ||
		strings.Contains(s, "password/keytab incorrect")
}
