package pop3conn_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/connectortest"
	"github.com/serversync/serversync/connector/pop3conn"
)

// hostilePOP3 serves connections on loopback (Fetch logs in again): greet writes the greeting,
// then USER, PASS and QUIT are accepted, CAPA is refused, and every other
// command goes to answer, which writes what it likes (for as long as it likes:
// writes fail once the client hangs up). One message is listed (UIDL 1 u1,
// LIST 1 100) unless answer says otherwise.
func hostilePOP3(t *testing.T, timeout time.Duration, greet func(w io.Writer), answer func(w io.Writer, verb string) bool) *serversync.Target {
	t.Helper()
	port := connectortest.ServeScripted(t, func(conn net.Conn) {
		greet(conn)
		r := bufio.NewReader(conn)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			verb := strings.ToUpper(strings.Fields(line + " x")[0])
			if answer != nil && answer(conn, verb) {
				continue
			}
			switch verb {
			case "USER", "PASS":
				_, _ = io.WriteString(conn, "+OK\r\n")
			case "UIDL":
				_, _ = io.WriteString(conn, "+OK\r\n1 u1\r\n.\r\n")
			case "LIST":
				_, _ = io.WriteString(conn, "+OK\r\n1 100\r\n.\r\n")
			case "QUIT":
				_, _ = io.WriteString(conn, "+OK bye\r\n")
				return
			default:
				_, _ = io.WriteString(conn, "-ERR no\r\n")
			}
		}
	})
	return &serversync.Target{
		Endpoint: serversync.Endpoint{Host: "127.0.0.1", Port: port, TLS: serversync.TLSNone,
			AllowPlaintextAuth: true, Timeout: timeout},
		Credentials: auth.Credentials{Kind: auth.KindPassword, Username: "alice", Password: auth.NewSecret("alice-pass")},
	}
}

func greetOK(w io.Writer) { _, _ = io.WriteString(w, "+OK hostile POP3\r\n") }

// on answers verb with hostile and leaves the rest to hostilePOP3.
func on(verb string, hostile func(w io.Writer)) func(w io.Writer, verb string) bool {
	return func(w io.Writer, got string) bool {
		if got != verb {
			return false
		}
		hostile(w)
		return true
	}
}

// Whatever a server sends, the heap stays bounded and the operation ends by
// itself with a classified error: endless status lines and listings, a message
// larger than allowed, a server that claims a huge size to stretch its
// deadline, and replies dripping one byte at a time. The whole test process
// stays under connectortest.HeapLimitDefault (64 MiB) while the server tries
// to send 1 GiB.
//
// Not parallel: the heap measured is the process's.
func TestBoundedReplies(t *testing.T) {
	const drip = 500 * time.Millisecond
	for _, tc := range []struct {
		name    string
		timeout time.Duration
		greet   func(w io.Writer)
		answer  func(w io.Writer, verb string) bool
		opts    *pop3conn.Options
		kind    serversync.ErrorKind
		code    string
		scope   serversync.AlertScope
	}{
		{name: "endless greeting", timeout: 30 * time.Second,
			greet: func(w io.Writer) { connectortest.Endless(w, "+OK ", "a") },
			kind:  serversync.ErrorPermanent, code: serversync.CodeReplyTooLong, scope: serversync.ScopeProfile},
		{name: "endless CAPA listing", timeout: 30 * time.Second,
			greet: greetOK, answer: on("CAPA", func(w io.Writer) { connectortest.Endless(w, "+OK\r\n", "USER\r\n") }),
			kind: serversync.ErrorPermanent, code: serversync.CodeReplyTooLong, scope: serversync.ScopeProfile},
		{name: "endless UIDL listing", timeout: 30 * time.Second,
			greet: greetOK, answer: on("UIDL", func(w io.Writer) { connectortest.Endless(w, "+OK\r\n", "1 abcdefgh\r\n") }),
			kind: serversync.ErrorPermanent, code: serversync.CodeReplyTooLong, scope: serversync.ScopeMailbox},
		{name: "endless UIDL line", timeout: 30 * time.Second,
			greet: greetOK, answer: on("UIDL", func(w io.Writer) { connectortest.Endless(w, "+OK\r\n1 ", "a") }),
			kind: serversync.ErrorPermanent, code: serversync.CodeReplyTooLong, scope: serversync.ScopeMailbox},
		{name: "message over the limit", timeout: 30 * time.Second,
			greet: greetOK, answer: on("RETR", func(w io.Writer) { connectortest.Endless(w, "+OK\r\n", "0123456789abcde\n") }),
			opts: &pop3conn.Options{MaxMessageBytes: 10 << 20},
			kind: serversync.ErrorPermanent, code: serversync.CodeReplyTooLong, scope: serversync.ScopeMailbox},
		{name: "greeting dripping", timeout: drip,
			greet: func(w io.Writer) { connectortest.Drip(w, "+OK ", 'a', drip/20) },
			kind:  serversync.ErrorTransient, code: serversync.CodeReplyTooSlow, scope: serversync.ScopeProfile},
		{name: "UIDL dripping", timeout: drip,
			greet: greetOK, answer: on("UIDL", func(w io.Writer) { connectortest.Drip(w, "+OK\r\n1 ", 'a', drip/20) }),
			kind: serversync.ErrorTransient, code: serversync.CodeReplyTooSlow, scope: serversync.ScopeMailbox},
		{name: "message dripping under a huge claimed size", timeout: drip,
			greet: greetOK,
			answer: func(w io.Writer, verb string) bool {
				switch verb {
				case "LIST": // a terabyte: a deadline of half a year if taken at its word
					_, _ = io.WriteString(w, "+OK\r\n1 1099511627776\r\n.\r\n")
				case "RETR":
					connectortest.Drip(w, "+OK\r\n", 'm', drip/20)
				default:
					return false
				}
				return true
			},
			opts: &pop3conn.Options{MaxMessageBytes: 64 << 10}, // one second more for the body
			kind: serversync.ErrorTransient, code: serversync.CodeReplyTooSlow, scope: serversync.ScopeMailbox},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := hostilePOP3(t, tc.timeout, tc.greet, tc.answer)
			ctx, stop := connectortest.HeapGuard(context.Background(), connectortest.HeapLimitDefault)
			ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			defer cancel()
			c := pop3conn.New(tc.opts)
			sess, err := c.OpenIncoming(ctx, target)
			if err == nil {
				_, err = sess.Fetch(ctx, serversync.FetchRequest{}, func(m *serversync.RemoteMessage) error {
					_, err := io.Copy(io.Discard, m.Body)
					return err
				})
				_ = sess.Close()
			}
			ce := connectortest.RequireBounded(t, ctx, stop, err)
			assert.Equal(t, tc.kind, ce.Kind, "%v", err)
			assert.Equal(t, tc.code, ce.Code, "%v", err)
			assert.Equal(t, tc.scope, ce.Scope, "%v", err)
		})
	}
}

// A POP3 profile pointed at an IMAP or SMTP port is a permanent, profile-wide
// protocol mismatch that says what to check, not a network error retried.
func TestGreetingOfAnotherProtocol(t *testing.T) {
	t.Parallel()
	for _, greeting := range []string{"* OK [CAPABILITY IMAP4rev1] Dovecot ready.", "220 mail.example.test ESMTP Postfix"} {
		for _, mode := range []serversync.TLSMode{serversync.TLSNone, serversync.TLSStartTLS} {
			t.Run(fmt.Sprintf("%s %s", greeting[:4], mode), func(t *testing.T) {
				t.Parallel()
				target := hostilePOP3(t, 5*time.Second, func(w io.Writer) { _, _ = io.WriteString(w, greeting+"\r\n") }, nil)
				target.Endpoint.TLS = mode
				_, err := pop3conn.New(nil).OpenIncoming(context.Background(), target)
				var ce *serversync.ConnectorError
				require.ErrorAs(t, err, &ce)
				assert.Equal(t, serversync.ErrorPermanent, ce.Kind, "%v", err)
				assert.Equal(t, serversync.ScopeProfile, ce.Scope, "%v", err)
				assert.Equal(t, serversync.CodeProtocolMismatch, ce.Code, "%v", err)
				assert.Contains(t, err.Error(), "check the port and the server type")
			})
		}
	}
}

// A server that goes silent after login is cut after Endpoint.Timeout: the
// deadline here is twice the timeout, and the error must be the timeout's.
func TestSilentAfterLoginCutAfterTimeout(t *testing.T) {
	t.Parallel()
	const timeout = time.Second
	target := hostilePOP3(t, timeout, greetOK, on("UIDL", func(io.Writer) {}))
	sess, err := pop3conn.New(nil).OpenIncoming(context.Background(), target)
	require.NoError(t, err)
	defer sess.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*timeout)
	defer cancel()
	_, err = sess.Fetch(ctx, serversync.FetchRequest{}, func(*serversync.RemoteMessage) error { return nil })
	require.Error(t, err)
	require.NoError(t, ctx.Err(), "cut by the endpoint timeout, before the test's deadline of twice it: %v", err)
	var ce *serversync.ConnectorError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, serversync.ErrorTransient, ce.Kind, "%v", err)
}
