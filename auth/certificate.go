package auth

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
	"time"
)

// MinRSAKeyBits is the smallest RSA key a client certificate may have: Microsoft
// Entra ID refuses to register a certificate with a shorter key.
const MinRSAKeyBits = 2048

// ClientAssertionLifetime is how long a client assertion made by
// [ClientCertificate.ClientAssertion] is valid: long enough for one token request,
// short enough that a captured assertion is soon worthless.
const ClientAssertionLifetime = 5 * time.Minute

// ClientCertificate is the certificate registered with an app registration and its
// RSA private key: the credential of server-to-server (app-only) authentication.
//
// It never prints its key ([ClientCertificate.String]). A ClientCertificate is
// immutable after [ParseClientCertificate] and safe for concurrent use.
type ClientCertificate struct {
	Certificate *x509.Certificate
	Key         *rsa.PrivateKey
}

// ParseClientCertificate reads a PEM certificate (or chain, leaf first) and the PEM
// RSA private key that belongs to it (PKCS#1 "RSA PRIVATE KEY" or PKCS#8 "PRIVATE
// KEY"). Errors wrap [ErrBadCertificate] with the reason, or
// [ErrCertificateKeyMismatch]; they never quote the key.
//
// The key must be kept apart from the certificate: a private key in certPEM is
// refused, since the certificate is not stored as a secret.
func ParseClientCertificate(certPEM string, keyPEM Secret) (*ClientCertificate, error) {
	leaf, err := parseLeafCertificate(certPEM)
	if err != nil {
		return nil, err
	}
	pub, ok := leaf.PublicKey.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: the certificate's key is %s, not RSA (Entra ID signs client assertions with RSA only)",
			ErrBadCertificate, leaf.PublicKeyAlgorithm)
	}
	if bits := pub.N.BitLen(); bits < MinRSAKeyBits {
		return nil, fmt.Errorf("%w: the certificate's RSA key has %d bits; at least %d are required",
			ErrBadCertificate, bits, MinRSAKeyBits)
	}
	key, err := parseRSAPrivateKey(keyPEM)
	if err != nil {
		return nil, err
	}
	if !pub.Equal(&key.PublicKey) {
		return nil, fmt.Errorf("%w (certificate %s, x5t#S256 %s)", ErrCertificateKeyMismatch, leaf.Subject, thumbprintS256(leaf))
	}
	return &ClientCertificate{Certificate: leaf, Key: key}, nil
}

func parseLeafCertificate(certPEM string) (*x509.Certificate, error) {
	rest := []byte(certPEM)
	var leaf *x509.Certificate
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		switch block.Type {
		case "CERTIFICATE":
			if leaf != nil {
				continue // the rest of the chain: the provider knows the leaf only
			}
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%w: the certificate cannot be parsed: %w", ErrBadCertificate, err)
			}
			leaf = cert
		case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY":
			return nil, fmt.Errorf("%w: the certificate PEM holds a private key; give the key separately, as a secret", ErrBadCertificate)
		}
	}
	if leaf == nil {
		return nil, fmt.Errorf("%w: no CERTIFICATE PEM block in the certificate", ErrBadCertificate)
	}
	return leaf, nil
}

func parseRSAPrivateKey(keyPEM Secret) (*rsa.PrivateKey, error) {
	rest := []byte(keyPEM.Reveal())
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, fmt.Errorf("%w: no private key PEM block (\"PRIVATE KEY\" or \"RSA PRIVATE KEY\") in the key", ErrBadCertificate)
		}
		if _, encrypted := block.Headers["Proc-Type"]; encrypted || block.Type == "ENCRYPTED PRIVATE KEY" {
			return nil, fmt.Errorf("%w: the private key is encrypted, which is not supported: store it unencrypted (it is sealed at rest)", ErrBadCertificate)
		}
		var (
			parsed any
			err    error
		)
		switch block.Type {
		case "RSA PRIVATE KEY":
			parsed, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "PRIVATE KEY":
			parsed, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			return nil, fmt.Errorf("%w: the private key is an EC key, not RSA", ErrBadCertificate)
		default:
			continue // e.g. "EC PARAMETERS" or the certificate pasted before the key
		}
		if err != nil {
			// The x509 errors describe the structure, never the key material.
			return nil, fmt.Errorf("%w: the private key cannot be parsed: %w", ErrBadCertificate, err)
		}
		key, ok := parsed.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("%w: the private key is %T, not RSA", ErrBadCertificate, parsed)
		}
		return key, nil
	}
}

// ThumbprintS256 is the base64url (unpadded) SHA-256 of the certificate's DER: the
// x5t#S256 header by which Entra ID finds the registered certificate.
func (c *ClientCertificate) ThumbprintS256() string { return thumbprintS256(c.Certificate) }

func thumbprintS256(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// NotAfter is when the certificate expires.
func (c *ClientCertificate) NotAfter() time.Time { return c.Certificate.NotAfter }

// CheckValidAt returns an error wrapping [ErrCertificateExpired] when t is outside
// the certificate's validity: the provider would refuse every assertion it signs.
func (c *ClientCertificate) CheckValidAt(t time.Time) error {
	const layout = "2006-01-02 15:04:05Z07:00"
	switch cert := c.Certificate; {
	case t.Before(cert.NotBefore):
		return fmt.Errorf("%w: certificate %s is valid from %s, it is now %s", ErrCertificateExpired,
			cert.Subject, cert.NotBefore.UTC().Format(layout), t.UTC().Format(layout))
	case t.After(cert.NotAfter):
		return fmt.Errorf("%w: certificate %s expired on %s, it is now %s: register a new certificate with the app and update the profile",
			ErrCertificateExpired, cert.Subject, cert.NotAfter.UTC().Format(layout), t.UTC().Format(layout))
	}
	return nil
}

// String describes the certificate without its key.
func (c *ClientCertificate) String() string {
	if c == nil || c.Certificate == nil {
		return "auth.ClientCertificate(nil)"
	}
	return fmt.Sprintf("auth.ClientCertificate{Subject: %q, x5t#S256: %s, NotAfter: %s, Key: %s}",
		c.Certificate.Subject.String(), c.ThumbprintS256(), c.Certificate.NotAfter.UTC().Format(time.RFC3339), Redacted)
}

// GoString keeps %#v from printing the key.
func (c *ClientCertificate) GoString() string { return c.String() }

// AssertionAlgorithm is the JWS algorithm of a client assertion.
type AssertionAlgorithm string

// Assertion algorithms Entra ID verifies.
const (
	// AssertionPS256 is RSASSA-PSS with SHA-256 and a salt as long as the hash,
	// what Microsoft's libraries use today.
	AssertionPS256 AssertionAlgorithm = "PS256"
	// AssertionRS256 is RSASSA-PKCS1-v1_5 with SHA-256.
	AssertionRS256 AssertionAlgorithm = "RS256"
)

type assertionHeader struct {
	Alg     AssertionAlgorithm `json:"alg"`
	Typ     string             `json:"typ"`
	X5tS256 string             `json:"x5t#S256"`
}

type assertionClaims struct {
	Aud string `json:"aud"`
	Iss string `json:"iss"`
	Sub string `json:"sub"`
	Jti string `json:"jti"`
	Nbf int64  `json:"nbf"`
	Iat int64  `json:"iat"`
	Exp int64  `json:"exp"`
}

// ClientAssertion signs a JWT proving the app holds the certificate's key (RFC 7523,
// as Entra ID documents for certificate credentials): header alg, typ "JWT" and
// x5t#S256; claims aud = audience (the token URL), iss = sub = clientID, a random
// jti, nbf = iat = now and exp = now + [ClientAssertionLifetime].
//
// The assertion is a credential for its lifetime: never log it.
func (c *ClientCertificate) ClientAssertion(clientID, audience string, alg AssertionAlgorithm, now time.Time) (string, error) {
	if c == nil || c.Certificate == nil || c.Key == nil {
		return "", fmt.Errorf("%w: no certificate or key", ErrBadCertificate)
	}
	if clientID == "" || audience == "" {
		return "", errors.New("auth: client assertion: the client ID and the audience are required")
	}
	if alg != AssertionPS256 && alg != AssertionRS256 {
		return "", fmt.Errorf("auth: client assertion: unsupported algorithm %q (use PS256 or RS256)", alg)
	}
	jti, err := newGUID()
	if err != nil {
		return "", fmt.Errorf("auth: client assertion: %w", err)
	}
	header, err := json.Marshal(assertionHeader{Alg: alg, Typ: "JWT", X5tS256: c.ThumbprintS256()})
	if err != nil {
		return "", err
	}
	claims, err := json.Marshal(assertionClaims{
		Aud: audience, Iss: clientID, Sub: clientID, Jti: jti,
		Nbf: now.Unix(), Iat: now.Unix(), Exp: now.Add(ClientAssertionLifetime).Unix(),
	})
	if err != nil {
		return "", err
	}
	signingInput := base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(claims)
	digest := sha256.Sum256([]byte(signingInput))
	var sig []byte
	if alg == AssertionPS256 {
		sig, err = rsa.SignPSS(rand.Reader, c.Key, crypto.SHA256, digest[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	} else {
		sig, err = rsa.SignPKCS1v15(rand.Reader, c.Key, crypto.SHA256, digest[:])
	}
	if err != nil {
		return "", fmt.Errorf("auth: client assertion: sign: %w", err)
	}
	return signingInput + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// newGUID returns a random (version 4) GUID, the form Microsoft's libraries use for jti.
func newGUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}
