package mailparse

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"

	"golang.org/x/text/cases"
)

// replyPrefixes are the reply and forward markers mail clients put before a
// subject: English, and German Outlook's AW (Antwort) and WG (Weitergeleitet).
var replyPrefixes = []string{"re", "fwd", "fw", "aw", "wg"}

// ConversationHash returns the smart-matching key of a message (DESIGN §4 step 5):
// a SHA-256, in hex, of its normalized subject and its participants. The subject
// loses its leading reply and forward markers (Re:, FW:, Fwd:, AW:, WG:, also as
// "Re[2]:"), has its whitespace collapsed and is case-folded; participants are
// trimmed, lower-cased, deduplicated and sorted. So an email and the replies to it
// hash alike when callers pass the same set of people for each, typically the From,
// To and Cc addresses: a reply swaps From and To but keeps the set.
func ConversationHash(subject string, participants []string) string {
	addrs := make([]string, 0, len(participants))
	for _, p := range participants {
		p = strings.ToLower(strings.Trim(strings.TrimSpace(p), "<>"))
		if p != "" {
			addrs = append(addrs, p)
		}
	}
	slices.Sort(addrs)
	addrs = slices.Compact(addrs)

	h := sha256.New()
	h.Write([]byte(normalizeSubject(subject)))
	for _, a := range addrs {
		// A separator no subject or address contains keeps the parts apart.
		h.Write([]byte{0})
		h.Write([]byte(a))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// normalizeSubject strips reply markers, collapses whitespace and case-folds.
func normalizeSubject(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	for stripped := true; stripped; {
		stripped = false
		for _, prefix := range replyPrefixes {
			if rest, ok := cutReplyMarker(s, prefix); ok {
				s, stripped = rest, true
				break
			}
		}
	}
	return cases.Fold().String(s)
}

// cutReplyMarker removes prefix, an optional "[n]" or "(n)" count, an optional
// space and a colon from the start of s.
func cutReplyMarker(s, prefix string) (string, bool) {
	if len(s) <= len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return s, false
	}
	rest := s[len(prefix):]
	if len(rest) > 0 && (rest[0] == '[' || rest[0] == '(') {
		closing := "]"
		if rest[0] == '(' {
			closing = ")"
		}
		end := strings.Index(rest, closing)
		if end < 0 || !allDigits(rest[1:end]) {
			return s, false
		}
		rest = rest[end+1:]
	}
	rest = strings.TrimPrefix(rest, " ")
	if !strings.HasPrefix(rest, ":") {
		return s, false
	}
	return strings.TrimPrefix(rest[1:], " "), true
}
