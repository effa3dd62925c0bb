package mailparse

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-message/charset"
	"golang.org/x/text/encoding/charmap"
)

// decoder is a transfer-encoding decoder that skips bad input instead of failing,
// and says afterwards what it skipped.
type decoder interface {
	io.Reader
	problem() error
	// lossy reports whether a problem lost content (input skipped or cut short),
	// which makes the message broken, or only kept odd input as it was.
	lossy() bool
}

// transferDecoder decodes a leaf part's Content-Transfer-Encoding. The standard
// decoders stop at the first bad byte (and quoted-printable at control characters
// or lines over 4 KiB), losing the rest of the part; these keep going.
func (p *parser) transferDecoder(where, encoding string, r io.Reader) io.Reader {
	switch strings.ToLower(strings.Trim(strings.TrimSpace(encoding), `"'`)) {
	case "", "7bit", "8bit", "binary", "7-bit", "8-bit":
		return r
	case "base64":
		return &base64Reader{r: r}
	case "quoted-printable":
		return &qpReader{br: bufio.NewReader(r)}
	default:
		p.warnf("%s: unknown Content-Transfer-Encoding %q; content kept as is", where, truncateUTF8(encoding, 64))
		return r
	}
}

// charsetDecoder converts a text part to UTF-8. Text declared UTF-8 or ASCII (or
// not declared) is passed as is and checked afterwards, see parser.cleanBody.
func (p *parser) charsetDecoder(where string, r io.Reader, name string) io.Reader {
	if declaresUTF8(name) || declaresASCII(name) {
		return r
	}
	return p.charsetReader(where, name, r)
}

// charsetReader converts from the named charset to UTF-8; for a charset it does not
// know it keeps the bytes (the caller makes them valid UTF-8) and notes the problem.
func (p *parser) charsetReader(where, name string, in io.Reader) io.Reader {
	name = strings.Trim(strings.TrimSpace(name), `"'`)
	if declaresUTF8(name) || declaresASCII(name) {
		return in
	}
	r, err := charset.Reader(name, in)
	if err != nil || r == nil {
		if err == nil {
			err = errors.New("no decoder")
		}
		p.warn(fmt.Errorf("%s: unknown charset %q: %w; bytes kept", where, truncateUTF8(name, 64), err))
		return in
	}
	return r
}

func declaresUTF8(name string) bool {
	switch strings.ToLower(strings.Trim(strings.TrimSpace(name), `"'`)) {
	case "utf-8", "utf8":
		return true
	}
	return false
}

// declaresASCII reports whether a charset says "no 8-bit text": not declared, or
// ASCII, which 8-bit text in the wild routinely claims.
func declaresASCII(name string) bool {
	switch strings.ToLower(strings.Trim(strings.TrimSpace(name), `"'`)) {
	case "", "us-ascii", "ascii", "ansi_x3.4-1968":
		return true
	}
	return false
}

// windows1252 converts windows-1252 bytes to UTF-8; every byte has a meaning, so it
// cannot fail.
func windows1252(b []byte) []byte {
	out, err := charmap.Windows1252.NewDecoder().Bytes(b)
	if err != nil {
		return bytes.ToValidUTF8(b, []byte("\uFFFD"))
	}
	return out
}

// base64Values maps a byte to its base64 value, or to one of the markers below.
var base64Values = func() (t [256]byte) {
	for i := range t {
		t[i] = b64Invalid
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := range len(alphabet) {
		t[alphabet[i]] = byte(i)
	}
	for _, c := range []byte(" \t\r\n\f\v") {
		t[c] = b64Space
	}
	t['='] = b64Pad
	return t
}()

const (
	b64Invalid = 0xFF
	b64Space   = 0xFE
	b64Pad     = 0xFD
)

// base64Reader decodes base64 leniently: it skips characters outside the alphabet
// (counting them), treats "=" as the end of a quantum rather than of the data (some
// encoders concatenate separately padded blocks), and decodes a final quantum that
// lacks its padding.
type base64Reader struct {
	r       io.Reader
	in      [4096]byte
	buf     []byte
	out     []byte // decoded, not yet returned
	quad    [4]byte
	nq      int
	invalid int
	cut     bool
	eof     bool
}

func (b *base64Reader) Read(p []byte) (int, error) {
	for len(b.out) == 0 {
		if b.eof {
			return 0, io.EOF
		}
		n, err := b.r.Read(b.in[:])
		b.out = b.decode(b.buf[:0], b.in[:n])
		if err != nil {
			b.eof = true
			b.out = b.flush(b.out)
		}
		b.buf = b.out
	}
	n := copy(p, b.out)
	b.out = b.out[n:]
	return n, nil
}

func (b *base64Reader) decode(out, in []byte) []byte {
	for _, c := range in {
		switch v := base64Values[c]; v {
		case b64Space:
		case b64Invalid:
			b.invalid++
		case b64Pad:
			out = b.flush(out)
		default:
			b.quad[b.nq] = v
			if b.nq++; b.nq == 4 {
				out = append(out, b.quad[0]<<2|b.quad[1]>>4, b.quad[1]<<4|b.quad[2]>>2, b.quad[2]<<6|b.quad[3])
				b.nq = 0
			}
		}
	}
	return out
}

// flush decodes an incomplete quantum: 2 or 3 characters still carry 1 or 2 bytes.
func (b *base64Reader) flush(out []byte) []byte {
	switch b.nq {
	case 1:
		b.cut = true
	case 2:
		out = append(out, b.quad[0]<<2|b.quad[1]>>4)
	case 3:
		out = append(out, b.quad[0]<<2|b.quad[1]>>4, b.quad[1]<<4|b.quad[2]>>2)
	}
	b.nq = 0
	return out
}

// lossy: bad characters are skipped and a cut quantum dropped, so the decoded
// content may be missing bytes or shifted.
func (b *base64Reader) lossy() bool { return true }

func (b *base64Reader) problem() error {
	switch {
	case b.invalid > 0:
		return fmt.Errorf("invalid base64: %d bad characters skipped", b.invalid)
	case b.cut:
		return errors.New("invalid base64: data cut short")
	}
	return nil
}

// qpReader decodes quoted-printable (RFC 2045 §6.7) leniently: a "=" not followed
// by two hex digits or a line break stays a literal "=", any byte passes, lines may
// be of any length.
type qpReader struct {
	br  *bufio.Reader
	ws  []byte // blanks that are dropped if the line ends after them (rule 3)
	buf []byte
	out []byte
	bad int
	eof bool
}

// maxPendingBlanks bounds the blanks held back to see whether a line ends after
// them; a longer run is surely text.
const maxPendingBlanks = 256

func (q *qpReader) Read(p []byte) (int, error) {
	for len(q.out) == 0 {
		if q.eof {
			return 0, io.EOF
		}
		q.fill()
	}
	n := copy(p, q.out)
	q.out = q.out[n:]
	return n, nil
}

func (q *qpReader) fill() {
	out := q.buf[:0]
	for len(out) < 4096 {
		c, err := q.br.ReadByte()
		if err != nil {
			q.eof = true // blanks at the very end are trailing blanks: dropped
			break
		}
		switch c {
		case ' ', '\t':
			if q.ws = append(q.ws, c); len(q.ws) > maxPendingBlanks {
				out = append(out, q.ws...)
				q.ws = q.ws[:0]
			}
			continue
		case '\r', '\n':
			q.ws = q.ws[:0]
			out = append(out, c)
			continue
		}
		out = append(out, q.ws...)
		q.ws = q.ws[:0]
		if c != '=' {
			out = append(out, c)
			continue
		}
		if hex, _ := q.br.Peek(2); len(hex) == 2 && isHex(hex[0]) && isHex(hex[1]) {
			out = append(out, unhex(hex[0])<<4|unhex(hex[1]))
			_, _ = q.br.Discard(2)
			continue
		}
		if q.softBreak() {
			continue
		}
		q.bad++
		out = append(out, '=')
	}
	q.buf, q.out = out, out
}

// softBreak consumes the rest of a soft line break after its "=": blanks, then a
// line break or the end of input. It consumes nothing if that is not what follows.
func (q *qpReader) softBreak() bool {
	for i := 0; i <= maxPendingBlanks; i++ {
		next, _ := q.br.Peek(i + 2)
		if len(next) <= i {
			_, _ = q.br.Discard(i) // "=" at the end of input
			return true
		}
		switch next[i] {
		case ' ', '\t':
			continue
		case '\n':
			_, _ = q.br.Discard(i + 1)
			return true
		case '\r':
			if len(next) == i+1 || next[i+1] == '\n' {
				_, _ = q.br.Discard(len(next))
				return true
			}
		}
		return false
	}
	return false
}

// lossy: a stray "=" is kept as it was, as mail clients show it.
func (q *qpReader) lossy() bool { return false }

func (q *qpReader) problem() error {
	if q.bad > 0 {
		return fmt.Errorf("invalid quoted-printable: %d stray \"=\" kept", q.bad)
	}
	return nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}
