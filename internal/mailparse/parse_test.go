package mailparse

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// crlf turns a readable test message with "\n" line ends into wire format.
func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

// parse runs Parse on msg and checks the invariants every result must meet.
func parse(t *testing.T, msg string, opts *Options) (*Message, error) {
	t.Helper()
	m, err := Parse(strings.NewReader(msg), opts)
	checkInvariants(t, []byte(msg), m, err)
	return m, err
}

// checkInvariants holds for any input: no panic, Size counts every byte, an error
// comes with ParseError and the complete Raw, success without ParseError and with
// Raw only beside warnings, warnings are bounded, and every string is valid UTF-8
// without NULs (storable in any database).
func checkInvariants(t testing.TB, input []byte, a *Message, err error) {
	t.Helper()
	var pe *panicError
	if errors.As(err, &pe) {
		t.Fatalf("parser panicked: %v\n%s", pe.value, pe.stack)
	}
	if int64(len(input)) != a.Size {
		t.Fatalf("Size = %d, want %d", a.Size, len(input))
	}
	if err != nil {
		var perr *ParseError
		if !errors.As(err, &perr) {
			t.Fatalf("error is not a *ParseError: %v", err)
		}
		if a.ParseError == "" || !bytes.Equal(a.Raw, input) {
			t.Fatalf("error %v without ParseError or complete Raw (%d of %d bytes)", err, len(a.Raw), len(input))
		}
		if len(a.ParseError) > maxParseErrorLen {
			t.Fatalf("ParseError of %d bytes", len(a.ParseError))
		}
	} else if a.ParseError != "" {
		t.Fatalf("no error but ParseError %q", a.ParseError)
	} else if a.Raw != nil && (len(a.ParseWarnings) == 0 || !bytes.Equal(a.Raw, input)) {
		t.Fatalf("no error, warnings %q, but Raw of %d bytes (input %d)", a.ParseWarnings, len(a.Raw), len(input))
	}
	if len(a.ParseWarnings) > maxProblems+1 {
		t.Fatalf("%d warnings", len(a.ParseWarnings))
	}
	for _, w := range a.ParseWarnings {
		if w == "" || len(w) > maxWarningLen {
			t.Fatalf("warning of %d bytes: %q", len(w), w)
		}
	}
	strs := []string{a.Subject, a.TextBody, a.HTMLBody, a.MessageID, a.ParseError, a.From.Name, a.From.Email}
	strs = append(strs, a.ParseWarnings...)
	for _, l := range [][]Address{a.To, a.Cc, a.Bcc, a.ReplyTo} {
		for _, addr := range l {
			strs = append(strs, addr.Name, addr.Email)
		}
	}
	strs = append(strs, a.InReplyTo...)
	strs = append(strs, a.References...)
	for _, att := range a.Attachments {
		strs = append(strs, att.Filename, att.ContentType, att.ContentID)
		if att.Omitted && att.Content != nil {
			t.Fatalf("attachment %q omitted but has content", att.Filename)
		}
		if !att.Omitted && int64(len(att.Content)) != att.Size {
			t.Fatalf("attachment %q: Size %d, content %d bytes", att.Filename, att.Size, len(att.Content))
		}
	}
	for _, s := range strs {
		if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
			t.Fatalf("string field %q is not storable text", s)
		}
	}
}

func addrs(list ...string) []Address {
	var out []Address
	for i := 0; i < len(list); i += 2 {
		out = append(out, Address{Name: list[i], Email: list[i+1]})
	}
	return out
}

func date(s string) time.Time {
	t, err := time.Parse(time.RFC1123Z, s)
	if err != nil {
		panic(err)
	}
	return t
}

// Real-world-like messages that are well formed: no problem, no Raw.
func TestParseWellFormed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		msg   string
		opts  *Options
		check func(t *testing.T, a *Message)
	}{{
		name: "plain text with threading headers",
		msg: crlf(`Return-Path: <alice@example.com>
Received: from mail.example.com (mail.example.com [192.0.2.1])
	by mx.contoso.com with ESMTPS id 123
	for <bob@contoso.com>; Mon, 2 Jan 2006 15:04:07 -0700
From: "Alice Example" <alice@example.com>
To: Bob <bob@contoso.com>, carol@contoso.com
Cc: "Doe, Dan" <dan@contoso.com>
Reply-To: support@example.com
Subject: Quarterly numbers
Date: Mon, 2 Jan 2006 15:04:05 -0700
Message-ID: <CAF=abc123@mail.example.com>
In-Reply-To: <prev@contoso.com>
References: <root@contoso.com>
 <prev@contoso.com>
MIME-Version: 1.0
Content-Type: text/plain; charset="UTF-8"

Hi Bob,

the numbers are attached.
`),
		check: func(t *testing.T, a *Message) {
			assert.Equal(t, Address{Name: "Alice Example", Email: "alice@example.com"}, a.From)
			assert.Equal(t, addrs("Bob", "bob@contoso.com", "", "carol@contoso.com"), a.To)
			assert.Equal(t, addrs("Doe, Dan", "dan@contoso.com"), a.Cc)
			assert.Nil(t, a.Bcc)
			assert.Equal(t, addrs("", "support@example.com"), a.ReplyTo)
			assert.Equal(t, "Quarterly numbers", a.Subject)
			assert.Equal(t, "CAF=abc123@mail.example.com", a.MessageID)
			assert.Equal(t, []string{"prev@contoso.com"}, a.InReplyTo)
			assert.Equal(t, []string{"root@contoso.com", "prev@contoso.com"}, a.References)
			assert.True(t, date("Mon, 02 Jan 2006 15:04:05 -0700").Equal(a.SentAt), a.SentAt)
			assert.Equal(t, "Hi Bob,\r\n\r\nthe numbers are attached.\r\n", a.TextBody)
			assert.Empty(t, a.HTMLBody)
			assert.Empty(t, a.Attachments)
		},
	}, {
		name: "multipart/alternative, quoted-printable in ISO-8859-1",
		msg: crlf(`From: alice@example.com
To: bob@contoso.com
Subject: =?ISO-8859-1?Q?Gr=FC=DFe?=
Date: Tue, 3 Jan 2006 10:00:00 +0100
Message-ID: <alt@example.com>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="000000000000abcdef"

--000000000000abcdef
Content-Type: text/plain; charset="ISO-8859-1"
Content-Transfer-Encoding: quoted-printable

Gr=FC=DFe aus K=F6ln, this line is long enough to need a soft line break=
 here.
--000000000000abcdef
Content-Type: text/html; charset="ISO-8859-1"
Content-Transfer-Encoding: quoted-printable

<div dir=3D"ltr">Gr=FC=DFe aus K=F6ln</div>
--000000000000abcdef--
`),
		check: func(t *testing.T, a *Message) {
			assert.Equal(t, "Grüße", a.Subject)
			assert.Equal(t, "Grüße aus Köln, this line is long enough to need a soft line break here.", a.TextBody)
			assert.Equal(t, `<div dir="ltr">Grüße aus Köln</div>`, a.HTMLBody)
			assert.Empty(t, a.Attachments)
		},
	}, {
		name: "base64 text body in ISO-8859-1",
		msg: crlf(`From: alice@example.com
Subject: b64
Date: Tue, 3 Jan 2006 10:00:00 +0100
Message-ID: <b64@example.com>
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: base64

R3L832UgYXVz
IEv2bG4=
`),
		check: func(t *testing.T, a *Message) {
			assert.Equal(t, "Grüße aus Köln", a.TextBody)
		},
	}, {
		name: "RFC 2047 subjects in UTF-8, split words, Shift_JIS",
		msg: crlf(`From: =?UTF-8?B?SsO2cmc=?= <joerg@example.de>
To: =?shift_jis?B?g2WDWINn?= <test@example.jp>
Subject: =?UTF-8?B?R3LDtsOfZQ==?= und
 =?UTF-8?Q?mehr_?= =?Shift_JIS?B?k/qWe4zqgsyMj5a8?=
Date: Tue, 3 Jan 2006 10:00:00 +0100
Message-ID: <2047@example.com>
Content-Type: text/plain; charset=Shift_JIS
Content-Transfer-Encoding: base64

g2WDWINnlnuVtg==
`),
		check: func(t *testing.T, a *Message) {
			assert.Equal(t, "Größe und mehr 日本語の件名", a.Subject)
			assert.Equal(t, Address{Name: "Jörg", Email: "joerg@example.de"}, a.From)
			assert.Equal(t, addrs("テスト", "test@example.jp"), a.To)
			assert.Equal(t, "テスト本文", a.TextBody)
		},
	}, {
		name: "attachments: base64 PDF, RFC 2231 and RFC 2047 filenames, path stripped",
		msg: crlf(`From: alice@example.com
Subject: files
Date: Tue, 3 Jan 2006 10:00:00 +0100
Message-ID: <att@example.com>
Content-Type: multipart/mixed; boundary=----=_NextPart_000_0001_01D2

This is a multi-part message in MIME format.

------=_NextPart_000_0001_01D2
Content-Type: text/plain; charset=us-ascii

See attached.
------=_NextPart_000_0001_01D2
Content-Type: application/pdf; name="report.pdf"
Content-Disposition: attachment; filename="report.pdf"
Content-Transfer-Encoding: base64

JVBERi0xLjQK
JSVFT0YK
------=_NextPart_000_0001_01D2
Content-Type: application/octet-stream
Content-Disposition: attachment; filename*=iso-8859-1''%E9t%E9.txt

summer
------=_NextPart_000_0001_01D2
Content-Type: application/pdf; name="=?UTF-8?B?w7xiZXIucGRm?="
Content-Transfer-Encoding: base64

JVBERi0=
------=_NextPart_000_0001_01D2
Content-Type: text/plain; charset=iso-8859-1
Content-Disposition: attachment; filename="C:\\Users\\me\\notes.txt"

caf=E9
------=_NextPart_000_0001_01D2--
`),
		check: func(t *testing.T, a *Message) {
			assert.Equal(t, "See attached.", a.TextBody)
			require.Len(t, a.Attachments, 4)
			assert.Equal(t, Attachment{
				Filename: "report.pdf", ContentType: "application/pdf", Size: 15, Content: []byte("%PDF-1.4\n%%EOF\n"),
			}, a.Attachments[0])
			assert.Equal(t, "été.txt", a.Attachments[1].Filename)
			assert.Equal(t, []byte("summer"), a.Attachments[1].Content)
			assert.Equal(t, "über.pdf", a.Attachments[2].Filename)
			assert.Equal(t, "notes.txt", a.Attachments[3].Filename)
			assert.Equal(t, "text/plain; charset=iso-8859-1", a.Attachments[3].ContentType)
			assert.Empty(t, Embedded(a))
		},
	}, {
		name: "attachment over the cap is recorded without content",
		opts: &Options{MaxAttachmentSize: 10},
		msg: crlf(`From: alice@example.com
Subject: big
Date: Tue, 3 Jan 2006 10:00:00 +0100
Message-ID: <big@example.com>
Content-Type: multipart/mixed; boundary=b

--b
Content-Type: text/plain

body
--b
Content-Type: image/png; name=small.png
Content-Transfer-Encoding: base64

AAECAwQFBgcICQ==
--b
Content-Type: image/png; name=big.png
Content-Transfer-Encoding: base64

AAECAwQFBgcICQoL
--b--
`),
		check: func(t *testing.T, a *Message) {
			require.Len(t, a.Attachments, 2)
			assert.Equal(t, Attachment{Filename: "small.png", ContentType: "image/png", Size: 10,
				Content: []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}}, a.Attachments[0])
			assert.Equal(t, Attachment{Filename: "big.png", ContentType: "image/png", Size: 12, Omitted: true},
				a.Attachments[1])
		},
	}, {
		name: "negative cap keeps no content",
		opts: &Options{MaxAttachmentSize: -1},
		msg: crlf(`From: a@example.com
Date: Tue, 3 Jan 2006 10:00:00 +0100
Message-ID: <none@example.com>
Content-Type: multipart/mixed; boundary=b

--b
Content-Type: application/zip; name=a.zip

PK
--b
Content-Type: application/zip; name=empty.zip

--b--
`),
		check: func(t *testing.T, a *Message) {
			require.Len(t, a.Attachments, 2)
			assert.Equal(t, Attachment{Filename: "a.zip", ContentType: "application/zip", Size: 2, Omitted: true},
				a.Attachments[0])
			assert.Equal(t, Attachment{Filename: "empty.zip", ContentType: "application/zip"}, a.Attachments[1])
		},
	}, {
		name: "nested mixed, related and alternative with an inline image",
		msg: crlf(`From: alice@example.com
Subject: nested
Date: Tue, 3 Jan 2006 10:00:00 +0100
Message-ID: <nested@example.com>
Content-Type: multipart/mixed; boundary="mixed"

--mixed
Content-Type: multipart/related; boundary="related"; type="multipart/alternative"

--related
Content-Type: multipart/alternative; boundary="alt"

--alt
Content-Type: text/plain; charset=utf-8

Logo below.
--alt
Content-Type: text/html; charset=utf-8

<img src="cid:logo@example.com">
--alt--

--related
Content-Type: image/gif
Content-ID: <logo@example.com>
Content-Disposition: inline
Content-Transfer-Encoding: base64

R0lGODlhAQABAAAAACw=
--related--

--mixed
Content-Type: text/calendar; method=REQUEST; charset=utf-8

BEGIN:VCALENDAR
--mixed--
`),
		check: func(t *testing.T, a *Message) {
			assert.Equal(t, "Logo below.", a.TextBody)
			assert.Equal(t, `<img src="cid:logo@example.com">`, a.HTMLBody)
			require.Len(t, a.Attachments, 2)
			assert.Equal(t, "logo@example.com", a.Attachments[0].ContentID)
			assert.Equal(t, "image/gif", a.Attachments[0].ContentType)
			assert.Equal(t, "GIF89a", string(a.Attachments[0].Content[:6]))
			assert.Equal(t, "text/calendar; charset=utf-8", a.Attachments[1].ContentType)
			assert.Equal(t, "BEGIN:VCALENDAR", string(a.Attachments[1].Content))
		},
	}, {
		name: "forwarded message as message/rfc822",
		msg: crlf(`From: user@contoso.com
To: crm-forward@contoso.com
Subject: FW: Order 42
Date: Tue, 3 Jan 2006 10:00:00 +0100
Message-ID: <fwd@contoso.com>
Content-Type: multipart/mixed; boundary="outer"

--outer
Content-Type: text/plain

Forwarding the customer's order.
--outer
Content-Type: message/rfc822

From: customer@example.com
To: user@contoso.com
Subject: Order 42
Date: Mon, 2 Jan 2006 09:00:00 +0100
Message-ID: <orig@example.com>
Content-Type: text/plain

Please ship order 42.
--outer--
`),
		check: func(t *testing.T, a *Message) {
			assert.Equal(t, "Forwarding the customer's order.", a.TextBody)
			require.Len(t, a.Attachments, 1)
			assert.Equal(t, "message/rfc822", a.Attachments[0].ContentType)
			require.Equal(t, []int{0}, Embedded(a))

			orig, err := Parse(bytes.NewReader(a.Attachments[0].Content), nil)
			require.NoError(t, err)
			assert.Equal(t, "Order 42", orig.Subject)
			assert.Equal(t, "customer@example.com", orig.From.Email)
			assert.Equal(t, "orig@example.com", orig.MessageID)
			assert.Equal(t, "Please ship order 42.", orig.TextBody)
		},
	}, {
		name: "multipart/digest parts default to message/rfc822",
		msg: crlf(`From: list@example.com
Date: Tue, 3 Jan 2006 10:00:00 +0100
Message-ID: <digest@example.com>
Content-Type: multipart/digest; boundary=d

--d

Subject: one

first
--d--
`),
		check: func(t *testing.T, a *Message) {
			require.Len(t, a.Attachments, 1)
			assert.Equal(t, []int{0}, Embedded(a))
		},
	}, {
		name: "bare LF line endings, mbox From line, group address, lenient IDs",
		msg: `From alice@example.com Mon Jan  2 15:04:05 2006
From: alice@example.com
To: undisclosed-recipients:;
Subject: lf
Date: 2 Jan 2006 15:04 GMT
Message-ID: no-brackets@example.com
References: (comment) <a@x> <b
 @x>
Content-Type: multipart/alternative; boundary=b

--b
Content-Type: text/plain

line one
line two
--b--
`,
		check: func(t *testing.T, a *Message) {
			assert.Equal(t, "alice@example.com", a.From.Email)
			assert.Nil(t, a.To)
			assert.Equal(t, "no-brackets@example.com", a.MessageID)
			assert.Equal(t, []string{"a@x", "b@x"}, a.References)
			assert.Equal(t, "line one\nline two", a.TextBody)
			assert.Equal(t, time.Date(2006, 1, 2, 15, 4, 0, 0, time.UTC), a.SentAt.UTC())
		},
	}, {
		name: "non-text single part is an attachment",
		msg: crlf(`From: scanner@example.com
Date: Tue, 3 Jan 2006 10:00:00 +0100
Message-ID: <scan@example.com>
Content-Type: application/pdf
Content-Transfer-Encoding: base64

JVBERi0=
`),
		check: func(t *testing.T, a *Message) {
			assert.Empty(t, a.TextBody)
			require.Len(t, a.Attachments, 1)
			assert.Equal(t, Attachment{ContentType: "application/pdf", Size: 5, Content: []byte("%PDF-")},
				a.Attachments[0])
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, err := parse(t, tc.msg, tc.opts)
			require.NoError(t, err)
			tc.check(t, a)
		})
	}
}

// Malformed messages: a broken one (part of it could not be read) has the problem
// in ParseError, an odd one that was read whole has it in ParseWarnings, and
// everything else is still parsed. Raw keeps the original unless the only trouble
// is a missing header field.
func TestParseMalformed(t *testing.T) {
	t.Parallel()
	const head = "From: alice@example.com\r\nDate: Tue, 3 Jan 2006 10:00:00 +0100\r\nMessage-ID: <m@example.com>\r\n"
	hugeSubject := strings.Repeat("x", 1536<<10)
	tests := []struct {
		name     string
		msg      string
		opts     *Options
		problems []string // each must appear in ParseError; none: the message is not broken
		warnings []string // each must appear among ParseWarnings
		noRaw    bool     // only header fields are missing: Raw stays empty
		check    func(t *testing.T, a *Message)
	}{{
		name: "multipart truncated in the middle of a part",
		msg: head + crlf(`Subject: cut
Content-Type: multipart/mixed; boundary=b

--b
Content-Type: text/plain

complete part
--b
Content-Type: application/pdf; name=a.pdf
Content-Transfer-Encoding: base64

JVBERi0xLjQK
JVBER`),
		problems: []string{"body: multipart ends without closing boundary", "part 2: invalid base64: data cut short"},
		check: func(t *testing.T, a *Message) {
			assert.Equal(t, "cut", a.Subject)
			assert.Equal(t, "complete part", a.TextBody)
			require.Len(t, a.Attachments, 1)
			assert.Equal(t, "%PDF-1.4\n%PD", string(a.Attachments[0].Content))
		},
	}, {
		name: "missing closing boundary after a complete part",
		msg: head + crlf(`Content-Type: multipart/alternative; boundary=b

--b
Content-Type: text/plain

text
--b
Content-Type: text/html

<p>html</p>
`),
		problems: []string{"ends without closing boundary"},
		check: func(t *testing.T, a *Message) {
			assert.Equal(t, "text", a.TextBody)
			assert.Equal(t, "<p>html</p>\r\n", a.HTMLBody)
		},
	}, {
		name: "cut right after a delimiter",
		msg: head + crlf(`Content-Type: multipart/mixed; boundary=b

--b

text
--b
`),
		problems: []string{"ends without closing boundary"},
		check: func(t *testing.T, a *Message) {
			assert.Equal(t, "text", a.TextBody)
			assert.Empty(t, a.Attachments)
		},
	}, {
		name: "bad base64 skips the bad characters",
		msg: head + crlf(`Content-Type: text/plain
Content-Transfer-Encoding: base64

SGVsbG8g!!d29y
bGQ=
`),
		problems: []string{"invalid base64: 2 bad characters skipped"},
		check: func(t *testing.T, a *Message) {
			assert.Equal(t, "Hello world", a.TextBody)
		},
	}, {
		name: "bad quoted-printable keeps stray equals signs and control bytes",
		msg: head + crlf("Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n"+
			"100% =ZZ sure, a=3Db\x01 "+strings.Repeat("y", 5000)+"=\nend   \n"),
		warnings: []string{`invalid quoted-printable: 1 stray "=" kept`},
		check: func(t *testing.T, a *Message) {
			assert.Equal(t, "100% =ZZ sure, a=b\x01 "+strings.Repeat("y", 5000)+"end\r\n", a.TextBody)
		},
	}, {
		name:     "no From: Sender used",
		msg:      crlf("Sender: list@example.com\nDate: Tue, 3 Jan 2006 10:00:00 +0100\nMessage-ID: <x@y>\n\nhi\n"),
		noRaw:    true,
		warnings: []string{"header: no From address"},
		check: func(t *testing.T, a *Message) {
			assert.Equal(t, "list@example.com", a.From.Email)
			assert.Equal(t, "hi\r\n", a.TextBody)
		},
	}, {
		name:     "no Date",
		msg:      crlf("From: a@b.c\nMessage-ID: <x@y>\n\nhi\n"),
		noRaw:    true,
		warnings: []string{"header: no Date"},
		check: func(t *testing.T, a *Message) {
			assert.True(t, a.SentAt.IsZero())
			assert.Equal(t, "hi\r\n", a.TextBody)
		},
	}, {
		name:     "bad Date",
		msg:      crlf("From: a@b.c\nDate: sometime last week\nMessage-ID: <x@y>\n\nhi\n"),
		warnings: []string{`header: Date "sometime last week"`},
	}, {
		name:     "no Message-ID",
		msg:      crlf("From: a@b.c\nDate: Tue, 3 Jan 2006 10:00:00 +0100\nSubject: s\n\nhi\n"),
		noRaw:    true,
		warnings: []string{"header: no Message-ID"},
		check: func(t *testing.T, a *Message) {
			assert.Empty(t, a.MessageID)
			assert.Equal(t, "s", a.Subject)
		},
	}, {
		name:     "header line over 1 MB is truncated, later fields still read",
		msg:      crlf("X-Junk: " + strings.Repeat("j", 3<<20) + "\nFrom: a@b.c\nSubject: " + hugeSubject + "\nDate: Tue, 3 Jan 2006 10:00:00 +0100\nMessage-ID: <x@y>\n\nbody\n"),
		problems: []string{`field "X-Junk" longer than 1048576 bytes`, `field "Subject" longer than 1048576 bytes`},
		check: func(t *testing.T, a *Message) {
			assert.Equal(t, "a@b.c", a.From.Email)
			assert.Equal(t, hugeSubject[:maxFieldSize-len("Subject: ")], a.Subject)
			assert.Equal(t, "body\r\n", a.TextBody)
		},
	}, {
		name: "folded field over 1 MB",
		msg: crlf("To: " + strings.Repeat("someone@example.com,\n ", 60000) + "last@example.com\n" +
			"From: a@b.c\nDate: Tue, 3 Jan 2006 10:00:00 +0100\nMessage-ID: <x@y>\n\nbody\n"),
		problems: []string{`field "To" longer than 1048576 bytes`},
		check: func(t *testing.T, a *Message) {
			assert.Greater(t, len(a.To), 40000)
			assert.Equal(t, "body\r\n", a.TextBody)
		},
	}, {
		name: "8-bit garbage in headers read as windows-1252",
		msg: crlf("From: J\xf6rg M\xfcller <joerg@example.de>\nSubject: Caf\xe9 \x80 \xff\xfe\n" +
			"X-Gar\xbfage: \x81\x8d\n" +
			"Date: Tue, 3 Jan 2006 10:00:00 +0100\nMessage-ID: <x@y>\n\nhi\n"),
		warnings: []string{"header: 8-bit bytes read as windows-1252"},
		check: func(t *testing.T, a *Message) {
			assert.Equal(t, Address{Name: "Jörg Müller", Email: "joerg@example.de"}, a.From)
			assert.Equal(t, "Café € ÿþ", a.Subject)
		},
	}, {
		name: "NUL bytes in header, encoded word and body",
		msg: "From: a@b.c\r\nSubject: nu\x00ll =?utf-8?q?x=00y?=\r\nDate: Tue, 3 Jan 2006 10:00:00 +0100\r\nMessage-ID: <x@y>\r\n" +
			"Content-Type: text/plain; charset=utf-8\r\n\r\nbo\x00dy\r\n",
		warnings: []string{"header: NUL bytes removed", "body: NUL bytes removed from text"},
		check: func(t *testing.T, a *Message) {
			assert.Equal(t, "null xy", a.Subject)
			assert.Equal(t, "body\r\n", a.TextBody)
		},
	}, {
		name: "unknown charset keeps the text",
		msg: head + crlf(`Subject: =?x-klingon?q?qapla'?= ok
Content-Type: text/plain; charset=x-klingon

Qapla' batlh
`) + "\xff\r\n",
		warnings: []string{`unknown charset "x-klingon"`, "body: invalid x-klingon text; bad bytes replaced"},
		check: func(t *testing.T, a *Message) {
			assert.Equal(t, "qapla' ok", a.Subject)
			assert.Equal(t, "Qapla' batlh\r\n\uFFFD\r\n", a.TextBody)
		},
	}, {
		name:     "undeclared 8-bit body read as windows-1252",
		msg:      head + "Content-Type: text/plain\r\n\r\nna\xefve \x93quotes\x94\r\n",
		warnings: []string{"body: undeclared 8-bit text read as windows-1252"},
		check: func(t *testing.T, a *Message) {
			assert.Equal(t, "naïve “quotes”\r\n", a.TextBody)
		},
	}, {
		name:     "invalid UTF-8 in a UTF-8 body",
		msg:      head + "Content-Type: text/html; charset=utf-8\r\n\r\n<p>a\xc3</p>",
		warnings: []string{"body: invalid utf-8 text"},
		check: func(t *testing.T, a *Message) {
			assert.Equal(t, "<p>a\uFFFD</p>", a.HTMLBody)
		},
	}, {
		name: "missing boundary parameter is guessed",
		msg: head + crlf(`Content-Type: multipart/mixed

--guess
Content-Type: text/plain

found
--guess--
`),
		warnings: []string{`multipart without boundary parameter; guessed "guess"`},
		check: func(t *testing.T, a *Message) {
			assert.Equal(t, "found", a.TextBody)
		},
	}, {
		name: "wrong boundary keeps the text",
		msg: head + crlf(`Content-Type: multipart/alternative; boundary=nothere

--other
Content-Type: text/plain

hello
--other--
`),
		problems: []string{"body: no part found in multipart/alternative"},
		check: func(t *testing.T, a *Message) {
			assert.Contains(t, a.TextBody, "hello")
		},
	}, {
		name:     "header without blank line",
		msg:      head + "Subject: s\r\nThis is the body, no blank line.\r\nSecond line.\r\n",
		problems: []string{"header: header not ended by a blank line"},
		check: func(t *testing.T, a *Message) {
			assert.Equal(t, "s", a.Subject)
			assert.Equal(t, "This is the body, no blank line.\r\nSecond line.\r\n", a.TextBody)
		},
	}, {
		name:     "no header at all",
		msg:      "just some text\nand more\n",
		problems: []string{"header: no header"},
		warnings: []string{"no From address", "no Message-ID", "no Date"},
		check: func(t *testing.T, a *Message) {
			assert.Equal(t, "just some text\nand more\n", a.TextBody)
		},
	}, {
		name:     "empty input",
		msg:      "",
		problems: []string{"header: no header fields"},
		warnings: []string{"no From address"},
	}, {
		name:     "body without any header field",
		msg:      "\r\njust a body\r\n",
		problems: []string{"header: no header fields"},
		check: func(t *testing.T, a *Message) {
			assert.Equal(t, "just a body\r\n", a.TextBody)
		},
	}, {
		name: "garbage part header and unknown transfer encoding",
		msg: head + crlf(`Content-Type: multipart/mixed; boundary=b

--b
this is not a header
--b
Content-Type: application/octet-stream; name=x.uu
Content-Transfer-Encoding: x-uuencode

begin 644 x
--b
Content-Type: text/plain; charset=utf-8; charset=latin1

dup
--b--
`),
		problems: []string{"part 1: no header"},
		warnings: []string{`part 2: unknown Content-Transfer-Encoding "x-uuencode"`, "part 3: Content-Type"},
		check: func(t *testing.T, a *Message) {
			assert.Equal(t, "this is not a header", a.TextBody)
			require.Len(t, a.Attachments, 2)
			assert.Equal(t, "begin 644 x", string(a.Attachments[0].Content))
			assert.Equal(t, "dup", string(a.Attachments[1].Content))
		},
	}, {
		name: "address lists that are not RFC 5322",
		msg: crlf(`From: "Alice" <alice@example.com>>
To: Bob <bob@example.com>; carol@example.com; "=?utf-8?q?J=C3=B6rg?=" <j@x.de>
Cc: Doe, Dan <dan@example.com>
Date: Tue, 3 Jan 2006 10:00:00 +0100
Message-ID: <x@y>

hi
`),
		warnings: []string{"header: To: mail: expected comma; parsed leniently", "header: Cc:"},
		check: func(t *testing.T, a *Message) {
			assert.Equal(t, Address{Name: "Alice", Email: "alice@example.com"}, a.From)
			assert.Equal(t, addrs("Bob", "bob@example.com", "", "carol@example.com", "Jörg", "j@x.de"), a.To)
			// The unquoted comma splits the name; the address survives.
			assert.Equal(t, addrs("Dan", "dan@example.com"), a.Cc)
		},
	}, {
		name:     "body over MaxBodySize is truncated on a character boundary",
		opts:     &Options{MaxBodySize: 10},
		msg:      head + "Content-Type: text/plain; charset=utf-8\r\n\r\n123456789é and more",
		problems: []string{"body: body of 20 bytes truncated to 9"},
		check: func(t *testing.T, a *Message) {
			assert.Equal(t, "123456789", a.TextBody)
		},
	}, {
		name:     "multipart nested too deeply",
		msg:      head + deepMultipart(maxDepth+5),
		problems: []string{"multipart nested more than 32 levels deep; skipped"},
		check: func(t *testing.T, a *Message) {
			assert.Equal(t, "outer text", a.TextBody)
		},
	}, {
		name: "continuation line first, mbox line not first",
		msg: crlf(` folded nothing
From: a@b.c
Date: Tue, 3 Jan 2006 10:00:00 +0100
Message-ID: <x@y>

hi
`),
		warnings: []string{"header: header starts with a continuation line; ignored"},
		check: func(t *testing.T, a *Message) {
			assert.Equal(t, "a@b.c", a.From.Email)
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, err := parse(t, tc.msg, tc.opts)
			if len(tc.problems) > 0 {
				var perr *ParseError
				require.ErrorAs(t, err, &perr)
			} else {
				require.NoError(t, err, "read whole: not broken")
				assert.Empty(t, a.ParseError)
			}
			if tc.noRaw {
				assert.Nil(t, a.Raw, "nothing was read by a guess")
			} else {
				assert.True(t, bytes.Equal([]byte(tc.msg), a.Raw), "Raw is not the original")
			}
			for _, p := range tc.problems {
				assert.Contains(t, a.ParseError, p)
			}
			warnings := strings.Join(a.ParseWarnings, "\n")
			for _, w := range tc.warnings {
				assert.Contains(t, warnings, w)
			}
			if tc.check != nil {
				tc.check(t, a)
			}
		})
	}
}

// deepMultipart nests depth multiparts, each with a text part first.
func deepMultipart(depth int) string {
	var b strings.Builder
	b.WriteString("Content-Type: multipart/mixed; boundary=b0\r\n\r\n")
	for i := range depth {
		b.WriteString("--b" + itoa(i) + "\r\nContent-Type: text/plain\r\n\r\n")
		if i == 0 {
			b.WriteString("outer text")
		} else {
			b.WriteString("level " + itoa(i))
		}
		b.WriteString("\r\n--b" + itoa(i) + "\r\nContent-Type: multipart/mixed; boundary=b" + itoa(i+1) + "\r\n\r\n")
	}
	for i := depth - 1; i >= 0; i-- {
		b.WriteString("--b" + itoa(i) + "--\r\n")
	}
	return b.String()
}

func itoa(i int) string { return strconv.Itoa(i) }

func bufioReader(r io.Reader) *bufio.Reader { return bufio.NewReader(r) }

func TestParseErrorIsTyped(t *testing.T) {
	t.Parallel()
	a, err := Parse(strings.NewReader("From: a@b.c\r\nContent-Transfer-Encoding: base64\r\n\r\naGk*"), nil)

	var perr *ParseError
	require.ErrorAs(t, err, &perr)
	assert.NotEmpty(t, perr.Problems)
	assert.True(t, strings.HasPrefix(err.Error(), "mailparse: "), err.Error())
	assert.Equal(t, strings.TrimPrefix(err.Error(), "mailparse: "), a.ParseError)
	assert.Equal(t, []string{"header: no Message-ID", "header: no Date"}, a.ParseWarnings,
		"warnings are not problems")
}

// Only broken mail is a ParseError: the oddities of ordinary mail are warnings, and
// the message comes back without an error.
func TestWarningsAreNotErrors(t *testing.T) {
	t.Parallel()
	a, err := parse(t, crlf("From: cron@example.com\nSubject: =?x-unknown?q?caf=E9?=\n\nbackup done\n"), nil)
	require.NoError(t, err)
	assert.Empty(t, a.ParseError)
	assert.Equal(t, []string{`header: unknown charset "x-unknown": charset "x-unknown": htmlindex: invalid encoding name; bytes kept`,
		"header: invalid characters in encoded text replaced", "header: no Message-ID", "header: no Date"}, a.ParseWarnings)
	assert.Equal(t, "backup done\r\n", a.TextBody)
	assert.NotNil(t, a.Raw, "a charset was guessed: the original is kept")
}

func TestWarningsAreBounded(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("From: a@b.c\r\nDate: Tue, 3 Jan 2006 10:00:00 +0100\r\nMessage-ID: <x@y>\r\n")
	b.WriteString("Content-Type: multipart/mixed; boundary=b\r\n\r\n")
	for i := range 100 {
		b.WriteString("--b\r\nContent-Transfer-Encoding: x-unknown-" + strings.Repeat("y", 300) + itoa(i) + "\r\n\r\nx\r\n")
	}
	b.WriteString("--b--\r\n")
	a, err := parse(t, b.String(), nil)
	require.NoError(t, err)
	require.Len(t, a.ParseWarnings, maxProblems+1)
	assert.Equal(t, "and 68 more", a.ParseWarnings[maxProblems])
}

func TestParseErrorIsShortAndBounded(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("Content-Type: multipart/mixed; boundary=b\r\n\r\n")
	for i := range 100 {
		b.WriteString("--b\r\nContent-Transfer-Encoding: base64\r\nX-Part: " + itoa(i) + "\r\n\r\naGk*\r\n")
	}
	b.WriteString("--b--\r\n")
	a, err := parse(t, b.String(), nil)
	var perr *ParseError
	require.ErrorAs(t, err, &perr)
	assert.Len(t, perr.Problems, maxProblems)
	assert.Positive(t, perr.Dropped)
	assert.Contains(t, err.Error(), "more")
	assert.LessOrEqual(t, len(a.ParseError), maxParseErrorLen)
}

func TestParseRawCap(t *testing.T) {
	t.Parallel()
	msg := "Subject: no blank line\r\n" + strings.Repeat("x", 1000)
	a, err := Parse(strings.NewReader(msg), &Options{MaxRawSize: 100})
	var perr *ParseError
	require.ErrorAs(t, err, &perr)
	assert.Equal(t, []byte(msg[:100]), a.Raw)
	assert.Equal(t, int64(len(msg)), a.Size)
	assert.Contains(t, a.ParseError, "Raw keeps only the beginning")
	assert.Len(t, a.TextBody, 1000, "the body is not limited by the raw cap")
}

func TestParseReadError(t *testing.T) {
	t.Parallel()
	boom := errors.New("connection reset")
	r := io.MultiReader(strings.NewReader("From: a@b.c\r\nSubject: partial\r\n\r\nsome bo"), iotest.ErrReader(boom))
	a, err := Parse(r, nil)
	require.ErrorIs(t, err, boom)
	var perr *ParseError
	assert.False(t, errors.As(err, &perr), "a read error is not a parse problem: the message is incomplete")
	assert.Equal(t, "partial", a.Subject)
}

func TestParseNilReader(t *testing.T) {
	t.Parallel()
	m, err := Parse(nil, nil)
	var perr *ParseError
	require.ErrorAs(t, err, &perr, "an empty message is not a mail message")
	assert.Zero(t, m.Size)
}

// Parse must stream: reading one byte at a time gives the same result.
func TestParseOneByteReader(t *testing.T) {
	t.Parallel()
	msg := benchMessage()
	whole, err := Parse(strings.NewReader(msg), nil)
	require.NoError(t, err)
	bytewise, err := Parse(iotest.OneByteReader(strings.NewReader(msg)), nil)
	require.NoError(t, err)
	assert.Equal(t, whole, bytewise)
}

func TestLenientBase64(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want, problem string }{
		{"aGVsbG8=", "hello", ""},
		{"aGVs\r\n bG8", "hello", ""},       // folded, padding missing
		{"aGVsbG8=aGk=", "hellohi", ""},     // concatenated blocks
		{"aGVs*bG8=", "hello", "1 bad"},     // junk skipped
		{"aGVsbG8=a", "hello", "cut short"}, // a lone sixth of a byte
		{"", "", ""},
	}
	for _, tc := range tests {
		d := &base64Reader{r: iotest.HalfReader(strings.NewReader(tc.in))}
		got, err := io.ReadAll(d)
		require.NoError(t, err)
		assert.Equal(t, tc.want, string(got), tc.in)
		if tc.problem == "" {
			assert.NoError(t, d.problem(), tc.in)
		} else {
			assert.ErrorContains(t, d.problem(), tc.problem, tc.in)
		}
	}
	// Agrees with the standard decoder on valid input of every length.
	for n := range 64 {
		data := bytes.Repeat([]byte{0xfb, 0x01, 0x7f}, n)[:n*2]
		enc := base64.StdEncoding.EncodeToString(data)
		got, err := io.ReadAll(&base64Reader{r: strings.NewReader(enc)})
		require.NoError(t, err)
		assert.Equal(t, data, got)
	}
}

func TestLenientQuotedPrintable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
		bad      int
	}{
		{"a=3Db", "a=b", 0},
		{"soft=\r\nbreak", "softbreak", 0},
		{"soft= \t\nbreak", "softbreak", 0},
		{"trailing  \r\nblanks\t\n", "trailing\r\nblanks\n", 0},
		{"inner  blanks", "inner  blanks", 0},
		{"lower=e9", "lower\xe9", 0},
		{"stray = sign", "stray = sign", 1},
		{"end=", "end", 0},
		{"=\r", "", 0},
		{"x=4", "x=4", 1},
	}
	for _, tc := range tests {
		q := &qpReader{br: bufioReader(iotest.OneByteReader(strings.NewReader(tc.in)))}
		got, err := io.ReadAll(q)
		require.NoError(t, err)
		assert.Equal(t, tc.want, string(got), "%q", tc.in)
		assert.Equal(t, tc.bad, q.bad, "%q", tc.in)
	}
}

func TestTruncateUTF8(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "ab", truncateUTF8("ab", 5))
	assert.Equal(t, "a", truncateUTF8("aé", 2))
	assert.Equal(t, "a", truncateUTF8("a日本", 3))
	assert.Equal(t, "a日", truncateUTF8("a日本", 4))
	assert.Equal(t, "a", truncateUTF8("a😀", 4))
}

// Which text part is the body, as mail clients (Thunderbird, Apple Mail, go-message's
// mail.Reader) decide: a filename alone does not make an inline text part an
// attachment, "Content-Disposition: attachment" does, and a named text part after
// the body is a file the sender attached inline.
func TestBodyChoice(t *testing.T) {
	t.Parallel()
	const head = "From: a@example.com\nDate: Tue, 3 Jan 2006 10:00:00 +0100\nMessage-ID: <b@example.com>\n"
	tests := []struct {
		name        string
		msg         string
		text, html  string
		attachments []string // filenames
	}{{
		name: "single part inline with filename",
		msg: head + `Content-Type: text/plain; charset=utf-8
Content-Disposition: inline; filename="x.txt"

the body
`,
		text: "the body\r\n",
	}, {
		name: "single part with name parameter only",
		msg: head + `Content-Type: text/plain; name="x.txt"

the body
`,
		text: "the body\r\n",
	}, {
		name: "single html part inline with filename",
		msg: head + `Content-Type: text/html; name="page.html"
Content-Disposition: inline; filename="page.html"

<p>the body</p>
`,
		html: "<p>the body</p>\r\n",
	}, {
		name: "first part of mixed, inline with filename",
		msg: head + `Content-Type: multipart/mixed; boundary=b

--b
Content-Type: text/plain; name="report.txt"
Content-Disposition: inline; filename="report.txt"

the body
--b
Content-Type: application/pdf; name="a.pdf"
Content-Disposition: attachment; filename="a.pdf"

%PDF-
--b--
`,
		text:        "the body",
		attachments: []string{"a.pdf"},
	}, {
		name: "text part marked attachment stays an attachment, even first",
		msg: head + `Content-Type: multipart/mixed; boundary=b

--b
Content-Type: text/plain
Content-Disposition: attachment; filename="log.txt"

a log
--b--
`,
		attachments: []string{"log.txt"},
	}, {
		name: "single part marked attachment",
		msg: head + `Content-Type: text/plain
Content-Disposition: attachment; filename="log.txt"

a log
`,
		attachments: []string{"log.txt"},
	}, {
		name: "named inline text after the body is an attachment",
		msg: head + `Content-Type: multipart/mixed; boundary=b

--b
Content-Type: text/plain

the body
--b
Content-Type: text/plain; name="notes.txt"
Content-Disposition: inline; filename="notes.txt"

notes
--b--
`,
		text:        "the body",
		attachments: []string{"notes.txt"},
	}, {
		name: "named inline text after an HTML-only body is an attachment, not the text body",
		msg: head + `Content-Type: multipart/mixed; boundary=b

--b
Content-Type: text/html

<p>the body</p>
--b
Content-Type: text/plain; name="notes.txt"
Content-Disposition: inline; filename="notes.txt"

notes
--b--
`,
		html:        "<p>the body</p>",
		attachments: []string{"notes.txt"},
	}, {
		name: "named alternatives are both bodies",
		msg: head + `Content-Type: multipart/alternative; boundary=b

--b
Content-Type: text/plain; name="body.txt"

plain
--b
Content-Type: multipart/related; boundary=r

--r
Content-Type: text/html; name="body.html"

<p>html</p>
--r--
--b--
`,
		text: "plain",
		html: "<p>html</p>",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, err := parse(t, crlf(tc.msg), nil)
			require.NoError(t, err)
			assert.Equal(t, tc.text, m.TextBody)
			assert.Equal(t, tc.html, m.HTMLBody)
			var names []string
			for _, att := range m.Attachments {
				names = append(names, att.Filename)
			}
			assert.Equal(t, tc.attachments, names)
		})
	}
}
