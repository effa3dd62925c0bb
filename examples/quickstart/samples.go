package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
	"time"
)

// sampleCount is how many messages the demo server is seeded with.
const sampleCount = 200

// sample is one message to deliver to a demo user's INBOX.
type sample struct {
	to         string
	from       mail.Address
	subject    string
	messageID  string
	references []string // the thread so far, oldest first; the last one is In-Reply-To
	date       time.Time
	text, html string
	attachment *attachment
}

type attachment struct {
	filename, contentType string
	data                  []byte
}

var (
	customers = []mail.Address{
		{Name: "Dana Fischer", Address: "dana.fischer@fabrikam.test"},
		{Name: "Ravi Kumar", Address: "ravi.kumar@northwind.test"},
		{Name: "Zoë Martin", Address: "zoe.martin@tailspin.test"},
		{Name: "Liu Yang", Address: "liu.yang@adventure-works.test"},
		{Name: "María José García", Address: "mj.garcia@alpineski.test"},
		{Name: "Tomasz Nowak", Address: "t.nowak@litware.test"},
		{Name: "Sam O'Neill", Address: "sam.oneill@proseware.test"},
	}
	colleagues = []mail.Address{
		{Name: "Bob Lee", Address: "bob@contoso.test"},
		{Name: "Carol Diaz", Address: "carol@contoso.test"},
	}
	correspondents = append(colleagues[:len(colleagues):len(colleagues)], customers...) // who writes to alice

	supportSubjects = []string{
		"Order %d has not arrived",
		"Invoice INV-%d: VAT number missing",
		"Cannot reset my password (ticket %d)",
		"Licence key for seat %d is rejected",
		"Refund request for order %d",
		"Export to CSV drops the last row (build %d)",
		"Shipping address change for order %d",
	}
	salesSubjects = []string{
		"Quote for %d licences",
		"Follow-up on our call about project %d",
		"Q%d pipeline review",
		"Contract renewal %d",
		"Demo next week? (%d attendees)",
		"Notes from meeting %d",
	}
	sentences = []string{
		"Thanks for getting back to me so quickly.",
		"Could you have a look at this before Friday?",
		"We have been customers for six years and this is the first time it happened.",
		"I attached what we have; tell me if anything is missing.",
		"The team in Lyon reports the same behaviour since Tuesday.",
		"Our finance department needs the corrected document for the quarter close.",
		"Let me know which time works for you next week.",
		"Grüße aus München, und danke für die Hilfe!",
		"If it helps, the reference on our side is PO-7731.",
		"No rush on this one, but it would be good to have an answer this month.",
	}
)

// sampleEpoch dates the samples: the last one three hours before it.
var sampleEpoch = time.Date(2026, time.November, 30, 9, 0, 0, 0, time.UTC)

// sampleMail generates sampleCount messages for alice and support, half each. The
// content is random but seeded, and every message is the same, byte for byte, on
// every run (dates and MIME boundaries included): a message's key is its
// Message-ID and a digest of its content, so a rerun on a kept database finds each
// one tracked already.
func sampleMail(alice, support string) []sample {
	now := sampleEpoch
	rng := rand.New(rand.NewPCG(2026, 11))
	out := make([]sample, 0, sampleCount)
	var thread []string // one reply chain in support's inbox
	for i := range sampleCount {
		s := sample{date: now.Add(-time.Duration(sampleCount-i) * 3 * time.Hour)}
		if i%2 == 0 {
			s.to = support
			s.from = customers[rng.IntN(len(customers))]
			s.subject = fmt.Sprintf(supportSubjects[rng.IntN(len(supportSubjects))], 1000+rng.IntN(9000))
		} else {
			s.to = alice
			s.from = correspondents[rng.IntN(len(correspondents))]
			s.subject = fmt.Sprintf(salesSubjects[rng.IntN(len(salesSubjects))], 1+rng.IntN(400))
		}
		inThread := false
		switch i {
		case 20, 60, 120, 180: // a customer's thread, each message answering the one before
			inThread = true
			s.from = customers[5]
			s.subject = "Printer firmware update fails at 87%"
			if len(thread) > 0 {
				s.subject = "Re: " + s.subject
			}
		case 14: // non-ASCII subject and name: RFC 2047 encoded words in the header
			s.from = mail.Address{Name: "Jürgen Weiß", Address: "j.weiss@fabrikam.test"}
			s.subject = "Überweisung für Rechnung 2026-017 – Zahlungsbestätigung ✓"
		case 33:
			s.from = mail.Address{Name: "田中 愛子", Address: "aiko@wingtip.test"}
			s.subject = "お見積もりのお願い（50 ライセンス）"
		}
		s.messageID = fmt.Sprintf("sample-%03d@%s", i, domainOf(s.from.Address))
		if inThread {
			s.references = thread
			thread = append(thread[:len(thread):len(thread)], s.messageID)
		}

		var body []string
		for range 1 + rng.IntN(6) {
			body = append(body, sentences[rng.IntN(len(sentences))])
		}
		s.text = "Hello,\r\n\r\n" + strings.Join(body, "\r\n\r\n") + "\r\n\r\n-- \r\n" + s.from.Name + "\r\n"
		if i%4 == 1 {
			s.html = "<p>Hello,</p><p>" + strings.Join(body, "</p><p>") + "</p><p>— " + s.from.Name + "</p>"
		}
		if i%25 == 3 {
			s.attachment = sampleAttachment(i, rng)
		}
		out = append(out, s)
	}
	return out
}

func sampleAttachment(i int, rng *rand.Rand) *attachment {
	if i%2 == 0 {
		var csv strings.Builder
		csv.WriteString("order,sku,quantity,price\r\n")
		for n := range 20 + rng.IntN(200) {
			fmt.Fprintf(&csv, "%d,SKU-%04d,%d,%d.%02d\r\n", 5000+n, rng.IntN(10000), 1+rng.IntN(9), rng.IntN(500), rng.IntN(100))
		}
		return &attachment{filename: fmt.Sprintf("orders-%03d.csv", i), contentType: "text/csv", data: []byte(csv.String())}
	}
	// Not a real PDF: bytes that look like one, of a realistic size.
	data := make([]byte, 20<<10+rng.IntN(60<<10))
	for j := range data {
		data[j] = byte(rng.Uint32())
	}
	copy(data, "%PDF-1.7\n")
	return &attachment{filename: fmt.Sprintf("invoice-%03d.pdf", i), contentType: "application/pdf", data: data}
}

// raw renders the sample as an RFC 5322 message: plain text, or multipart when it
// has an HTML alternative or an attachment.
func (s sample) raw() []byte {
	var b bytes.Buffer
	header := func(name, value string) { fmt.Fprintf(&b, "%s: %s\r\n", name, value) }
	header("From", s.from.String()) // encodes a non-ASCII display name (RFC 2047)
	header("To", s.to)
	header("Subject", mime.QEncoding.Encode("utf-8", s.subject)) // unchanged when ASCII
	header("Date", s.date.Format(time.RFC1123Z))
	header("Message-ID", "<"+s.messageID+">")
	if n := len(s.references); n > 0 {
		header("In-Reply-To", "<"+s.references[n-1]+">")
		header("References", "<"+strings.Join(s.references, "> <")+">")
	}
	header("MIME-Version", "1.0")

	if s.html == "" && s.attachment == nil {
		header("Content-Type", `text/plain; charset="utf-8"`)
		header("Content-Transfer-Encoding", "quoted-printable")
		b.WriteString("\r\n")
		writeQP(&b, s.text)
		return b.Bytes()
	}
	outer := multipart.NewWriter(&b)
	_ = outer.SetBoundary("=_sample_" + strings.NewReplacer("@", "_", ".", "_").Replace(s.messageID)) // valid: letters, digits, "=_"
	kind := "alternative"
	if s.attachment != nil {
		kind = "mixed"
	}
	header("Content-Type", fmt.Sprintf(`multipart/%s; boundary="%s"`, kind, outer.Boundary()))
	b.WriteString("\r\n")
	addPart(outer, "text/plain", s.text)
	if s.html != "" {
		addPart(outer, "text/html", s.html)
	}
	if a := s.attachment; a != nil {
		w, _ := outer.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {a.contentType},
			"Content-Disposition":       {mime.FormatMediaType("attachment", map[string]string{"filename": a.filename})},
			"Content-Transfer-Encoding": {"base64"},
		})
		writeBase64(w, a.data)
	}
	_ = outer.Close() // writes to a bytes.Buffer: cannot fail
	return b.Bytes()
}

func addPart(mw *multipart.Writer, contentType, text string) {
	w, _ := mw.CreatePart(textproto.MIMEHeader{
		"Content-Type":              {contentType + `; charset="utf-8"`},
		"Content-Transfer-Encoding": {"quoted-printable"},
	})
	var b bytes.Buffer
	writeQP(&b, text)
	_, _ = w.Write(b.Bytes())
}

func writeQP(b *bytes.Buffer, text string) {
	qp := quotedprintable.NewWriter(b)
	_, _ = qp.Write([]byte(text))
	_ = qp.Close()
}

// writeBase64 writes data in base64 lines of 76 characters, as MIME requires.
func writeBase64(w io.Writer, data []byte) {
	const chunk = 57 // bytes per 76-character line
	enc := make([]byte, 0, 78)
	for len(data) > 0 {
		n := min(chunk, len(data))
		enc = base64.StdEncoding.AppendEncode(enc[:0], data[:n])
		enc = append(enc, '\r', '\n')
		_, _ = w.Write(enc)
		data = data[n:]
	}
}

func domainOf(email string) string {
	return email[strings.LastIndexByte(email, '@')+1:]
}
