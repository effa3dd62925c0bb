package auth

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"
)

// TokenError is an identity provider's refusal to issue a token: the error
// response of RFC 6749 §5.2, with Microsoft Entra ID's numeric codes (AADSTS…).
// It never holds a secret: the request's assertion and secrets are not part of it.
type TokenError struct {
	StatusCode  int
	OAuthCode   string // the "error" member: "invalid_client", "unauthorized_client", "invalid_scope", "temporarily_unavailable", …
	Description string // error_description, e.g. "AADSTS700027: Client assertion failed signature validation. …"
	ErrorCodes  []int  // Entra ID's error_codes, e.g. 700027
	// RetryAfter is the wait the provider asked for (429 and 503 replies), or 0.
	RetryAfter time.Duration
}

func (e *TokenError) Error() string {
	msg := fmt.Sprintf("auth: token endpoint refused (HTTP %d, %s)", e.StatusCode, e.OAuthCode)
	if e.Description != "" {
		msg += ": " + e.Description
	}
	return msg
}

// Temporary reports whether asking again later may succeed: the provider is
// overloaded or down, or said so (temporarily_unavailable, AADSTS50196 loop
// detection). Everything else needs the app registration or the profile fixed.
func (e *TokenError) Temporary() bool {
	return e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500 ||
		e.OAuthCode == "temporarily_unavailable" || slices.Contains(e.ErrorCodes, 50196)
}

// Errors of certificate credentials. ParseClientCertificate and the token
// sources wrap them with the details.
var (
	// ErrBadCertificate: the certificate or key PEM cannot be read or is not RSA.
	ErrBadCertificate = errors.New("auth: unusable certificate credential")
	// ErrCertificateKeyMismatch: the private key is not the certificate's.
	ErrCertificateKeyMismatch = errors.New("auth: the private key does not match the certificate")
	// ErrCertificateExpired: the certificate is expired or not yet valid, so the
	// provider would refuse every assertion signed with it.
	ErrCertificateExpired = errors.New("auth: the certificate is expired or not yet valid")
)
