package serversync

import (
	"bytes"
	"cmp"
	"hash/fnv"
	"io"
	"strings"
	"time"

	"github.com/emersion/go-message/mail"
)

// newMessageID returns a Message-ID in angle brackets on the sender's domain.
func newMessageID(id, from string) string {
	return "<" + id + "@" + cmp.Or(domainOf(from), "serversync.invalid") + ">"
}

// composeMessage renders an outgoing activity as a MIME message.
func composeMessage(a *EmailActivity) ([]byte, error) {
	var h mail.Header
	h.SetDate(cmpTime(a.SentAt, time.Now()))
	h.SetAddressList("From", []*mail.Address{{Name: a.From.Name, Address: a.From.Email}})
	for _, f := range []struct {
		name string
		list []Address
	}{{"To", a.To}, {"Cc", a.Cc}, {"Reply-To", a.ReplyTo}} {
		if len(f.list) > 0 {
			h.SetAddressList(f.name, mailAddresses(f.list))
		}
	}
	h.SetSubject(a.Subject)
	h.SetMessageID(strings.Trim(a.MessageID, "<>"))
	if len(a.InReplyTo) > 0 {
		h.SetMsgIDList("In-Reply-To", a.InReplyTo)
	}
	if len(a.References) > 0 {
		h.SetMsgIDList("References", a.References)
	}
	var buf bytes.Buffer
	if len(a.Attachments) == 0 && a.HTMLBody == "" {
		h.SetContentType("text/plain", map[string]string{"charset": "utf-8"})
		w, err := mail.CreateSingleInlineWriter(&buf, h)
		if err != nil {
			return nil, err
		}
		if _, err := io.WriteString(w, a.TextBody); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	}
	mw, err := mail.CreateWriter(&buf, h)
	if err != nil {
		return nil, err
	}
	tw, err := mw.CreateInline()
	if err != nil {
		return nil, err
	}
	bodies := []struct{ kind, text string }{{"text/plain", a.TextBody}, {"text/html", a.HTMLBody}}
	for i, b := range bodies {
		if b.text == "" && (i > 0 || a.HTMLBody != "") {
			continue
		}
		var ih mail.InlineHeader
		ih.SetContentType(b.kind, map[string]string{"charset": "utf-8"})
		pw, err := tw.CreatePart(ih)
		if err != nil {
			return nil, err
		}
		if _, err := io.WriteString(pw, b.text); err != nil {
			return nil, err
		}
		if err := pw.Close(); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	for _, att := range a.Attachments {
		if att.Omitted {
			continue
		}
		var ah mail.AttachmentHeader
		ah.SetContentType(cmp.Or(att.ContentType, "application/octet-stream"), nil)
		ah.SetFilename(att.Filename)
		if att.ContentID != "" {
			ah.Set("Content-Id", "<"+att.ContentID+">")
		}
		pw, err := mw.CreateAttachment(ah)
		if err != nil {
			return nil, err
		}
		if _, err := pw.Write(att.Content); err != nil {
			return nil, err
		}
		if err := pw.Close(); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func mailAddresses(list []Address) []*mail.Address {
	out := make([]*mail.Address, len(list))
	for i, a := range list {
		out[i] = &mail.Address{Name: a.Name, Address: a.Email}
	}
	return out
}

// trackingTokenFor derives an activity's tracking token: the user number from the
// mailbox and the counter from the activity, both hashed into their digit counts.
func trackingTokenFor(f TrackingTokenFormat, mailboxID, activityID string) string {
	return formatTrackingToken(f, int(hashMod(mailboxID, pow10(f.UserDigits))), int(hashMod(activityID, pow10(f.CounterDigits))))
}

func hashMod(s string, m uint64) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64() % max(m, 1)
}

func pow10(n int) uint64 {
	p := uint64(1)
	for range min(max(n, 1), 18) {
		p *= 10
	}
	return p
}
