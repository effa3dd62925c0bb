package mailparse

import (
	"cmp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// TokenFormat describes a tracking token: field for field
// TokenFormat, so mailparse.TokenFormat(settings.TrackingToken)
// converts one. Unset fields take the defaults below.
type TokenFormat struct {
	Enabled          bool // not used here: whether to add a token is the caller's call
	Prefix           string
	DeploymentNumber int
	UserDigits       int
	CounterDigits    int
}

// Defaults of TokenFormat, the same as serversync's TrackingToken…Default.
const (
	TokenPrefixDefault        = "CRM"
	TokenUserDigitsDefault    = 3
	TokenCounterDigitsDefault = 3
)

// deploymentDigits is the fixed width of the deployment number in a token.
const deploymentDigits = 4

// tokenFormat is a TokenFormat with defaults applied.
type tokenFormat struct {
	prefix                  string
	deployment              int
	userDigits, countDigits int
}

func resolveFormat(f TokenFormat) tokenFormat {
	return tokenFormat{
		prefix:      cmp.Or(f.Prefix, TokenPrefixDefault),
		deployment:  wrap(f.DeploymentNumber, deploymentDigits),
		userDigits:  digitsOr(f.UserDigits, TokenUserDigitsDefault),
		countDigits: digitsOr(f.CounterDigits, TokenCounterDigitsDefault),
	}
}

// digitsOr returns n clamped to the 1–9 digits OrgSettings allows, or def when unset.
func digitsOr(n, def int) int {
	if n <= 0 {
		return def
	}
	return min(n, 9)
}

// wrap reduces n to its last digits decimal digits (non-negative).
func wrap(n, digits int) int {
	m := 1
	for range digits {
		m *= 10
	}
	return (n%m + m) % m
}

// FormatToken returns the tracking token for a user's counter-th email in format f
// (see the package documentation), e.g. "CRM:0001001002". Unset fields of f take
// their defaults. Numbers wider than their digits keep their last digits: a
// counter wraps around, and correlation then finds the most recent email with the
// token. FormatToken ignores f.Enabled; whether to add a token is the caller's call.
func FormatToken(f TokenFormat, userNumber, counter int) string {
	t := resolveFormat(f)
	var b strings.Builder
	b.WriteString(t.prefix)
	b.WriteByte(':')
	writePadded(&b, t.deployment, deploymentDigits)
	writePadded(&b, wrap(userNumber, t.userDigits), t.userDigits)
	writePadded(&b, wrap(counter, t.countDigits), t.countDigits)
	return b.String()
}

func writePadded(b *strings.Builder, n, digits int) {
	s := strconv.Itoa(n)
	for range digits - len(s) {
		b.WriteByte('0')
	}
	b.WriteString(s)
}

// FindToken finds the tracking token of format f in a subject and returns it in
// canonical form (with f's prefix as configured). The prefix matches in any case;
// the digits must be exactly as many as the format has, and the token must not be
// glued to a letter or digit on either side. Only tokens of f's deployment count:
// another deployment sharing the mailbox owns the others. When there are several,
// the last wins: replies keep earlier tokens and AddToken appends the newest.
func FindToken(f TokenFormat, subject string) (string, bool) {
	t := resolveFormat(f)
	digits := deploymentDigits + t.userDigits + t.countDigits
	deployment := make([]byte, 0, deploymentDigits)
	deployment = strconv.AppendInt(deployment, int64(t.deployment), 10)
	for len(deployment) < deploymentDigits {
		deployment = append([]byte{'0'}, deployment...)
	}

	// Scan colons from the end: a token is prefix ":" digits around one of them.
	for end := len(subject); end > 0; {
		colon := strings.LastIndexByte(subject[:end], ':')
		if colon < 0 {
			break
		}
		end = colon
		start := colon - len(t.prefix)
		stop := colon + 1 + digits
		if start < 0 || stop > len(subject) || !strings.EqualFold(subject[start:colon], t.prefix) {
			continue
		}
		number := subject[colon+1 : stop]
		if !allDigits(number) || number[:deploymentDigits] != string(deployment) {
			continue
		}
		if gluedBefore(subject[:start]) || gluedAfter(subject[stop:]) {
			continue
		}
		return t.prefix + ":" + number, true
	}
	return "", false
}

// AddToken appends token to subject, after a space, unless FindToken would already
// find it there; so FindToken(f, AddToken(f, s, token)) is token for any token
// FormatToken made with f.
func AddToken(f TokenFormat, subject, token string) string {
	if token == "" {
		return subject
	}
	if found, ok := FindToken(f, subject); ok && strings.EqualFold(found, token) {
		return subject
	}
	subject = strings.TrimRightFunc(subject, unicode.IsSpace)
	if subject == "" {
		return token
	}
	return subject + " " + token
}

func allDigits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func gluedBefore(s string) bool {
	r, _ := utf8.DecodeLastRuneInString(s)
	return len(s) > 0 && isAlnum(r)
}

func gluedAfter(s string) bool {
	r, _ := utf8.DecodeRuneInString(s)
	return len(s) > 0 && isAlnum(r)
}

func isAlnum(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }
