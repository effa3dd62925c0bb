package ews

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector"
)

// sender is an outgoing session.
type sender struct {
	m *mailbox
}

var _ serversync.OutgoingSession = (*sender)(nil)

func (s *sender) Close() error { return nil }

// Send implements serversync.OutgoingSession with CreateItem and
// MessageDisposition SendAndSaveCopy: the MIME message goes as it is, Exchange
// takes the recipients from its To, Cc and Bcc headers and saves a copy in the
// mailbox's Sent Items. Envelope recipients missing from the headers (a blind
// copy in the SMTP sense) are added as a Bcc header.
func (s *sender) Send(ctx context.Context, env serversync.Envelope, msg io.Reader) error {
	raw, err := io.ReadAll(io.LimitReader(msg, s.m.c.opts.MaxMessageBytes+1))
	if err != nil {
		return fmt.Errorf("ews: read the message: %w", err)
	}
	if int64(len(raw)) > s.m.c.opts.MaxMessageBytes {
		return connector.Error("send", serversync.ErrorPermanent, serversync.ScopeItem, serversync.CodeMessageTooLarge,
			fmt.Errorf("ews: the message is over %d bytes", s.m.c.opts.MaxMessageBytes))
	}
	mime, err := encodeMIME("send", bytes.NewReader(connector.AddBcc(raw, env.To)), s.m.c.opts.MaxMessageBytes*2)
	if err != nil {
		return err
	}
	return s.m.createItem(ctx, "send", aboutSend, "SendAndSaveCopy", s.m.distinguished("sentitems"), mime)
}
