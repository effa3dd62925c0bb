package ews_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector/connectortest"
	"github.com/serversync/serversync/connector/ews"
	"github.com/serversync/serversync/connector/ews/ewstest"
)

// TestConformance runs the connector conformance suite against the fake, one
// fresh mailbox per subtest, each logged in to by its own user. DroppedConnection
// reroutes the HTTP client's dialer through the suite's proxy. GetItem asks for
// one message at a time here: the proxy drops the connection after 60 KB and the
// suite wants what was handed over before that to be whole messages.
func TestConformance(t *testing.T) {
	srv, err := ewstest.NewServer(nil)
	require.NoError(t, err)
	defer srv.Close()
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM([]byte(srv.RootCAsPEM())))
	fakeAddr := strings.TrimPrefix(srv.URL(), "https://")
	host, portText, err := net.SplitHostPort(fakeAddr)
	require.NoError(t, err)
	port, err := strconv.Atoi(portText)
	require.NoError(t, err)
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
	c := ews.New(&ews.Options{HTTPClient: &http.Client{Transport: transport}, BatchSize: 1, Logger: slog.New(slog.DiscardHandler)})
	var n atomic.Int32
	connectortest.RunIncoming(t, connectortest.Incoming{
		Connector: c,
		NewMailbox: func(t *testing.T) connectortest.Mailbox {
			user := fmt.Sprintf("user%d", n.Add(1))
			address := user + "@example.test"
			srv.AddUser(user, user+"-pw", address)
			target := &serversync.Target{MailboxID: user, EmailAddress: address, Credentials: password(user, user+"-pw"),
				Endpoint: serversync.Endpoint{URL: srv.EWSURL(), Host: host, Port: port, TLS: serversync.TLSImplicit, Timeout: 10 * time.Second}}
			return connectortest.Mailbox{Target: target, Deliver: func(t *testing.T, raw []byte) {
				_, err := srv.Deliver(address, "inbox", raw, time.Now())
				require.NoError(t, err)
			}}
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
}

func TestConformanceOutgoing(t *testing.T) {
	f := newFixture(t, nil)
	connectortest.RunOutgoing(t, connectortest.Outgoing{
		Connector: f.conn,
		Target:    func(t *testing.T) *serversync.Target { return f.target(alice, password("alice", "alice-pw")) },
		To:        bob,
		Received: func(t *testing.T, messageID string) []byte {
			for _, m := range f.srv.Messages(bob, "inbox") {
				if strings.Contains(string(m.MIME), "<"+messageID+">") {
					return m.MIME
				}
			}
			t.Fatalf("no message %s in %s's inbox", messageID, bob)
			return nil
		},
	})
}
