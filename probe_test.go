package serversync_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/serversync/serversync"
)

// openOnly is a connector without Prober: Test Connection falls back to opening a session.
type openOnly struct{ err error }

func (o openOnly) OpenIncoming(context.Context, *serversync.Target) (serversync.IncomingSession, error) {
	return nil, o.err
}

func TestTestConnection(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := imapProfile()
	p.IncomingServer = "127.0.0.1:1"
	serversync.NormalizeProfile(p)
	m := &serversync.Mailbox{ID: "m", EmailAddress: "alice@contoso.test"}
	settings := serversync.DefaultOrgSettings()

	refused := errors.New("connection refused")
	report := serversync.TestConnection(ctx, p, m, settings, openOnly{err: refused}, nil)
	assert.Len(t, report.Incoming, 2)
	assert.Equal(t, "resolve", report.Incoming[0].Name)
	assert.True(t, report.Incoming[0].OK)
	assert.Equal(t, "open-session", report.Incoming[1].Name)
	assert.ErrorIs(t, report.Incoming[1].Err, refused)
	assert.Empty(t, report.Outgoing, "no outgoing connector: nothing tested")
	assert.False(t, report.OK())

	p.IncomingServer = "no-such-host.invalid"
	report = serversync.TestConnection(ctx, p, m, settings, openOnly{}, nil)
	assert.Len(t, report.Incoming, 1, "nothing is tried after the host fails to resolve")
	assert.False(t, report.Incoming[0].OK)
	assert.Contains(t, report.Incoming[0].Detail, "does not resolve")
}

// Test Connection says why a profile saved with TLS off can no longer connect,
// and tries nothing.
func TestTestConnectionRefusesWhatTheSettingsForbid(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := imapProfile()
	p.IncomingServer, p.IncomingTLS = "127.0.0.1:1", serversync.TLSNone
	serversync.NormalizeProfile(p)
	m := &serversync.Mailbox{ID: "m", EmailAddress: "alice@contoso.test"}
	opened := errors.New("must not be opened")
	report := serversync.TestConnection(ctx, p, m, serversync.DefaultOrgSettings(), openOnly{err: opened}, nil)
	assert.Len(t, report.Incoming, 1, "nothing is tried")
	step := report.Incoming[0]
	assert.Equal(t, "security", step.Name)
	assert.False(t, step.OK)
	assert.ErrorIs(t, step.Err, serversync.ErrConnectionForbidden)
	assert.NotErrorIs(t, step.Err, opened)
	assert.Contains(t, step.Detail, "IncomingTLS")
	assert.Contains(t, step.Detail, "AllowNonSSLEmail")
}
