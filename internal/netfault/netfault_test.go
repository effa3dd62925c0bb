package netfault_test

import (
	"fmt"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/serversync/serversync/internal/netfault"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// greeter writes a fixed greeting to each connection and closes it.
func greeter(t *testing.T, greeting string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, greeting)
			_ = c.Close()
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); <-done })
	return ln.Addr().String()
}

func read(t *testing.T, p *netfault.Proxy) string {
	t.Helper()
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p.Port()))
	require.NoError(t, err)
	defer c.Close()
	got, err := io.ReadAll(c)
	require.NoError(t, err)
	return string(got)
}

func TestDropsConnectionsPartWay(t *testing.T) {
	greeting := strings.Repeat("0123456789", 1000)
	p, err := netfault.Start(greeter(t, greeting))
	require.NoError(t, err)
	defer p.Close()

	assert.Equal(t, greeting, read(t, p), "relayed whole")
	p.DropAfter(25)
	assert.Equal(t, greeting[:25], read(t, p), "dropped after 25 bytes")
	assert.Equal(t, greeting[:25], read(t, p), "and so is the next one")
	assert.Equal(t, 2, p.Drops())
	p.DropAfter(0)
	assert.Equal(t, greeting, read(t, p), "whole again")
	assert.Equal(t, 2, p.Drops())
}

// relayed opens one connection through a proxy and returns the proxy (closed when
// t ends) and both ends of the connection, once bytes flow through it.
func relayed(t *testing.T) (p *netfault.Proxy, client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	p, err = netfault.Start(ln.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	client, err = net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p.Port()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Close() })
	server, err = ln.Accept()
	require.NoError(t, err)
	t.Cleanup(func() { _ = server.Close() })
	_, err = server.Write([]byte("x"))
	require.NoError(t, err)
	_, err = io.ReadFull(client, make([]byte, 1))
	require.NoError(t, err)
	return p, client, server
}

func TestCloseEndsOpenConnections(t *testing.T) {
	p, client, _ := relayed(t)
	require.NoError(t, p.Close())
	_, err := client.Read(make([]byte, 1))
	assert.ErrorIs(t, err, io.EOF, "the client sees the connection end")
}

func TestDropAllEndsOpenConnections(t *testing.T) {
	p, client, server := relayed(t)
	p.DropAll()
	assert.Equal(t, 1, p.Drops())
	_, err := client.Read(make([]byte, 1))
	assert.ErrorIs(t, err, io.EOF, "the client sees the connection end")
	_, err = server.Read(make([]byte, 1))
	assert.ErrorIs(t, err, io.EOF, "so does the server")
}
