package graph

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"

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
	raw = connector.AddBcc(raw, env.To)
	if base64.StdEncoding.EncodedLen(len(raw)) > MaxSendBase64Bytes {
		return connector.Error("send", serversync.ErrorPermanent, serversync.ScopeItem, serversync.CodeMessageTooLarge,
			fmt.Errorf("graph: the message is over the %d bytes (base64) Graph's sendMail takes", MaxSendBase64Bytes))
	}
	body := make([]byte, base64.StdEncoding.EncodedLen(len(raw)))
	base64.StdEncoding.Encode(body, raw)
	return s.m.doJSON(ctx, call{op: "send", method: http.MethodPost, url: s.m.url(s.m.user+"/sendMail", nil),
		body: body, contentType: "text/plain", about: aboutSend}, nil)
}
