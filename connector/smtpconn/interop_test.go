package smtpconn

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/internal/mailtest"
)

// This package's own Dovecot users (scripts/mailservers makes them): go test runs
// packages at once, and mail another package delivers must not land in these INBOXes.
const (
	bob   = "smtp-bob"
	carol = "smtp-carol"
	dave  = "smtp-dave"
)

// Interop tests run against the real Postfix (and Dovecot behind it) that
// scripts/mailservers starts.

// waitForDelivery polls the recipient's Maildir until a message holding marker
// arrives, and returns it.
func waitForDelivery(t *testing.T, e *mailtest.Env, user, marker string) []byte {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		for _, sub := range []string{"new", "cur"} {
			files, _ := filepath.Glob(filepath.Join(e.Maildir, user, sub, "*"))
			for _, f := range files {
				if b, err := os.ReadFile(f); err == nil && strings.Contains(string(b), marker) {
					return b
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("message %s never reached %s's mailbox", marker, user)
	return nil
}

func interopSend(t *testing.T, ep serversync.Endpoint, creds auth.Credentials, from, to string) string {
	t.Helper()
	ctx := context.Background()
	s, err := New(nil).OpenOutgoing(ctx, &serversync.Target{EmailAddress: from, Endpoint: ep, Credentials: creds})
	require.NoError(t, err)
	defer s.Close()
	id := fmt.Sprintf("<interop-%d@serversync.test>", time.Now().UnixNano())
	msg := "From: " + from + "\r\nTo: " + to + "\r\nSubject: interop\r\nMessage-ID: " + id + "\r\n\r\nHello through Postfix.\r\n"
	require.NoError(t, s.Send(ctx, serversync.Envelope{From: from, To: []string{to}}, strings.NewReader(msg)))
	return id
}

func TestInteropSubmission(t *testing.T) {
	e := mailtest.Load(t)
	bobs := auth.Credentials{Kind: auth.KindPassword, Username: e.Login(bob), Password: auth.NewSecret(mailtest.Password(bob))}
	for _, service := range []mailtest.Service{mailtest.Submission, mailtest.Submissions} {
		t.Run(string(service), func(t *testing.T) {
			id := interopSend(t, e.Endpoint(service), bobs, e.Login(bob), e.Login(carol))
			waitForDelivery(t, e, e.Login(carol), id)
		})
	}
}

func TestInteropImpersonation(t *testing.T) {
	e := mailtest.Load(t)
	master := auth.Credentials{Kind: auth.KindImpersonation, Impersonation: auth.ImpersonateMasterUser,
		Username: e.MasterUser, Password: auth.NewSecret(e.MasterPassword), Mailbox: e.Login(carol)}
	id := interopSend(t, e.Endpoint(mailtest.Submissions), master, e.Login(carol), e.Login(dave))
	waitForDelivery(t, e, e.Login(dave), id)
}

func TestInteropFailures(t *testing.T) {
	e := mailtest.Load(t)
	ep := e.Endpoint(mailtest.Submission)
	ctx := context.Background()
	_, err := New(nil).OpenOutgoing(ctx, &serversync.Target{Endpoint: ep,
		Credentials: auth.Credentials{Kind: auth.KindPassword, Username: e.Login(bob), Password: auth.NewSecret("not-bobs-Password")}})
	var ce *serversync.ConnectorError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, serversync.ErrorAuth, ce.Kind)
	assert.NotContains(t, err.Error(), "not-bobs-Password")

	noTLS := e.Endpoint(mailtest.SMTPNoTLS)
	_, err = New(nil).OpenOutgoing(ctx, &serversync.Target{Endpoint: noTLS,
		Credentials: auth.Credentials{Kind: auth.KindPassword, Username: e.Login(bob), Password: auth.NewSecret(mailtest.Password(bob))}})
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "tls_unavailable", ce.Code)

	steps := New(nil).Probe(ctx, &serversync.Target{EmailAddress: e.Login(bob), Endpoint: ep,
		Credentials: auth.Credentials{Kind: auth.KindPassword, Username: e.Login(bob), Password: auth.NewSecret(mailtest.Password(bob))}})
	require.NotEmpty(t, steps)
	for _, s := range steps {
		assert.True(t, s.OK, "%s: %v", s.Name, s.Err)
	}
	assert.Equal(t, "rcpt-to", steps[len(steps)-1].Name)
}

// Test Connection end to end: a profile and mailbox resolved to the real Postfix.
func TestInteropTestConnection(t *testing.T) {
	e := mailtest.Load(t)
	ep := e.Endpoint(mailtest.Submission)
	p := &serversync.Profile{ID: "p", ServerType: serversync.ServerTypeIMAPSMTP,
		IncomingServer: "localhost", OutgoingServer: "localhost", OutgoingPort: ep.Port,
		OutgoingTLS: serversync.TLSStartTLS, ExtraRootCAsPEM: ep.RootCAsPEM}
	serversync.NormalizeProfile(p)
	m := &serversync.Mailbox{ID: "m", EmailAddress: e.Login(bob), Password: auth.NewSecret(mailtest.Password(bob))}
	report := serversync.TestConnection(context.Background(), p, m, serversync.DefaultOrgSettings(), nil, New(nil))
	var names []string
	for _, s := range report.Outgoing {
		names = append(names, s.Name)
		assert.True(t, s.OK, "%s: %v", s.Name, s.Err)
	}
	assert.Equal(t, []string{"resolve", "connect", "tls", "authenticate", "mail-from", "rcpt-to"}, names)
	assert.True(t, report.OK())
}
