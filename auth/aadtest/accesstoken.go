package aadtest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// AccessClaims are the claims of an access token the server issued.
type AccessClaims struct {
	TenantID string // tid
	AppID    string // appid: the client ID
	Audience string // aud: the resource, e.g. "https://outlook.office365.com"
	Issuer   string // iss: Issuer(TenantID)
	// DomainPrincipal is "<client ID>@<tenant domain>", a claim of the fake only:
	// it stands in for Exchange's own check that an app serves the mailboxes of
	// its tenant. Dovecot does the same with username_attribute = domain_principal
	// and username_format = %Ld, which compares the claim's domain with the
	// mailbox's.
	DomainPrincipal string
	Roles           []string // application permissions granted, e.g. "IMAP.AccessAsApp"
	IssuedAt        time.Time
	ExpiresAt       time.Time
}

// accessTokenClaims is the payload of a v1 app-only access token. There is no
// "azp" claim, as in Entra's v1 tokens (they carry appid): Dovecot 2.3 would look
// the validation key up under the azp value instead of "default".
type accessTokenClaims struct {
	Aud             string   `json:"aud"`
	Iss             string   `json:"iss"`
	Iat             int64    `json:"iat"`
	Nbf             int64    `json:"nbf"`
	Exp             int64    `json:"exp"`
	AppID           string   `json:"appid"`
	AppIDAcr        string   `json:"appidacr"` // "2": the app authenticated with a certificate
	Idp             string   `json:"idp"`
	IdTyp           string   `json:"idtyp"`
	Oid             string   `json:"oid"`
	Roles           []string `json:"roles,omitempty"`
	Sub             string   `json:"sub"`
	Tid             string   `json:"tid"`
	Uti             string   `json:"uti"`
	Ver             string   `json:"ver"`
	DomainPrincipal string   `json:"domain_principal"`
}

type accessTokenHeader struct {
	Typ string `json:"typ"`
	Alg string `json:"alg"`
	Kid string `json:"kid"`
}

// accessToken signs an RS256 v1 access token for an app of t. s.mu is held.
func (s *Server) accessToken(t *tenant, clientID string, roles []string, resource string, now time.Time) (string, error) {
	oid := stableGUID(t.id, clientID)
	uti := make([]byte, 16)
	_, _ = rand.Read(uti)
	header, err := json.Marshal(accessTokenHeader{Typ: "JWT", Alg: "RS256", Kid: s.kid})
	if err != nil {
		return "", err
	}
	claims, err := json.Marshal(accessTokenClaims{
		Aud: resource, Iss: Issuer(t.id), Iat: now.Unix(), Nbf: now.Unix(), Exp: now.Add(s.lifetime).Unix(),
		AppID: clientID, AppIDAcr: "2", Idp: Issuer(t.id), IdTyp: "app", Oid: oid,
		Roles: append([]string(nil), roles...), Sub: oid, Tid: t.id,
		Uti: base64.RawURLEncoding.EncodeToString(uti), Ver: "1.0",
		DomainPrincipal: clientID + "@" + cmpOr(t.domain, t.id),
	})
	if err != nil {
		return "", err
	}
	input := base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(claims)
	digest := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, s.key, crypto.SHA256, digest[:])
	if err != nil {
		return "", err
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// VerifyAccessToken checks an access token as a resource server would: RS256
// signature by the server's key under its kid, issuer of a known tenant, audience
// (the resource, e.g. "https://graph.microsoft.com"), and the time (exp, nbf) by
// the server's clock. Errors wrap [ErrInvalidAccessToken] and never quote the token.
func (s *Server) VerifyAccessToken(token, audience string) (*AccessClaims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("%w: not a JWT", ErrInvalidAccessToken)
	}
	var header accessTokenHeader
	var claims accessTokenClaims
	if decodeSegment(parts[0], &header) != nil || decodeSegment(parts[1], &claims) != nil {
		return nil, fmt.Errorf("%w: malformed JWT", ErrInvalidAccessToken)
	}
	if header.Alg != "RS256" {
		return nil, fmt.Errorf("%w: alg %q, want RS256", ErrInvalidAccessToken, header.Alg)
	}
	if header.Kid != s.kid {
		return nil, fmt.Errorf("%w: unknown kid %q", ErrInvalidAccessToken, header.Kid)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, fmt.Errorf("%w: malformed signature", ErrInvalidAccessToken)
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(&s.key.PublicKey, crypto.SHA256, digest[:], sig) != nil {
		return nil, fmt.Errorf("%w: bad signature", ErrInvalidAccessToken)
	}
	s.mu.Lock()
	t := s.tenants[claims.Tid]
	known := t != nil && t.id == claims.Tid
	now := s.now()
	s.mu.Unlock()
	if !known || claims.Iss != Issuer(claims.Tid) {
		return nil, fmt.Errorf("%w: issuer %q is not a tenant of this server", ErrInvalidAccessToken, claims.Iss)
	}
	if claims.Aud != audience {
		return nil, fmt.Errorf("%w: audience %q, want %q", ErrInvalidAccessToken, claims.Aud, audience)
	}
	exp, nbf := time.Unix(claims.Exp, 0), time.Unix(claims.Nbf, 0)
	if !now.Before(exp) {
		return nil, fmt.Errorf("%w: expired at %s", ErrInvalidAccessToken, exp.UTC().Format(time.RFC3339))
	}
	if now.Before(nbf) {
		return nil, fmt.Errorf("%w: not valid before %s", ErrInvalidAccessToken, nbf.UTC().Format(time.RFC3339))
	}
	return &AccessClaims{
		TenantID: claims.Tid, AppID: claims.AppID, Audience: claims.Aud, Issuer: claims.Iss,
		DomainPrincipal: claims.DomainPrincipal, Roles: claims.Roles,
		IssuedAt: time.Unix(claims.Iat, 0), ExpiresAt: exp,
	}, nil
}
