package connectortest

import (
	"context"
	"net"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
)

// ServeScripted listens on a loopback port and runs handle for every connection
// it accepts, for scripted (and hostile) servers in connector tests. When the test
// ends it closes the listener and every connection and waits for the handlers, so
// no goroutine outlives the test. handle's writes fail once the client hangs up.
func ServeScripted(t testing.TB, handle func(conn net.Conn)) (port int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, conn := range conns {
			_ = conn.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				handle(conn)
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// RequireBounded checks how an operation against a hostile server ended: by
// itself, not by the HeapGuard or the test's deadline (ctx is the guarded
// context, stop what HeapGuard returned), with a *serversync.ConnectorError, and
// with the heap under HeapLimitDefault all along. It returns the error for the
// test to check its kind, code and scope.
func RequireBounded(t testing.TB, ctx context.Context, stop func() uint64, err error) *serversync.ConnectorError {
	t.Helper()
	cause := context.Cause(ctx)
	peak := stop()
	t.Logf("peak heap %.1f MiB", float64(peak)/(1<<20))
	require.NoError(t, cause, "the operation ended by itself, within the heap limit: %v", err)
	var ce *serversync.ConnectorError
	require.ErrorAs(t, err, &ce)
	assert.Less(t, peak, uint64(HeapLimitDefault))
	return ce
}
