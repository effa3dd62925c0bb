package mailparse

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"
)

// field is one header field, unfolded. Its value is valid UTF-8 but not yet
// RFC 2047-decoded: only some fields may carry encoded words.
type field struct {
	key   string
	value string
}

// header is a header block in order. Messages have a few dozen fields, so a slice
// searched in order is simpler and as fast as a map, and keeps "first one wins".
type header []field

func (h header) lookup(key string) (string, bool) {
	for _, f := range h {
		if strings.EqualFold(f.key, key) {
			return f.value, true
		}
	}
	return "", false
}

func (h header) get(key string) string {
	v, _ := h.lookup(key)
	return v
}

// readHeader reads a header block from br, leniently: over-long fields are
// truncated, invalid lines noted, and a header that runs into the body without a
// blank line ends at the first line that cannot be a field. That line is returned
// as rest, to be read as the start of the body. eof reports that the input ended
// inside (or instead of) the header. top marks the message's own header, where an
// mbox "From " line and a byte-order mark may precede the fields.
func (p *parser) readHeader(br *bufio.Reader, where string, top bool) (h header, rest []byte, eof bool) {
	var (
		cur     []byte // the field being read, folded lines joined by '\n'
		curLong bool
		kept    int
		scratch []byte
	)
	flush := func() {
		if cur == nil {
			return
		}
		colon := bytes.IndexByte(cur, ':')
		key := string(bytes.TrimRight(cur[:colon], " \t"))
		if curLong {
			p.problemf("%s: field %q longer than %d bytes; truncated", where, truncateUTF8(key, 64), maxFieldSize)
		}
		if kept += len(cur); kept > maxHeaderSize {
			p.problemf("%s: header larger than %d bytes; later fields ignored", where, maxHeaderSize)
		} else {
			h = append(h, field{key: key, value: p.headerValue(where, unfold(cur[colon+1:]))})
		}
		cur, curLong = nil, false
	}

	for first := true; ; first = false {
		line, long, err := readLine(br, maxFieldSize, scratch[:0])
		scratch = line
		if top && first {
			line = bytes.TrimPrefix(line, []byte("\xEF\xBB\xBF"))
		}
		content := trimEOL(line)
		switch {
		case len(line) == 0:
			// Input ended.
		case len(content) == 0:
			flush()
			return h, nil, false
		case content[0] == ' ' || content[0] == '\t':
			if cur == nil {
				p.warnf("%s: header starts with a continuation line; ignored", where)
				break
			}
			if room := maxFieldSize - len(cur) - 1; room < len(content) {
				content, curLong = content[:max(room, 0)], true
			}
			cur = append(cur, '\n')
			cur = append(cur, content...)
			curLong = curLong || long
		case isFieldLine(content):
			flush()
			cur, curLong = append([]byte(nil), content...), long
		case top && first && bytes.HasPrefix(content, []byte("From ")):
			// An mbox separator, not part of the message.
		default:
			flush()
			if len(h) > 0 {
				p.problemf("%s: header not ended by a blank line", where)
			} else {
				p.problemf("%s: no header", where)
			}
			return h, append([]byte(nil), line...), false
		}
		if err != nil {
			flush()
			return h, nil, true
		}
	}
}

// readLine reads one line with its line break into buf, keeping at most limit bytes;
// long reports that the line was longer. Memory stays bounded whatever the input.
func readLine(br *bufio.Reader, limit int, buf []byte) (line []byte, long bool, err error) {
	line = buf
	for {
		frag, err := br.ReadSlice('\n')
		room := limit - len(line)
		if len(frag) > room {
			frag, long = frag[:max(room, 0)], true
		}
		line = append(line, frag...)
		if err != bufio.ErrBufferFull {
			return line, long, err
		}
	}
}

func trimEOL(line []byte) []byte {
	line = bytes.TrimSuffix(line, []byte("\n"))
	return bytes.TrimSuffix(line, []byte("\r"))
}

// isFieldLine reports whether line starts a header field: a name of visible
// characters (8-bit ones tolerated), optional blanks, then a colon.
func isFieldLine(line []byte) bool {
	colon := bytes.IndexByte(line, ':')
	if colon < 0 {
		return false
	}
	name := bytes.TrimRight(line[:colon], " \t")
	if len(name) == 0 {
		return false
	}
	for _, c := range name {
		if c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// unfold joins folded lines (RFC 5322 §2.2.3), dropping the blanks around each
// break, as textproto does.
func unfold(v []byte) []byte {
	var out []byte
	for line := range bytes.SplitSeq(v, []byte("\n")) {
		line = bytes.Trim(line, " \t\r")
		if len(line) == 0 {
			continue
		}
		if len(out) > 0 {
			out = append(out, ' ')
		}
		out = append(out, line...)
	}
	return out
}

// headerValue makes a raw field value valid UTF-8 without NULs.
func (p *parser) headerValue(where string, v []byte) string {
	if bytes.IndexByte(v, 0) >= 0 {
		v = bytes.ReplaceAll(v, []byte{0}, nil)
		p.warnf("%s: NUL bytes removed", where)
	}
	if !utf8.Valid(v) {
		// Raw 8-bit header bytes (RFC 5322 wants ASCII, RFC 6532 UTF-8): almost
		// always a windows-1252 mailer.
		v = windows1252(v)
		p.warnf("%s: 8-bit bytes read as windows-1252", where)
	}
	return string(v)
}

// wordDecoder decodes RFC 2047 encoded words. Its charset reader never fails, so one
// word in an unknown charset keeps its bytes instead of failing the whole field.
func (p *parser) wordDecoder(where string) *mime.WordDecoder {
	return &mime.WordDecoder{CharsetReader: func(name string, in io.Reader) (io.Reader, error) {
		return p.charsetReader(where, name, in), nil
	}}
}

// text decodes an unstructured value (a subject, a filename) to one line of text.
func (p *parser) text(where, v string) string {
	if v == "" {
		return ""
	}
	s, err := p.wordDecoder(where).DecodeHeader(v)
	if err != nil {
		// Not expected with a charset reader that never fails; keep the raw text.
		s = v
	}
	return p.cleanLine(where, s)
}

// cleanLine makes decoded header text storable and single-line: an encoded word can
// hide anything, and a subject with a line break would break the reply's header.
func (p *parser) cleanLine(where, s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
		p.warnf("%s: invalid characters in encoded text replaced", where)
	}
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
		p.warnf("%s: NUL bytes removed", where)
	}
	s = strings.Map(func(r rune) rune {
		if r < ' ' && r != '\t' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}

// addresses parses an address list field, falling back to a lenient split when it
// is not RFC 5322 (Outlook's "a; b", unquoted commas in names…).
func (p *parser) addresses(h header, key string) []Address {
	v := h.get(key)
	if strings.TrimSpace(v) == "" {
		return nil
	}
	ap := mail.AddressParser{WordDecoder: p.wordDecoder("header")}
	list, err := ap.ParseList(v)
	if err != nil {
		p.warn(fmt.Errorf("header: %s: %w; parsed leniently", key, err))
		return p.lenientAddresses(v)
	}
	out := make([]Address, 0, len(list))
	for _, a := range list {
		out = append(out, Address{Name: p.cleanLine("header", a.Name), Email: a.Address})
	}
	if len(out) == 0 {
		return nil // a group with no members, e.g. "undisclosed-recipients:;"
	}
	return out
}

// lenientAddresses splits v on commas and semicolons outside quotes and angle
// brackets and takes from each piece the address in <…>, or the word with an @.
func (p *parser) lenientAddresses(v string) []Address {
	var out []Address
	for _, piece := range splitAddressList(v) {
		var name, email string
		if lt := strings.IndexByte(piece, '<'); lt >= 0 {
			email = piece[lt+1:]
			if gt := strings.IndexByte(email, '>'); gt >= 0 {
				email = email[:gt]
			}
			name = piece[:lt]
		} else {
			for _, w := range strings.Fields(piece) {
				if strings.Contains(w, "@") {
					email = w
				}
			}
			if email == "" {
				continue
			}
			name = strings.Replace(piece, email, "", 1)
		}
		email = strings.Trim(strings.TrimSpace(email), `"'()<>,;`)
		if email == "" {
			continue
		}
		name = strings.Trim(strings.TrimSpace(name), `"'() `)
		out = append(out, Address{Name: p.text("header", name), Email: email})
	}
	return out
}

func splitAddressList(v string) []string {
	var (
		out          []string
		quoted       bool
		angle, start int
	)
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case c == '<' && !quoted:
			angle++
		case c == '>' && !quoted && angle > 0:
			angle--
		case (c == ',' || c == ';') && !quoted && angle == 0:
			out = append(out, v[start:i])
			start = i + 1
		}
	}
	return append(out, v[start:])
}

// msgIDs parses a list of message IDs (Message-ID, In-Reply-To, References)
// leniently: every <…> token, or failing that every word, without brackets.
func msgIDs(v string) []string {
	var ids []string
	rest := v
	for {
		lt := strings.IndexByte(rest, '<')
		if lt < 0 {
			break
		}
		rest = rest[lt+1:]
		gt := strings.IndexByte(rest, '>')
		if gt < 0 {
			gt = len(rest) // cut off: keep what there is
		}
		if id := strings.Join(strings.Fields(rest[:gt]), ""); id != "" {
			ids = append(ids, id)
		}
		rest = rest[min(gt+1, len(rest)):]
	}
	if len(ids) > 0 {
		return ids
	}
	for _, w := range strings.Fields(stripComments(v)) {
		if w = strings.Trim(w, "<>,;"); w != "" {
			ids = append(ids, w)
		}
	}
	return ids
}

// stripComments removes RFC 5322 (comments), which would otherwise read as IDs.
func stripComments(v string) string {
	if !strings.Contains(v, "(") {
		return v
	}
	var b strings.Builder
	depth := 0
	for _, r := range v {
		switch {
		case r == '(':
			depth++
		case r == ')' && depth > 0:
			depth--
		case depth == 0:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// dateLayouts are formats seen in Date fields that net/mail rejects.
var dateLayouts = []string{
	time.RFC3339,
	"2006-01-02 15:04:05 -0700",
	"2006-01-02 15:04:05",
	time.ANSIC,
	time.UnixDate,
	"Mon, 2 Jan 2006 15:04:05 -0700 MST",
	"Mon, 2 Jan 2006 15:04:05 MST",
}

// usualDate is RFC 5322's date-time as nearly every mailer writes it. net/mail
// tries it only after a dozen other layouts (no day of week first), allocating an
// error for each miss: 2.5 KB per message, 4% of what the incoming pipeline
// allocated (bench/syncerpipeline -memprofile). Where it parses, net/mail would
// give the same time: its first layout that accepts a day of week is this one.
const usualDate = "Mon, 2 Jan 2006 15:04:05 -0700"

func parseDate(v string) (time.Time, error) {
	if t, err := time.Parse(usualDate, v); err == nil {
		return t, nil
	}
	t, err := mail.ParseDate(v)
	if err == nil {
		return t, nil
	}
	v = strings.Join(strings.Fields(v), " ")
	for _, layout := range dateLayouts {
		if t, perr := time.Parse(layout, v); perr == nil {
			return t, nil
		}
	}
	return time.Time{}, err
}
