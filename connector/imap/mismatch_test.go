package imap_test

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector"
	imapconn "github.com/serversync/serversync/connector/imap"
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
				ce := requireConnectorError(t, err, serversync.ErrorPermanent, connector.CodeProtocolMismatch)
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
