package imapconn_test

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/imapconn"
)

// stepNames lists the names of steps, and requires every one but the last to be OK.
func stepNames(t *testing.T, steps []serversync.TestStep) []string {
	t.Helper()
	var names []string
	for i, s := range steps {
		names = append(names, s.Name)
		if i < len(steps)-1 {
			assert.True(t, s.OK, "step %s before the last failed: %v", s.Name, s.Err)
		}
		assert.NotEmpty(t, s.Detail, "step %s says nothing", s.Name)
	}
	return names
}

// requireFailedAt requires the steps to stop at name, failed with code, and returns that step.
func requireFailedAt(t *testing.T, steps []serversync.TestStep, names []string, code string) serversync.TestStep {
	t.Helper()
	require.Equal(t, names, stepNames(t, steps))
	last := steps[len(steps)-1]
	require.False(t, last.OK)
	var ce *serversync.ConnectorError
	require.ErrorAs(t, last.Err, &ce)
	assert.Equal(t, code, ce.Code, "%v", last.Err)
	return last
}

func TestProbeSucceedsStepByStep(t *testing.T) {
	t.Parallel()
	cert, certPEM := selfSignedCert(t)
	tlsConfig := &tls.Config{Certificates: []tls.Certificate{cert}}
	plain := newTestServer(t, serverConfig{})
	implicit := newTestServer(t, serverConfig{implicitTLS: tlsConfig})
	startTLS := newTestServer(t, serverConfig{startTLS: tlsConfig})
	appendMessage(t, plain.client(t, "alice"), "INBOX", testMessage(1, 100), time.Time{})

	for _, tc := range []struct {
		name   string
		server *testServer
		mode   serversync.TLSMode
		steps  []string
	}{
		{"none", plain, serversync.TLSNone, []string{"connect", "greeting", "authenticate", "open-inbox"}},
		{"implicit", implicit, serversync.TLSImplicit, []string{"connect", "tls", "greeting", "authenticate", "open-inbox"}},
		{"STARTTLS", startTLS, serversync.TLSStartTLS, []string{"connect", "tls", "authenticate", "open-inbox"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			target := tc.server.target("alice")
			target.Endpoint.TLS, target.Endpoint.RootCAsPEM = tc.mode, certPEM
			tc.server.wire.Reset() // what setting up sent
			steps := imapconn.New(nil).Probe(context.Background(), target)
			assert.Equal(t, tc.steps, stepNames(t, steps))
			for _, s := range steps {
				assert.True(t, s.OK, "%s: %v", s.Name, s.Err)
				assert.NoError(t, s.Err)
				assert.Positive(t, s.Duration)
			}
			if tc.server == plain {
				assert.Contains(t, steps[len(steps)-1].Detail, "1 messages")
			}
			assert.Regexp(t, `T\d+ EXAMINE INBOX`, tc.server.wire.String())
			assert.NotRegexp(t, `T\d+ (SELECT|STORE|EXPUNGE|APPEND)`, tc.server.wire.String(), "read-only: nothing changes")
		})
	}
}

func TestProbeStopsAtTheFailingStep(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("unreachable port", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		port := ln.Addr().(*net.TCPAddr).Port
		require.NoError(t, ln.Close()) // nothing listens there now
		target := newTestServer(t, serverConfig{}).target("alice")
		target.Endpoint.Port = port
		step := requireFailedAt(t, imapconn.New(nil).Probe(ctx, target), []string{"connect"}, "network")
		assert.Contains(t, step.Detail, target.Endpoint.Address())
		assert.Contains(t, step.Detail, "check the server name, the port and the firewall")
	})

	t.Run("untrusted certificate", func(t *testing.T) {
		t.Parallel()
		cert, _ := selfSignedCert(t)
		tlsConfig := &tls.Config{Certificates: []tls.Certificate{cert}}
		for _, mode := range []serversync.TLSMode{serversync.TLSImplicit, serversync.TLSStartTLS} {
			cfg := serverConfig{implicitTLS: tlsConfig}
			if mode == serversync.TLSStartTLS {
				cfg = serverConfig{startTLS: tlsConfig}
			}
			ts := newTestServer(t, cfg)
			target := ts.target("alice")
			target.Endpoint.TLS, target.Endpoint.AllowPlaintextAuth = mode, false // no RootCAsPEM: not trusted
			step := requireFailedAt(t, imapconn.New(nil).Probe(ctx, target), []string{"connect", "tls"}, "tls_verify_failed")
			assert.Contains(t, step.Detail, "ExtraRootCAsPEM", mode)
			assert.Zero(t, ts.logins.Load(), "no credentials sent to an untrusted server")
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		t.Parallel()
		ts := newTestServer(t, serverConfig{})
		target := ts.target("alice")
		target.Credentials.Password = auth.NewSecret("wrong")
		step := requireFailedAt(t, imapconn.New(nil).Probe(ctx, target), []string{"connect", "greeting", "authenticate"}, serversync.CodeAuthFailed)
		assert.Contains(t, step.Detail, "check the user name and password")
		assert.NotContains(t, step.Detail, "wrong")
	})

	t.Run("missing folder", func(t *testing.T) {
		t.Parallel()
		// The service account logs in, but no mailbox is shared with it under that name.
		ts := newTestServer(t, serverConfig{otherNS: true})
		target := ts.target("alice")
		target.Credentials = auth.Credentials{Kind: auth.KindDelegation, Username: "svc", Password: auth.NewSecret("svc-pass"),
			Mailbox: "alice@example.test"}
		step := requireFailedAt(t, imapconn.New(nil).Probe(ctx, target),
			[]string{"connect", "greeting", "authenticate", "open-inbox"}, serversync.CodeFolderNotFound)
		assert.Contains(t, step.Detail, "granted access")
	})

	t.Run("plaintext credentials", func(t *testing.T) {
		t.Parallel()
		ts := newTestServer(t, serverConfig{})
		target := ts.target("alice")
		target.Endpoint.AllowPlaintextAuth = false
		step := requireFailedAt(t, imapconn.New(nil).Probe(ctx, target), []string{"connect"}, serversync.CodePlaintextAuthRefused)
		assert.Contains(t, step.Detail, "turn TLS on")
		assert.Empty(t, ts.wire.String(), "nothing on the wire")
	})

	t.Run("no target", func(t *testing.T) {
		t.Parallel()
		requireFailedAt(t, imapconn.New(nil).Probe(ctx, nil), []string{"connect"}, "bad_target")
	})
}

// The same steps against the real Dovecot.
func TestInteropProbe(t *testing.T) {
	e := interopEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, mode := range []serversync.TLSMode{serversync.TLSImplicit, serversync.TLSStartTLS} {
		steps := imapconn.New(nil).Probe(ctx, e.target(alice, mode))
		want := []string{"connect", "tls", "greeting", "authenticate", "open-inbox"}
		if mode == serversync.TLSStartTLS {
			want = []string{"connect", "tls", "authenticate", "open-inbox"}
		}
		assert.Equal(t, want, stepNames(t, steps), mode)
		for _, s := range steps {
			assert.True(t, s.OK, "%s %s: %v", mode, s.Name, s.Err)
			t.Logf("%s %-12s %-8s %s", mode, s.Name, s.Duration.Round(time.Microsecond), s.Detail)
		}
	}

	wrong := e.target(alice, serversync.TLSImplicit)
	wrong.Credentials.Password = auth.NewSecret("wrong")
	step := requireFailedAt(t, imapconn.New(nil).Probe(ctx, wrong), []string{"connect", "tls", "greeting", "authenticate"}, serversync.CodeAuthFailed)
	t.Logf("wrong password: %s", step.Detail)

	for _, mode := range []serversync.TLSMode{serversync.TLSImplicit, serversync.TLSStartTLS} {
		untrusted := e.target(alice, mode)
		untrusted.Endpoint.RootCAsPEM = ""
		step = requireFailedAt(t, imapconn.New(nil).Probe(ctx, untrusted), []string{"connect", "tls"}, "tls_verify_failed")
		t.Logf("untrusted certificate (%s): %s", mode, step.Detail)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := e.target(alice, serversync.TLSImplicit)
	closed.Endpoint.Host, closed.Endpoint.Port = "127.0.0.1", ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	step = requireFailedAt(t, imapconn.New(nil).Probe(ctx, closed), []string{"connect"}, "network")
	t.Logf("unreachable port: %s", step.Detail)

	// An account opens, as a service account would, a mailbox nobody shared with it
	// (Dovecot's ACLs grant other users' mailboxes to svc only). A mailbox of a user
	// Dovecot does not know would be created by the lookup itself: its userdb is static.
	missing := e.target(alice, serversync.TLSImplicit)
	missing.Credentials = auth.Credentials{
		Kind: auth.KindDelegation, Username: e.login(bob), Password: auth.NewSecret(bob + "-pass"), Mailbox: e.login(alice),
	}
	steps := imapconn.New(nil).Probe(ctx, missing)
	require.Equal(t, []string{"connect", "tls", "greeting", "authenticate", "open-inbox"}, stepNames(t, steps))
	step = steps[len(steps)-1]
	assert.False(t, step.OK)
	// Dovecot answers a plain NO, without [NONEXISTENT], for a mailbox the account may not see.
	requireConnectorError(t, step.Err, serversync.ErrorPermanent, serversync.CodeCommandFailed)
	assert.Contains(t, step.Detail, e.sharedPrefix+e.login(alice)+"/INBOX")
	assert.Contains(t, step.Detail, "granted access")
	t.Logf("missing folder: %s", step.Detail)
}
