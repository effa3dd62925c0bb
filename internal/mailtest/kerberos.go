package mailtest

import (
	"os"
	"testing"

	"github.com/serversync/serversync/auth"
)

// Kerberos describes the real MIT KDC that scripts/kdc starts (its env file sets the
// SERVERSYNC_KRB5_* variables). scripts/mailservers, started after it, gives Dovecot
// (and Postfix through Dovecot SASL) the GSSAPI mechanism with the KDC's imap/ and
// smtp/ keys, and makes a mailbox for each Kerberos user.
type Kerberos struct {
	Conf           string // krb5.conf of the realm
	Realm          string
	HTTPKeytab     string // HTTP/localhost and HTTP/127.0.0.1
	ServiceAccount string // a principal with a keytab: the process's own identity
	ServiceKeytab  string
	passwordSuffix string
}

// LoadKerberos returns the KDC's environment, or skips t when it is not configured.
func LoadKerberos(t testing.TB) *Kerberos {
	t.Helper()
	k := &Kerberos{
		Conf:           os.Getenv("SERVERSYNC_KRB5_CONF"),
		Realm:          os.Getenv("SERVERSYNC_KRB5_REALM"),
		HTTPKeytab:     os.Getenv("SERVERSYNC_KRB5_HTTP_KEYTAB"),
		ServiceAccount: os.Getenv("SERVERSYNC_KRB5_SERVICE_ACCOUNT"),
		ServiceKeytab:  os.Getenv("SERVERSYNC_KRB5_SERVICE_KEYTAB"),
		passwordSuffix: os.Getenv("SERVERSYNC_KRB5_PASSWORD_SUFFIX"),
	}
	if k.Conf == "" {
		t.Skip("SERVERSYNC_KRB5_CONF not set: run scripts/kdc start, then scripts/mailservers start, and source both env files to test Kerberos against a real KDC")
	}
	return k
}

// Password is a Kerberos user's password in the KDC (not its IMAP password: a
// login that works with it went through Kerberos).
func (k *Kerberos) Password(user string) string { return user + k.passwordSuffix }

// Config is where the realm is, for credentials that log in with a password.
func (k *Kerberos) Config() *auth.KerberosConfig { return &auth.KerberosConfig{Krb5Conf: k.Conf} }

// ServiceConfig is the service account's identity from its keytab, for
// Windows-integrated credentials.
func (k *Kerberos) ServiceConfig() *auth.KerberosConfig {
	return &auth.KerberosConfig{Krb5Conf: k.Conf, Keytab: k.ServiceKeytab}
}

// RequireMailServers fails t unless scripts/mailservers gave Dovecot and Postfix the
// GSSAPI mechanism, which it does when it starts after the KDC.
func (k *Kerberos) RequireMailServers(t testing.TB) {
	t.Helper()
	if os.Getenv("SERVERSYNC_INTEROP_GSSAPI") != "1" {
		t.Fatal("the KDC runs but the mail servers offer no GSSAPI: start scripts/kdc before scripts/mailservers, and source both env files")
	}
}
