package imapconn_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/connectortest"
	"github.com/serversync/serversync/connector/imapconn"
	"github.com/serversync/serversync/internal/mailtest"
)

func TestConformanceInProcess(t *testing.T) {
	connectortest.RunIncoming(t, connectortest.Incoming{
		Connector: imapconn.New(nil),
		NewMailbox: func(t *testing.T) connectortest.Mailbox {
			ts := newTestServer(t, serverConfig{})
			c := ts.client(t, "alice")
			return connectortest.Mailbox{
				Target:  ts.target("alice"),
				Deliver: func(t *testing.T, raw []byte) { appendMessage(t, c, "INBOX", raw, time.Now()) },
			}
		},
	})
}

// conformanceUser hands each Dovecot conformance subtest its own bulk user, so the
// suite's "fresh, empty mailbox" holds on a shared server.
var conformanceUser atomic.Int32

func TestConformanceDovecot(t *testing.T) {
	e := interopEnv(t)
	connectortest.RunIncoming(t, connectortest.Incoming{
		Connector: imapconn.New(nil),
		NewMailbox: func(t *testing.T) connectortest.Mailbox {
			user := fmt.Sprintf("user%04d", 11+conformanceUser.Add(1)%10)
			c := e.env.IMAPClient(t, user)
			mailtest.Empty(t, c, "Undeliverable", "Sent")
			target := e.target("alice", serversync.TLSImplicit) // the endpoint the other interop tests use
			target.EmailAddress = e.login(user)
			target.Credentials = auth.Credentials{Kind: auth.KindPassword, Username: e.login(user), Password: auth.NewSecret("bulk-pass")}
			return connectortest.Mailbox{
				Target:  target,
				Deliver: func(t *testing.T, raw []byte) { appendMessage(t, c, "INBOX", raw, time.Now()) },
			}
		},
	})
}
