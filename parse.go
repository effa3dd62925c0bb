package serversync

import (
	"github.com/serversync/serversync/internal/mailparse"
)

// parseMessage fills a's message fields from raw. A message that cannot be fully
// read is still tracked: what could be read is filled in, a.ParseError says what
// went wrong, and a.Raw keeps the original bytes. What was odd but read whole, as
// mail clients read it, is in a.ParseWarnings.
func parseMessage(raw []byte, a *EmailActivity, maxAttachment int64) {
	if maxAttachment <= 0 {
		maxAttachment = -1 // OrgSettings: 0 stores no attachment content
	}
	msg, _ := mailparse.ParseBytes(raw, &mailparse.Options{MaxAttachmentSize: maxAttachment})
	fillActivity(a, msg)
}

func fillActivity(a *EmailActivity, msg *mailparse.Message) {
	a.From = Address(msg.From)
	a.To, a.Cc, a.Bcc, a.ReplyTo = addresses(msg.To), addresses(msg.Cc), addresses(msg.Bcc), addresses(msg.ReplyTo)
	a.Subject, a.TextBody, a.HTMLBody = msg.Subject, msg.TextBody, msg.HTMLBody
	a.MessageID, a.InReplyTo, a.References = msg.MessageID, msg.InReplyTo, msg.References
	a.Attachments = nil
	for _, att := range msg.Attachments {
		a.Attachments = append(a.Attachments, Attachment(att))
	}
	a.Size, a.SentAt = msg.Size, msg.SentAt
	a.Raw, a.ParseError, a.ParseWarnings = msg.Raw, msg.ParseError, msg.ParseWarnings
}

func addresses(in []mailparse.Address) []Address {
	var out []Address
	for _, a := range in {
		out = append(out, Address(a))
	}
	return out
}

// forwardedOriginal returns the message a user's server rule forwarded to a forward
// mailbox as a message/rfc822 attachment, parsed and raw, or nil when there is none
// (or it was over the attachment cap).
func forwardedOriginal(a *EmailActivity, raw []byte, maxAttachment int64) (*EmailActivity, []byte) {
	// Parse again keeping embedded messages whole: the org's cap is for storing
	// attachments, not for reading the original.
	outer, _ := mailparse.ParseBytes(raw, &mailparse.Options{})
	for _, i := range mailparse.Embedded(outer) {
		att := outer.Attachments[i]
		if att.Omitted {
			continue
		}
		inner := &EmailActivity{}
		parseMessage(att.Content, inner, maxAttachment)
		return inner, att.Content
	}
	return nil, nil
}

func formatTrackingToken(f TrackingTokenFormat, user, counter int) string {
	return mailparse.FormatToken(mailparse.TokenFormat(f), user, counter)
}

func findTrackingToken(f TrackingTokenFormat, subject string) (string, bool) {
	return mailparse.FindToken(mailparse.TokenFormat(f), subject)
}

func addTrackingToken(f TrackingTokenFormat, subject, token string) string {
	return mailparse.AddToken(mailparse.TokenFormat(f), subject, token)
}

func conversationHash(subject string, participants []string) string {
	return mailparse.ConversationHash(subject, participants)
}
