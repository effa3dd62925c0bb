package connector_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector"
	"github.com/serversync/serversync/internal/testcert"
)

// Reconnecting to a server resumes the TLS session: a poll does not pay for a
// full handshake every time.
func TestDialResumesTLSSessions(t *testing.T) {
	cert, caPEM := testcert.Must()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_, _ = conn.Write([]byte("hello\n")) // TLS 1.3 tickets arrive with the first data
				_, _ = io.Copy(io.Discard, conn)
			}()
		}
	}()
	ep := serversync.Endpoint{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, TLS: serversync.TLSImplicit,
		RootCAsPEM: caPEM, Timeout: 5 * time.Second}

	var configs connector.TLSConfigs
	first, err := configs.For(ep)
	require.NoError(t, err)
	again, err := configs.For(ep)
	require.NoError(t, err)
	assert.Same(t, first, again, "one configuration per server")

	resumed := make([]bool, 2)
	for i := range resumed {
		conn, err := connector.Dial(context.Background(), ep, &configs)
		require.NoError(t, err)
		buf := make([]byte, 6)
		_, err = io.ReadFull(conn, buf)
		require.NoError(t, err)
		resumed[i] = conn.(*tls.Conn).ConnectionState().DidResume
		require.NoError(t, conn.Close())
	}
	assert.Equal(t, []bool{false, true}, resumed)

	_, err = (*connector.TLSConfigs)(nil).For(serversync.Endpoint{Host: "x", RootCAsPEM: "not a certificate"})
	var ce *serversync.ConnectorError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "tls_bad_root_ca", ce.Code)
}

// DialTarget refuses a target that would send credentials in the clear before it
// opens a connection; anonymous targets and targets the org allowed are dialed.
func TestDialTargetRefusesPlaintextCredentials(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	plain := serversync.Endpoint{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, TLS: serversync.TLSNone, Timeout: 5 * time.Second}
	password := auth.Credentials{Kind: auth.KindPassword, Username: "alice", Password: auth.NewSecret("alice-pw")}

	_, err = connector.DialTarget(context.Background(), &serversync.Target{Endpoint: plain, Credentials: password}, nil)
	var ce *serversync.ConnectorError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, serversync.CodePlaintextAuthRefused, ce.Code)
	assert.Equal(t, serversync.ErrorPermanent, ce.Kind)
	assert.Equal(t, serversync.ScopeProfile, ce.Scope)
	assert.ErrorIs(t, err, connector.ErrPlaintextAuth)
	assert.NotContains(t, err.Error(), "alice-pw")
	assert.Contains(t, connector.Advice(err, plain), "turn TLS on")

	allowed := plain
	allowed.AllowPlaintextAuth = true
	for _, target := range []*serversync.Target{
		{Endpoint: plain, Credentials: auth.Credentials{Kind: auth.KindAnonymous}}, // nothing secret to send
		{Endpoint: allowed, Credentials: password},                                 // the org allows it
	} {
		conn, err := connector.DialTarget(context.Background(), target, nil)
		require.NoError(t, err)
		require.NoError(t, conn.Close())
		(<-accepted).Close()
	}
	select {
	case c := <-accepted:
		c.Close()
		t.Fatal("a refused target opened a connection")
	default:
	}
}
