package imap_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/connectortest"
	imapconn "github.com/serversync/serversync/connector/imap"
)

func TestConformanceInProcess(t *testing.T) {
	connectortest.RunIncoming(t, connectortest.Incoming{
		Connector: imapconn.New(nil),
		Folders:   true,
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
		Folders:   true,
		NewMailbox: func(t *testing.T) connectortest.Mailbox {
			user := fmt.Sprintf("user%04d", 11+conformanceUser.Add(1)%10)
			c := e.bulkClient(t, user)
			emptyMailbox(t, c)
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

// emptyMailbox removes every message of the inbox and the folders the suite creates.
func emptyMailbox(t *testing.T, c *imapclient.Client) {
	t.Helper()
	for _, folder := range []string{"Undeliverable", "Sent"} {
		_ = c.Delete(folder).Wait() // absent is fine
	}
	_, err := c.Select("INBOX", nil).Wait()
	require.NoError(t, err)
	all := goimap.SeqSet{}
	all.AddRange(1, 0)
	_ = c.Store(all, &goimap.StoreFlags{Op: goimap.StoreFlagsAdd, Silent: true, Flags: []goimap.Flag{goimap.FlagDeleted}}, nil).Close()
	require.NoError(t, c.Expunge().Close())
	_ = c.Unselect().Wait()
}

// bulkClient is an independent client logged in as one of the bulk users.
func (e *interop) bulkClient(t *testing.T, user string) *imapclient.Client {
	t.Helper()
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM([]byte(e.caPEM)))
	c, err := imapclient.DialTLS(fmt.Sprintf("%s:%d", e.host, e.imapsPort), &imapclient.Options{
		TLSConfig: &tls.Config{RootCAs: pool, ServerName: e.host},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	require.NoError(t, c.Login(e.login(user), "bulk-pass").Wait())
	return c
}
