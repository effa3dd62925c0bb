package graph

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/mail"
	"net/textproto"
	"strings"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector"
)

// sender is an outgoing session.
type sender struct {
	m *mailbox
}

var _ serversync.OutgoingSession = (*sender)(nil)

func (s *sender) Close() error { return nil }

// Send implements serversync.OutgoingSession with sendMail: the MIME message,
// base64-encoded, goes as it is (Graph takes the recipients from its To, Cc
// and Bcc headers and saves a copy in Sent Items). Envelope recipients missing
// from the headers (a blind copy in the SMTP sense) are added as a Bcc header.
func (s *sender) Send(ctx context.Context, env serversync.Envelope, msg io.Reader) error {
	rawLimit := int64(MaxSendBase64Bytes/4*3) + 1
	raw, err := io.ReadAll(io.LimitReader(msg, rawLimit+1))
	if err != nil {
		return fmt.Errorf("graph: read the message: %w", err)
	}
	raw = addBcc(raw, env.To)
	if base64.StdEncoding.EncodedLen(len(raw)) > MaxSendBase64Bytes {
		return connector.Error("send", serversync.ErrorPermanent, serversync.ScopeItem, serversync.CodeMessageTooLarge,
			fmt.Errorf("graph: the message is over the %d bytes (base64) Graph's sendMail takes", MaxSendBase64Bytes))
	}
	body := make([]byte, base64.StdEncoding.EncodedLen(len(raw)))
	base64.StdEncoding.Encode(body, raw)
	return s.m.doJSON(ctx, call{op: "send", method: http.MethodPost, url: s.m.url(s.m.user+"/sendMail", nil),
		body: body, contentType: "text/plain", about: aboutSend}, nil)
}

// addBcc returns raw with a Bcc header naming the recipients that are in
// none of its To, Cc and Bcc headers; raw itself when there are none.
func addBcc(raw []byte, recipients []string) []byte {
	end, nl := headerEnd(raw)
	if end < 0 {
		return raw
	}
	hdr, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(raw[:end]))).ReadMIMEHeader()
	if err != nil && len(hdr) == 0 {
		return raw
	}
	listed := map[string]bool{}
	var text strings.Builder
	for _, field := range []string{"To", "Cc", "Bcc"} {
		for _, v := range hdr.Values(field) {
			text.WriteString(strings.ToLower(v))
			text.WriteByte(' ')
			if list, err := mail.ParseAddressList(v); err == nil {
				for _, a := range list {
					listed[strings.ToLower(a.Address)] = true
				}
			}
		}
	}
	var missing []string
	for _, r := range recipients {
		r = strings.TrimSpace(r)
		lower := strings.ToLower(r)
		if r == "" || listed[lower] || strings.Contains(text.String(), "<"+lower+">") {
			continue
		}
		listed[lower] = true
		missing = append(missing, r)
	}
	if len(missing) == 0 {
		return raw
	}
	line := "Bcc: " + strings.Join(missing, ", ") + nl
	return append([]byte(line), raw...)
}

// headerEnd returns where the header ends (just after the blank line's
// predecessor) and the message's line ending.
func headerEnd(raw []byte) (int, string) {
	if i := bytes.Index(raw, []byte("\r\n\r\n")); i >= 0 {
		return i + 4, "\r\n"
	}
	if i := bytes.Index(raw, []byte("\n\n")); i >= 0 {
		return i + 2, "\n"
	}
	return -1, ""
}
