package serversync_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/standard"
	"github.com/serversync/serversync/internal/testclock"
	"github.com/serversync/serversync/store/memory"
	"github.com/serversync/serversync/store/storetest"
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
	assert.ErrorIs(t, err, auth.ErrNoKerberosIdentity, "without a keytab or ticket cache the process has no identity to use")
}

// TestResolveTargetWindowsIntegrated: with a Kerberos identity found as MIT finds
// it (here KRB5_CLIENT_KTNAME), WindowsIntegrated resolves to the process's own
// identity acting for the mailbox, and AuthProtocol travels with the credentials.
func TestResolveTargetWindowsIntegrated(t *testing.T) {
	keytab := filepath.Join(t.TempDir(), "service.keytab")
	require.NoError(t, os.WriteFile(keytab, []byte{5, 2}, 0o600))
	t.Setenv("KRB5_CLIENT_KTNAME", "FILE:"+keytab)
	t.Setenv("KRB5CCNAME", "")
	p := &serversync.Profile{Name: "exchange", ServerType: serversync.ServerTypeExchangeServer,
		IncomingServer: "https://mail.contoso.test/EWS/Exchange.asmx", IncomingCredentialSource: serversync.CredentialsWindowsIntegrated,
		AuthProtocol: serversync.AuthNegotiate}
	serversync.NormalizeProfile(p)
	mb := &serversync.Mailbox{ID: "m1", EmailAddress: "alice@contoso.test"}
	target, err := serversync.ResolveTarget(context.Background(), p, mb, nil, serversync.Incoming)
	require.NoError(t, err)
	assert.Equal(t, auth.KindIntegrated, target.Credentials.Kind)
	assert.Equal(t, "alice@contoso.test", target.Credentials.Mailbox)
	assert.Equal(t, auth.ProtocolNegotiate, target.Credentials.Protocol)

	p.AuthProtocol = serversync.AuthAuto
	target, err = serversync.ResolveTarget(context.Background(), p, mb, nil, serversync.Incoming)
	require.NoError(t, err)
	assert.Equal(t, auth.ProtocolAuto, target.Credentials.Protocol)
}

// wireRecorder is a TCP server that greets like a mail server (when greeting is
// set) and records every connection and every byte a client sends: a client that
// must not connect, or must not send credentials, is caught doing it.
type wireRecorder struct {
	ln    net.Listener
	conns atomic.Int32
	wg    sync.WaitGroup

	mu  sync.Mutex
	got bytes.Buffer
}

func newWireRecorder(t *testing.T, greeting string) *wireRecorder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	r := &wireRecorder{ln: ln}
	var open sync.Map
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.conns.Add(1)
			open.Store(c, true)
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				defer c.Close()
				_, _ = io.WriteString(c, greeting)
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					r.mu.Lock()
					r.got.Write(buf[:n])
					r.mu.Unlock()
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		open.Range(func(c, _ any) bool { _ = c.(net.Conn).Close(); return true })
		r.wg.Wait()
	})
	return r
}

func (r *wireRecorder) port() int { return r.ln.Addr().(*net.TCPAddr).Port }

func (r *wireRecorder) received() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got.String()
}

// requireCode asserts that err is a permanent *ConnectorError with code.
func requireCode(t *testing.T, err error, code string) *serversync.ConnectorError {
	t.Helper()
	var ce *serversync.ConnectorError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, code, ce.Code, "%v", err)
	assert.Equal(t, serversync.ErrorPermanent, ce.Kind)
	return ce
}

// requireProfileCode is requireCode for what every mailbox of the profile meets.
func requireProfileCode(t *testing.T, err error, code string) *serversync.ConnectorError {
	t.Helper()
	ce := requireCode(t, err, code)
	assert.Equal(t, serversync.ScopeProfile, ce.Scope)
	return ce
}

// A profile saved while the org allowed TLS off is refused once it no longer does,
// when a connection is about to be made, with an error naming what to change.
func TestResolveTargetEnforcesSettingsAtConnectTime(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mb := &serversync.Mailbox{ID: "m1", EmailAddress: "alice@contoso.test", Password: auth.NewSecret("alice-pw")}
	p := imapProfile()
	p.IncomingTLS = serversync.TLSNone
	serversync.NormalizeProfile(p)
	allowed := serversync.DefaultOrgSettings()
	allowed.AllowNonSSLEmail, allowed.AllowCredentialsOverNonSecureChannels = true, true
	require.NoError(t, serversync.ValidateProfile(p, allowed), "saved while allowed")
	target, err := serversync.ResolveTarget(ctx, p, mb, allowed, serversync.Incoming)
	require.NoError(t, err)
	assert.True(t, target.Endpoint.AllowPlaintextAuth)

	noNonSSL := allowed.Clone()
	noNonSSL.AllowNonSSLEmail = false
	_, err = serversync.ResolveTarget(ctx, p, mb, noNonSSL, serversync.Incoming)
	ce := requireProfileCode(t, err, serversync.CodeTLSRequiredByOrg)
	assert.ErrorIs(t, err, serversync.ErrConnectionForbidden)
	assert.Contains(t, ce.Error(), "IncomingTLS", "names the profile field")
	assert.Contains(t, ce.Error(), "AllowNonSSLEmail", "names the org setting")
	assert.Contains(t, ce.Error(), p.Name)
	assert.NotContains(t, ce.Error(), "alice-pw")
	_, err = serversync.ResolveTarget(ctx, p, mb, noNonSSL, serversync.Outgoing)
	assert.NoError(t, err, "outgoing keeps TLS: unaffected")

	noPlainCreds := allowed.Clone()
	noPlainCreds.AllowCredentialsOverNonSecureChannels = false
	_, err = serversync.ResolveTarget(ctx, p, mb, noPlainCreds, serversync.Incoming)
	ce = requireProfileCode(t, err, serversync.CodePlaintextAuthRefused)
	assert.Contains(t, ce.Error(), "AllowCredentialsOverNonSecureChannels")

	// An anonymous relay without TLS sends no credentials: allowed without the switch.
	p.SeparateOutgoingSettings, p.OutgoingTLS, p.OutgoingCredentialSource = true, serversync.TLSNone, serversync.CredentialsAnonymous
	_, err = serversync.ResolveTarget(ctx, p, mb, noPlainCreds, serversync.Outgoing)
	assert.NoError(t, err)
	_, err = serversync.ResolveTarget(ctx, p, mb, noNonSSL, serversync.Outgoing)
	requireProfileCode(t, err, serversync.CodeTLSRequiredByOrg)

	// Exchange Online never goes without TLS, whatever the settings say.
	eo := &serversync.Profile{Name: "EXO", ServerType: serversync.ServerTypeExchangeOnline, IncomingTLS: serversync.TLSNone,
		IncomingServer: "https://outlook.office365.com", OutgoingServer: "https://outlook.office365.com"}
	serversync.NormalizeProfile(eo)
	_, err = serversync.ResolveTarget(ctx, eo, mb, allowed, serversync.Incoming)
	requireProfileCode(t, err, serversync.CodeTLSRequired)
}

// Every connector refuses, before it even connects, a target whose password would
// travel unencrypted, however the target was built.
func TestConnectorsSendNoCredentialsInTheClear(t *testing.T) {
	t.Parallel()
	conns := standard.Connectors(&standard.Options{Logger: slog.New(slog.DiscardHandler)})
	for _, tc := range []struct {
		name     string
		greeting string
		open     func(ctx context.Context, target *serversync.Target) error
		probe    serversync.Prober
	}{
		{"imap", "* OK IMAP4rev1 ready\r\n", func(ctx context.Context, target *serversync.Target) error {
			_, err := conns.Incoming[serversync.ServerTypeIMAPSMTP].OpenIncoming(ctx, target)
			return err
		}, conns.Incoming[serversync.ServerTypeIMAPSMTP].(serversync.Prober)},
		{"pop3", "+OK POP3 ready\r\n", func(ctx context.Context, target *serversync.Target) error {
			_, err := conns.Incoming[serversync.ServerTypePOP3SMTP].OpenIncoming(ctx, target)
			return err
		}, conns.Incoming[serversync.ServerTypePOP3SMTP].(serversync.Prober)},
		{"smtp", "220 smtp ready ESMTP\r\n", func(ctx context.Context, target *serversync.Target) error {
			_, err := conns.Outgoing[serversync.ServerTypeIMAPSMTP].OpenOutgoing(ctx, target)
			return err
		}, conns.Outgoing[serversync.ServerTypeIMAPSMTP].(serversync.Prober)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			server := newWireRecorder(t, tc.greeting)
			target := &serversync.Target{
				MailboxID: "m1", EmailAddress: "alice@contoso.test",
				Endpoint:    serversync.Endpoint{Host: "127.0.0.1", Port: server.port(), TLS: serversync.TLSNone, Timeout: 5 * time.Second},
				Credentials: auth.Credentials{Kind: auth.KindPassword, Username: "alice", Password: auth.NewSecret("alice-pw")},
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := tc.open(ctx, target)
			requireProfileCode(t, err, serversync.CodePlaintextAuthRefused)
			steps := tc.probe.Probe(ctx, target)
			require.NotEmpty(t, steps)
			last := steps[len(steps)-1]
			assert.False(t, last.OK)
			requireProfileCode(t, last.Err, serversync.CodePlaintextAuthRefused)
			assert.Contains(t, last.Detail, "TLS")
			assert.Zero(t, server.conns.Load(), "no connection may be opened: received %q", server.received())
		})
	}
}

// The whole story of issue 9 item 2: a profile saved with TLS off while the org
// allowed it, then AllowNonSSLEmail turned off. UpdateOrgSettings names the profile,
// and Test & Enable, sync and send all fail with the typed error while the servers
// see no connection at all.
func TestTLSOffProfileRefusedAfterOrgSettingsChange(t *testing.T) {
	ctx := context.Background()
	imapServer := newWireRecorder(t, "* OK IMAP4rev1 ready\r\n")
	smtpServer := newWireRecorder(t, "220 smtp ready ESMTP\r\n")
	store := memory.New()
	t.Cleanup(func() { _ = store.Close() })
	admin := serversync.NewAdmin(store, &serversync.AdminConfig{
		CanApprove: func(context.Context, string, *serversync.Mailbox) error { return nil }, Logger: slog.New(slog.DiscardHandler),
	})
	_, err := admin.UpdateOrgSettings(ctx, func(s *serversync.OrgSettings) {
		s.AllowNonSSLEmail, s.AllowCredentialsOverNonSecureChannels = true, true
	})
	require.NoError(t, err)
	p, err := admin.CreateProfile(ctx, &serversync.Profile{
		Name: "plain", Owner: "admin-user", ServerType: serversync.ServerTypeIMAPSMTP,
		IncomingServer: "127.0.0.1", IncomingPort: imapServer.port(), IncomingTLS: serversync.TLSNone,
		OutgoingServer: "127.0.0.1", OutgoingPort: smtpServer.port(), OutgoingTLS: serversync.TLSNone,
		ConnectionTimeout: 5 * time.Second,
	})
	require.NoError(t, err)
	m, err := admin.CreateMailbox(ctx, &serversync.Mailbox{
		Name: "alice", EmailAddress: "alice@example.test", ProfileID: p.ID, Owner: "owner-alice",
		Regarding: serversync.Regarding{Type: serversync.RegardingUser, ID: "user-alice"}, Password: auth.NewSecret("alice-pass"),
	})
	require.NoError(t, err)
	require.NoError(t, admin.Approve(ctx, "admin-user", m.ID))
	// Enabled while TLS off was allowed.
	_, err = store.UpdateMailbox(ctx, m.ID, func(m *serversync.Mailbox) error {
		m.IncomingEnabled, m.OutgoingEnabled = true, true
		m.TestAndEnablePending = false // tested back then: the Syncer is not to test it again by itself
		m.IncomingStatus, m.OutgoingStatus, m.Status = serversync.TestSuccess, serversync.TestSuccess, serversync.TestSuccess
		return nil
	})
	require.NoError(t, err)

	update, err := admin.UpdateOrgSettings(ctx, func(s *serversync.OrgSettings) { s.AllowNonSSLEmail = false })
	require.NoError(t, err)
	assert.False(t, update.Settings.AllowNonSSLEmail)
	require.Len(t, update.AffectedProfiles, 2, "both directions of the profile are affected")
	for i, dir := range []serversync.Direction{serversync.Incoming, serversync.Outgoing} {
		c := update.AffectedProfiles[i]
		assert.Equal(t, p.ID, c.ProfileID)
		assert.Equal(t, "plain", c.Name)
		assert.Equal(t, dir, c.Direction)
		assert.Equal(t, string(dir)+"TLS", c.Field)
		assert.Equal(t, "AllowNonSSLEmail", c.Setting)
		assert.Equal(t, serversync.CodeTLSRequiredByOrg, c.Code)
	}

	clock := testclock.New(time.Now())
	s, err := serversync.NewSyncer(store, standard.Connectors(&standard.Options{Logger: slog.New(slog.DiscardHandler)}), &serversync.Config{
		Tick: 10 * time.Millisecond, ScanInterval: 20 * time.Millisecond, OutboxInterval: 20 * time.Millisecond,
		IdleConnections: -1, Now: clock.Now, Logger: slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)
	queued, err := s.QueueEmail(ctx, &serversync.EmailActivity{MailboxID: m.ID, To: []serversync.Address{{Email: "bob@example.test"}}, Subject: "hello"})
	require.NoError(t, err)
	run(t, s)

	// Sync: the incoming workload is disabled at once (permanent), with the code.
	eventually(t, "incoming disabled", func() bool {
		got, err := store.GetMailbox(ctx, m.ID)
		return err == nil && !got.IncomingEnabled
	})
	got, err := store.GetMailbox(ctx, m.ID)
	require.NoError(t, err)
	assert.Equal(t, serversync.CodeTLSRequiredByOrg, got.Stats.LastError.Code)
	assert.Contains(t, got.Stats.LastError.Message, "AllowNonSSLEmail")
	// Send: the email fails for good, with the code, and is not retried.
	eventually(t, "email failed", func() bool {
		a, err := store.GetActivity(ctx, queued.ID)
		return err == nil && a.Status == serversync.StatusFailed
	})
	a, err := store.GetActivity(ctx, queued.ID)
	require.NoError(t, err)
	assert.Contains(t, a.LastError, serversync.CodeTLSRequiredByOrg)
	// Test & Enable: fails with the same code, and says so in a profile-level alert.
	tested, err := s.TestAndEnable(ctx, m.ID)
	require.NoError(t, err)
	assert.Equal(t, serversync.TestFailure, tested.IncomingStatus)
	assert.Equal(t, serversync.TestFailure, tested.OutgoingStatus)
	assert.False(t, tested.IncomingEnabled || tested.OutgoingEnabled)
	assert.Equal(t, serversync.CodeTLSRequiredByOrg, tested.Stats.LastError.Code)
	eventually(t, "the profile owner alerted", func() bool {
		return len(storetest.Collect(t, store.ListAlerts(ctx, serversync.AlertFilter{Recipient: "admin-user"}))) > 0
	})

	assert.Zero(t, imapServer.conns.Load(), "the IMAP server saw a connection: %q", imapServer.received())
	assert.Zero(t, smtpServer.conns.Load(), "the SMTP server saw a connection: %q", smtpServer.received())

	// Turning it back on lists nothing.
	update, err = admin.UpdateOrgSettings(ctx, func(s *serversync.OrgSettings) { s.AllowNonSSLEmail = true })
	require.NoError(t, err)
	assert.Empty(t, update.AffectedProfiles)
}
