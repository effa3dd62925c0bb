// Package pop3 is a small POP3 client: RFC 1939 with CAPA and response codes (RFC
// 2449, 3206), STLS (RFC 2595) and SASL AUTH (RFC 5034). No maintained POP3 client
// is served by the Go module proxy, so serversync carries its own; connector/pop3conn
// builds on it.
//
// Every call takes a context: the client owns all reads and writes of its
// connection, so a context that ends sets the connection's deadline in the past
// and the call returns at once. After that the client is unusable; close it.
//
// A Client is not safe for concurrent use: one command at a time, and the reader a
// RETR or TOP returns must be closed before the next command.
package pop3

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
)

// Error is a -ERR reply.
type Error struct {
	Command string // the command verb only: never arguments, which may be secrets
	Code    string // RFC 2449 response code ("SYS/TEMP", "AUTH", "IN-USE"…), or ""
	Message string
}

func (e *Error) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("pop3: %s: -ERR [%s] %s", e.Command, e.Code, e.Message)
	}
	return fmt.Sprintf("pop3: %s: -ERR %s", e.Command, e.Message)
}

// Temporary reports whether trying again later may succeed (RFC 2449, 3206).
func (e *Error) Temporary() bool {
	return e.Code == "SYS/TEMP" || e.Code == "IN-USE" || e.Code == "LOGIN-DELAY"
}

// IsAuth reports whether the server refused the credentials.
func (e *Error) IsAuth() bool {
	if e.Code == "AUTH" {
		return true
	}
	authCommand := e.Command == "PASS" || e.Command == "USER" || strings.HasPrefix(e.Command, "AUTH")
	return authCommand && !e.Temporary() && e.Code != "SYS/PERM"
}

// MessageInfo is one entry of LIST.
type MessageInfo struct {
	Number int
	Size   int64
}

// UIDEntry is one entry of UIDL.
type UIDEntry struct {
	Number int
	UID    string
}

// Capabilities are the server's CAPA answer: upper-case names to their arguments.
type Capabilities map[string][]string

// Has reports whether the server announced name.
func (c Capabilities) Has(name string) bool { _, ok := c[strings.ToUpper(name)]; return ok }

// SASLMechanisms returns the mechanisms of the SASL capability.
func (c Capabilities) SASLMechanisms() []string { return c["SASL"] }

// Limits bound what the server's replies may hold; zero fields take the defaults.
type Limits struct {
	// MaxReplyBytes bounds a multi-line listing (CAPA, LIST, UIDL) and the
	// headers TOP returns (default 1 MiB).
	MaxReplyBytes int64
	// MaxMessageBytes bounds a message RETR returns (default 256 MiB).
	MaxMessageBytes int64
}

// Defaults of [Limits].
const (
	MaxReplyBytesDefault   = 1 << 20
	MaxMessageBytesDefault = 256 << 20
)

// Client is a POP3 connection. Not safe for concurrent use.
type Client struct {
	conn       net.Conn
	r          *bufio.Reader
	limits     Limits
	greeting   string
	caps       Capabilities
	openReader *bodyReader // the open RETR/TOP body, if any
	broken     error
}

// NewClient reads the server's greeting on conn.
func NewClient(ctx context.Context, conn net.Conn) (*Client, error) {
	c := &Client{conn: conn, r: bufio.NewReaderSize(conn, 32<<10)}
	c.SetLimits(Limits{})
	stop := c.watch(ctx)
	line, err := readLine(c.r)
	var st status
	if err == nil {
		if st, err = parseStatus(line); err != nil {
			err = &GreetingError{Line: truncate(line)}
		}
	}
	err = c.done(ctx, stop, err)
	if err == nil && !st.ok {
		err = &Error{Command: "greeting", Code: st.code, Message: st.text}
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	c.greeting = st.text
	return c, nil
}

// Dial connects without TLS and reads the greeting.
func Dial(ctx context.Context, addr string) (*Client, error) {
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return NewClient(ctx, conn)
}

// SetLimits sets the limits of the server's replies (zero fields: defaults).
func (c *Client) SetLimits(l Limits) {
	if l.MaxReplyBytes <= 0 {
		l.MaxReplyBytes = MaxReplyBytesDefault
	}
	if l.MaxMessageBytes <= 0 {
		l.MaxMessageBytes = MaxMessageBytesDefault
	}
	c.limits = l
}

// Greeting is the text of the server's greeting.
func (c *Client) Greeting() string { return c.greeting }

// IsTLS reports whether the connection is encrypted.
func (c *Client) IsTLS() bool { _, ok := c.conn.(*tls.Conn); return ok }

// watch puts the deadline in the past when ctx ends. No other code sets deadlines
// on this connection, so nothing can undo it.
func (c *Client) watch(ctx context.Context) func() bool {
	return context.AfterFunc(ctx, func() { _ = c.conn.SetDeadline(time.Unix(1, 0)) })
}

// done ends a watched exchange: an error caused by ctx is reported as ctx's error,
// and any I/O error breaks the client.
func (c *Client) done(ctx context.Context, stop func() bool, err error) error {
	if !stop() && ctx.Err() != nil { // ctx fired: the deadline is in the past for good
		c.broken = fmt.Errorf("pop3: interrupted: %w", ctx.Err())
		return c.broken
	}
	var pErr *Error
	if err != nil && !errors.As(err, &pErr) {
		c.broken = err
	}
	return err
}

func (c *Client) ready() error {
	if c.openReader != nil && !c.openReader.closed {
		return errors.New("pop3: the previous message's reader is still open: close it first")
	}
	return c.broken
}

// exchange sends one command line and reads its status; -ERR becomes *Error.
func (c *Client) exchange(ctx context.Context, verb, line string) (status, error) {
	if err := c.ready(); err != nil {
		return status{}, err
	}
	stop := c.watch(ctx)
	st, err := c.roundTrip(line)
	err = c.done(ctx, stop, err)
	if err == nil && !st.ok {
		err = &Error{Command: verb, Code: st.code, Message: st.text}
	}
	return st, err
}

func (c *Client) roundTrip(line string) (status, error) {
	if _, err := io.WriteString(c.conn, line+"\r\n"); err != nil {
		return status{}, err
	}
	reply, err := readLine(c.r)
	if err != nil {
		return status{}, err
	}
	return parseStatus(reply)
}

// lines runs a multi-line command and returns its body lines.
func (c *Client) lines(ctx context.Context, verb, line string) ([]string, error) {
	if _, err := c.exchange(ctx, verb, line); err != nil {
		return nil, err
	}
	stop := c.watch(ctx)
	body, err := io.ReadAll(limitBody(newDotReader(c.r), c.limits.MaxReplyBytes, verb))
	if err = c.done(ctx, stop, err); err != nil {
		return nil, err
	}
	var out []string
	for _, l := range strings.Split(string(body), "\n") {
		if l = strings.TrimRight(l, "\r"); l != "" {
			out = append(out, l)
		}
	}
	return out, nil
}

// Capabilities returns the server's CAPA answer, cached until STLS.
func (c *Client) Capabilities(ctx context.Context) (Capabilities, error) {
	if c.caps != nil {
		return c.caps, nil
	}
	lines, err := c.lines(ctx, "CAPA", "CAPA")
	if err != nil {
		return nil, err
	}
	caps := Capabilities{}
	for _, l := range lines {
		fields := strings.Fields(l)
		caps[strings.ToUpper(fields[0])] = fields[1:]
	}
	c.caps = caps
	return caps, nil
}

// StartTLS upgrades the connection (STLS) and forgets the capabilities read before.
func (c *Client) StartTLS(ctx context.Context, cfg *tls.Config) error {
	if _, err := c.exchange(ctx, "STLS", "STLS"); err != nil {
		return err
	}
	if c.r.Buffered() > 0 { // anything sent before the handshake would be injected plaintext
		c.broken = fmt.Errorf("%w: data after the STLS reply", ErrProtocol)
		return c.broken
	}
	tlsConn := tls.Client(c.conn, cfg)
	if err := tlsConn.HandshakeContext(ctx); err != nil {
		c.broken = err
		return err
	}
	c.conn, c.r, c.caps = tlsConn, bufio.NewReaderSize(tlsConn, 32<<10), nil
	return nil
}

// Login authenticates with USER and PASS.
func (c *Client) Login(ctx context.Context, username, password string) error {
	if _, err := c.exchange(ctx, "USER", "USER "+username); err != nil {
		return err
	}
	_, err := c.exchange(ctx, "PASS", "PASS "+password)
	return err
}

// Authenticate runs SASL AUTH with mech (RFC 5034), sending the initial response inline.
func (c *Client) Authenticate(ctx context.Context, mech sasl.Client) error {
	name, ir, err := mech.Start()
	if err != nil {
		return fmt.Errorf("pop3: AUTH: %w", err)
	}
	verb := "AUTH " + name
	line := verb
	if ir != nil {
		line += " " + encode(ir)
	}
	if err := c.ready(); err != nil {
		return err
	}
	stop := c.watch(ctx)
	err = c.saslLoop(mech, verb, line)
	return c.done(ctx, stop, err)
}

func (c *Client) saslLoop(mech sasl.Client, verb, line string) error {
	for {
		if _, err := io.WriteString(c.conn, line+"\r\n"); err != nil {
			return err
		}
		reply, err := readLine(c.r)
		if err != nil {
			return err
		}
		if challenge, ok := strings.CutPrefix(reply, "+ "); ok || reply == "+" {
			decoded, err := base64.StdEncoding.DecodeString(challenge)
			if err != nil {
				return fmt.Errorf("%w: undecodable SASL challenge", ErrProtocol)
			}
			response, err := mech.Next(decoded)
			if err != nil { // cancel the exchange, then report our side's problem
				if _, werr := io.WriteString(c.conn, "*\r\n"); werr == nil {
					_, _ = readLine(c.r)
				}
				return fmt.Errorf("pop3: %s: %w", verb, err)
			}
			// A continuation's empty response is an empty line (RFC 5034 section 4);
			// "=" is only for an empty initial response.
			line = base64.StdEncoding.EncodeToString(response)
			continue
		}
		st, err := parseStatus(reply)
		if err != nil {
			return err
		}
		if !st.ok {
			return &Error{Command: verb, Code: st.code, Message: st.text}
		}
		return nil
	}
}

func encode(b []byte) string {
	if len(b) == 0 {
		return "="
	}
	return base64.StdEncoding.EncodeToString(b)
}

// Stat returns the number of messages and their total size.
func (c *Client) Stat(ctx context.Context) (count int, size int64, err error) {
	st, err := c.exchange(ctx, "STAT", "STAT")
	if err != nil {
		return 0, 0, err
	}
	if _, err := fmt.Sscanf(st.text, "%d %d", &count, &size); err != nil {
		return 0, 0, fmt.Errorf("%w: STAT reply %q", ErrProtocol, truncate(st.text))
	}
	return count, size, nil
}

// List returns the number and size of every message.
func (c *Client) List(ctx context.Context) ([]MessageInfo, error) {
	lines, err := c.lines(ctx, "LIST", "LIST")
	if err != nil {
		return nil, err
	}
	out := make([]MessageInfo, 0, len(lines))
	for _, l := range lines {
		var m MessageInfo
		if _, err := fmt.Sscanf(l, "%d %d", &m.Number, &m.Size); err != nil {
			return nil, fmt.Errorf("%w: LIST line %q", ErrProtocol, truncate(l))
		}
		out = append(out, m)
	}
	return out, nil
}

// UIDL returns the number and unique ID of every message.
func (c *Client) UIDL(ctx context.Context) ([]UIDEntry, error) {
	lines, err := c.lines(ctx, "UIDL", "UIDL")
	if err != nil {
		return nil, err
	}
	out := make([]UIDEntry, 0, len(lines))
	for _, l := range lines {
		number, uid, ok := strings.Cut(l, " ")
		n, err := strconv.Atoi(number)
		if !ok || err != nil || uid == "" {
			return nil, fmt.Errorf("%w: UIDL line %q", ErrProtocol, truncate(l))
		}
		out = append(out, UIDEntry{Number: n, UID: uid})
	}
	return out, nil
}

// Retr streams message n. Close the reader before the next command; Close reads
// what is left so the connection stays usable. ctx bounds the whole read.
// A message over Limits.MaxMessageBytes fails the read with ErrReplyTooLong.
func (c *Client) Retr(ctx context.Context, n int) (io.ReadCloser, error) {
	return c.openBody(ctx, "RETR", fmt.Sprintf("RETR %d", n), c.limits.MaxMessageBytes)
}

// Top streams the headers of message n and its first lines, at most
// Limits.MaxReplyBytes (more fails the read with ErrReplyTooLong).
func (c *Client) Top(ctx context.Context, n, lines int) (io.ReadCloser, error) {
	return c.openBody(ctx, "TOP", fmt.Sprintf("TOP %d %d", n, lines), c.limits.MaxReplyBytes)
}

// Dele marks message n for deletion; it is deleted when Quit ends the session.
func (c *Client) Dele(ctx context.Context, n int) error {
	_, err := c.exchange(ctx, "DELE", fmt.Sprintf("DELE %d", n))
	return err
}

// Noop checks the connection.
func (c *Client) Noop(ctx context.Context) error {
	_, err := c.exchange(ctx, "NOOP", "NOOP")
	return err
}

// Rset unmarks messages marked for deletion.
func (c *Client) Rset(ctx context.Context) error {
	_, err := c.exchange(ctx, "RSET", "RSET")
	return err
}

// Quit ends the session, committing deletions, and closes the connection.
func (c *Client) Quit(ctx context.Context) error {
	_, err := c.exchange(ctx, "QUIT", "QUIT")
	return errors.Join(err, c.conn.Close())
}

// Close closes the connection without QUIT: messages marked with Dele stay.
func (c *Client) Close() error { return c.conn.Close() }

// bodyReader is an open RETR/TOP body.
type bodyReader struct {
	c      *Client
	body   io.Reader // the dot-stuffed body, limited
	ctx    context.Context
	stop   func() bool
	closed bool
}

func (c *Client) openBody(ctx context.Context, verb, line string, limit int64) (io.ReadCloser, error) {
	if _, err := c.exchange(ctx, verb, line); err != nil {
		return nil, err
	}
	b := &bodyReader{c: c, body: limitBody(newDotReader(c.r), limit, verb), ctx: ctx, stop: c.watch(ctx)}
	c.openReader = b
	return b, nil
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.closed {
		return 0, errors.New("pop3: read after close")
	}
	n, err := b.body.Read(p)
	if err != nil && err != io.EOF && b.ctx.Err() != nil {
		err = fmt.Errorf("pop3: interrupted: %w", b.ctx.Err())
	}
	return n, err
}

// Close reads the rest of the body so the next command can be sent, within the
// body's limit: a body over it leaves the connection unusable.
func (b *bodyReader) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	_, err := io.Copy(io.Discard, b.body)
	return b.c.done(b.ctx, b.stop, err)
}

// limitBody fails a multi-line body longer than limit bytes with ErrReplyTooLong.
func limitBody(r io.Reader, limit int64, verb string) io.Reader {
	return &bodyLimit{r: r, left: limit, limit: limit, verb: verb}
}

type bodyLimit struct {
	r     io.Reader
	left  int64
	limit int64
	verb  string
}

func (l *bodyLimit) Read(p []byte) (int, error) {
	if l.left <= 0 {
		// One byte more tells a body of exactly the limit from a longer one.
		var one [1]byte
		if n, err := l.r.Read(one[:]); n == 0 {
			return 0, err
		}
		return 0, fmt.Errorf("%w: the %s reply is longer than %d bytes", ErrReplyTooLong, l.verb, l.limit)
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}
