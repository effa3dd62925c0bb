package serversync

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Message keys: what makes an incoming message "the same message" within a mailbox.
//
// A key is the Message-ID plus a digest of the message's content, so two different
// messages that share a Message-ID (mailing lists, broken clients and migrations
// produce them) are both tracked, while a true redelivery — the same message offered
// again after an IMAP UIDVALIDITY reset, a POP3 re-download, a resync from the start,
// or a second delivery — is not:
//
//	mid:<Message-ID>#<digest>   a message with a Message-ID
//	digest:<digest>             a message without one
//	mid-sha256:<SHA-256 of the Message-ID>#<digest>   one whose key would pass MessageKeyMaxLength
//
// The digest (SHA-256, hex) covers the body and only the headers the author sets
// (stableHeaders). Everything servers add or rewrite on the way in — Received,
// Return-Path, Delivered-To, X-*, Authentication-Results, ARC-*, Status… — differs
// between two deliveries of the same message and is left out. Header values are
// unfolded and their white space collapsed, line endings are normalized and trailing
// blank lines dropped, since servers differ in those too. The digest is of the raw
// bytes, not of the parsed fields, so a newer parser never changes a key.
//
// Keys written before this scheme ("mid:<Message-ID>" alone, "sha256:<digest of all
// the bytes>" without a Message-ID) stay as they are stored, with no migration: a
// message whose key is not found is looked up by its legacy key too, on the same
// unique index (see incomingRun.findTracked). Rewriting them is not possible, because
// the raw bytes of parsed mail are not stored, and not needed: a second point
// lookup, only for mail not tracked yet, costs less than a pass over every activity.

// MessageKeyMaxLength is the longest MessageKey the incoming pipeline writes, and so
// the longest a Store must keep unique (PostgreSQL's B-tree indexes refuse entries
// over about 2.7 kB). A Message-ID too long for it is keyed by its SHA-256 instead.
const MessageKeyMaxLength = 512

// stableHeaders are the headers that identify a message's content: set by its author
// (or the author's client), never by the servers that relay and deliver it.
var stableHeaders = map[string]bool{
	"from": true, "sender": true, "reply-to": true, "to": true, "cc": true,
	"subject": true, "date": true, "message-id": true, "in-reply-to": true, "references": true,
	"mime-version": true, "content-type": true, "content-transfer-encoding": true,
}

// messageKeys are the keys of one incoming message.
type messageKeys struct {
	key    string // what the message is stored under
	legacy string // what the same message was stored under before keys had a digest
	digest string // of its content
}

// keysOf returns the keys of a message with these parsed fields and raw bytes.
func keysOf(a *EmailActivity, raw []byte) messageKeys {
	k := messageKeys{digest: contentDigest(raw)}
	if a.MessageID != "" {
		k.key, k.legacy = "mid:"+a.MessageID+"#"+k.digest, "mid:"+a.MessageID
		if len(k.key) > MessageKeyMaxLength { // a broken or hostile Message-ID
			sum := sha256.Sum256([]byte(a.MessageID))
			k.key = "mid-sha256:" + hex.EncodeToString(sum[:]) + "#" + k.digest
		}
		return k
	}
	sum := sha256.Sum256(raw)
	k.key, k.legacy = "digest:"+k.digest, "sha256:"+hex.EncodeToString(sum[:])
	return k
}

// isDigestKey reports whether key has the form keysOf gives, with a content
// digest: the ones stored before ("mid:<Message-ID>" alone, "sha256:<all bytes>")
// do not.
func isDigestKey(key string) bool {
	if strings.HasPrefix(key, "digest:") {
		return true
	}
	i := strings.LastIndexByte(key, '#')
	if i < 0 || len(key)-i-1 != 2*sha256.Size || !(strings.HasPrefix(key, "mid:") || strings.HasPrefix(key, "mid-sha256:")) {
		return false
	}
	_, err := hex.DecodeString(key[i+1:])
	return err == nil
}

// contentDigest digests raw's stable headers and body (see the package notes above).
func contentDigest(raw []byte) string {
	h := sha256.New()
	header, body := splitMessage(raw)
	var field []byte // the current header field, unfolded
	flush := func() {
		name, value, ok := bytes.Cut(field, []byte(":"))
		if ok && stableHeaders[strings.ToLower(string(bytes.TrimSpace(name)))] {
			h.Write(bytes.ToLower(bytes.TrimSpace(name)))
			h.Write([]byte{':'})
			h.Write([]byte(strings.Join(strings.Fields(string(value)), " ")))
			h.Write([]byte{'\n'})
		}
		field = field[:0]
	}
	for line := range bytes.Lines(header) {
		line = bytes.TrimRight(line, "\r\n")
		if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			field = append(append(field, ' '), line...) // a folded continuation
			continue
		}
		flush()
		field = append(field, line...)
	}
	flush()
	h.Write([]byte{'\n'})
	body = bytes.TrimRight(body, "\r\n \t")
	for line := range bytes.Lines(body) {
		h.Write(bytes.TrimRight(line, "\r\n"))
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// splitMessage splits raw at the first blank line into header and body; a message
// with no blank line is all header.
func splitMessage(raw []byte) (header, body []byte) {
	for i := 0; i < len(raw); {
		j := bytes.IndexByte(raw[i:], '\n')
		if j < 0 {
			break
		}
		line := bytes.TrimRight(raw[i:i+j], "\r")
		if len(line) == 0 {
			return raw[:i], raw[i+j+1:]
		}
		i += j + 1
	}
	return raw, nil
}

// sameAsLegacy reports whether a message stored under a's legacy "mid:" key is the
// message a. That key was the Message-ID alone, so a stored
// activity may be a different message that shares it. Its raw bytes are not kept
// (only those of unparsable mail are), so the check compares what the author set and
// no parser version changes: subject, sender, date and recipients. A stored activity
// that kept its raw bytes is compared by digest.
func sameAsLegacy(stored, a *EmailActivity, digest string) bool {
	if len(stored.Raw) > 0 {
		return contentDigest(stored.Raw) == digest
	}
	return stored.Subject == a.Subject && strings.EqualFold(stored.From.Email, a.From.Email) &&
		stored.SentAt.Equal(a.SentAt) && sameEmails(stored.To, a.To) && sameEmails(stored.Cc, a.Cc)
}

func sameEmails(x, y []Address) bool {
	if len(x) != len(y) {
		return false
	}
	for i := range x {
		if !strings.EqualFold(x[i].Email, y[i].Email) {
			return false
		}
	}
	return true
}
