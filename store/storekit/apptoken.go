package storekit

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/serversync/serversync"
)

// AppTokenKind is the record kind app tokens are sealed under (see EncodeRecord),
// with the key as the record's ID.
const AppTokenKind = "apptoken"

// CheckAppTokenKey returns the *serversync.ValidationError for a key no
// serversync.AppTokenStore accepts, or nil. Keys are text (PostgreSQL's text holds
// neither NUL nor invalid UTF-8), so every store refuses the same keys.
func CheckAppTokenKey(key string) error {
	switch {
	case key == "":
		return Required("AppToken", "Key")
	case len(key) > serversync.AppTokenKeyMaxLength:
		return appTokenKeyError(fmt.Sprintf("is %d bytes long, more than the %d a key may have", len(key), serversync.AppTokenKeyMaxLength))
	}
	return checkText(key)
}

// CheckAppTokenPrefix returns the error for a DeleteAppTokens prefix that no key
// could start with because it is not text, or nil. A prefix longer than any key is
// accepted: it matches nothing.
func CheckAppTokenPrefix(prefix string) error { return checkText(prefix) }

func checkText(s string) error {
	switch {
	case !utf8.ValidString(s):
		return appTokenKeyError("must be valid UTF-8")
	case strings.IndexByte(s, 0) >= 0:
		return appTokenKeyError("must not contain NUL")
	}
	return nil
}

func appTokenKeyError(reason string) error {
	return &serversync.ValidationError{Entity: "AppToken", Field: "Key", Reason: reason}
}

// CheckAppToken returns the error for a PutAppToken that every store refuses: a bad
// key, or a token without an AccessToken or an Expiry.
func CheckAppToken(key string, t serversync.AppToken) error {
	if err := CheckAppTokenKey(key); err != nil {
		return err
	}
	switch {
	case !t.AccessToken.IsSet():
		return Required("AppToken", "AccessToken")
	case t.Expiry.IsZero():
		return Required("AppToken", "Expiry")
	}
	return nil
}

// KeepStoredAppToken reports whether PutAppToken keeps the token stored rather than
// storing t: when the stored one expires later. Stores that compare in SQL apply
// the same rule ("stored.expires_at > new.expires_at" keeps the stored row).
func KeepStoredAppToken(stored, t serversync.AppToken) bool { return stored.Expiry.After(t.Expiry) }
