package imapconn

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector"
)

// startTagged is the tag of the STARTTLS command this package sends itself.
const startTagged = "S1"

// startTLS reads the greeting and upgrades the connection with STARTTLS itself,
// never falling back to plaintext, and returns the TLS connection. imapclient
// could do it, but it would put the TLS connection underneath the connection
// it was given: the reply limits would then see ciphertext, not IMAP.
func (c *Connector) startTLS(ctx context.Context, timeout time.Duration, raw net.Conn, limits connector.ReplyLimits, ep serversync.Endpoint) (net.Conn, error) {
	cfg, err := c.tls.For(ep)
	if err != nil {
		return nil, err
	}
	plain := connector.NewBoundedConn(raw, limits, connector.FrameIMAP)
	// The whole exchange, greeting to handshake, within the timeout; a context
	// that ends puts the deadline in the past.
	_ = plain.SetDeadline(time.Now().Add(timeout))
	stop := context.AfterFunc(ctx, func() { _ = plain.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	fail := func(op string, err error) error {
		if ctx.Err() != nil {
			code := serversync.CodeCanceled
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				code = serversync.CodeTimeout
			}
			return connector.Error(op, serversync.ErrorTransient, serversync.ScopeMailbox, code,
				fmt.Errorf("imap: %s: %w", op, ctxError(ctx)))
		}
		if limit := plain.LimitError(); limit != nil {
			return limit.Classify(op, serversync.ScopeProfile, fmt.Errorf("imap: %s: %w", op, limit))
		}
		return connector.NetError(op, fmt.Errorf("imap: %s: %w", op, err))
	}

	r := bufio.NewReader(plain)
	greeting, err := r.ReadString('\n')
	if err != nil {
		if mismatch := connector.MismatchError("greeting", "IMAP", connector.RecognizeGreeting(plain.FirstBytes()), err); mismatch != nil {
			return nil, mismatch
		}
		return nil, connector.NoGreetingHint(fail("greeting", err), ep, plain.FirstBytes())
	}
	upper := strings.ToUpper(greeting)
	switch {
	case strings.HasPrefix(upper, "* OK"):
	case strings.HasPrefix(upper, "* BYE"):
		return nil, connector.Error("greeting", serversync.ErrorTransient, serversync.ScopeProfile, serversync.CodeServerUnavailable,
			fmt.Errorf("imap: the server refused the connection: %q", truncate(greeting)))
	case strings.HasPrefix(upper, "* PREAUTH"):
		return nil, connector.Error("starttls", serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodeTLSUnavailable,
			errors.New("imap: the server pre-authenticated the connection, so STARTTLS, which the profile requires, is impossible (credentials were not sent)"))
	default:
		cause := fmt.Errorf("imap: greeting %q", truncate(greeting))
		if mismatch := connector.MismatchError("greeting", "IMAP", connector.RecognizeGreeting([]byte(greeting)), cause); mismatch != nil {
			return nil, mismatch
		}
		return nil, connector.Error("greeting", serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodeProtocolError,
			fmt.Errorf("imap: the server's greeting is not IMAP: %q", truncate(greeting)))
	}

	if _, err := io.WriteString(plain, startTagged+" STARTTLS\r\n"); err != nil {
		return nil, fail("starttls", err)
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, fail("starttls", err)
		}
		tagged, ok := strings.CutPrefix(line, startTagged+" ")
		if !ok {
			continue // untagged data, e.g. a CAPABILITY response
		}
		if !strings.HasPrefix(strings.ToUpper(tagged), "OK") {
			return nil, connector.Error("starttls", serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodeTLSUnavailable,
				fmt.Errorf("imap: the server refused STARTTLS, which the profile requires (credentials were not sent): %q", truncate(strings.TrimSpace(tagged))))
		}
		break
	}
	if r.Buffered() > 0 { // anything sent before the handshake would be injected plaintext
		return nil, connector.Error("starttls", serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodeProtocolError,
			errors.New("imap: the server sent data after its STARTTLS reply, before the TLS handshake"))
	}
	// On raw: TLS records are not IMAP; the reply limits apply above TLS now.
	tlsConn := tls.Client(raw, cfg)
	if err := tlsConn.HandshakeContext(ctx); err != nil {
		return nil, fail("starttls", err)
	}
	_ = raw.SetDeadline(time.Time{})
	return tlsConn, nil
}

func truncate(s string) string {
	s = strings.TrimRight(s, "\r\n")
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// prefixConn reads prefix before the connection's own bytes.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(b []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(b, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}
