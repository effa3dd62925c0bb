package pop3

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"
)

func FuzzParseResponse(f *testing.F) {
	for _, seed := range []string{"", "+OK", "+OK 2 320", "-ERR", "-ERR [SYS/TEMP] busy", "-ERR [] x", "-ERR [AUTH", "+OKAY", "\x00", "+ "} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, line string) {
		st, err := parseStatus(line)
		if err != nil {
			return
		}
		if st.ok != strings.HasPrefix(line, "+OK") {
			t.Fatalf("%q parsed as ok=%v", line, st.ok)
		}
		if strings.Contains(st.code, " ") {
			t.Fatalf("%q gave code %q", line, st.code)
		}
	})
}

func FuzzDotReader(f *testing.F) {
	for _, seed := range []string{"", ".\r\n", "a\r\n.\r\n", "..x\r\n.\r\n", "a\nb\n.\n", "no end", ".", "x\r\n..\r\n.\r\n", "\x00\r\n.\r\n"} {
		f.Add([]byte(seed), 7)
	}
	f.Fuzz(func(t *testing.T, input []byte, size int) {
		if size <= 0 || size > 1<<16 {
			size = 16
		}
		br := bufio.NewReaderSize(bytes.NewReader(input), 16) // tiny buffer: long lines come in chunks
		out, err := io.ReadAll(&chunkedReader{newDotReader(br), size})
		if len(out) > len(input) {
			t.Fatalf("output longer than input: %d > %d", len(out), len(input))
		}
		if err == nil && !bytes.Contains(append([]byte("\n"), input...), []byte("\n.\n")) &&
			!bytes.Contains(append([]byte("\n"), input...), []byte("\n.\r\n")) {
			t.Fatalf("ended cleanly without a terminating line in %q", input)
		}
	})
}

// chunkedReader reads in fixed-size pieces, to exercise partial reads.
type chunkedReader struct {
	r    io.Reader
	size int
}

func (c *chunkedReader) Read(p []byte) (int, error) {
	if len(p) > c.size {
		p = p[:c.size]
	}
	return c.r.Read(p)
}
