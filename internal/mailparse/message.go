package mailparse

import "time"

// Message is what Parse reads from one message: the fields of a
// serversync.EmailActivity that come from the message itself, with the same names
// and types. The package does not import serversync, so that the serversync
// package itself can use it; Address and Attachment are field for field the
// serversync types and convert with serversync.Address(a) and
// serversync.Attachment(a).
//
// A Message is a plain value, not safe for concurrent mutation.
type Message struct {
	From     Address
	To       []Address
	Cc       []Address
	Bcc      []Address
	ReplyTo  []Address
	Subject  string // RFC 2047-decoded, one line
	TextBody string // the first text/plain part that is not an attachment, in UTF-8
	HTMLBody string // the first text/html part that is not an attachment, in UTF-8

	MessageID  string   // without angle brackets
	InReplyTo  []string // message IDs, without angle brackets
	References []string

	Attachments []Attachment
	Size        int64     // bytes read, the whole message
	SentAt      time.Time // the Date field; zero when missing or unreadable

	// Raw is the original message, kept when part of it could not be read
	// (ParseError) or was read by a guess (a warning other than a missing header
	// field), so that nothing is lost.
	Raw []byte
	// ParseError says why the message is broken: part of it could not be read.
	// Empty for a message that was read whole, however odd (see Parse).
	ParseError string
	// ParseWarnings list the oddities of a message that was still read whole, as
	// mail clients read it: a missing Date or Message-ID, an unknown charset, a bad
	// encoded word… At most a few dozen, each short.
	ParseWarnings []string
}

// Address is one mailbox address, as serversync.Address. The display name is
// decoded; the address is kept as written (no case change).
type Address struct {
	Name  string
	Email string
}

// Attachment is one attachment, as serversync.Attachment. Size is the decoded size,
// also when the content was over the cap and left out (Omitted).
type Attachment struct {
	Filename    string // decoded, without directories
	ContentType string // lower-case media type; text/* keeps its charset parameter
	ContentID   string // without angle brackets
	Size        int64
	Content     []byte
	Omitted     bool
}

// Embedded returns the indexes in m.Attachments of the messages m carries as
// attachments (message/rfc822 or message/global parts), in order: for a forward
// mailbox, the original the user forwarded. An embedded message has Content, to
// give to Parse, unless it was larger than the attachment cap (Omitted).
func Embedded(m *Message) []int {
	if m == nil {
		return nil
	}
	var idx []int
	for i, att := range m.Attachments {
		if isMessageType(att.ContentType) {
			idx = append(idx, i)
		}
	}
	return idx
}

func isMessageType(mediaType string) bool {
	return mediaType == "message/rfc822" || mediaType == "message/global"
}
