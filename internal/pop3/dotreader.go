package pop3

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// dotReader streams a multi-line response body (RFC 1939 §3): lines starting with
// "." lose that dot, and a line holding only "." ends the body. Line endings are
// kept as the server sent them, so a message comes out byte for byte. Long lines
// pass through in buffer-sized chunks: memory stays bounded.
type dotReader struct {
	r       *bufio.Reader
	pending []byte // the rest of the current chunk, not yet returned
	midLine bool   // the last chunk did not end a line
	done    bool
	err     error
}

func newDotReader(r *bufio.Reader) *dotReader { return &dotReader{r: r} }

func (d *dotReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(d.pending) == 0 {
			if d.done || d.err != nil {
				break
			}
			d.next()
			continue
		}
		c := copy(p[n:], d.pending)
		d.pending = d.pending[c:]
		n += c
	}
	if n > 0 {
		return n, nil
	}
	if d.err != nil {
		return 0, d.err
	}
	return 0, io.EOF
}

// next reads the next chunk into pending, handling the dot at a line's start.
func (d *dotReader) next() {
	chunk, err := d.r.ReadSlice('\n')
	if !d.midLine && len(chunk) > 0 && chunk[0] == '.' {
		if bytes.Equal(chunk, []byte(".\r\n")) || bytes.Equal(chunk, []byte(".\n")) {
			d.done = true
			return
		}
		chunk = chunk[1:] // dot-stuffed
	}
	d.pending = chunk // valid until the next ReadSlice, which only next() calls
	switch {
	case err == nil:
		d.midLine = false
	case errors.Is(err, bufio.ErrBufferFull):
		d.midLine = true
	case errors.Is(err, io.EOF):
		d.err = io.ErrUnexpectedEOF // the connection ended before the terminating "."
	default:
		d.err = err
	}
}
