package serversync

import (
	"bytes"
	"testing"
)

// FuzzParseMessage covers the incoming pipeline's parsing path: any bytes a server
// hands over become an activity without a panic, and whatever cannot be parsed
// keeps the raw message.
func FuzzParseMessage(f *testing.F) {
	for _, seed := range []string{
		"From: a@b.test\r\nSubject: hi\r\nMessage-ID: <x@y>\r\n\r\nbody\r\n",
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nx\r\n--b--\r\n",
		"Subject: =?UTF-8?B?w6k=?=\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=C3=A9=\r\n",
		"\x00\xff\r\n\r\n",
		"",
		"From: cron@b.test\r\nContent-Type: text/plain; name=\"r.txt\"\r\nContent-Disposition: inline; filename=r.txt\r\n\r\nreport\r\n",
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>x</p>\r\n--b\r\n" +
			"Content-Type: text/plain; name=n.txt\r\nContent-Disposition: inline; filename=n.txt\r\n\r\nnotes\r\n--b--\r\n",
		"From: a@b.test\r\nDate: someday\r\nSubject: =?x-nope?q?caf=E9?=\r\nTo: a <a@b>; c@d\r\n\r\nbody\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		a := &EmailActivity{}
		parseMessage(raw, a, 1024)
		if a.ParseError != "" && !bytes.Equal(a.Raw, raw) {
			t.Fatalf("parse error %q but Raw is not the message", a.ParseError)
		}
		if a.Raw != nil && a.ParseError == "" && len(a.ParseWarnings) == 0 {
			t.Fatal("Raw kept for a message without error or warning")
		}
		if a.MessageKey = keysOf(a, raw).key; a.MessageKey == "" {
			t.Fatal("no message key")
		}
		_, _ = forwardedOriginal(a, raw, 1024)
	})
}
