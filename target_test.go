package serversync_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
)

func TestResolveTarget(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	settings := serversync.DefaultOrgSettings()
	mb := &serversync.Mailbox{ID: "m1", EmailAddress: "alice@contoso.test", Password: auth.NewSecret("alice-pw")}

	p := imapProfile()
	p.IncomingServer = "imap.contoso.test:10993"
	serversync.NormalizeProfile(p)
	target, err := serversync.ResolveTarget(ctx, p, mb, settings, serversync.Incoming)
	require.NoError(t, err)
	assert.Equal(t, "imap.contoso.test:10993", target.Endpoint.Address())
	assert.Equal(t, serversync.TLSImplicit, target.Endpoint.TLS)
	assert.Equal(t, auth.KindPassword, target.Credentials.Kind)
	assert.Equal(t, "alice@contoso.test", target.Credentials.Username, "the address is the login when the mailbox names no user")
	assert.Equal(t, "alice-pw", target.Credentials.Password.Reveal())
	assert.False(t, target.Endpoint.AllowPlaintextAuth)

	out, err := serversync.ResolveTarget(ctx, p, mb, settings, serversync.Outgoing)
	require.NoError(t, err)
	assert.Equal(t, "smtp.contoso.test:465", out.Endpoint.Address())

	p.IncomingCredentialSource, p.Username, p.Password = serversync.CredentialsProfile, "svc", auth.NewSecret("svc-pw")
	target, err = serversync.ResolveTarget(ctx, p, mb, settings, serversync.Incoming)
	require.NoError(t, err)
	assert.Equal(t, auth.KindDelegation, target.Credentials.Kind)
	assert.Equal(t, "svc", target.Credentials.Username)
	assert.Equal(t, "alice@contoso.test", target.Credentials.Mailbox)

	p.UseImpersonation, p.ImpersonationStyle = true, auth.ImpersonateMasterUser
	serversync.NormalizeProfile(p)
	target, err = serversync.ResolveTarget(ctx, p, mb, settings, serversync.Incoming)
	require.NoError(t, err)
	assert.Equal(t, auth.KindImpersonation, target.Credentials.Kind)
	assert.Equal(t, "alice@contoso.test*svc", target.Credentials.LoginName())

	p.IncomingCredentialSource = serversync.CredentialsWindowsIntegrated
	_, err = serversync.ResolveTarget(ctx, p, mb, settings, serversync.Incoming)
	assert.ErrorIs(t, err, serversync.ErrUnsupportedCredentials)
}
