package imapconn_test

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
	"github.com/serversync/serversync/connector/imapconn"
)

// An IMAP profile pointed at a POP3 or SMTP port is a permanent, profile-wide
// protocol mismatch that says what to check, not a network error retried.
func TestGreetingOfAnotherProtocol(t *testing.T) {
	t.Parallel()
	for _, greeting := range []string{"+OK Dovecot ready.", "220 mail.example.test ESMTP Postfix", "-ERR go away"} {
		for _, mode := range []serversync.TLSMode{serversync.TLSNone, serversync.TLSStartTLS} {
			t.Run(fmt.Sprintf("%s %s", greeting[:4], mode), func(t *testing.T) {
				t.Parallel()
				port, _ := hostileServer(t, func(w io.Writer) { _, _ = io.WriteString(w, greeting+"\r\n") }, nil)
				target := hostileTarget(port, 5*time.Second)
				target.Endpoint.TLS = mode
				_, err := imapconn.New(nil).OpenIncoming(context.Background(), target)
				ce := requireConnectorError(t, err, serversync.ErrorPermanent, serversync.CodeProtocolMismatch)
				assert.Equal(t, serversync.ScopeProfile, ce.Scope)
				assert.Contains(t, err.Error(), "check the port and the server type")
			})
		}
	}
}

// A server that sends no greeting at all may be a port that expects TLS from
// the start: the error stays transient (it may just be slow) but says so.
func TestNoGreetingHintsAtImplicitTLS(t *testing.T) {
	t.Parallel()
	for _, mode := range []serversync.TLSMode{serversync.TLSNone, serversync.TLSStartTLS} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			port, _ := hostileServer(t, func(io.Writer) {}, nil)
			target := hostileTarget(port, 300*time.Millisecond)
			target.Endpoint.TLS = mode
			_, err := imapconn.New(nil).OpenIncoming(context.Background(), target)
			var ce *serversync.ConnectorError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, serversync.ErrorTransient, ce.Kind, "%v", err)
			assert.Contains(t, err.Error(), "expects TLS from the start")
		})
	}
}

// The connector runs STARTTLS itself (so the reply limits see IMAP, not
// ciphertext): anything the server sends after its STARTTLS reply and before
// the handshake would be injected plaintext, and ends the connection; a refused
// STARTTLS never falls back to plaintext.
func TestStartTLSInjectionAndRefusal(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		reply string
		code  string
	}{
		{"S1 OK begin TLS\r\n* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] injected\r\n", serversync.CodeProtocolError},
		{"* CAPABILITY IMAP4rev1\r\nS1 NO not here\r\n", serversync.CodeTLSUnavailable},
		{"S1 BAD what\r\n", serversync.CodeTLSUnavailable},
	} {
		t.Run(tc.code, func(t *testing.T) {
			t.Parallel()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			done := make(chan struct{})
			t.Cleanup(func() { _ = ln.Close(); <-done })
			go func() {
				defer close(done)
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				defer conn.Close()
				_, _ = io.WriteString(conn, greeting)
				line, err := bufio.NewReader(conn).ReadString('\n')
				if err != nil || !strings.HasPrefix(line, "S1 STARTTLS") {
					return
				}
				_, _ = io.WriteString(conn, tc.reply)
				_, _ = io.Copy(io.Discard, conn)
			}()
			target := hostileTarget(ln.Addr().(*net.TCPAddr).Port, 5*time.Second)
			target.Endpoint.TLS = serversync.TLSStartTLS
			_, err = imapconn.New(nil).OpenIncoming(context.Background(), target)
			var ce *serversync.ConnectorError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, serversync.ErrorPermanent, ce.Kind, "%v", err)
			assert.Equal(t, serversync.ScopeProfile, ce.Scope)
			if tc.code == serversync.CodeProtocolError && ce.Code == serversync.CodeTLSMismatch {
				// The injected line arrived after the client's read: the TLS
				// handshake then meets it instead. Refused either way.
				return
			}
			assert.Equal(t, tc.code, ce.Code, "%v", err)
			assert.NotContains(t, err.Error(), "alice-pass")
		})
	}
}
