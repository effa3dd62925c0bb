package graph_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector/connectortest"
	"github.com/serversync/serversync/connector/graph"
	"github.com/serversync/serversync/connector/graph/graphtest"
)

// TestConformance runs the connector conformance suite against the fake, one
// fresh mailbox per subtest. DroppedConnection puts a proxy between connector
// and fake: the fake's links are absolute URLs to its own port, so the test's
// HTTP client reroutes in its dialer rather than by changing the target's port.
//
// It runs without $batch: DroppedConnection drops every connection after 60 KB
// and wants messages handed over before that, but a $batch hands its messages
// over once its whole reply is read (two of the suite's 20 KB messages, base64 in
// JSON, already fill 60 KB). Resuming after a failed batch is tested by
// TestFetchResumesMidPage and TestHostileEndlessBatch.
func TestConformance(t *testing.T) {
	for _, batch := range []int{1} {
		t.Run(fmt.Sprintf("batch%d", batch), func(t *testing.T) {
			srv, err := graphtest.NewServer(nil)
			require.NoError(t, err)
			defer srv.Close()
			srv.AddToken(appToken, graphtest.Principal{AppOnly: true, TenantID: tenant, Permissions: []string{"Mail.ReadWrite", "Mail.Send"}})
			pool := x509.NewCertPool()
			require.True(t, pool.AppendCertsFromPEM([]byte(srv.RootCAsPEM())))
			fakeAddr := must(url.Parse(srv.URL())).Host

			var reroute sync.Map // address → proxy address
			dialer := &net.Dialer{Timeout: 5 * time.Second}
			transport := &http.Transport{
				TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
				DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
					if to, ok := reroute.Load(addr); ok {
						addr = to.(string)
					}
					return dialer.DialContext(ctx, network, addr)
				},
			}
			defer transport.CloseIdleConnections()
			c := graph.New(&graph.Options{HTTPClient: &http.Client{Transport: transport}, BatchSize: batch})

			var n atomic.Int32
			connectortest.RunIncoming(t, connectortest.Incoming{
				Connector: c,
				NewMailbox: func(t *testing.T) connectortest.Mailbox {
					address := fmt.Sprintf("user%d@contoso.test", n.Add(1))
					srv.AddMailbox(address, tenant)
					return connectortest.Mailbox{
						Target: fakeTarget(srv, address, appToken),
						Deliver: func(t *testing.T, raw []byte) {
							_, err := srv.Deliver(address, "inbox", raw, time.Now())
							require.NoError(t, err)
						},
					}
				},
				Reroute: func(t *testing.T, mb connectortest.Mailbox, port int) connectortest.Mailbox {
					transport.CloseIdleConnections()
					reroute.Store(fakeAddr, fmt.Sprintf("127.0.0.1:%d", port))
					t.Cleanup(func() {
						reroute.Delete(fakeAddr)
						transport.CloseIdleConnections()
					})
					return mb
				},
			})
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestConformanceOutgoing(t *testing.T) {
	e := newEnv(t, nil)
	const bob = "bob@contoso.test"
	e.srv.AddMailbox(bob, tenant)
	connectortest.RunOutgoing(t, connectortest.Outgoing{
		Connector: graph.New(nil),
		Target:    func(t *testing.T) *serversync.Target { return e.target },
		To:        bob,
		Received: func(t *testing.T, messageID string) []byte {
			for _, m := range e.srv.Messages(bob, "inbox") {
				if strings.Trim(m.InternetMessageID, "<>") == messageID {
					return m.MIME
				}
			}
			t.Fatalf("no message %s in %s's inbox", messageID, bob)
			return nil
		},
	})
}
