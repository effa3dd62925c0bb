package connector_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector"
)

// readThrough sends what a server sends through a BoundedConn and reads it all.
func readThrough(t *testing.T, limits connector.ReplyLimits, framing connector.Framing, sent string) error {
	t.Helper()
	client, server := net.Pipe()
	defer client.Close()
	go func() {
		_, _ = io.WriteString(server, sent)
		_ = server.Close()
	}()
	_, err := io.Copy(io.Discard, connector.NewBoundedConn(client, limits, framing))
	return err
}

// The IMAP framing counts each response on its own, and exempts FETCH literals
// (message bodies) from the reply budget while holding them to the message
// limit; literals elsewhere count as reply bytes.
func TestBoundedConnIMAPFraming(t *testing.T) {
	t.Parallel()
	limits := connector.ReplyLimits{MaxReplyBytes: 100, MaxMessageBytes: 1000}
	body := strings.Repeat("m", 900)
	for _, tc := range []struct {
		name string
		sent string
		code string // "" when it must pass
	}{
		{"many short responses", strings.Repeat("* 1 EXISTS\r\n", 100), ""},
		{"a long line", "* OK " + strings.Repeat("a", 200) + "\r\n", serversync.CodeReplyTooLong},
		{"a body in FETCH", "* 1 FETCH (UID 1 BODY[] {900}\r\n" + body + ")\r\n* 2 FETCH (UID 2 BODY[] {900+}\r\n" + body + ")\r\n", ""},
		{"a literal8 body in FETCH", "* 1 FETCH (UID 1 BINARY[] ~{900}\r\n" + body + ")\r\n", ""},
		{"a body over the message limit", "* 1 FETCH (UID 1 BODY[] {1001}\r\n" + body, serversync.CodeReplyTooLong},
		{"a literal outside FETCH", "* LIST () \"/\" {900}\r\n" + body + "\r\n", serversync.CodeReplyTooLong},
		{"a long line after a body", "* 1 FETCH (UID 1 BODY[] {900}\r\n" + body + strings.Repeat(" X", 60) + ")\r\n", serversync.CodeReplyTooLong},
		{"a text ending like a literal", "* OK what {900}\r\n" + body + "\r\n", serversync.CodeReplyTooLong},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := readThrough(t, limits, connector.FrameIMAP, tc.sent)
			if tc.code == "" {
				require.NoError(t, err)
				return
			}
			var le *connector.ReplyLimitError
			require.ErrorAs(t, err, &le)
			assert.Equal(t, tc.code, le.Code)
		})
	}
}

// A read that failed keeps failing at once: a buffered decoder retrying after
// a timeout must not wait the whole timeout again.
func TestBoundedConnReadErrorsAreSticky(t *testing.T) {
	t.Parallel()
	client, server := net.Pipe()
	defer server.Close()
	c := connector.NewBoundedConn(client, connector.ReplyLimits{}.WithDefaults(time.Minute), connector.FrameByRequest)
	defer c.Close()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Millisecond)))
	_, err := c.Read(make([]byte, 1))
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(time.Hour)))
	_, again := c.Read(make([]byte, 1))
	assert.Equal(t, err, again)
}

func TestRecognizeGreeting(t *testing.T) {
	t.Parallel()
	for greeting, want := range map[string]string{
		"* OK [CAPABILITY IMAP4rev1] Dovecot ready.": "IMAP",
		"* BYE too many connections":                 "IMAP",
		"+OK Dovecot ready.":                         "POP3",
		"-ERR [SYS/TEMP] busy":                       "POP3",
		"220 mail.example.test ESMTP Postfix":        "SMTP",
		"421-busy":                                   "SMTP",
		"\x15\x03\x03\x00\x02\x02\x46":               "TLS",
		"SSH-2.0-OpenSSH_9.6":                        "SSH",
		"HTTP/1.1 400 Bad Request":                   "HTTP",
		"\x00\xff garbage":                           "",
		"":                                           "",
	} {
		assert.Equal(t, want, connector.RecognizeGreeting([]byte(greeting)), "%q", greeting)
	}
}

// A TLS client meeting a server that greets in plaintext is told so, with the
// protocol the server spoke: permanent and profile-wide, not a network error.
func TestDialImplicitTLSAtPlaintextPort(t *testing.T) {
	t.Parallel()
	for greeting, protocol := range map[string]string{
		"* OK IMAP4rev1 ready\r\n": "IMAP",
		"+OK POP3 ready\r\n":       "POP3",
		"220 mail ESMTP\r\n":       "SMTP",
	} {
		t.Run(protocol, func(t *testing.T) {
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
				_, _ = io.Copy(io.Discard, conn)
			}()
			ep := serversync.Endpoint{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, TLS: serversync.TLSImplicit, Timeout: 5 * time.Second}
			_, err = connector.Dial(context.Background(), ep, nil)
			var ce *serversync.ConnectorError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, serversync.CodeTLSMismatch, ce.Code, "%v", err)
			assert.Equal(t, serversync.ErrorPermanent, ce.Kind)
			assert.Equal(t, serversync.ScopeProfile, ce.Scope)
			assert.Contains(t, err.Error(), "greeted in "+protocol)
			assert.False(t, errors.Is(err, context.DeadlineExceeded))
		})
	}
}
