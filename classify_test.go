package serversync_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/serversync/serversync"
)

// permanentNet is a network error that says it is not temporary, as a raw protocol
// error from outside a connector might.
type permanentNet struct{}

func (permanentNet) Error() string   { return "permanent" }
func (permanentNet) Temporary() bool { return false }

// TestClassifyError is the one rule for every error: a *ConnectorError says for
// itself; what did not come from a mail server is transient and internal, so the
// Syncer retries it without counting it against the mailbox.
func TestClassifyError(t *testing.T) {
	authFailed := &serversync.ConnectorError{Op: "authenticate", Kind: serversync.ErrorAuth, Scope: serversync.ScopeProfile,
		Code: serversync.CodeAuthFailed, Err: errors.New("refused")}
	internal := serversync.ErrorClass{Kind: serversync.ErrorTransient, Scope: serversync.ScopeMailbox, Code: serversync.CodeInternal}
	for _, tc := range []struct {
		name     string
		err      error
		want     serversync.ErrorClass
		internal bool
	}{
		{"connector error", authFailed, serversync.ErrorClass{Kind: serversync.ErrorAuth, Scope: serversync.ScopeProfile, Code: serversync.CodeAuthFailed}, false},
		{"wrapped connector error", fmt.Errorf("sync: %w", authFailed), serversync.ErrorClass{Kind: serversync.ErrorAuth, Scope: serversync.ScopeProfile, Code: serversync.CodeAuthFailed}, false},
		{"hook panic", fmt.Errorf("track: %w", &serversync.HookPanicError{Hook: "Track", Value: "boom"}),
			serversync.ErrorClass{Kind: serversync.ErrorTransient, Scope: serversync.ScopeMailbox, Code: serversync.CodeHookPanic}, false},
		{"unsupported credentials", fmt.Errorf("target: %w", serversync.ErrUnsupportedCredentials),
			serversync.ErrorClass{Kind: serversync.ErrorPermanent, Scope: serversync.ScopeProfile, Code: serversync.CodeUnsupportedCredentials}, false},
		{"deadline", fmt.Errorf("store: %w", context.DeadlineExceeded), internal, true},
		{"network", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, internal, true},
		{"not temporary", permanentNet{}, internal, true},
		{"store", errors.New("database is locked"), internal, true},
		{"nil", nil, serversync.ErrorClass{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := serversync.ClassifyError(tc.err)
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.internal, got.Internal())
		})
	}
}
