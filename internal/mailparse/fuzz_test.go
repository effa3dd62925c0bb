package mailparse

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"
)

// FuzzParse checks that no input makes Parse panic, and that whenever it reports a
// problem the activity keeps the complete original. Run with
//
//	go test -fuzz=FuzzParse ./internal/mailparse/
//
// testdata/fuzz/FuzzParse keeps inputs an earlier run found interesting.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		benchMessage(),
		crlf("From: a@b.c\nTo: d@e.f\nSubject: =?utf-8?q?x?=\nDate: Tue, 3 Jan 2006 10:00:00 +0100\nMessage-ID: <x@y>\n\nhi\n"),
		crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\ncaf=E9=\n--b\nContent-Type: message/rfc822\n\nSubject: inner\n\nbody\n--b--\n"),
		crlf("Content-Type: multipart/alternative\n\n--x\nContent-Transfer-Encoding: base64\n\nSGVsbG8g!!d29y\n--x\nContent-Type: text/html; charset=x-unknown\n\n\xff\x00\n"),
		crlf("Subject: \xe9\x00\n From: <a@b>; c@d\nContent-Type: multipart/related; boundary=\"a\"\n\n--a\ngarbage\n--a"),
		"From: a@b.c\nContent-Type: multipart/mixed; boundary=----=_Part_1\n\n------=_Part_1\nContent-Disposition: attachment; filename*0*=iso-8859-1''%E9t; filename*1=e.txt\n\nx\n",
		"",
		"\r\n\r\n",
		"just text",
		// The body choice: named inline text parts, before and after the body,
		// inside an alternative, and an explicit attachment.
		crlf("Content-Type: text/plain; name=x.txt\nContent-Disposition: inline; filename=x.txt\n\nbody\n"),
		crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/html\n\n<p>x</p>\n--b\n" +
			"Content-Type: text/plain; name=n.txt\nContent-Disposition: inline; filename=n.txt\n\nnotes\n--b\n" +
			"Content-Type: multipart/alternative; boundary=a\n\n--a\nContent-Type: text/plain; name=p.txt\n\np\n--a--\n" +
			"--b\nContent-Type: text/plain\nContent-Disposition: attachment; filename=l.txt\n\nlog\n--b--\n"),
		// Warnings only: missing fields, a bad Date, an unknown charset, a stray "=".
		crlf("From: cron@example.com\nDate: sometime\nContent-Type: text/plain; charset=x-nope\n" +
			"Content-Transfer-Encoding: quoted-printable\n\n100% =ZZ\n"),
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		for _, opts := range []*Options{nil, {MaxAttachmentSize: 16, MaxBodySize: 64}, {MaxRawSize: 40}} {
			m, err := Parse(bytes.NewReader(input), opts)
			if opts == nil || opts.MaxRawSize == 0 {
				checkInvariants(t, input, m, err)
			}
			// ParseBytes reads the same message without copying it: the same result,
			// Raw included (cut at MaxRawSize alike).
			mb, errb := ParseBytes(input, opts)
			if !reflect.DeepEqual(m, mb) || fmt.Sprint(err) != fmt.Sprint(errb) {
				t.Fatalf("ParseBytes differs from Parse:\n%#v, %v\n%#v, %v", mb, errb, m, err)
			}
		}
	})
}

// FuzzFindToken checks that FindToken never panics and always finds a token that
// AddToken added, whatever the subject and format.
func FuzzFindToken(f *testing.F) {
	f.Add("RE: Order 42", "CRM", 1, 3, 3, 1, 2)
	f.Add("CRM:0001001002 CRM:0001001003", "CRM", 1, 3, 3, 1, 2)
	f.Add("", "", 0, 0, 0, 0, 0)
	f.Add("x:0000000000:", "x:", -5, 9, 1, 123456789, -1)
	f.Add("Réponse crm:0099001002é", "crm", 99, 3, 3, 1, 2)
	f.Fuzz(func(t *testing.T, subject, prefix string, deployment, userDigits, counterDigits, user, counter int) {
		if len(prefix) > 20 {
			prefix = prefix[:20] // OrgSettings allows 1–20 characters
		}
		format := TokenFormat{
			Enabled: true, Prefix: prefix, DeploymentNumber: deployment,
			UserDigits: userDigits % 10, CounterDigits: counterDigits % 10,
		}
		FindToken(format, subject) // must not panic on any subject

		tok := FormatToken(format, user, counter)
		withToken := AddToken(format, subject, tok)
		got, ok := FindToken(format, withToken)
		if !ok || got != tok {
			t.Fatalf("FindToken(AddToken(%q, %q)) = %q, %v", subject, tok, got, ok)
		}
		if AddToken(format, withToken, tok) != withToken {
			t.Fatalf("AddToken added %q twice to %q", tok, withToken)
		}
	})
}
