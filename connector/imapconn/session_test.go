package imapconn_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector"
	"github.com/serversync/serversync/connector/imapconn"
)

func TestMoveCreatesFolder(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		caps imap.CapSet
	}{
		{"MOVE", nil},
		{"COPY+EXPUNGE", imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapUIDPlus: {}}},
		{"COPY+EXPUNGE without UIDPLUS", imap.CapSet{imap.CapIMAP4rev1: {}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t, serverConfig{caps: tc.caps})
			helper := ts.client(t, "alice")
			body := testMessage(1, 500)
			appendMessage(t, helper, "INBOX", body, time.Time{})
			appendMessage(t, helper, "INBOX", testMessage(2, 500), time.Time{})
			sess := ts.open(t, ts.target("alice"), nil)
			got, _ := fetchAll(t, sess, serversync.FetchRequest{})
			require.Len(t, got, 2)

			require.NoError(t, sess.Move(context.Background(), "", got[0].msg.Ref, "Undeliverable"))
			assert.Equal(t, uint32(1), countMessages(t, helper, "INBOX"))
			assert.Equal(t, uint32(1), countMessages(t, helper, "Undeliverable"))
			moved, _ := fetchAll(t, sess, serversync.FetchRequest{Folder: "Undeliverable"})
			require.Len(t, moved, 1)
			assert.Equal(t, body, moved[0].body)

			// The folder exists now: a second move reuses it.
			require.NoError(t, sess.Move(context.Background(), "INBOX", got[1].msg.Ref, "Undeliverable"))
			assert.Equal(t, uint32(0), countMessages(t, helper, "INBOX"))
			assert.Equal(t, uint32(2), countMessages(t, helper, "Undeliverable"))
		})
	}
}

func TestMoveToExistingFolderCreatedElsewhere(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverConfig{extraMailboxes: map[string][]string{"alice": {"Undeliverable"}}})
	helper := ts.client(t, "alice")
	appendMessage(t, helper, "INBOX", testMessage(1, 100), time.Time{})
	sess := ts.open(t, ts.target("alice"), nil)
	require.NoError(t, sess.Move(context.Background(), "", "1", "Undeliverable"))
	assert.Equal(t, uint32(1), countMessages(t, helper, "Undeliverable"))
}

func TestDelete(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverConfig{})
	helper := ts.client(t, "alice")
	for i := range 3 {
		appendMessage(t, helper, "INBOX", testMessage(i, 100), time.Time{})
	}
	sess := ts.open(t, ts.target("alice"), nil)
	require.NoError(t, sess.Delete(context.Background(), "INBOX", "2"))
	got, _ := fetchAll(t, sess, serversync.FetchRequest{})
	require.Len(t, got, 2)
	assert.Equal(t, "1", got[0].msg.Ref)
	assert.Equal(t, "3", got[1].msg.Ref)

	err := sess.Delete(context.Background(), "INBOX", "not-a-uid")
	requireConnectorError(t, err, serversync.ErrorPermanent, serversync.CodeBadRef)
}

func TestRefsRefusedAfterUIDValidityChange(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverConfig{})
	helper := ts.client(t, "alice")
	require.NoError(t, helper.Create("t-del", nil).Wait())
	appendMessage(t, helper, "t-del", testMessage(1, 100), time.Time{})
	sess := ts.open(t, ts.target("alice"), nil)
	got, _ := fetchAll(t, sess, serversync.FetchRequest{Folder: "t-del"})
	require.Len(t, got, 1)
	require.NoError(t, helper.Delete("t-del").Wait())
	require.NoError(t, helper.Create("t-del", nil).Wait())
	appendMessage(t, helper, "t-del", testMessage(2, 100), time.Time{})
	// Select another folder, as a real server would have ended the selection of a
	// deleted one (the memserver keeps serving the old mailbox).
	fetchAll(t, sess, serversync.FetchRequest{})
	// UID 1 is now another message: deleting it by the old ref must not happen.
	err := sess.Delete(context.Background(), "t-del", got[0].msg.Ref)
	requireConnectorError(t, err, serversync.ErrorTransient, serversync.CodeUIDValidityChanged)
	assert.Equal(t, uint32(1), countMessages(t, helper, "t-del"))
}

func TestAppendCreatesFolder(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverConfig{})
	helper := ts.client(t, "alice")
	sess := ts.open(t, ts.target("alice"), nil)
	sent := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	body := testMessage(1, 10_000)
	require.NoError(t, sess.Append(context.Background(), "Sent", sent, bytes.NewReader(body), int64(len(body))))
	small := testMessage(2, 100)
	require.NoError(t, sess.Append(context.Background(), "Sent", time.Time{}, bytes.NewReader(small), -1))

	got, _ := fetchAll(t, sess, serversync.FetchRequest{Folder: "Sent"})
	require.Len(t, got, 2)
	assert.Equal(t, body, got[0].body)
	assert.True(t, got[0].msg.ReceivedAt.Equal(sent))
	assert.Equal(t, small, got[1].body)

	_, err := helper.Select("Sent", &imap.SelectOptions{ReadOnly: true}).Wait()
	require.NoError(t, err)
	msgs, err := helper.Fetch(imap.SeqSetNum(1, 2), &imap.FetchOptions{Flags: true}).Collect()
	require.NoError(t, err)
	require.Len(t, msgs, 2)
	for _, m := range msgs {
		assert.Contains(t, m.Flags, imap.FlagSeen)
	}
}

func TestAppendShortReaderBreaksSession(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverConfig{})
	sess := ts.open(t, ts.target("alice"), nil)
	err := sess.Append(context.Background(), "INBOX", time.Time{}, strings.NewReader("too short"), 10_000)
	var ce *serversync.ConnectorError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, serversync.ScopeItem, ce.Scope)
	_, err = sess.Fetch(context.Background(), serversync.FetchRequest{}, func(*serversync.RemoteMessage) error { return nil })
	assert.ErrorIs(t, err, imapconn.ErrSessionBroken)
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverConfig{})
	loginOnly := newTestServer(t, serverConfig{noSASLPlain: true})
	other := newTestServer(t, serverConfig{otherNS: true, extraMailboxes: map[string][]string{"svc": {"shared/alice@example.test/INBOX"}}})

	password := func(user, pass string) auth.Credentials {
		return auth.Credentials{Kind: auth.KindPassword, Username: user, Password: auth.NewSecret(pass)}
	}
	impersonate := func(style auth.ImpersonationStyle, pass string) auth.Credentials {
		return auth.Credentials{Kind: auth.KindImpersonation, Username: masterUser, Password: auth.NewSecret(pass),
			Mailbox: "alice", Impersonation: style}
	}
	oauth := func(token string) auth.Credentials {
		return auth.Credentials{Kind: auth.KindOAuth, Username: "alice",
			TokenSource: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: token})}
	}
	delegate := auth.Credentials{Kind: auth.KindDelegation, Username: "svc", Password: auth.NewSecret("svc-pass"),
		Mailbox: "alice@example.test"}

	for _, tc := range []struct {
		name   string
		server *testServer
		creds  auth.Credentials
		code   string // "" = success
		kind   serversync.ErrorKind
		scope  serversync.AlertScope
		wire   string // must appear in what the client sent
	}{
		{name: "password SASL PLAIN", server: ts, creds: password("alice", "alice-pass"), wire: "AUTHENTICATE PLAIN"},
		{name: "password LOGIN fallback", server: loginOnly, creds: password("alice", "alice-pass"), wire: "LOGIN"},
		{name: "wrong password", server: ts, creds: password("alice", "nope"),
			code: serversync.CodeAuthFailed, kind: serversync.ErrorAuth, scope: serversync.ScopeMailbox},
		{name: "wrong password LOGIN", server: loginOnly, creds: password("alice", "nope"),
			code: serversync.CodeAuthFailed, kind: serversync.ErrorAuth, scope: serversync.ScopeMailbox},
		{name: "master user", server: ts, creds: impersonate(auth.ImpersonateMasterUser, masterPassword)},
		{name: "master user LOGIN", server: loginOnly, creds: impersonate(auth.ImpersonateMasterUser, masterPassword), wire: "alice*master"},
		{name: "wrong master password", server: ts, creds: impersonate(auth.ImpersonateMasterUser, "nope"),
			code: serversync.CodeAuthFailed, kind: serversync.ErrorAuth, scope: serversync.ScopeProfile},
		{name: "authzid", server: ts, creds: impersonate(auth.ImpersonateAuthzID, masterPassword)},
		{name: "authzid wrong password", server: ts, creds: impersonate(auth.ImpersonateAuthzID, "nope"),
			code: serversync.CodeAuthFailed, kind: serversync.ErrorAuth, scope: serversync.ScopeProfile},
		{name: "authzid without SASL PLAIN", server: loginOnly, creds: impersonate(auth.ImpersonateAuthzID, masterPassword),
			code: serversync.CodeAuthUnavailable, kind: serversync.ErrorPermanent, scope: serversync.ScopeProfile},
		{name: "OAuth XOAUTH2", server: ts, creds: oauth(validToken), wire: "AUTHENTICATE XOAUTH2"},
		{name: "OAuth refused token", server: ts, creds: oauth("expired-token"),
			code: serversync.CodeAuthFailed, kind: serversync.ErrorAuth, scope: serversync.ScopeMailbox},
		{name: "OAuth without XOAUTH2 or OAUTHBEARER", server: loginOnly, creds: oauth(validToken),
			code: serversync.CodeAuthUnavailable, kind: serversync.ErrorPermanent, scope: serversync.ScopeProfile},
		{name: "delegation", server: other, creds: delegate},
		{name: "delegation without other-users namespace", server: ts, creds: delegate,
			code: serversync.CodeDelegationUnavailable, kind: serversync.ErrorPermanent, scope: serversync.ScopeProfile},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := tc.server.target("alice")
			target.Credentials = tc.creds
			sess, err := imapconn.New(nil).OpenIncoming(context.Background(), target)
			if tc.code != "" {
				ce := requireConnectorError(t, err, tc.kind, tc.code)
				assert.Equal(t, tc.scope, ce.Scope)
				assert.NotContains(t, err.Error(), "pass", "no secret in errors")
				if tc.code == serversync.CodeAuthFailed && tc.creds.Kind != auth.KindOAuth {
					var imapErr *imap.Error
					require.ErrorAs(t, err, &imapErr)
				}
				return
			}
			require.NoError(t, err)
			defer sess.Close()
			if tc.wire != "" {
				assert.Contains(t, tc.server.wire.String(), tc.wire)
			}
			// Logged in as alice (or into her shared INBOX): see a message appended there.
			helperUser, folder := "alice", "INBOX"
			if tc.creds.Kind == auth.KindDelegation {
				helperUser, folder = "svc", "shared/alice@example.test/INBOX"
			}
			body := testMessage(1, 100)
			appendMessage(t, tc.server.client(t, helperUser), folder, body, time.Time{})
			got, res := fetchAll(t, sess, serversync.FetchRequest{})
			require.NotEmpty(t, got)
			assert.Equal(t, body, got[len(got)-1].body)
			assert.Equal(t, "", got[0].msg.Folder, "the logical folder, not the namespaced one")
			if tc.creds.Kind == auth.KindDelegation {
				// Append and Move map folders the same way.
				folders := sess.(serversync.FolderSession)
				require.NoError(t, folders.Move(context.Background(), "", got[0].msg.Ref, "Undeliverable"))
				assert.Equal(t, uint32(1), countMessages(t, tc.server.client(t, "svc"), "shared/alice@example.test/Undeliverable"))
				require.NoError(t, folders.Append(context.Background(), "Sent", time.Time{}, bytes.NewReader(body), int64(len(body))))
				assert.Equal(t, uint32(1), countMessages(t, tc.server.client(t, "svc"), "shared/alice@example.test/Sent"))
				_ = res
			}
		})
	}
}

func TestStartTLSRequiredButNotOffered(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverConfig{}) // InsecureAuth, no TLS config: no STARTTLS
	target := ts.target("alice")
	target.Endpoint.TLS = serversync.TLSStartTLS
	_, err := imapconn.New(nil).OpenIncoming(context.Background(), target)
	ce := requireConnectorError(t, err, serversync.ErrorPermanent, serversync.CodeTLSUnavailable)
	assert.Equal(t, serversync.ScopeProfile, ce.Scope)
	assert.Zero(t, ts.logins.Load(), "no login attempted")
	assert.NotContains(t, ts.wire.String(), "alice-pass")
	assert.NotContains(t, ts.wire.String(), "AUTHENTICATE")
	assert.NotContains(t, ts.wire.String(), "LOGIN ")
}

func TestPlaintextAuthRefused(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverConfig{})
	target := ts.target("alice")
	target.Endpoint.AllowPlaintextAuth = false
	_, err := imapconn.New(nil).OpenIncoming(context.Background(), target)
	requireConnectorError(t, err, serversync.ErrorPermanent, "plaintext_auth_refused")
	assert.ErrorIs(t, err, connector.ErrPlaintextAuth)
	assert.Zero(t, ts.logins.Load())
	assert.NotContains(t, ts.wire.String(), "AUTHENTICATE")
}

func TestTLS(t *testing.T) {
	t.Parallel()
	cert, certPEM := selfSignedCert(t)
	tlsConfig := &tls.Config{Certificates: []tls.Certificate{cert}}
	implicit := newTestServer(t, serverConfig{implicitTLS: tlsConfig})
	startTLS := newTestServer(t, serverConfig{startTLS: tlsConfig})

	for _, tc := range []struct {
		name   string
		server *testServer
		mode   serversync.TLSMode
	}{
		{"implicit", implicit, serversync.TLSImplicit},
		{"STARTTLS", startTLS, serversync.TLSStartTLS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := tc.server.target("alice")
			target.Endpoint.TLS = tc.mode
			target.Endpoint.AllowPlaintextAuth = false

			_, err := imapconn.New(nil).OpenIncoming(context.Background(), target)
			ce := requireConnectorError(t, err, serversync.ErrorPermanent, "tls_verify_failed")
			assert.Equal(t, serversync.ScopeProfile, ce.Scope)
			assert.Zero(t, tc.server.logins.Load())

			target.Endpoint.RootCAsPEM = certPEM
			sess, err := imapconn.New(nil).OpenIncoming(context.Background(), target)
			require.NoError(t, err)
			defer sess.Close()
			body := testMessage(1, 3000)
			require.NoError(t, sess.(serversync.FolderSession).Append(context.Background(), "INBOX", time.Time{}, bytes.NewReader(body), int64(len(body))))
			got, _ := fetchAll(t, sess, serversync.FetchRequest{})
			require.Len(t, got, 1)
			assert.Equal(t, body, got[0].body)
		})
	}
}

func TestDialErrors(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	target := &serversync.Target{Endpoint: serversync.Endpoint{Host: "127.0.0.1", Port: port, TLS: serversync.TLSNone, Timeout: time.Second}}
	_, err = imapconn.New(nil).OpenIncoming(context.Background(), target)
	requireConnectorError(t, err, serversync.ErrorTransient, "network")
}

// A server that greets and then never answers: every wait is bounded by the
// endpoint timeout, and a canceled context ends a wait at once.
func TestUnresponsiveServer(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = conn.Write([]byte("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] silent server\r\n"))
			t.Cleanup(func() { _ = conn.Close() })
		}
	}()
	target := &serversync.Target{
		Endpoint: serversync.Endpoint{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, TLS: serversync.TLSNone,
			AllowPlaintextAuth: true, Timeout: 300 * time.Millisecond},
		Credentials: auth.Credentials{Kind: auth.KindPassword, Username: "alice", Password: auth.NewSecret("x")},
	}
	start := time.Now()
	_, err = imapconn.New(nil).OpenIncoming(context.Background(), target)
	requireConnectorError(t, err, serversync.ErrorTransient, "network")
	assert.Less(t, time.Since(start), 5*time.Second)

	target.Endpoint.Timeout = time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = imapconn.New(nil).OpenIncoming(ctx, target)
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 5*time.Second)
}

func TestCloseIdempotent(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverConfig{})
	sess, err := imapconn.New(nil).OpenIncoming(context.Background(), ts.target("alice"))
	require.NoError(t, err)
	require.NoError(t, sess.Close())
	require.NoError(t, sess.Close())
	_, err = sess.Fetch(context.Background(), serversync.FetchRequest{}, func(*serversync.RemoteMessage) error { return nil })
	require.Error(t, err)
	assert.Contains(t, ts.wire.String(), "LOGOUT")
}

func TestNoGoroutineLeak(t *testing.T) {
	// Not parallel: it counts the process's goroutines.
	ts := newTestServer(t, serverConfig{})
	helper := ts.client(t, "alice")
	for i := range 30 {
		appendMessage(t, helper, "INBOX", testMessage(i, 1000), time.Time{})
	}
	time.Sleep(0)
	before := runtime.NumGoroutine()

	conn := imapconn.New(&imapconn.Options{FetchBatchSize: 3, MaxParallelFetch: 3})
	for range 3 {
		sess, err := conn.OpenIncoming(context.Background(), ts.target("alice"))
		require.NoError(t, err)
		_, err = sess.Fetch(context.Background(), serversync.FetchRequest{}, func(*serversync.RemoteMessage) error { return nil })
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		err = sess.(serversync.IdleSession).WaitForChange(ctx, "INBOX")
		cancel()
		require.ErrorIs(t, err, context.DeadlineExceeded)
		ctx, cancel = context.WithCancel(context.Background())
		_, err = sess.Fetch(ctx, serversync.FetchRequest{}, func(*serversync.RemoteMessage) error {
			cancel()
			return errors.New("stop")
		})
		require.Error(t, err)
		require.NoError(t, sess.Close())
	}

	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines before, %d after:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}

func TestGreetingByeIsTransient(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = conn.Write([]byte("* BYE Too many connections, try later\r\n"))
			_ = conn.Close()
		}
	}()
	target := &serversync.Target{
		Endpoint: serversync.Endpoint{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, TLS: serversync.TLSNone,
			AllowPlaintextAuth: true, Timeout: 5 * time.Second},
		Credentials: auth.Credentials{Kind: auth.KindPassword, Username: "alice", Password: auth.NewSecret("x")},
	}
	_, err = imapconn.New(nil).OpenIncoming(context.Background(), target)
	require.Error(t, err)
	class := serversync.ClassifyError(err)
	assert.False(t, class.Internal(), "classified by the connector: %v", err)
	assert.Equal(t, serversync.ErrorTransient, class.Kind, "%v", err)

	target.Endpoint.TLS = serversync.TLSDefault
	_, err = imapconn.New(nil).OpenIncoming(context.Background(), target)
	requireConnectorError(t, err, serversync.ErrorPermanent, "bad_target")
}
