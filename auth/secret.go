package auth

import (
	"encoding/json"
	"fmt"
	"log/slog"
)

// Redacted is what a [Secret] shows wherever it would otherwise print its value.
const Redacted = "[REDACTED]"

// Secret holds a credential (password, token, client secret, private key) in memory.
//
// A Secret never shows its value: fmt verbs (%v, %+v, %#v, %s, %q), slog and
// encoding/json all print [Redacted] instead. The only way to read the value is
// [Secret.Reveal], which keeps every place that touches a credential easy to find.
// Stores persist secrets sealed (see [Sealer]); they never go through Secret's JSON form.
//
// The zero value is an empty secret. A Secret is an immutable value and safe to copy
// and to use from multiple goroutines.
type Secret struct {
	value *string // a pointer so that == compares identity cheaply and the zero value is "unset"
}

// NewSecret returns a Secret holding value. An empty value gives an unset Secret.
func NewSecret(value string) Secret {
	if value == "" {
		return Secret{}
	}
	return Secret{value: &value}
}

// Reveal returns the secret value. Call it only where the credential is handed to a
// server or a cipher, never to build a message.
func (s Secret) Reveal() string {
	if s.value == nil {
		return ""
	}
	return *s.value
}

// IsSet reports whether the secret holds a non-empty value.
func (s Secret) IsSet() bool { return s.value != nil }

// Equal reports whether two secrets hold the same value.
func (s Secret) Equal(other Secret) bool { return s.Reveal() == other.Reveal() }

// String returns [Redacted] for a set secret and "" for an unset one.
func (s Secret) String() string {
	if s.IsSet() {
		return Redacted
	}
	return ""
}

// GoString keeps %#v from printing the pointer target.
func (s Secret) GoString() string { return fmt.Sprintf("auth.Secret(%q)", s.String()) }

// Format makes every fmt verb print the redacted form.
func (s Secret) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'q':
		fmt.Fprintf(f, "%q", s.String())
	case verb == 'v' && f.Flag('#'):
		fmt.Fprint(f, s.GoString())
	default:
		fmt.Fprint(f, s.String())
	}
}

// LogValue keeps slog from logging the value.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON writes the redacted form, so a host that dumps a Profile or Mailbox as
// JSON never leaks a credential.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// UnmarshalJSON accepts any string and stores nothing: a redacted value read back must
// not turn into the literal password "[REDACTED]". Stores restore secrets from their
// sealed form instead.
func (s *Secret) UnmarshalJSON(data []byte) error {
	var ignored string
	if err := json.Unmarshal(data, &ignored); err != nil {
		return fmt.Errorf("auth: secret: %w", err)
	}
	*s = Secret{}
	return nil
}
