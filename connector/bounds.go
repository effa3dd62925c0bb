package connector

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/serversync/serversync"
)

// Defaults of the reply limits every connector applies (see [ReplyLimits]).
const (
	// MaxReplyBytesDefault bounds one server reply outside message bodies: a
	// greeting, a status line, an IMAP response line with its small literals, a
	// POP3 listing, an SMTP multi-line reply. 1 MiB holds a SEARCH result of some
	// 150,000 UIDs or a POP3 UIDL listing of some 30,000 messages; raise it for
	// larger mailboxes on servers without ESEARCH.
	MaxReplyBytesDefault = 1 << 20
	// MaxMessageBytesDefault bounds one message body (an IMAP FETCH literal, a POP3
	// RETR): well above what mail services accept (Exchange Online 150 MB, Gmail
	// 50 MB), and the most a message fetched ahead of its turn holds in memory.
	MaxMessageBytesDefault = 256 << 20
	// MessageBytesPerSecond is the slowest transfer rate a message body may come
	// at: a reply's deadline grows by one second per this many body bytes, so a
	// large message on a slow link is not cut off while a stalled one is.
	MessageBytesPerSecond = 64 << 10
)

// ReplyLimits bound what one server reply may cost, whatever the server sends.
// Zero fields take the defaults.
type ReplyLimits struct {
	// MaxReplyBytes bounds a reply outside message bodies (default 1 MiB).
	MaxReplyBytes int64
	// MaxMessageBytes bounds one message body (default 256 MiB).
	MaxMessageBytes int64
	// Timeout bounds the time reads spend waiting for a whole reply, from its
	// first byte to its last, plus one second per MessageBytesPerSecond bytes of
	// message body in it: a server dripping a byte at a time runs out of it,
	// a caller slow to consume a body does not. Zero: none.
	Timeout time.Duration
}

// WithDefaults fills zero fields; timeout is used when l.Timeout is zero.
func (l ReplyLimits) WithDefaults(timeout time.Duration) ReplyLimits {
	if l.MaxReplyBytes <= 0 {
		l.MaxReplyBytes = MaxReplyBytesDefault
	}
	if l.MaxMessageBytes <= 0 {
		l.MaxMessageBytes = MaxMessageBytesDefault
	}
	if l.Timeout <= 0 {
		l.Timeout = timeout
	}
	return l
}

// BodyAllowance is the extra time a message body of n bytes may take.
func BodyAllowance(n int64) time.Duration {
	return time.Duration(n/MessageBytesPerSecond) * time.Second
}

// ReplyLimitError is returned by reads once a reply broke its limits. Code is
// serversync.CodeReplyTooLong or serversync.CodeReplyTooSlow. It is a net.Error
// (Timeout for CodeReplyTooSlow) so protocol libraries treat it as the connection
// failing.
type ReplyLimitError struct {
	Code   string
	Reason string
}

func (e *ReplyLimitError) Error() string   { return "connector: " + e.Reason }
func (e *ReplyLimitError) Timeout() bool   { return e.Code == serversync.CodeReplyTooSlow }
func (e *ReplyLimitError) Temporary() bool { return e.Code == serversync.CodeReplyTooSlow }

// Classify turns the limit error into a *serversync.ConnectorError for op:
// too long is permanent, too slow transient; scope is where the fault lies
// (the profile before login, since every mailbox meets the same server there).
func (e *ReplyLimitError) Classify(op string, scope serversync.AlertScope, err error) *serversync.ConnectorError {
	kind := serversync.ErrorPermanent
	if e.Code == serversync.CodeReplyTooSlow {
		kind = serversync.ErrorTransient
	}
	if err == nil {
		err = e
	}
	return Error(op, kind, scope, e.Code, err)
}

// Framing says where a reply ends on a [BoundedConn].
type Framing int

const (
	// FrameByRequest: a reply is everything read between two writes (and before
	// the first one: the greeting). Fits request/response protocols (SMTP).
	FrameByRequest Framing = iota
	// FrameIMAP: a reply is one IMAP response, a line with its {N} literals
	// (RFC 9051 §4.3). Literal bytes of a FETCH response count against
	// MaxMessageBytes; elsewhere against MaxReplyBytes.
	FrameIMAP
)

// BoundedConn is a net.Conn whose reads are held to [ReplyLimits]: a reply that
// grows past its byte budget, or keeps reads waiting longer than its time budget
// however steadily it trickles, fails the read with a *ReplyLimitError. The deadlines the
// protocol library sets are kept, and the earlier of theirs and the reply's wins.
//
// Read errors are sticky: once a read failed (a timeout included) every later
// read fails at once the same way. A protocol library's buffered reader would
// otherwise retry after a timeout and wait the whole timeout again for each
// token it still wanted to parse.
//
// It also keeps the first bytes the server sent, to recognise a server speaking
// another protocol ([RecognizeGreeting]). Safe for one reader and one writer at
// a time, with deadlines set from anywhere.
type BoundedConn struct {
	net.Conn
	limits  ReplyLimits
	framing Framing

	mu           sync.Mutex
	readDeadline time.Time // the protocol library's
	maxWait      time.Duration
	replyStarted bool
	// The reply's time budget and how much of it reads have spent waiting for
	// the server. Only time inside Read counts: a caller slow to consume a
	// message body (storing it, say) does not use up the server's time.
	replyBudget time.Duration
	replyWaited time.Duration
	readStarted time.Time // of the read in progress, if any
	replyBytes  int64     // outside message bodies
	readErr     error
	first       []byte

	imap imapScanner
}

const firstBytesKept = 64

// NewBoundedConn wraps c. limits must have its defaults filled.
func NewBoundedConn(c net.Conn, limits ReplyLimits, framing Framing) *BoundedConn {
	return &BoundedConn{Conn: c, limits: limits, framing: framing}
}

// Read reads within the current reply's budget and deadline.
func (c *BoundedConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	if c.readErr != nil {
		err := c.readErr
		c.mu.Unlock()
		return 0, err
	}
	c.readStarted = time.Now()
	c.applyReadDeadline()
	c.mu.Unlock()

	n, err := c.Conn.Read(b)

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.replyStarted {
		c.replyWaited += time.Since(c.readStarted)
	}
	c.readStarted = time.Time{}
	if n > 0 {
		if len(c.first) < firstBytesKept {
			c.first = append(c.first, b[:min(n, firstBytesKept-len(c.first))]...)
		}
		if limitErr := c.account(b[:n]); limitErr != nil {
			c.readErr = limitErr
			return 0, limitErr
		}
	}
	if err != nil {
		// A deadline that ends a reply part way is the reply being too slow,
		// whichever deadline it was: the reply's budget, or the protocol library's
		// own per-command timeout, which runs out at about the same time and, since
		// the budget counts only time spent inside reads, usually first.
		var netErr net.Error
		if c.replyStarted && (errors.As(err, &netErr) && netErr.Timeout() || errors.Is(err, os.ErrDeadlineExceeded)) {
			err = &ReplyLimitError{Code: serversync.CodeReplyTooSlow,
				Reason: fmt.Sprintf("the server's reply did not arrive whole within %v", c.replyBudget)}
		}
		c.readErr = err
	}
	return n, err
}

// SetMaxWait bounds every read, from when it starts, to d whatever deadline
// the library set (d == 0: no bound). It tames a library's own generous
// timeouts where the endpoint's should hold.
func (c *BoundedConn) SetMaxWait(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.maxWait = d
}

// applyReadDeadline sets the earliest of the library's deadline, the reply's
// and the longest wait allowed.
func (c *BoundedConn) applyReadDeadline() {
	d := c.readDeadline
	if c.maxWait > 0 {
		if wait := time.Now().Add(c.maxWait); d.IsZero() || wait.Before(d) {
			d = wait
		}
	}
	if c.replyStarted && c.replyBudget > 0 {
		left := c.replyBudget - c.replyWaited
		if !c.readStarted.IsZero() {
			left -= time.Since(c.readStarted)
		}
		if end := time.Now().Add(left); d.IsZero() || end.Before(d) {
			d = end
		}
	}
	_ = c.Conn.SetReadDeadline(d)
}

// account counts bytes the server sent against the current reply.
func (c *BoundedConn) account(p []byte) error {
	if !c.replyStarted {
		c.startReply()
	}
	if c.framing == FrameByRequest {
		c.replyBytes += int64(len(p))
		if c.replyBytes > c.limits.MaxReplyBytes {
			return c.tooLong()
		}
		return nil
	}
	for len(p) > 0 {
		if !c.replyStarted {
			c.startReply()
		}
		consumed, ev := c.imap.scan(p)
		p = p[consumed:]
		c.replyBytes += int64(consumed) - ev.literalBytes
		if c.replyBytes > c.limits.MaxReplyBytes {
			return c.tooLong()
		}
		switch {
		case ev.literal >= 0 && c.imap.fetch:
			if ev.literal > c.limits.MaxMessageBytes {
				return &ReplyLimitError{Code: serversync.CodeReplyTooLong, Reason: fmt.Sprintf(
					"the server announced a %d-byte message body, over the %d-byte limit (raise Options.MaxMessageBytes if the server is legitimate)",
					ev.literal, c.limits.MaxMessageBytes)}
			}
			if c.replyBudget > 0 {
				c.replyBudget += BodyAllowance(ev.literal)
			}
		case ev.literal >= 0:
			// Literals outside FETCH are names and strings: small.
			if c.replyBytes+ev.literal > c.limits.MaxReplyBytes {
				return c.tooLong()
			}
			c.replyBytes += ev.literal
		case ev.end:
			c.replyStarted, c.replyBytes = false, 0
		}
	}
	return nil
}

func (c *BoundedConn) startReply() {
	c.replyStarted, c.replyBytes = true, 0
	c.replyBudget, c.replyWaited = c.limits.Timeout, 0
}

func (c *BoundedConn) tooLong() error {
	return &ReplyLimitError{Code: serversync.CodeReplyTooLong, Reason: fmt.Sprintf(
		"the server's reply is longer than %d bytes (an endless line or list; raise Options.MaxReplyBytes if the server is legitimate)",
		c.limits.MaxReplyBytes)}
}

// Write sends a request; with FrameByRequest the reply to it starts afresh.
func (c *BoundedConn) Write(b []byte) (int, error) {
	if c.framing == FrameByRequest {
		c.mu.Lock()
		c.replyStarted, c.replyBytes = false, 0
		c.mu.Unlock()
	}
	return c.Conn.Write(b)
}

// SetDeadline keeps the read half as the library's read deadline.
func (c *BoundedConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.readDeadline = t
	_ = c.Conn.SetWriteDeadline(t)
	c.applyReadDeadline()
	return nil
}

// SetReadDeadline sets the library's read deadline; the reply's may come first.
func (c *BoundedConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.readDeadline = t
	c.applyReadDeadline()
	return nil
}

// LimitError returns the *ReplyLimitError that failed a read, if one did.
func (c *BoundedConn) LimitError() *ReplyLimitError {
	c.mu.Lock()
	defer c.mu.Unlock()
	var le *ReplyLimitError
	if errors.As(c.readErr, &le) {
		return le
	}
	return nil
}

// ReadErr returns the first error a read returned.
func (c *BoundedConn) ReadErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.readErr
}

// FirstBytes returns up to the first 64 bytes the server sent.
func (c *BoundedConn) FirstBytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.first)
}

// imapScanner follows the server's side of an IMAP connection: lines, and the
// {N} (or {N+}, ~{N}) literal announced at a line's end, whose N bytes follow
// the CRLF and belong to the same response.
type imapScanner struct {
	inLiteral   int64 // literal bytes still to come
	lineStart   []byte
	atLineStart bool // the bytes read belong to the response's first line
	started     bool
	fetch       bool // the response is "* n FETCH": its literals are message bodies

	// a trailing "{digits[+]}" on the current line
	brace  int // 0 none, 1 after '{', 2 digits, 3 after '+', 4 after '}'
	number int64
}

// imapEvent says what scan saw: a literal announced (literal >= 0, its size),
// or the response's end; literalBytes of the consumed bytes were literal data,
// which the caller counts when the literal is announced.
type imapEvent struct {
	literal      int64
	end          bool
	literalBytes int64
}

const maxLiteralDigits = int64(1) << 50 // larger announcements are clamped: over any limit anyway

// scan consumes p up to and including the first event, returning how much it
// consumed.
func (s *imapScanner) scan(p []byte) (int, imapEvent) {
	ev := imapEvent{literal: -1}
	if !s.started {
		s.started, s.atLineStart = true, true
	}
	i := 0
	for i < len(p) {
		if s.inLiteral > 0 {
			n := int64(len(p) - i)
			if n > s.inLiteral {
				n = s.inLiteral
			}
			s.inLiteral -= n
			i += int(n)
			ev.literalBytes += n
			continue
		}
		b := p[i]
		i++
		if s.atLineStart && len(s.lineStart) < 32 {
			s.lineStart = append(s.lineStart, b)
		}
		switch {
		case b == '\n':
			if s.brace == 4 {
				ev.literal = s.number
				s.inLiteral = s.number
				s.fetch = s.fetch || isFetchResponse(s.lineStart)
				s.atLineStart = false
				s.brace = 0
				return i, ev
			}
			ev.end = true
			s.reset()
			return i, ev
		case b == '\r' && s.brace == 4:
		case b == '{':
			s.brace, s.number = 1, 0
		case b >= '0' && b <= '9' && (s.brace == 1 || s.brace == 2):
			s.brace = 2
			if s.number < maxLiteralDigits {
				s.number = s.number*10 + int64(b-'0')
			}
		case b == '+' && s.brace == 2:
			s.brace = 3
		case b == '}' && (s.brace == 2 || s.brace == 3):
			s.brace = 4
		default:
			s.brace = 0
		}
	}
	return i, ev
}

func (s *imapScanner) reset() {
	*s = imapScanner{}
}

// isFetchResponse reports whether a response line starts "* <number> FETCH ".
func isFetchResponse(line []byte) bool {
	rest, ok := bytes.CutPrefix(line, []byte("* "))
	if !ok {
		return false
	}
	i := 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	if i == 0 || i >= len(rest) || rest[i] != ' ' {
		return false
	}
	return len(rest) >= i+7 && bytes.EqualFold(rest[i+1:i+7], []byte("FETCH "))
}

// RecognizeGreeting names the protocol a server's first bytes belong to —
// "IMAP", "POP3", "SMTP", "TLS", "SSH", "HTTP" — or "" when they fit none.
func RecognizeGreeting(first []byte) string {
	switch {
	case bytes.HasPrefix(first, []byte("* OK")), bytes.HasPrefix(first, []byte("* PREAUTH")), bytes.HasPrefix(first, []byte("* BYE")):
		return "IMAP"
	case bytes.HasPrefix(first, []byte("+OK")), bytes.HasPrefix(first, []byte("-ERR")):
		return "POP3"
	case len(first) >= 4 && isDigit(first[0]) && isDigit(first[1]) && isDigit(first[2]) && (first[3] == ' ' || first[3] == '-'):
		return "SMTP"
	case len(first) >= 3 && (first[0] == 0x15 || first[0] == 0x16) && first[1] == 3 && first[2] <= 4:
		return "TLS" // a handshake or an alert record: the port expects TLS
	case bytes.HasPrefix(first, []byte("SSH-")):
		return "SSH"
	case bytes.HasPrefix(first, []byte("HTTP/")):
		return "HTTP"
	}
	return ""
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

// MismatchError is the permanent, profile-wide error for a server that greeted
// in protocol got when want was expected; nil when got is "" or want.
func MismatchError(op, want, got string, cause error) error {
	if got == "" || got == want {
		return nil
	}
	advice := "check the port and the server type in the profile"
	if got == "TLS" {
		advice = "the port expects TLS from the start: set the profile's TLS mode to implicit TLS, or use the port for " + want + " without TLS"
	}
	return Error(op, serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodeProtocolMismatch,
		fmt.Errorf("%s server expected, but the server answered like a %s server: %s: %w", want, got, advice, cause))
}

// NoGreetingHint adds to a transient error of waiting for the greeting, when
// the server sent nothing at all, that a port expecting TLS from the start
// waits silently for the client's: a plaintext or STARTTLS profile at an
// implicit-TLS port looks exactly like a server that does not answer, so the
// error is left transient and only says what to check.
func NoGreetingHint(err error, ep serversync.Endpoint, first []byte) error {
	var ce *serversync.ConnectorError
	if len(first) > 0 || ep.TLS == serversync.TLSImplicit || !errors.As(err, &ce) || ce.Kind != serversync.ErrorTransient {
		return err
	}
	hinted := *ce
	hinted.Err = fmt.Errorf("%w (the server sent no greeting: if port %d expects TLS from the start, set the profile's TLS mode to implicit TLS)", ce.Err, ep.Port)
	return &hinted
}
