// Package benchmail generates the varied messages the benchmarks load into a
// fake server: the same corpus every run (message i is a function of i alone),
// shaped like bench/imap-vs-mbsync's (~1–16 KB of text, one in twenty with an
// attachment of 20–150 KB) and varied as real mail is: one in three
// multipart/alternative (text and HTML, quoted-printable), every other subject
// and one sender in three with non-ASCII text as RFC 2047 encoded-words, UTF-8
// bodies.
package benchmail

import (
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"mime"
	"mime/quotedprintable"
	"strings"
)

var words = strings.Fields("the quarterly report shows revenue growth across regions while costs stayed flat and the team " +
	"über café naïve Grüße déjà résumé")

var senders = []string{"Jürgen Müller", "Zoë Ørsted", "Łukasz Żółć", "Alice Example", "Bob Builder", "Carol Chen"}

// Message returns message i of the corpus, addressed to to, with CRLF line
// endings and a unique Message-ID.
func Message(i int, to string) []byte {
	rnd := rand.New(rand.NewPCG(42, uint64(i)))
	text := body(rnd)
	var b strings.Builder
	name := senders[i%len(senders)]
	fmt.Fprintf(&b, "From: %s <sender%d@example.test>\r\n", mime.QEncoding.Encode("utf-8", name), i%97)
	fmt.Fprintf(&b, "To: <%s>\r\n", to)
	subject := fmt.Sprintf("Benchmark message %d", i)
	if i%2 == 0 {
		subject = fmt.Sprintf("Angebot für Q3 – Rückfrage №%d", i)
	}
	fmt.Fprintf(&b, "Subject: %s\r\n", mime.QEncoding.Encode("utf-8", subject))
	fmt.Fprintf(&b, "Message-ID: <bench-%d@example.test>\r\n", i)
	b.WriteString("Date: Mon, 02 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n")
	switch {
	case i%20 == 0:
		b.WriteString("Content-Type: multipart/mixed; boundary=\"mixed\"\r\n\r\n--mixed\r\n")
		alternative(&b, text)
		b.WriteString("\r\n--mixed\r\nContent-Type: application/pdf; name=\"report.pdf\"\r\n" +
			"Content-Disposition: attachment; filename=\"report.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
		blob := make([]byte, 20_000+rnd.IntN(130_000))
		for j := range blob {
			blob[j] = byte(rnd.Uint32())
		}
		enc := base64.StdEncoding.EncodeToString(blob)
		for len(enc) > 76 {
			b.WriteString(enc[:76] + "\r\n")
			enc = enc[76:]
		}
		b.WriteString(enc + "\r\n--mixed--\r\n")
	case i%3 == 0:
		alternative(&b, text)
	default:
		b.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
		b.WriteString(text + "\r\n")
	}
	return []byte(b.String())
}

// body is 200–2,600 words on lines of about 70 characters.
func body(rnd *rand.Rand) string {
	var b strings.Builder
	line := 0
	for range 200 + rnd.IntN(2400) {
		w := words[rnd.IntN(len(words))]
		if line+len(w) > 70 {
			b.WriteString("\r\n")
			line = 0
		} else if line > 0 {
			b.WriteByte(' ')
			line++
		}
		b.WriteString(w)
		line += len(w)
	}
	return b.String()
}

// alternative writes a multipart/alternative part (its header included): the
// text and the same text as HTML, both quoted-printable.
func alternative(b *strings.Builder, text string) {
	b.WriteString("Content-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n--alt\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	qp(b, text)
	b.WriteString("\r\n--alt\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	qp(b, "<html><body><p>"+strings.ReplaceAll(text, "\r\n", "</p>\r\n<p>")+"</p></body></html>")
	b.WriteString("\r\n--alt--\r\n")
}

func qp(b *strings.Builder, s string) {
	w := quotedprintable.NewWriter(b)
	_, _ = w.Write([]byte(s)) // a strings.Builder does not fail
	_ = w.Close()
}
