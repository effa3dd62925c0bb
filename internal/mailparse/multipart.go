package mailparse

import (
	"bufio"
	"bytes"
	"io"
)

// maxBoundaryLen bounds "--" + boundary. RFC 2046 allows 70 characters; longer ones
// exist, but a delimiter line must fit the 4 KiB line buffer to be recognised.
const maxBoundaryLen = 1000

// multipartReader splits a multipart body (RFC 2046 §5.1) into parts. Unlike
// mime/multipart and go-message's reader it never gives up on a message: a part
// header that is not one is read as far as it goes, a missing boundary parameter is
// guessed from the first "--" line, and a body cut short ends the current part.
// It works line by line with a bounded buffer, so a part of any size streams.
type multipartReader struct {
	br       *bufio.Reader
	dash     []byte // "--" + boundary; nil until known
	guessed  bool   // dash was taken from the body, not the parameter
	started  bool   // the first delimiter was seen
	closed   bool   // the closing delimiter was seen
	eof      bool   // input ended before it
	parts    int
	preamble []byte // kept up to maxPreamble, in case no part is found
	maxPre   int64
	cur      *partReader
}

func newMultipartReader(r io.Reader, boundary string, maxPreamble int64) *multipartReader {
	// The buffer only has to hold a whole delimiter line to recognise it.
	m := &multipartReader{br: getReader(r, 4<<10), maxPre: maxPreamble}
	if boundary != "" {
		m.dash = []byte("--" + boundary)
	}
	return m
}

// next returns the header and body of the next part; ok is false after the last.
// The body is valid until the next call. where names the part for problems.
func (m *multipartReader) next(p *parser, where string) (h header, body io.Reader, ok bool) {
	if m.cur != nil {
		_, _ = io.Copy(io.Discard, m.cur)
		m.cur = nil
	}
	if !m.started {
		m.skipPreamble()
	}
	if m.closed || m.eof {
		return nil, nil, false
	}
	h, rest, eof := p.readHeader(m.br, where, false)
	if eof && len(h) == 0 && rest == nil {
		// A delimiter with nothing after it: the message was cut there.
		m.eof = true
		return nil, nil, false
	}
	m.parts++
	m.cur = &partReader{m: m, first: rest, atLineStart: true}
	return h, m.cur, true
}

// skipPreamble reads up to the first delimiter line.
func (m *multipartReader) skipPreamble() {
	atLineStart := true
	for {
		line, err := m.br.ReadSlice('\n')
		partial := err == bufio.ErrBufferFull
		if atLineStart && !partial {
			if m.dash == nil && looksLikeDelimiter(line) {
				m.dash = append([]byte(nil), bytes.TrimRight(line, " \t\r\n")...)
				m.guessed = true
			}
			switch m.delimiter(line) {
			case delimiterNext:
				m.started = true
				return
			case delimiterClose:
				m.started, m.closed = true, true
				return
			}
		}
		if room := m.maxPre - int64(len(m.preamble)); room > 0 {
			m.preamble = append(m.preamble, line[:min(int64(len(line)), room)]...)
		}
		atLineStart = !partial
		if err != nil && !partial {
			m.eof = true
			return
		}
	}
}

// looksLikeDelimiter reports whether a line could be the first delimiter of a
// multipart whose boundary parameter is missing.
func looksLikeDelimiter(line []byte) bool {
	line = bytes.TrimRight(line, " \t\r\n")
	return len(line) > 2 && len(line) <= maxBoundaryLen && bytes.HasPrefix(line, []byte("--")) &&
		!bytes.HasSuffix(line, []byte("--"))
}

const (
	delimiterNone = iota
	delimiterNext
	delimiterClose
)

// delimiter classifies a whole line: "--boundary" or "--boundary--", each followed
// only by blanks and the line break (RFC 2046 §5.1.1). Anything else after the
// boundary makes it another line ("--boundaryX" is not "--boundary").
func (m *multipartReader) delimiter(line []byte) int {
	if m.dash == nil || !bytes.HasPrefix(line, m.dash) {
		return delimiterNone
	}
	rest := line[len(m.dash):]
	kind := delimiterNext
	if bytes.HasPrefix(rest, []byte("--")) {
		rest, kind = rest[2:], delimiterClose
	}
	if len(bytes.TrimRight(rest, " \t\r\n")) != 0 {
		return delimiterNone
	}
	return kind
}

// partReader reads one part's body: everything up to the line break before the next
// delimiter line, which belongs to the delimiter (RFC 2046 §5.1.1). That line break
// is held back until the following line shows whether it is a delimiter.
type partReader struct {
	m           *multipartReader
	first       []byte // a body line the header reader already consumed
	pending     []byte
	buf         []byte
	held        [2]byte
	nheld       int
	atLineStart bool
	done        bool
}

func (r *partReader) Read(b []byte) (int, error) {
	n := 0
	for n < len(b) {
		if len(r.pending) == 0 {
			if r.done {
				break
			}
			r.advance()
			continue
		}
		c := copy(b[n:], r.pending)
		r.pending = r.pending[c:]
		n += c
	}
	if n == 0 && r.done {
		return 0, io.EOF
	}
	return n, nil
}

// advance reads the next line (or, for a very long line, the next piece of it).
func (r *partReader) advance() {
	var (
		line []byte
		err  error
	)
	if r.first != nil {
		line, r.first = r.first, nil
	} else {
		line, err = r.m.br.ReadSlice('\n')
	}
	partial := err == bufio.ErrBufferFull
	ended := err != nil && !partial
	if r.atLineStart && !partial && len(line) > 0 {
		switch r.m.delimiter(line) {
		case delimiterNext:
			r.done = true
			return
		case delimiterClose:
			r.done, r.m.closed = true, true
			return
		}
	}
	content, lineBreak := splitLineBreak(line)
	if partial {
		content, lineBreak = line, nil
	}
	r.buf = append(r.buf[:0], r.held[:r.nheld]...)
	r.buf = append(r.buf, content...)
	r.nheld = copy(r.held[:], lineBreak)
	r.atLineStart = len(lineBreak) > 0
	if ended {
		// No delimiter follows: the held line break is content after all.
		r.buf = append(r.buf, r.held[:r.nheld]...)
		r.nheld = 0
		r.done, r.m.eof = true, true
	}
	r.pending = r.buf
}

func splitLineBreak(line []byte) (content, lineBreak []byte) {
	switch {
	case bytes.HasSuffix(line, []byte("\r\n")):
		return line[:len(line)-2], line[len(line)-2:]
	case bytes.HasSuffix(line, []byte("\n")):
		return line[:len(line)-1], line[len(line)-1:]
	}
	return line, nil
}
