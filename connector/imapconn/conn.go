package imapconn

import (
	"context"
	"net"
	"sync"
	"time"
)

// guardedConn is the net.Conn handed to imapclient. It owns the connection's
// deadlines, because imapclient sets its own (30 s per response, 5 min per
// literal, none while waiting for the next response) on every read and would
// silently overwrite a deadline set to bridge a context: a cancellation could get
// lost, and a server that never answers would block forever.
//
// Instead:
//   - imapclient's SetDeadline calls are ignored;
//   - while an operation runs (replyTimeout > 0) each Read and Write must make
//     progress within replyTimeout: "Endpoint.Timeout bounds each server reply";
//   - between operations and while IDLE waits, nothing times out;
//   - abort (a context that ended) puts the deadline in the past for good: the
//     connection is then unusable and the session reports itself broken.
type guardedConn struct {
	net.Conn

	mu           sync.Mutex
	aborted      bool
	replyTimeout time.Duration
	lastReadErr  error
	// emptySASL is set while a SASL exchange may answer a challenge with an empty
	// response (GSSAPI does, after the server's AP-REP): imapclient writes it as
	// "=", which RFC 4959 allows only for an initial response and Dovecot refuses
	// ("Invalid base64 data in continued response"); RFC 3501 wants an empty line.
	emptySASL bool
}

func newGuardedConn(c net.Conn) *guardedConn { return &guardedConn{Conn: c} }

func (c *guardedConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	if c.aborted {
		c.mu.Unlock()
		return 0, errAborted
	}
	if c.replyTimeout > 0 {
		_ = c.Conn.SetReadDeadline(time.Now().Add(c.replyTimeout))
	}
	c.mu.Unlock()
	n, err := c.Conn.Read(b)
	if err != nil {
		c.mu.Lock()
		if c.lastReadErr == nil {
			c.lastReadErr = err
		}
		c.mu.Unlock()
	}
	return n, err
}

func (c *guardedConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	if c.aborted {
		c.mu.Unlock()
		return 0, errAborted
	}
	if c.replyTimeout > 0 {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(c.replyTimeout))
	} else {
		_ = c.Conn.SetWriteDeadline(time.Time{})
	}
	fix := c.emptySASL && string(b) == "=\r\n"
	c.mu.Unlock()
	if fix {
		if _, err := c.Conn.Write([]byte("\r\n")); err != nil {
			return 0, err
		}
		return len(b), nil
	}
	return c.Conn.Write(b)
}

// writeEmptySASLResponses turns imapclient's "=" continuation responses into the
// empty lines RFC 3501 asks for, while on.
func (c *guardedConn) writeEmptySASLResponses(on bool) {
	c.mu.Lock()
	c.emptySASL = on
	c.mu.Unlock()
}

// SetDeadline, SetReadDeadline and SetWriteDeadline are imapclient's: ignored.
func (c *guardedConn) SetDeadline(time.Time) error      { return nil }
func (c *guardedConn) SetReadDeadline(time.Time) error  { return nil }
func (c *guardedConn) SetWriteDeadline(time.Time) error { return nil }

// setReplyTimeout starts (d > 0) or ends (d == 0) an operation's reply timeout,
// applying it to a read already blocked waiting for the server.
func (c *guardedConn) setReplyTimeout(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.aborted {
		return
	}
	c.replyTimeout = d
	deadline := time.Time{}
	if d > 0 {
		deadline = time.Now().Add(d)
	}
	_ = c.Conn.SetDeadline(deadline)
}

// abort makes every pending and future read and write fail at once.
func (c *guardedConn) abort() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.aborted = true
	_ = c.Conn.SetDeadline(time.Unix(1, 0))
}

// watch aborts the connection when ctx ends, until the returned stop is called;
// stop reports whether ctx fired (the connection is then aborted).
func (c *guardedConn) watch(ctx context.Context) (stop func() (fired bool)) {
	stopAfter := context.AfterFunc(ctx, c.abort)
	return func() bool { return !stopAfter() }
}

// readErr returns the first error a read returned, e.g. an i/o timeout, which
// imapclient reports only as text.
func (c *guardedConn) readErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastReadErr
}

type abortedError struct{}

func (abortedError) Error() string   { return "imap: connection aborted by a canceled operation" }
func (abortedError) Timeout() bool   { return true }
func (abortedError) Temporary() bool { return true }

var errAborted net.Error = abortedError{}
