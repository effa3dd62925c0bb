package ews_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/ews"
	"github.com/serversync/serversync/connector/ews/ewstest"
)

const (
	alice = "alice@example.test"
	bob   = "bob@example.test"
	carol = "carol@example.test"
	svc   = "svc-crm"
)

// fixture is a fake with alice and bob (their own logins), carol (no login of
// her own) and a service account, and a connector that reaches the fake.
type fixture struct {
	srv  *ewstest.Server
	conn *ews.Connector
}

func newFixture(t *testing.T, opts *ews.Options) *fixture {
	t.Helper()
	srv, err := ewstest.NewServer(nil)
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	srv.AddUser("alice", "alice-pw", alice)
	srv.AddUser("bob", "bob-pw", bob)
	srv.AddMailbox(carol)
	srv.AddUser(svc, "svc-pw", "")
	o := ews.Options{}
	if opts != nil {
		o = *opts
	}
	client := srv.Client()
	t.Cleanup(client.CloseIdleConnections)
	o.HTTPClient = client
	o.Logger = slog.New(slog.DiscardHandler)
	return &fixture{srv: srv, conn: ews.New(&o)}
}

// target is alice logging in as herself.
func (f *fixture) target(address string, creds auth.Credentials) *serversync.Target {
	return &serversync.Target{MailboxID: "mb-" + address, EmailAddress: address, Credentials: creds,
		Endpoint: serversync.Endpoint{URL: f.srv.EWSURL(), TLS: serversync.TLSImplicit, Timeout: 10 * time.Second}}
}

func password(user, pw string) auth.Credentials {
	return auth.Credentials{Kind: auth.KindPassword, Username: user, Password: auth.NewSecret(pw)}
}

func impersonation(mailbox string) auth.Credentials {
	return auth.Credentials{Kind: auth.KindImpersonation, Username: svc, Password: auth.NewSecret("svc-pw"), Mailbox: mailbox}
}

func delegation(mailbox string) auth.Credentials {
	return auth.Credentials{Kind: auth.KindDelegation, Username: svc, Password: auth.NewSecret("svc-pw"), Mailbox: mailbox}
}

func mime(from, to, subject string) []byte {
	return fmt.Appendf(nil, "From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nMessage-ID: <%s@example.test>\r\n\r\nhello %s\r\n", from, to, subject, subject, subject)
}

func deliver(t *testing.T, srv *ewstest.Server, address string, subjects ...string) {
	t.Helper()
	for _, s := range subjects {
		_, err := srv.Deliver(address, "inbox", mime("dave@example.test", address, s), time.Now())
		require.NoError(t, err)
	}
}

type got struct {
	refs     []string
	bodies   []string
	cursors  [][]byte
	received []time.Time
}

// fetch opens a session, fetches from cursor and closes.
func (f *fixture) fetch(t *testing.T, target *serversync.Target, cursor []byte) (*got, serversync.FetchResult, error) {
	t.Helper()
	ctx := context.Background()
	sess, err := f.conn.OpenIncoming(ctx, target)
	require.NoError(t, err)
	defer sess.Close()
	g := &got{}
	res, err := sess.Fetch(ctx, serversync.FetchRequest{Cursor: cursor}, func(m *serversync.RemoteMessage) error {
		body, err := io.ReadAll(m.Body)
		if err != nil {
			return err
		}
		g.refs = append(g.refs, m.Ref)
		g.bodies = append(g.bodies, string(body))
		g.cursors = append(g.cursors, m.Cursor)
		g.received = append(g.received, m.ReceivedAt)
		return nil
	})
	return g, res, err
}

func (g *got) subjects() []string {
	var out []string
	for _, b := range g.bodies {
		i := bytes.Index([]byte(b), []byte("Subject: "))
		j := bytes.Index([]byte(b[i:]), []byte("\r\n"))
		out = append(out, b[i+9:i+j])
	}
	return out
}

// code returns the ConnectorError's class of err.
func code(t *testing.T, err error) *serversync.ConnectorError {
	t.Helper()
	var ce *serversync.ConnectorError
	require.True(t, errors.As(err, &ce), "not a ConnectorError: %v", err)
	return ce
}
