package smtpconn

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
)

// rawSMTP serves one connection on loopback: greet writes the greeting, then
// each command line is passed to answer, which writes what it likes (for as
// long as it likes: writes fail once the client hangs up).
func rawSMTP(t *testing.T, timeout time.Duration, greet func(w io.Writer), answer func(w io.Writer, verb string)) serversync.Endpoint {
	t.Helper()
	port := connectortest.ServeScripted(t, func(conn net.Conn) {
		greet(conn)
		r := bufio.NewReader(conn)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			answer(conn, strings.ToUpper(strings.Fields(line + " x")[0]))
		}
	})
	return serversync.Endpoint{Host: "127.0.0.1", Port: port, TLS: serversync.TLSNone, Timeout: timeout}
}

func greet220(w io.Writer) { _, _ = io.WriteString(w, "220 hostile ESMTP\r\n") }

// answerAll accepts every command; hostile replaces the answer to one verb.
func answerAll(verb string, hostile func(w io.Writer)) func(w io.Writer, verb string) {
	return func(w io.Writer, got string) {
		switch {
		case got == verb:
			hostile(w)
		case got == "EHLO" || got == "HELO":
			_, _ = io.WriteString(w, "250-hostile\r\n250 8BITMIME\r\n")
		case got == "DATA":
			_, _ = io.WriteString(w, "354 go on\r\n")
		case got == "QUIT":
			_, _ = io.WriteString(w, "221 bye\r\n")
		default:
			_, _ = io.WriteString(w, "250 ok\r\n")
		}
	}
}

// Whatever a server sends, the heap stays bounded and the call ends by itself
// with a classified error: an endless line, an endless multi-line reply, and
// replies dripping one byte at a time. The whole test process stays under
// connectortest.HeapLimitDefault (64 MiB) while the server tries to send 1 GiB.
//
// Not parallel: the heap measured is the process's.
func TestBoundedReplies(t *testing.T) {
	const drip = 500 * time.Millisecond
	for _, tc := range []struct {
		name    string
		timeout time.Duration
		greet   func(w io.Writer)
		answer  func(w io.Writer, verb string)
		kind    serversync.ErrorKind
		code    string
		scope   serversync.AlertScope
	}{
		{name: "endless greeting line", timeout: 30 * time.Second,
			greet:  func(w io.Writer) { connectortest.Endless(w, "220 ", "a") },
			answer: answerAll("", nil),
			kind:   serversync.ErrorPermanent, code: serversync.CodeReplyTooLong, scope: serversync.ScopeProfile},
		{name: "endless multi-line EHLO reply", timeout: 30 * time.Second,
			greet:  greet220,
			answer: answerAll("EHLO", func(w io.Writer) { connectortest.Endless(w, "", "250-"+strings.Repeat("x", 60)+"\r\n") }),
			kind:   serversync.ErrorPermanent, code: serversync.CodeReplyTooLong, scope: serversync.ScopeProfile},
		{name: "endless multi-line MAIL reply", timeout: 30 * time.Second,
			greet:  greet220,
			answer: answerAll("MAIL", func(w io.Writer) { connectortest.Endless(w, "", "250-"+strings.Repeat("x", 60)+"\r\n") }),
			kind:   serversync.ErrorPermanent, code: serversync.CodeReplyTooLong, scope: serversync.ScopeMailbox},
		{name: "greeting dripping", timeout: drip,
			greet:  func(w io.Writer) { connectortest.Drip(w, "220-", 'a', drip/20) },
			answer: answerAll("", nil),
			kind:   serversync.ErrorTransient, code: serversync.CodeReplyTooSlow, scope: serversync.ScopeProfile},
		{name: "MAIL reply dripping", timeout: drip,
			greet:  greet220,
			answer: answerAll("MAIL", func(w io.Writer) { connectortest.Drip(w, "250-", 'a', drip/20) }),
			kind:   serversync.ErrorTransient, code: serversync.CodeReplyTooSlow, scope: serversync.ScopeMailbox},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ep := rawSMTP(t, tc.timeout, tc.greet, tc.answer)
			ctx, stop := connectortest.HeapGuard(context.Background(), connectortest.HeapLimitDefault)
			ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			defer cancel()
			var err error
			s, err := New(nil).OpenOutgoing(ctx, target(ep, auth.Credentials{Kind: auth.KindAnonymous}))
			if err == nil {
				err = s.Send(ctx, serversync.Envelope{From: "alice@contoso.test", To: []string{"bob@contoso.test"}}, strings.NewReader(message))
				_ = s.Close()
			}
			ce := connectortest.RequireBounded(t, ctx, stop, err)
			assert.Equal(t, tc.kind, ce.Kind, "%v", err)
			assert.Equal(t, tc.code, ce.Code, "%v", err)
			assert.Equal(t, tc.scope, ce.Scope, "%v", err)
		})
	}
}

// A server that never greets is cut after Endpoint.Timeout, with STARTTLS too
// (go-smtp greets inside NewClientStartTLS with five minutes of its own); one
// that goes silent after login likewise. The deadline here is twice the
// timeout, and the error must be the endpoint timeout's.
func TestSilentServerCutAfterTimeout(t *testing.T) {
	t.Parallel()
	const timeout = time.Second
	for _, tc := range []struct {
		name   string
		mode   serversync.TLSMode
		greet  func(w io.Writer)
		answer func(w io.Writer, verb string)
	}{
		{"no greeting, STARTTLS", serversync.TLSStartTLS, func(io.Writer) {}, answerAll("", nil)},
		{"no greeting, plaintext", serversync.TLSNone, func(io.Writer) {}, answerAll("", nil)},
		{"no reply to MAIL", serversync.TLSNone, greet220, answerAll("MAIL", func(io.Writer) {})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ep := rawSMTP(t, timeout, tc.greet, tc.answer)
			ep.TLS = tc.mode
			ctx, cancel := context.WithTimeout(context.Background(), 2*timeout)
			defer cancel()
			var err error
			s, err := New(nil).OpenOutgoing(ctx, target(ep, auth.Credentials{Kind: auth.KindAnonymous}))
			if err == nil {
				err = s.Send(ctx, serversync.Envelope{From: "alice@contoso.test", To: []string{"bob@contoso.test"}}, strings.NewReader(message))
				_ = s.Close()
			}
			require.Error(t, err)
			require.NoError(t, ctx.Err(), "cut by the endpoint timeout, before the test's deadline of twice it: %v", err)
			var ce *serversync.ConnectorError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, serversync.ErrorTransient, ce.Kind, "%v", err)
			if tc.name != "no reply to MAIL" {
				assert.Contains(t, err.Error(), "expects TLS from the start", "a silent greeting may be a TLS port")
			}
		})
	}
}

// An SMTP profile pointed at an IMAP or POP3 port is a permanent, profile-wide
// protocol mismatch that says what to check, not a network error retried.
func TestGreetingOfAnotherProtocol(t *testing.T) {
	t.Parallel()
	for _, greeting := range []string{"* OK [CAPABILITY IMAP4rev1] Dovecot ready.", "+OK Dovecot ready."} {
		for _, mode := range []serversync.TLSMode{serversync.TLSNone, serversync.TLSStartTLS} {
			t.Run(fmt.Sprintf("%s %s", greeting[:3], mode), func(t *testing.T) {
				t.Parallel()
				ep := rawSMTP(t, 5*time.Second, func(w io.Writer) { _, _ = io.WriteString(w, greeting+"\r\n") },
					func(w io.Writer, _ string) { _, _ = io.WriteString(w, "-ERR what?\r\n") })
				ep.TLS = mode
				ep.AllowPlaintextAuth = true
				_, err := New(nil).OpenOutgoing(context.Background(), target(ep, password("pw")))
				var ce *serversync.ConnectorError
				require.ErrorAs(t, err, &ce)
				assert.Equal(t, serversync.ErrorPermanent, ce.Kind, "%v", err)
				assert.Equal(t, serversync.ScopeProfile, ce.Scope, "%v", err)
				assert.Equal(t, serversync.CodeProtocolMismatch, ce.Code, "%v", err)
				assert.Contains(t, err.Error(), "check the port")
			})
		}
	}
}
