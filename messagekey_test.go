package serversync

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

const keyTestMessage = "From: Bob <bob@partner.test>\r\nTo: alice@example.test\r\nSubject: Quarterly\r\n" +
	"Date: Mon, 23 Nov 2026 09:00:00 +0000\r\nMessage-ID: <same@partner.test>\r\n" +
	"Content-Type: text/plain\r\n\r\nThe numbers.\r\n"

func TestContentDigestIgnoresWhatServersAdd(t *testing.T) {
	base := contentDigest([]byte(keyTestMessage))
	redelivered := "Return-Path: <bob@partner.test>\r\nDelivered-To: alice@example.test\r\n" +
		"Received: from mx.partner.test by mx.example.test with ESMTPS id 1234;\r\n\tMon, 23 Nov 2026 09:00:01 +0000\r\n" +
		"X-Spam-Status: No\r\nAuthentication-Results: mx.example.test; dkim=pass\r\n" + keyTestMessage + "\r\n\r\n"
	assert.Equal(t, base, contentDigest([]byte(redelivered)), "trace headers and trailing blank lines are not content")
	assert.Equal(t, base, contentDigest([]byte(strings.ReplaceAll(keyTestMessage, "\r\n", "\n"))), "line endings are not content")
	folded := strings.Replace(keyTestMessage, "Subject: Quarterly", "Subject:   \r\n Quarterly", 1)
	assert.Equal(t, base, contentDigest([]byte(folded)), "folding is not content")

	for name, changed := range map[string]string{
		"body":    strings.Replace(keyTestMessage, "The numbers.", "Other numbers.", 1),
		"subject": strings.Replace(keyTestMessage, "Quarterly", "[list] Quarterly", 1),
		"date":    strings.Replace(keyTestMessage, "09:00:00", "10:00:00", 1),
		"to":      strings.Replace(keyTestMessage, "To: alice", "To: carol", 1),
	} {
		assert.NotEqual(t, base, contentDigest([]byte(changed)), name)
	}
}

func TestKeysOf(t *testing.T) {
	a := &EmailActivity{MessageID: "same@partner.test"}
	k := keysOf(a, []byte(keyTestMessage))
	assert.Equal(t, "mid:same@partner.test#"+k.digest, k.key)
	assert.Equal(t, "mid:same@partner.test", k.legacy, "the key messages were stored under before")

	long := keysOf(&EmailActivity{MessageID: strings.Repeat("x", 600) + "@p"}, []byte(keyTestMessage))
	assert.LessOrEqual(t, len(long.key), MessageKeyMaxLength)
	assert.True(t, strings.HasPrefix(long.key, "mid-sha256:"), long.key)

	k = keysOf(&EmailActivity{}, []byte("Subject: no id\r\n\r\nx"))
	assert.True(t, strings.HasPrefix(k.key, "digest:"), k.key)
	assert.True(t, strings.HasPrefix(k.legacy, "sha256:"), k.legacy)
}

func TestSameAsLegacy(t *testing.T) {
	sent := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	stored := &EmailActivity{Subject: "Quarterly", From: Address{Email: "bob@partner.test"}, SentAt: sent,
		To: []Address{{Email: "alice@example.test"}}}
	same := stored.Clone()
	same.From.Email = "Bob@Partner.test"
	assert.True(t, sameAsLegacy(stored, same, ""))
	other := stored.Clone()
	other.Subject = "Another message reusing the Message-ID"
	assert.False(t, sameAsLegacy(stored, other, ""))
	other = stored.Clone()
	other.SentAt = sent.Add(time.Minute)
	assert.False(t, sameAsLegacy(stored, other, ""))

	raw := []byte(keyTestMessage)
	unparsed := &EmailActivity{Raw: raw}
	assert.True(t, sameAsLegacy(unparsed, &EmailActivity{}, contentDigest(raw)), "kept raw bytes are compared by digest")
	assert.False(t, sameAsLegacy(unparsed, &EmailActivity{}, contentDigest([]byte("x"))))
}

// BenchmarkContentDigest digests a message of ~15 KB, the average of the
// pipeline benchmark's corpus.
func BenchmarkContentDigest(b *testing.B) {
	raw := []byte("Received: from a by b;\r\n\tMon, 23 Nov 2026 09:00:01 +0000\r\n" + keyTestMessage +
		strings.Repeat("A line of body text that is seventy-odd characters long, like most mail.\r\n", 200))
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		contentDigest(raw)
	}
}

func TestIsDigestKey(t *testing.T) {
	msg := []byte("Message-ID: <a#b@example.test>\r\nSubject: x\r\n\r\nbody\r\n")
	keys := keysOf(&EmailActivity{MessageID: "a#b@example.test"}, msg)
	noID := keysOf(&EmailActivity{}, msg)
	long := keysOf(&EmailActivity{MessageID: strings.Repeat("x", MessageKeyMaxLength)}, msg)
	for key, want := range map[string]bool{
		keys.key: true, noID.key: true, long.key: true,
		keys.legacy: false, noID.legacy: false, "out:123": false,
		"mid:a#b@example.test":      false, // a legacy key whose Message-ID holds a '#'
		"mid:x#" + noID.digest[:10]: false,
	} {
		assert.Equal(t, want, isDigestKey(key), key)
	}
}
