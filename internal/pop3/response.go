package pop3

import (
	"bufio"
	"errors"
	"fmt"
	"strings"
)

// maxStatusLine bounds a status line (RFC 2449 allows 512 octets; servers send
// longer texts, hostile ones endless ones).
const maxStatusLine = 8 << 10

// ErrProtocol is wrapped by errors for replies that break the protocol: no +OK or
// -ERR, an overlong line, a malformed listing. The connection should be dropped.
var ErrProtocol = errors.New("pop3: protocol error")

// ErrReplyTooLong is wrapped by errors for a reply over its size limit: a status
// line over 8 KiB, a listing over Limits.MaxReplyBytes, a message over
// Limits.MaxMessageBytes. It wraps ErrProtocol: the connection should be dropped.
var ErrReplyTooLong = fmt.Errorf("%w: reply too long", ErrProtocol)

// GreetingError is a greeting that is neither +OK nor -ERR: often another
// protocol's (an IMAP or SMTP server at the POP3 port). It wraps ErrProtocol.
type GreetingError struct {
	Line string // the first line the server sent, truncated to 64 bytes
}

func (e *GreetingError) Error() string {
	return fmt.Sprintf("pop3: greeting %q is neither +OK nor -ERR", e.Line)
}

func (e *GreetingError) Unwrap() error { return ErrProtocol }

// status is one parsed status line.
type status struct {
	ok   bool
	code string // RFC 2449 response code, e.g. "SYS/TEMP", or ""
	text string
}

// readLine reads one line without its CRLF (or lone LF), refusing lines longer than
// maxStatusLine.
func readLine(r *bufio.Reader) (string, error) {
	var b strings.Builder
	for {
		chunk, err := r.ReadSlice('\n')
		if b.Len()+len(chunk) > maxStatusLine {
			return "", fmt.Errorf("%w: line longer than %d bytes", ErrReplyTooLong, maxStatusLine)
		}
		b.Write(chunk)
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return "", err
		}
	}
	return strings.TrimRight(b.String(), "\r\n"), nil
}

// parseStatus parses "+OK text" or "-ERR [CODE] text".
func parseStatus(line string) (status, error) {
	var s status
	switch {
	case line == "+OK" || strings.HasPrefix(line, "+OK "):
		s.ok, s.text = true, strings.TrimPrefix(strings.TrimPrefix(line, "+OK"), " ")
	case line == "-ERR" || strings.HasPrefix(line, "-ERR "):
		s.text = strings.TrimPrefix(strings.TrimPrefix(line, "-ERR"), " ")
	default:
		return s, fmt.Errorf("%w: reply %q is neither +OK nor -ERR", ErrProtocol, truncate(line))
	}
	if rest, ok := strings.CutPrefix(s.text, "["); ok {
		if code, text, ok := strings.Cut(rest, "]"); ok && code != "" && !strings.ContainsAny(code, " ") {
			s.code, s.text = strings.ToUpper(code), strings.TrimPrefix(text, " ")
		}
	}
	return s, nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
