package pop3conn_test

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/connectortest"
	"github.com/serversync/serversync/connector/pop3conn"
	"github.com/serversync/serversync/internal/mailtest"
	"github.com/serversync/serversync/internal/pop3"
)

// This package's own Dovecot users (scripts/mailservers makes them): go test runs
// packages at once, and mail another package delivers must not land in these INBOXes.
const (
	carol = "pop3-carol"
)

func TestConformanceInProcess(t *testing.T) {
	connectortest.RunIncoming(t, connectortest.Incoming{
		Connector: pop3conn.New(nil),
		NewMailbox: func(t *testing.T) connectortest.Mailbox {
			s := newMemServer(t, nil)
			return connectortest.Mailbox{
				Target:  s.target("alice", "alice-pass", serversync.TLSStartTLS),
				Deliver: func(t *testing.T, raw []byte) { s.deliver("alice", raw) },
			}
		},
	})
}

// conformanceUser hands each Dovecot subtest its own bulk user, so "a fresh, empty
// mailbox" holds on the shared server (the IMAP suite uses users 11–20).
var conformanceUser atomic.Int32

func TestConformanceDovecot(t *testing.T) {
	e := mailtest.Load(t)
	for _, service := range []mailtest.Service{mailtest.POP3S, mailtest.POP3} {
		t.Run(string(service), func(t *testing.T) {
			connectortest.RunIncoming(t, connectortest.Incoming{
				Connector: pop3conn.New(nil),
				NewMailbox: func(t *testing.T) connectortest.Mailbox {
					user := fmt.Sprintf("user%04d", 1+conformanceUser.Add(1)%5)
					c := e.IMAPClient(t, user)
					mailtest.Empty(t, c)
					return connectortest.Mailbox{
						Target:  e.Target(service, user),
						Deliver: func(t *testing.T, raw []byte) { mailtest.Append(t, c, "INBOX", raw) },
					}
				},
			})
		})
	}
}

// fetchAll runs one Fetch and returns the bodies and the result.
func fetchAll(t *testing.T, s serversync.IncomingSession, req serversync.FetchRequest) ([]string, []*serversync.RemoteMessage, serversync.FetchResult) {
	t.Helper()
	var bodies []string
	var msgs []*serversync.RemoteMessage
	res, err := s.Fetch(context.Background(), req, func(m *serversync.RemoteMessage) error {
		b, err := io.ReadAll(m.Body)
		bodies = append(bodies, string(b))
		msgs = append(msgs, m)
		return err
	})
	require.NoError(t, err)
	return bodies, msgs, res
}

func open(t *testing.T, target *serversync.Target) serversync.IncomingSession {
	t.Helper()
	s, err := pop3conn.New(nil).OpenIncoming(context.Background(), target)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func requireCode(t *testing.T, err error, kind serversync.ErrorKind, code string) *serversync.ConnectorError {
	t.Helper()
	var ce *serversync.ConnectorError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, kind, ce.Kind, "kind of %v", err)
	assert.Equal(t, code, ce.Code, "code of %v", err)
	return ce
}

func TestSinceSkipsOlderMail(t *testing.T) {
	srv := newMemServer(t, nil)
	old := "Subject: old\r\nDate: Mon, 02 Nov 2020 10:00:00 +0000\r\n\r\nold\r\n"
	recent := "Subject: new\r\nDate: Mon, 02 Nov 2026 10:00:00 +0000\r\n\r\nnew\r\n"
	undated := "Subject: undated\r\n\r\nno date: kept\r\n"
	for _, m := range []string{old, recent, undated} {
		srv.deliver("alice", []byte(m))
	}
	s := open(t, srv.target("alice", "alice-pass", serversync.TLSStartTLS))
	bodies, msgs, res := fetchAll(t, s, serversync.FetchRequest{Since: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)})
	assert.Equal(t, []string{recent, undated}, bodies)
	assert.Equal(t, time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC), msgs[0].ReceivedAt.UTC())
	assert.Equal(t, msgs[1].Cursor, res.Cursor, "the cursor passes skipped mail too")
}

func TestNoFoldersInPOP3(t *testing.T) {
	srv := newMemServer(t, nil)
	srv.deliver("alice", connectortest.Message(1, "x"))
	s := open(t, srv.target("alice", "alice-pass", serversync.TLSStartTLS))
	_, msgs, _ := fetchAll(t, s, serversync.FetchRequest{})
	require.Len(t, msgs, 1)

	_, hasFolders := s.(serversync.FolderSession)
	assert.False(t, hasFolders, "nothing can be moved or appended in POP3")
	_, err := s.Fetch(context.Background(), serversync.FetchRequest{Folder: "Sent"}, nil)
	requireCode(t, err, serversync.ErrorPermanent, serversync.CodeFolderNotFound)
	err = s.Delete(context.Background(), "", "no-such-uidl")
	requireCode(t, err, serversync.ErrorPermanent, serversync.CodeBadRef)
}

func TestSTLSNeverSkipped(t *testing.T) {
	srv := newMemServer(t, func(s *memServer) { s.noSTLS = true })
	_, err := pop3conn.New(nil).OpenIncoming(context.Background(), srv.target("alice", "alice-pass", serversync.TLSStartTLS))
	ce := requireCode(t, err, serversync.ErrorPermanent, serversync.CodeTLSUnavailable)
	assert.Equal(t, serversync.ScopeProfile, ce.Scope)
	assert.Zero(t, srv.logins, "no credentials sent")
}

func TestPlaintextAuthRefused(t *testing.T) {
	srv := newMemServer(t, nil)
	target := srv.target("alice", "alice-pass", serversync.TLSNone)
	target.Endpoint.AllowPlaintextAuth = false
	_, err := pop3conn.New(nil).OpenIncoming(context.Background(), target)
	requireCode(t, err, serversync.ErrorPermanent, "plaintext_auth_refused")
	assert.Zero(t, srv.logins)

	target.Endpoint.AllowPlaintextAuth = true // the org allows it
	open(t, target)
	assert.Equal(t, 1, srv.logins)
}

func TestWrongPassword(t *testing.T) {
	srv := newMemServer(t, nil)
	_, err := pop3conn.New(nil).OpenIncoming(context.Background(), srv.target("alice", "Not-Alices-Secret", serversync.TLSStartTLS))
	ce := requireCode(t, err, serversync.ErrorAuth, serversync.CodeAuthFailed)
	assert.Equal(t, serversync.ScopeMailbox, ce.Scope)
	var perr *pop3.Error
	require.ErrorAs(t, err, &perr, "the protocol error stays reachable")
	assert.Equal(t, "AUTH", perr.Code)
	assert.NotContains(t, fmt.Sprintf("%v %+v", err, err), "Not-Alices-Secret")
}

func TestImpersonationAndDelegation(t *testing.T) {
	srv := newMemServer(t, nil)
	srv.deliver("alice", connectortest.Message(1, "for alice"))
	for _, style := range []auth.ImpersonationStyle{auth.ImpersonateAuthzID, auth.ImpersonateMasterUser} {
		t.Run(cmp.Or(string(style), "AuthzID"), func(t *testing.T) {
			target := srv.target("alice", "", serversync.TLSStartTLS)
			target.Credentials = auth.Credentials{Kind: auth.KindImpersonation, Impersonation: style,
				Username: "master", Password: auth.NewSecret("master-pass"), Mailbox: "alice"}
			bodies, _, _ := fetchAll(t, open(t, target), serversync.FetchRequest{})
			require.Len(t, bodies, 1)
			assert.Contains(t, bodies[0], "for alice")

			target.Credentials.Password = auth.NewSecret("wrong")
			_, err := pop3conn.New(nil).OpenIncoming(context.Background(), target)
			ce := requireCode(t, err, serversync.ErrorAuth, serversync.CodeAuthFailed)
			assert.Equal(t, serversync.ScopeProfile, ce.Scope, "a service account's failure hits every mailbox")
		})
	}
	target := srv.target("alice", "", serversync.TLSStartTLS)
	target.Credentials = auth.Credentials{Kind: auth.KindDelegation, Username: "master", Password: auth.NewSecret("master-pass"), Mailbox: "alice"}
	_, err := pop3conn.New(nil).OpenIncoming(context.Background(), target)
	requireCode(t, err, serversync.ErrorPermanent, serversync.CodeDelegationUnavailable)
}

func TestCanceledFetch(t *testing.T) {
	srv := newMemServer(t, nil)
	srv.deliver("alice", connectortest.Message(1, strings.Repeat("long line ", 50_000)))
	s := open(t, srv.target("alice", "alice-pass", serversync.TLSStartTLS))
	ctx, cancel := context.WithCancel(context.Background())
	_, err := s.Fetch(ctx, serversync.FetchRequest{}, func(m *serversync.RemoteMessage) error {
		cancel()
		_, err := io.ReadAll(m.Body)
		return err
	})
	requireCode(t, err, serversync.ErrorTransient, serversync.CodeCanceled)
	require.Error(t, s.Delete(context.Background(), "", "uid-000001"), "a broken connection is not used again")
	bodies, _, _ := fetchAll(t, s, serversync.FetchRequest{})
	assert.Len(t, bodies, 1, "the next Fetch logs in again")
}

func TestProbe(t *testing.T) {
	srv := newMemServer(t, nil)
	steps := pop3conn.New(nil).Probe(context.Background(), srv.target("alice", "alice-pass", serversync.TLSStartTLS))
	var names []string
	for _, s := range steps {
		names = append(names, s.Name)
		assert.True(t, s.OK, "%s: %v", s.Name, s.Err)
	}
	assert.Equal(t, []string{"connect", "tls", "authenticate", "open-inbox"}, names)

	steps = pop3conn.New(nil).Probe(context.Background(), srv.target("alice", "wrong", serversync.TLSStartTLS))
	last := steps[len(steps)-1]
	assert.Equal(t, "authenticate", last.Name)
	assert.False(t, last.OK)
}

func TestInteropMasterUser(t *testing.T) {
	e := mailtest.Load(t)
	c := e.IMAPClient(t, carol)
	raw := connectortest.Message(7, "for carol, read by the master user")
	mailtest.Append(t, c, "INBOX", raw)

	target := e.Target(mailtest.POP3S, carol)
	target.Credentials = auth.Credentials{Kind: auth.KindImpersonation, Impersonation: auth.ImpersonateMasterUser,
		Username: e.MasterUser, Password: auth.NewSecret(e.MasterPassword), Mailbox: e.Login(carol)}
	bodies, _, _ := fetchAll(t, open(t, target), serversync.FetchRequest{})
	assert.Contains(t, bodies, string(raw))

	target.Credentials.Password = auth.NewSecret("not-the-master-password")
	_, err := pop3conn.New(nil).OpenIncoming(context.Background(), target)
	requireCode(t, err, serversync.ErrorAuth, serversync.CodeAuthFailed)

	target = e.Target(mailtest.POP3, carol)
	target.Credentials.Password = auth.NewSecret("wrong")
	_, err = pop3conn.New(nil).OpenIncoming(context.Background(), target)
	requireCode(t, err, serversync.ErrorAuth, serversync.CodeAuthFailed)
}
