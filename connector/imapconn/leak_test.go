package imapconn_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when goroutines outlive them.
//
// One goroutine of the in-process server is let off: when a client drops in the
// middle of a FETCH (the conformance suite's DroppedConnection), go-imap's
// imapmemserver returns the write error without closing its FETCH response writer,
// so that connection's goroutine waits forever for the response lock. It is the
// test server's, not the connector's.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/emersion/go-imap/v2/imapserver.(*Conn).serve"))
}
