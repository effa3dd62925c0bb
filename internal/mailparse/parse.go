package mailparse

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math"
	"mime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"

	"unicode/utf8"
)

// Defaults of [Options].
const (
	// MaxBodySizeDefault caps the text and the HTML body kept: 8 MiB of UTF-8 is far
	// beyond any message a person wrote, yet bounded.
	MaxBodySizeDefault = 8 << 20
	// MaxRawSizeDefault caps how much of the original message is buffered so it can
	// be kept in Raw when parsing has problems.
	MaxRawSizeDefault = 64 << 20
)

// Fixed limits that keep a hostile message from costing unbounded memory or time.
const (
	// maxFieldSize bounds one header field with all its folded lines. RFC 5322 lines
	// are at most 998 bytes, but real fields run longer (huge To lists, DKIM); 1 MiB
	// keeps every legitimate one.
	maxFieldSize = 1 << 20
	// maxHeaderSize bounds the fields kept from one header block.
	maxHeaderSize = 4 << 20
	// maxDepth bounds multipart nesting; real mail rarely goes beyond 4 levels.
	maxDepth = 32
	// maxParts bounds the parts of one message, each of which costs a little memory
	// even when empty.
	maxParts = 10000
	// maxProblems bounds the problems listed in a ParseError, and the warnings.
	maxProblems = 32
	// maxParseErrorLen bounds Message.ParseError, a short description.
	maxParseErrorLen = 1024
	// maxWarningLen bounds each of Message.ParseWarnings.
	maxWarningLen = 256
)

// Options tune [Parse]. A nil *Options is equivalent to a zero Options, which means
// the defaults.
type Options struct {
	// MaxAttachmentSize caps the content kept per attachment, in decoded bytes. A
	// larger attachment is recorded with Omitted set, its Size, and no Content.
	// 0 means no cap; a negative value keeps no attachment content at all.
	//
	// Beware: OrgSettings.MaxAttachmentSize uses 0 for "store no content", which
	// is -1 here.
	MaxAttachmentSize int64
	// MaxBodySize caps the text and the HTML body kept, in UTF-8 bytes, each; the
	// rest is dropped and noted as a problem (Raw then keeps the whole message).
	// 0 means MaxBodySizeDefault.
	MaxBodySize int64
	// MaxRawSize caps how much of the original message is buffered for Raw. A
	// message with problems that is larger keeps only its beginning. 0 means
	// MaxRawSizeDefault.
	MaxRawSize int64
}

// ParseError lists what makes a message broken: parts of it could not be read
// (see [Parse]). Parse returns it with a Message that has everything else filled
// in, ParseError set to the same description and Raw set to the original: the
// message is still to be tracked. Oddities that were read as mail clients read
// them are not in it but in Message.ParseWarnings.
type ParseError struct {
	// Problems are in the order found, the first few dozen only. Each wraps its
	// cause where there is one.
	Problems []error
	// Dropped counts the problems found after the list was full.
	Dropped int
}

func (e *ParseError) Error() string {
	var b strings.Builder
	b.WriteString("mailparse: ")
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.Error())
	}
	if e.Dropped > 0 {
		fmt.Fprintf(&b, "; and %d more", e.Dropped)
	}
	return b.String()
}

// Unwrap returns the problems, so errors.Is and errors.As reach their causes.
func (e *ParseError) Unwrap() []error { return e.Problems }

// panicError is a panic inside the parser turned into a problem, so that one
// unforeseen message cannot take the caller down. Tests look for it: it is a bug.
type panicError struct {
	value any
	stack []byte
}

func (e *panicError) Error() string { return fmt.Sprintf("internal error: %v", e.value) }

// Parse reads one message from r. It streams: it holds the kept parts, the
// original bytes (up to Options.MaxRawSize, dropped again when parsing went well)
// and bounded buffers. It reads r to the end.
//
// What Parse finds wrong falls in two kinds. A message is broken when part of it
// could not be read: its structure is not MIME (no header, a header running into
// the body, a multipart whose parts or closing boundary are missing), or content
// was cut or skipped (a truncated field, header or body, bad base64, parts past
// the limits). Parse then fills in what it could, sets ParseError, keeps the
// original bytes in Raw and returns the Message with a *ParseError: the message is
// still good to track. Anything else is a warning, in ParseWarnings: a missing
// From, Date or Message-ID, an unreadable Date, an unknown charset, a bad encoded
// word, an address list that is not RFC 5322… The message was read whole, as mail
// clients read it, and Parse returns no error; Raw keeps the original unless the
// only warnings are missing header fields, where nothing was read by a guess.
//
// Any other error is a failure to read r: the message is incomplete (the Message
// holds what was read) and should not be tracked; reading it again may succeed.
//
// Parse never panics and always returns a Message. It is safe for concurrent use.
func Parse(r io.Reader, opts *Options) (*Message, error) {
	if r == nil {
		r = strings.NewReader("")
	}
	return parseFrom(r, nil, opts)
}

// ParseBytes parses a message held in memory, as Parse does, without the copy of
// its bytes Parse buffers for Raw: Raw, when set, is raw itself (up to
// MaxRawSize), so raw must not change afterwards.
func ParseBytes(raw []byte, opts *Options) (*Message, error) {
	return parseFrom(bytes.NewReader(raw), raw, opts)
}

// parseFrom reads a message from r; whole, when not nil, is all of r's bytes.
func parseFrom(r io.Reader, whole []byte, opts *Options) (*Message, error) {
	m := &Message{}
	p := newParser(m, opts)
	src := &source{r: r, max: p.maxRaw}
	if len(whole) > 0 {
		src.raw, src.max = whole[:min(int64(len(whole)), p.maxRaw):min(int64(len(whole)), p.maxRaw)], 0
	}
	// Long lines do not need a large buffer (readLine and partReader take them in
	// pieces); 16 KiB just keeps calls on the caller's reader few.
	br := getReader(src, 16<<10)

	p.run(br)
	// Whatever the parse left unread (an epilogue, a part after a fatal problem) is
	// still part of the message: Size and Raw must cover it.
	if _, err := io.Copy(io.Discard, br); err != nil && src.err == nil {
		src.err = err
	}
	putReader(br)
	m.Size = src.n
	if src.err != nil {
		return m, fmt.Errorf("mailparse: reading message: %w", src.err)
	}
	broken := len(p.problems) > 0
	if broken || p.keepRaw {
		if src.n > int64(len(src.raw)) {
			note := fmt.Errorf("message of %d bytes is larger than %d: Raw keeps only the beginning", src.n, p.maxRaw)
			if broken {
				p.problem(note)
			} else {
				p.warn(note)
			}
		}
		m.Raw = src.raw
	}
	m.ParseWarnings = warningTexts(p.warnings, p.droppedWarnings)
	if !broken {
		return m, nil
	}
	perr := &ParseError{Problems: p.problems, Dropped: p.dropped}
	m.ParseError = truncateUTF8(strings.TrimPrefix(perr.Error(), "mailparse: "), maxParseErrorLen)
	return m, perr
}

// source counts what is read from the caller's reader and buffers it, up to max,
// for Raw. It remembers the first read error: that means the message is
// incomplete, which is not a parse problem.
type source struct {
	r   io.Reader
	n   int64
	raw []byte
	max int64
	err error // first error other than io.EOF
	eof bool
}

func (s *source) Read(b []byte) (int, error) {
	if s.eof {
		return 0, io.EOF
	}
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.r.Read(b)
	if n < 0 || n > len(b) {
		// A broken reader; slicing with its count would panic.
		n, err = 0, fmt.Errorf("reader returned invalid count %d", n)
	}
	s.n += int64(n)
	if room := s.max - int64(len(s.raw)); room > 0 {
		s.raw = append(s.raw, b[:min(int64(n), room)]...)
	}
	switch {
	case err == io.EOF:
		s.eof = true
	case err != nil:
		s.err = err
	}
	return n, err
}

// parser holds the state of one Parse call.
type parser struct {
	m        *Message
	maxAtt   int64 // < 0: keep no content; 0: no cap
	maxBody  int64
	maxRaw   int64
	problems []error         // what makes the message broken: ParseError
	warnings []error         // what was read leniently: ParseWarnings
	seen     map[string]bool // problem and warning texts already listed
	dropped  int
	// droppedWarnings counts the warnings found after their list was full.
	droppedWarnings int
	// keepRaw: a warning says part of the message was read by a guess, so Raw
	// keeps the original for the host to read again.
	keepRaw  bool
	parts    int
	textDone bool
	htmlDone bool
}

func newParser(m *Message, opts *Options) *parser {
	if opts == nil {
		opts = &Options{}
	}
	p := &parser{
		m:       m,
		maxAtt:  opts.MaxAttachmentSize,
		maxBody: opts.MaxBodySize,
		maxRaw:  opts.MaxRawSize,
	}
	if p.maxBody <= 0 {
		p.maxBody = MaxBodySizeDefault
	}
	if p.maxRaw <= 0 {
		p.maxRaw = MaxRawSizeDefault
	}
	// Reads ask for one byte more than a cap to see whether it is exceeded.
	p.maxBody = min(p.maxBody, math.MaxInt64-1)
	p.maxAtt = min(p.maxAtt, math.MaxInt64-1)
	return p
}

// problem records something that makes the message broken: part of it could not
// be read (see Parse). The same text is listed once: a thousand bad parts are one
// problem to a reader.
func (p *parser) problem(err error) {
	p.note(&p.problems, &p.dropped, err)
}

func (p *parser) problemf(format string, args ...any) {
	p.problem(fmt.Errorf(format, args...))
}

// warn records an oddity that was read as mail clients read it, by a guess (a
// charset, a lenient address list…): a warning, with Raw kept.
func (p *parser) warn(err error) {
	p.keepRaw = true
	p.note(&p.warnings, &p.droppedWarnings, err)
}

func (p *parser) warnf(format string, args ...any) {
	p.warn(fmt.Errorf(format, args...))
}

// missingField records a header field the message lacks: a warning that needs no
// Raw, since nothing was read by a guess. Most real-world mail that lacks one is
// otherwise fine (cron, scripts, web forms, mail delivered without an MTA adding
// Date and Message-ID).
func (p *parser) missingField(name string) {
	p.note(&p.warnings, &p.droppedWarnings, fmt.Errorf("header: no %s", name))
}

func (p *parser) note(list *[]error, dropped *int, err error) {
	if len(*list) >= maxProblems {
		*dropped++ // not deduplicated: remembering every text would cost unbounded memory
		return
	}
	msg := err.Error()
	if p.seen[msg] {
		return
	}
	if p.seen == nil {
		p.seen = make(map[string]bool)
	}
	p.seen[msg] = true
	*list = append(*list, err)
}

// warningTexts turns the warnings into Message.ParseWarnings, each bounded.
func warningTexts(warnings []error, dropped int) []string {
	var out []string
	for _, w := range warnings {
		out = append(out, truncateUTF8(w.Error(), maxWarningLen))
	}
	if dropped > 0 {
		out = append(out, fmt.Sprintf("and %d more", dropped))
	}
	return out
}

// run parses the message from br, turning a panic into a problem so that one
// unforeseen message never takes the caller down (nor loses the message: Raw is
// kept as for any problem).
func (p *parser) run(br *bufio.Reader) {
	defer func() {
		if v := recover(); v != nil {
			// Listed even when the list is full: tests look for it.
			p.problems = append(p.problems, &panicError{value: v, stack: debug.Stack()})
		}
	}()
	h, rest, _ := p.readHeader(br, "header", true)
	if len(h) == 0 && rest == nil {
		// Nothing at all, or a body alone after a blank line: not a mail message.
		// (A first line that is not a field was already noted as "no header".)
		p.problemf("header: no header fields")
	}
	p.envelope(h)
	var body io.Reader = br
	if rest != nil {
		body = io.MultiReader(bytes.NewReader(rest), br)
	}
	p.entity(h, body, nil, "text/plain", false)
}

// envelope fills the fields that come from the top-level header.
func (p *parser) envelope(h header) {
	m := p.m
	from := p.addresses(h, "From")
	if len(from) == 0 {
		// Sender names who sent the message for the author; better than nothing.
		from = p.addresses(h, "Sender")
		p.missingField("From address")
	}
	if len(from) > 0 {
		m.From = from[0]
	}
	m.To = p.addresses(h, "To")
	m.Cc = p.addresses(h, "Cc")
	m.Bcc = p.addresses(h, "Bcc")
	m.ReplyTo = p.addresses(h, "Reply-To")
	m.Subject = p.text("header", h.get("Subject"))

	if ids := msgIDs(h.get("Message-Id")); len(ids) > 0 {
		m.MessageID = ids[0]
	} else {
		p.missingField("Message-ID")
	}
	m.InReplyTo = msgIDs(h.get("In-Reply-To"))
	m.References = msgIDs(h.get("References"))

	if v, ok := h.lookup("Date"); !ok || strings.TrimSpace(v) == "" {
		p.missingField("Date")
	} else if t, err := parseDate(v); err != nil {
		p.warn(fmt.Errorf("header: Date %q: %w", truncateUTF8(v, 64), err))
	} else {
		m.SentAt = t
	}
}

// entity handles one part (or the whole message): a multipart is split, a leaf
// becomes a body or an attachment. path numbers the part as in "part 1.2";
// defaultType is the type a part without Content-Type has (RFC 2046 §5.1.5: in a
// multipart/digest it is message/rfc822); inAlternative says that the part is
// inside a multipart/alternative, whose parts are renderings of one body.
func (p *parser) entity(h header, body io.Reader, path []int, defaultType string, inAlternative bool) {
	where := partName(path)
	mediaType, params := p.mediaType(where, h.get("Content-Type"), defaultType)

	if strings.HasPrefix(mediaType, "multipart/") {
		p.multipart(body, path, mediaType, params, inAlternative || mediaType == "multipart/alternative")
		return
	}

	disposition, dparams := p.disposition(where, h.get("Content-Disposition"))
	filename := dparams["filename"]
	if filename == "" {
		filename = params["name"]
	}
	// parseParams has undone RFC 2047 and 2231; what is left may still hold
	// control characters or bytes of an unknown charset.
	filename = baseName(p.cleanLine(where, filename))

	isBody := p.isBody(mediaType, disposition, filename != "", inAlternative)
	decoded := p.transferDecoder(where, h.get("Content-Transfer-Encoding"), body)

	if isBody {
		text := p.readText(where, decoded, params["charset"])
		if mediaType == "text/html" {
			p.m.HTMLBody, p.htmlDone = text, true
		} else {
			p.m.TextBody, p.textDone = text, true
		}
	} else {
		contentType := mediaType
		if cs := params["charset"]; cs != "" && strings.HasPrefix(mediaType, "text/") {
			// Attachment content stays in its charset; without it the host could
			// not read a text attachment.
			if withCharset := mime.FormatMediaType(mediaType, map[string]string{"charset": cs}); withCharset != "" {
				contentType = withCharset
			}
		}
		p.attachment(decoded, Attachment{
			Filename:    filename,
			ContentType: contentType,
			ContentID:   contentID(h.get("Content-Id")),
		})
	}
	// A decoder may have met bad input only at the end of the part.
	if d, ok := decoded.(decoder); ok {
		switch err := d.problem(); {
		case err == nil:
		case d.lossy():
			p.problem(fmt.Errorf("%s: %w", where, err))
		default:
			p.warn(fmt.Errorf("%s: %w", where, err))
		}
	}
}

// isBody decides, as mail clients do, whether a leaf part is the message's text or
// HTML body rather than an attachment. Thunderbird, Apple Mail and go-message's
// mail.Reader show a text part inline unless its Content-Disposition says
// "attachment"; a filename (Content-Disposition's or Content-Type's name) does not
// make it an attachment: scripts, gateways and Apple Mail name the text part that
// is the whole message. So:
//
//   - a text/plain or text/html part marked "attachment" is an attachment;
//   - otherwise the first text/plain and the first text/html part are the bodies;
//   - but a part with a filename is the body only when no body has been found yet,
//     or when it is one of the renderings of a multipart/alternative. A named text
//     part after the body (Apple Mail's "inline" attachments, a log after an
//     HTML-only body) is a file the sender attached: mail clients list it as an
//     attachment too, and an activity keeps it as one, with its name, rather than
//     mixing a file into the text the user reads and searches.
func (p *parser) isBody(mediaType, disposition string, named, inAlternative bool) bool {
	if disposition == "attachment" {
		return false
	}
	free := mediaType == "text/plain" && !p.textDone || mediaType == "text/html" && !p.htmlDone
	if !free {
		return false
	}
	return !named || inAlternative || !p.textDone && !p.htmlDone
}

// multipart parses the parts of a multipart body.
func (p *parser) multipart(body io.Reader, path []int, mediaType string, params map[string]string, inAlternative bool) {
	where := partName(path)
	if len(path) >= maxDepth {
		p.problemf("%s: multipart nested more than %d levels deep; skipped", where, maxDepth)
		return
	}
	defaultType := "text/plain"
	if mediaType == "multipart/digest" {
		defaultType = "message/rfc822"
	}
	mr := newMultipartReader(body, params["boundary"], p.maxBody)
	if mr.br != body { // not the reader body already was (see getReader)
		defer putReader(mr.br) // nothing read from it outlives this call
	}
	if len(mr.dash) > maxBoundaryLen {
		p.problemf("%s: boundary longer than %d bytes ignored", where, maxBoundaryLen-2)
		mr.dash = nil
	}
	for n := 1; ; n++ {
		h, partBody, ok := mr.next(p, partName(append(path[:len(path):len(path)], n)))
		if !ok {
			break
		}
		if p.parts >= maxParts {
			p.problemf("more than %d parts; the rest skipped", maxParts)
			continue // next drains it
		}
		p.parts++
		p.entity(h, partBody, append(path[:len(path):len(path)], n), defaultType, inAlternative)
	}
	if mr.guessed {
		p.warnf("%s: multipart without boundary parameter; guessed %q", where, mr.dash[2:])
	}
	if mr.parts == 0 {
		p.problemf("%s: no part found in %s", where, mediaType)
		if len(bytes.TrimSpace(mr.preamble)) > 0 && !p.textDone {
			// Most likely a message whose boundary does not match: its text is all
			// there is to show.
			p.m.TextBody, p.textDone = p.readText(where, bytes.NewReader(mr.preamble), ""), true
		}
		return
	}
	if !mr.closed {
		p.problemf("%s: multipart ends without closing boundary (truncated message?)", where)
	}
}

// attachment reads one attachment's decoded content, keeping it when within the cap.
func (p *parser) attachment(r io.Reader, att Attachment) {
	switch {
	case p.maxAtt == 0:
		att.Content = readExact(r, -1)
		att.Size = int64(len(att.Content))
	case p.maxAtt < 0:
		att.Size, _ = io.Copy(io.Discard, r)
		att.Omitted = att.Size > 0
	default:
		content := readExact(r, p.maxAtt+1)
		att.Size = int64(len(content))
		if att.Size > p.maxAtt {
			// Drop the content before counting the rest: only Size is kept.
			content = nil
			rest, _ := io.Copy(io.Discard, r)
			att.Size += rest
			att.Omitted = true
		}
		att.Content = content
	}
	p.m.Attachments = append(p.m.Attachments, att)
}

// readExact reads r to its end, at most limit bytes when limit >= 0, into a
// reused buffer, and returns a copy of exactly what was read: io.ReadAll, growing
// its buffer as it goes, allocated about twice an attachment's size, 16% of what
// the incoming pipeline allocated (bench/syncerpipeline -memprofile). A buffer
// grown past maxPooledBuffer is not kept and is returned as it is, as io.ReadAll
// would. An empty part reads as empty, not nil, as with io.ReadAll.
func readExact(r io.Reader, limit int64) []byte {
	if limit >= 0 {
		r = io.LimitReader(r, limit)
	}
	buf := getBuffer()
	_, _ = buf.ReadFrom(r)
	if buf.Cap() > maxPooledBuffer {
		return buf.Bytes()
	}
	defer putBuffer(buf)
	return append(make([]byte, 0, buf.Len()), buf.Bytes()...)
}

// readText reads a body part to UTF-8, keeping at most maxBody bytes.
func (p *parser) readText(where string, r io.Reader, charsetName string) string {
	r = p.charsetDecoder(where, r, charsetName)
	buf := getBuffer()
	defer putBuffer(buf) // cleanBody returns a copy
	_, _ = buf.ReadFrom(io.LimitReader(r, p.maxBody+1))
	data := buf.Bytes()
	if n := int64(len(data)); n > p.maxBody {
		data = trimIncompleteRune(data[:p.maxBody])
		rest, _ := io.Copy(io.Discard, r)
		p.problemf("%s: body of %d bytes truncated to %d", where, n+rest, len(data))
	}
	return p.cleanBody(where, data, charsetName)
}

// cleanBody makes text storable: valid UTF-8 without NULs (which PostgreSQL text
// cannot hold).
func (p *parser) cleanBody(where string, data []byte, charsetName string) string {
	if bytes.IndexByte(data, 0) >= 0 {
		data = bytes.ReplaceAll(data, []byte{0}, nil)
		p.warnf("%s: NUL bytes removed from text", where)
	}
	if !utf8.Valid(data) {
		if declaresASCII(charsetName) {
			// Undeclared (or falsely "us-ascii") 8-bit text: the sender's
			// software almost always meant windows-1252.
			data = windows1252(data)
			p.warnf("%s: undeclared 8-bit text read as windows-1252", where)
		} else {
			data = bytes.ToValidUTF8(data, []byte("\uFFFD"))
			p.warnf("%s: invalid %s text; bad bytes replaced", where, charsetName)
		}
	}
	return string(data)
}

// partName names a part for problems: "part 1.2", or "body" for the message's own.
func partName(path []int) string {
	if len(path) == 0 {
		return "body"
	}
	var b strings.Builder
	b.WriteString("part ")
	for i, n := range path {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(strconv.Itoa(n))
	}
	return b.String()
}

// baseName strips directories from a filename: some mailers send full paths, and a
// host saving the file must not be led outside its folder.
func baseName(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	return name
}

// contentID returns a Content-ID without its angle brackets.
func contentID(v string) string {
	v = strings.TrimSpace(v)
	v = strings.TrimPrefix(v, "<")
	v = strings.TrimSuffix(v, ">")
	return strings.TrimSpace(v)
}

// truncateUTF8 shortens s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return string(trimIncompleteRune([]byte(s[:n])))
}

// trimIncompleteRune drops a character cut in two at the end of b.
func trimIncompleteRune(b []byte) []byte {
	for i := 1; i < utf8.UTFMax && i <= len(b); i++ {
		c := b[len(b)-i]
		if c < utf8.RuneSelf {
			return b // ASCII: nothing cut
		}
		if utf8.RuneStart(c) {
			if !utf8.FullRune(b[len(b)-i:]) {
				return b[:len(b)-i]
			}
			return b
		}
	}
	return b
}

// Reading buffers are reused from one parse (and one multipart) to the next: a
// message of 15 KB otherwise allocates more for them than for what it keeps.
var readerPools = map[int]*sync.Pool{16 << 10: {}, 4 << 10: {}}

// getReader returns a reader of r buffering size bytes; size is one of
// readerPools'. Give it back with putReader once nothing read from it is in use.
// As bufio.NewReaderSize, it returns r itself when r is a *bufio.Reader large
// enough: that one is not to be given back.
func getReader(r io.Reader, size int) *bufio.Reader {
	if br, ok := r.(*bufio.Reader); ok && br.Size() >= size {
		return br
	}
	if br, ok := readerPools[size].Get().(*bufio.Reader); ok {
		br.Reset(r)
		return br
	}
	return bufio.NewReaderSize(r, size)
}

func putReader(br *bufio.Reader) {
	br.Reset(nil) // let go of the source
	readerPools[br.Size()].Put(br)
}

// textBuffers hold a text body while it is read: its string is a copy.
var textBuffers sync.Pool

// maxPooledBuffer is the largest text buffer kept for reuse, so one long body
// does not stay in memory.
const maxPooledBuffer = 256 << 10

func getBuffer() *bytes.Buffer {
	if b, ok := textBuffers.Get().(*bytes.Buffer); ok {
		b.Reset()
		return b
	}
	return new(bytes.Buffer)
}

func putBuffer(b *bytes.Buffer) {
	if b.Cap() <= maxPooledBuffer {
		textBuffers.Put(b)
	}
}
