package mailtest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// OAuth is the throwaway token issuer whose app-only tokens the test Dovecot (and
// Postfix through it) accepts, the way Exchange Online's IMAP/POP/SMTP accept an
// application's token with SASL XOAUTH2 user=<mailbox>. scripts/mailservers makes it
// and its env file names it (SERVERSYNC_INTEROP_OAUTH_KEY, _OAUTH_KID, _TENANT_ID,
// _OAUTH_AUDIENCE).
//
// Dovecot checks a token's RS256 signature with the key KeyID, its iss (Issuer), exp
// and nbf, its aud (Audience), and that the domain of its domain_principal claim is
// the domain of the mailbox logged in to: one token serves every mailbox of Domain.
type OAuth struct {
	Key      *rsa.PrivateKey // the issuer's signing key
	KeyID    string          // the kid Dovecot finds the public key under
	TenantID string
	Audience string // https://outlook.office365.com
	Domain   string // the mail domain the tokens are good for
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
	key, err := ParseRSAKey(pemBytes)
	if err != nil {
		t.Fatalf("SERVERSYNC_INTEROP_OAUTH_KEY: %v", err)
	}
	return &OAuth{Key: key, KeyID: kid, TenantID: tenant, Audience: audience, Domain: e.Domain}
}

// ParseRSAKey reads an RSA private key in PEM (PKCS #8, as openssl genpkey writes
// it, or PKCS #1).
func ParseRSAKey(pemBytes []byte) (*rsa.PrivateKey, error) {
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

// Issuer is the tokens' iss: Entra ID's v1 issuer of the tenant.
func (o *OAuth) Issuer() string { return "https://sts.windows.net/" + o.TenantID + "/" }

// Claims are the claims of an app-only access token for clientID, valid for
// lifetime from now, in the shape Entra ID gives them (v1: appid, roles, no azp —
// Dovecot would look its key up under the azp) plus domain_principal
// "<clientID>@<Domain>", which the test Dovecot matches against the mailbox's domain.
// Change them before Sign to make a token Dovecot must refuse.
func (o *OAuth) Claims(clientID string, lifetime time.Duration) map[string]any {
	now := time.Now()
	return map[string]any{
		"aud":              o.Audience,
		"iss":              o.Issuer(),
		"iat":              now.Add(-time.Minute).Unix(),
		"nbf":              now.Add(-time.Minute).Unix(),
		"exp":              now.Add(lifetime).Unix(),
		"sub":              "sp-" + clientID,
		"oid":              "sp-" + clientID,
		"appid":            clientID,
		"tid":              o.TenantID,
		"roles":            []string{"IMAP.AccessAsApp", "POP.AccessAsApp", "SMTP.SendAsApp"},
		"domain_principal": clientID + "@" + o.Domain,
	}
}

// Sign signs claims as an RS256 JWT with the issuer's key.
func (o *OAuth) Sign(claims map[string]any) (string, error) {
	return SignJWT(o.Key, o.KeyID, claims)
}

// Token is a valid token for clientID, good for an hour.
func (o *OAuth) Token(t testing.TB, clientID string) string {
	t.Helper()
	tok, err := o.Sign(o.Claims(clientID, time.Hour))
	if err != nil {
		t.Fatalf("sign a test token: %v", err)
	}
	return tok
}

// SignJWT signs claims as an RS256 JWT with key, naming kid in the header.
func SignJWT(key *rsa.PrivateKey, kid string, claims map[string]any) (string, error) {
	header, err := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": kid})
	if err != nil {
		return "", err
	}
	body, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("encode claims: %w", err)
	}
	signed := b64(header) + "." + b64(body)
	digest := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	return signed + "." + b64(sig), nil
}

// Tamper returns token with its claims replaced by claims and its signature kept: a
// forged token whose signature no longer matches.
func Tamper(token string, claims map[string]any) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", errors.New("not a JWT")
	}
	body, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	return parts[0] + "." + b64(body) + "." + parts[2], nil
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
