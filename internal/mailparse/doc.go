// Package mailparse turns one raw RFC 5322 message into the fields of a
// serversync.EmailActivity (DESIGN §4 step 3), and holds the small pure helpers
// correlation needs: tracking tokens and the smart-matching conversation hash.
//
// The package does not import serversync, so that serversync's own incoming and
// outgoing code can use it. Its [Message] has the activity's field names and types,
// and [Address], [Attachment] and [TokenFormat] are field for field the serversync
// types, so they convert directly:
//
//	m, err := mailparse.Parse(body, &mailparse.Options{MaxAttachmentSize: maxAtt})
//	a.From = Address(m.From)
//	for _, att := range m.Attachments {
//		a.Attachments = append(a.Attachments, Attachment(att))
//	}
//	token, ok := mailparse.FindToken(mailparse.TokenFormat(settings.TrackingToken), a.Subject)
//
// # Parsing
//
// [Parse] streams a message once. It keeps the decoded text and HTML bodies (capped
// by Options.MaxBodySize), the attachments (each capped by Options.MaxAttachmentSize;
// a larger one is recorded with its size and Omitted set) and the header fields an
// activity needs. Bodies are decoded from their transfer encoding and charset to
// UTF-8.
//
// Mail in the wild is often malformed, and an activity must be tracked whatever the
// sender's software did. So Parse never gives up on a message, and it tells two
// kinds of trouble apart, so that a host can find the truly broken mail:
//
//   - Broken: part of the message could not be read. A truncated multipart, a
//     missing closing boundary, a header without its blank line, bad base64, a
//     header line of megabytes, a body over the cap. The rest is still parsed and
//     Parse returns a *[ParseError] listing the problems; the Message carries the
//     same description in ParseError and the complete original bytes in Raw.
//   - Odd but read whole, as mail clients read it: missing From, Date or
//     Message-ID fields, an unreadable Date, an unknown charset, 8-bit bytes or
//     NULs in the header, a bad encoded word, an address list that is not RFC 5322,
//     a stray "=" in quoted-printable, a guessed boundary. Each is a warning in
//     ParseWarnings and Parse returns no error. Raw keeps the original when a
//     warning says something was read by a guess; a message that only lacks
//     header fields is not kept twice.
//
// The caller tracks both as usual. Any other error from Parse means the reader
// failed: the message is incomplete, read it again.
//
// Where the message is ambiguous the parser chooses what loses least:
//
//   - The first text/plain and the first text/html part that are not marked
//     "Content-Disposition: attachment" become TextBody and HTMLBody, as mail
//     clients show them; a filename does not make a text part an attachment,
//     unless it comes after the body (outside a multipart/alternative): then it
//     is a file attached inline. Every other leaf part, including a
//     message/rfc822 one, becomes an attachment (see [Embedded]).
//   - A header that stops without the blank line ends where the first line that is
//     not a header field starts; that line begins the body.
//   - A header value with 8-bit bytes that are not UTF-8 is read as windows-1252,
//     the charset such mailers almost always meant; so is undeclared 8-bit text.
//   - An unknown charset keeps the bytes, invalid UTF-8 replaced by U+FFFD.
//   - A multipart without a boundary parameter uses the first "--" line as its
//     boundary; one in which no part is found keeps its text as TextBody.
//
// # Tracking tokens
//
// A tracking token is added to the subject of outgoing mail so that a reply can be
// correlated with the email it answers (DESIGN §4 step 5). Its format, set by
// OrgSettings.TrackingToken ([TokenFormat] here), is
//
//	PREFIX ":" DDDD UUU CCC
//
// where PREFIX is the configured prefix ("CRM" by default), DDDD the deployment
// number in four zero-padded digits, UUU the sending user's number in UserDigits
// digits (3 by default) and CCC that user's message counter in CounterDigits digits
// (3 by default). User 1's second message in deployment 1 is "CRM:0001001002".
// [FormatToken] builds one, [AddToken] appends one to a subject and [FindToken]
// finds one in a subject: the prefix in any case, exactly the configured number of
// digits, and neither glued to a letter or digit on either side.
//
// Nothing in this package keeps state between calls; every function is safe for
// concurrent use.
package mailparse
