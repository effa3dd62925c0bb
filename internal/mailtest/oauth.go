package mailtest

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/auth/aadtest"
	"github.com/serversync/serversync/internal/testcert"
)

// MailScope is the scope of app-only tokens for Exchange Online's IMAP, POP and SMTP.
const MailScope = "https://outlook.office365.com/.default"

// GraphScope is the scope of app-only tokens for Microsoft Graph: the mail servers
// must refuse them.
const GraphScope = "https://graph.microsoft.com/.default"

// OAuth is the throwaway token issuer whose app-only tokens the test Dovecot (and
// Postfix through it) accepts, the way Exchange Online's IMAP/POP/SMTP accept an
// application's token with SASL XOAUTH2 user=<mailbox>. scripts/mailservers makes its
// key, and its env file names it (SERVERSYNC_INTEROP_OAUTH_KEY, _OAUTH_KID,
// _TENANT_ID, _OAUTH_AUDIENCE); tokens come from a fake Entra ID ([OAuth.Entra])
// that signs with that key.
//
// Dovecot checks a token's RS256 signature with the key KeyID, its iss (the tenant's
// issuer), exp and nbf, its aud (Audience), and that the domain of its
// domain_principal claim is the domain of the mailbox logged in to: one token serves
// every mailbox of Domain.
type OAuth struct {
	Key      *rsa.PrivateKey // the issuer's signing key
	KeyID    string          // the kid Dovecot finds the public key under
	TenantID string
	Audience string // https://outlook.office365.com
	Domain   string // the mail domain of the tenant
}

// LoadOAuth returns the token issuer, or skips t when the servers are not configured
// or were started by a script that predates app-only tokens.
func LoadOAuth(t testing.TB) *OAuth {
	t.Helper()
	e := Load(t)
	var missing []string
	get := func(name string) string {
		v := os.Getenv("SERVERSYNC_INTEROP_" + name)
		if v == "" {
			missing = append(missing, "SERVERSYNC_INTEROP_"+name)
		}
		return v
	}
	keyFile, kid, tenant, audience := get("OAUTH_KEY"), get("OAUTH_KID"), get("TENANT_ID"), get("OAUTH_AUDIENCE")
	if len(missing) > 0 {
		t.Skipf("%s not set: the running test servers do not accept app-only OAuth tokens; restart them with scripts/mailservers start",
			strings.Join(missing, ", "))
	}
	pemBytes, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatalf("read the test token issuer's key: %v", err)
	}
	key, err := parseRSAKey(pemBytes)
	if err != nil {
		t.Fatalf("SERVERSYNC_INTEROP_OAUTH_KEY: %v", err)
	}
	return &OAuth{Key: key, KeyID: kid, TenantID: tenant, Audience: audience, Domain: e.Domain}
}

// parseRSAKey reads an RSA private key in PEM (PKCS #8, as openssl genpkey writes
// it, or PKCS #1).
func parseRSAKey(pemBytes []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("not an RSA key but %T", k)
	}
	return rk, nil
}

// EntraOptions change the fake Entra ID of [OAuth.Entra] to issue tokens the mail
// servers must refuse. The zero value issues tokens they accept.
type EntraOptions struct {
	TenantID      string          // "" = the servers' tenant
	Domain        string          // the tenant's domain; "" = the servers' domain
	SigningKey    *rsa.PrivateKey // nil = the servers' issuer key (under the servers' kid either way)
	TokenLifetime time.Duration   // 0 = an hour
}

// Entra is a fake Entra ID (auth/aadtest) with one tenant and one app registered
// in it with a certificate and the IMAP, POP and SMTP application permissions.
type Entra struct {
	Server   *aadtest.Server
	TenantID string
	ClientID string
	// Certificate is the app's registered certificate and key, for a profile's
	// CertificatePEM and CertificateKey.
	Certificate *testcert.ClientCert
	cert        *auth.ClientCertificate
	client      *http.Client
}

// Entra starts a fake Entra ID that issues tokens as the servers' issuer (signed
// with its key, under its kid) and registers an app in the tenant. Both stop when
// t ends.
func (o *OAuth) Entra(t testing.TB, opts *EntraOptions) *Entra {
	t.Helper()
	if opts == nil {
		opts = &EntraOptions{}
	}
	key := opts.SigningKey
	if key == nil {
		key = o.Key
	}
	srv, err := aadtest.NewServer(&aadtest.Options{SigningKey: key, KeyID: o.KeyID, TokenLifetime: opts.TokenLifetime})
	if err != nil {
		t.Fatalf("start the fake Entra ID: %v", err)
	}
	t.Cleanup(srv.Close)
	e := &Entra{Server: srv, TenantID: cmp.Or(opts.TenantID, o.TenantID), ClientID: "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"}
	srv.AddTenant(e.TenantID, cmp.Or(opts.Domain, o.Domain))

	cc, err := testcert.NewClientCert("serversync interop app", 2048, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
	if err != nil {
		t.Fatalf("make the app's certificate: %v", err)
	}
	srv.RegisterApp(e.TenantID, e.ClientID, cc.Certificate, "IMAP.AccessAsApp", "POP.AccessAsApp", "SMTP.SendAsApp")
	e.Certificate = cc
	if e.cert, err = auth.ParseClientCertificate(cc.CertPEM, auth.NewSecret(cc.KeyPEM)); err != nil {
		t.Fatalf("parse the app's certificate: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM([]byte(srv.RootCAsPEM()))
	transport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}
	t.Cleanup(transport.CloseIdleConnections)
	e.client = &http.Client{Transport: transport, Timeout: 20 * time.Second}
	return e
}

// Config is the app's certificate credential for scope, as a host configures it.
func (e *Entra) Config(scope string) *auth.AppTokenConfig {
	return &auth.AppTokenConfig{
		TokenURL: e.Server.TokenURL(e.TenantID), ClientID: e.ClientID, Certificate: e.cert,
		Scope: scope, HTTPClient: e.client,
	}
}

// Token fetches one access token for scope.
func (e *Entra) Token(t testing.TB, scope string) string {
	t.Helper()
	tok, err := e.Config(scope).TokenSource(context.Background()).Token()
	if err != nil {
		t.Fatalf("get a token from the fake Entra ID: %v", err)
	}
	return tok.AccessToken
}

// RefusedTokens are tokens the test servers must refuse, by what is wrong with them:
// expired, tampered with, of another tenant, signed with a key not the issuer's, of
// another domain's tenant, and for Graph rather than mail. The fake Entra ID issues
// every one; only the tampered one is then changed. It takes a few seconds (the
// expired token must expire).
func (o *OAuth) RefusedTokens(t testing.TB) map[string]string {
	t.Helper()
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	otherDomain := o.Entra(t, &EntraOptions{Domain: "other.test"}).Token(t, MailScope)
	tampered, err := Tamper(otherDomain, func(claims map[string]any) {
		claims["domain_principal"] = strings.Replace(fmt.Sprint(claims["domain_principal"]), "@other.test", "@"+o.Domain, 1)
	})
	if err != nil {
		t.Fatal(err)
	}
	expired := o.Entra(t, &EntraOptions{TokenLifetime: time.Second}).Token(t, MailScope)
	tokens := map[string]string{
		"expired":            expired,
		"tampered":           tampered,
		"other tenant":       o.Entra(t, &EntraOptions{TenantID: "99999999-8888-7777-6666-555555555555"}).Token(t, MailScope),
		"other tenant's key": o.Entra(t, &EntraOptions{SigningKey: otherKey}).Token(t, MailScope),
		"other domain":       otherDomain,
		"for Graph":          o.Entra(t, nil).Token(t, GraphScope),
	}
	// exp is a whole second at most one second away, and Dovecot refuses exp < now.
	time.Sleep(2200 * time.Millisecond)
	return tokens
}

// Tamper returns token with its claims changed by change and its signature kept: a
// forged token whose signature no longer matches.
func Tamper(token string, change func(claims map[string]any)) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", errors.New("not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", fmt.Errorf("decode the claims: %w", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		return "", fmt.Errorf("decode the claims: %w", err)
	}
	change(claims)
	payload, err = json.Marshal(claims)
	if err != nil {
		return "", err
	}
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2], nil
}

// TokenSource is a fixed token, for tokens a test made earlier.
func TokenSource(token string) oauth2.TokenSource {
	return oauth2.StaticTokenSource(&oauth2.Token{AccessToken: token, TokenType: "Bearer"})
}
