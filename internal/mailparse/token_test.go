package mailparse

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

var defaultFormat = TokenFormat{
	Enabled: true, Prefix: "CRM", DeploymentNumber: 1, UserDigits: 3, CounterDigits: 3,
}

func TestFormatToken(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		f             TokenFormat
		user, counter int
		want          string
	}{
		{"documented example", defaultFormat, 1, 2, "CRM:0001001002"},
		{"zero format takes defaults", TokenFormat{}, 7, 42, "CRM:0000007042"},
		{"custom widths", TokenFormat{Prefix: "TKT", DeploymentNumber: 99, UserDigits: 5, CounterDigits: 2}, 123, 7, "TKT:00990012307"},
		{"counter wraps", defaultFormat, 1, 1234, "CRM:0001001234"[:11] + "234"},
		{"user wraps", defaultFormat, 12345, 0, "CRM:0001345000"},
		{"negative numbers stay digits", defaultFormat, -1, -1, "CRM:0001999999"},
		{"digits clamped to 9", TokenFormat{UserDigits: 12, CounterDigits: 1}, 5, 5, "CRM:00000000000055"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, FormatToken(tc.f, tc.user, tc.counter))
		})
	}
}

func TestFindToken(t *testing.T) {
	t.Parallel()
	tests := []struct {
		subject string
		want    string // "" = not found
	}{
		{"RE: Order 42 CRM:0001001002", "CRM:0001001002"},
		{"RE: Order 42 crm:0001001002", "CRM:0001001002"},
		{"[CRM:0001001002] Order", "CRM:0001001002"},
		{"Order (CRM:0001001002).", "CRM:0001001002"},
		{"CRM:0001001002", "CRM:0001001002"},
		{"RE: CRM:0001001002 FW: CRM:0001001003", "CRM:0001001003"}, // the last wins
		{"CRM:0001001002 and CRM:0002001003", "CRM:0001001002"},     // another deployment's
		{"XCRM:0001001002", ""},                                     // glued before
		{"CRM:0001001002x", ""},                                     // glued after
		{"CRM:00010010023", ""},                                     // too many digits
		{"CRM:000100100", ""},                                       // too few
		{"CRM:0001001002é", ""},                                     // glued to a letter in any script
		{"CRM: 0001001002", ""},                                     // space inside
		{"CRM:0001-001002", ""},
		{"no token here", ""},
		{"", ""},
		{":::", ""},
		{"CRM:", ""},
	}
	for _, tc := range tests {
		got, ok := FindToken(defaultFormat, tc.subject)
		assert.Equal(t, tc.want, got, "%q", tc.subject)
		assert.Equal(t, tc.want != "", ok, "%q", tc.subject)
	}
}

func TestAddToken(t *testing.T) {
	t.Parallel()
	const tok = "CRM:0001001002"
	tests := []struct{ subject, want string }{
		{"Order 42", "Order 42 " + tok},
		{"Order 42  ", "Order 42 " + tok},
		{"", tok},
		{"RE: Order 42 " + tok, "RE: Order 42 " + tok},                              // already there
		{"RE: Order 42 crm:0001001002", "RE: Order 42 crm:0001001002"},              // in any case
		{"RE: " + tok + " CRM:0001001003", "RE: " + tok + " CRM:0001001003 " + tok}, // present, but not the last
		{"RE: Order 42 CRM:0001001001", "RE: Order 42 CRM:0001001001 " + tok},
	}
	for _, tc := range tests {
		got := AddToken(defaultFormat, tc.subject, tok)
		assert.Equal(t, tc.want, got, "%q", tc.subject)
		found, _ := FindToken(defaultFormat, got)
		assert.Equal(t, tok, found, "%q", got)
	}
	assert.Equal(t, "same", AddToken(defaultFormat, "same", ""))
}

func TestConversationHash(t *testing.T) {
	t.Parallel()
	base := ConversationHash("Order 42", []string{"alice@example.com", "bob@contoso.com"})
	assert.Len(t, base, 64)
	same := []struct {
		subject string
		people  []string
	}{
		{"RE: Order 42", []string{"bob@contoso.com", "alice@example.com"}},
		{"Re: FW: re:  Order   42", []string{"Alice@Example.com", " <bob@contoso.com>"}},
		{"AW: WG: Fwd: ORDER 42", []string{"alice@example.com", "bob@contoso.com", "alice@example.com"}},
		{"Re[2]: Re(3): order 42", []string{"alice@example.com", "", "bob@contoso.com"}},
		{"RE : Order 42", []string{"alice@example.com", "bob@contoso.com"}},
	}
	for _, tc := range same {
		assert.Equal(t, base, ConversationHash(tc.subject, tc.people), "%q %q", tc.subject, tc.people)
	}
	different := []struct {
		subject string
		people  []string
	}{
		{"Order 43", []string{"alice@example.com", "bob@contoso.com"}},
		{"Order 42", []string{"alice@example.com"}},
		{"Order 42", []string{"alice@example.com", "carol@contoso.com"}},
		{"Rechnung: Order 42", []string{"alice@example.com", "bob@contoso.com"}}, // "Re" only as a marker
		{"Order 42 extra", []string{"alice@example.com", "bob@contoso.com"}},
	}
	for _, tc := range different {
		assert.NotEqual(t, base, ConversationHash(tc.subject, tc.people), "%q %q", tc.subject, tc.people)
	}
	// Subject and participants cannot run into each other.
	assert.NotEqual(t, ConversationHash("a", []string{"b"}), ConversationHash("ab", nil))
	// Case folding beyond lower-casing.
	assert.Equal(t, ConversationHash("STRASSE", nil), ConversationHash("straße", nil))
}
