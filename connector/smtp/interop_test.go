package smtp

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
)

// Interop tests run against the real Postfix (and Dovecot behind it) that
// scripts/mailservers starts.

func interopEndpoint(t *testing.T, portVar string, mode serversync.TLSMode) serversync.Endpoint {
	t.Helper()
	if os.Getenv("SERVERSYNC_INTEROP") != "1" {
		t.Skip("SERVERSYNC_INTEROP not set: run scripts/mailservers start and source its env file to test against real Postfix")
	}
	ca, err := os.ReadFile(os.Getenv("SERVERSYNC_INTEROP_CA"))
	require.NoError(t, err)
	port, err := strconv.Atoi(os.Getenv(portVar))
	require.NoError(t, err, portVar)
	return serversync.Endpoint{Host: os.Getenv("SERVERSYNC_INTEROP_HOST"), Port: port, TLS: mode, RootCAsPEM: string(ca), Timeout: 10 * time.Second}
}

func interopUser(name string) string { return name + "@" + os.Getenv("SERVERSYNC_INTEROP_DOMAIN") }

// waitForDelivery polls the recipient's Maildir until a message holding marker arrives.
func waitForDelivery(t *testing.T, user, marker string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		for _, sub := range []string{"new", "cur"} {
			files, _ := filepath.Glob(filepath.Join(os.Getenv("SERVERSYNC_INTEROP_MAILDIR"), user, sub, "*"))
			for _, f := range files {
				if b, err := os.ReadFile(f); err == nil && strings.Contains(string(b), marker) {
					return
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("message %s never reached %s's mailbox", marker, user)
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
	bob := auth.Credentials{Kind: auth.KindPassword, Username: interopUser("bob"), Password: auth.NewSecret("bob-pass")}
	for _, tc := range []struct {
		name    string
		portVar string
		mode    serversync.TLSMode
	}{
		{"STARTTLS", "SERVERSYNC_INTEROP_SUBMISSION_PORT", serversync.TLSStartTLS},
		{"implicit TLS", "SERVERSYNC_INTEROP_SUBMISSIONS_PORT", serversync.TLSImplicit},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ep := interopEndpoint(t, tc.portVar, tc.mode)
			id := interopSend(t, ep, bob, interopUser("bob"), interopUser("carol"))
			waitForDelivery(t, interopUser("carol"), id)
		})
	}
}

func TestInteropImpersonation(t *testing.T) {
	ep := interopEndpoint(t, "SERVERSYNC_INTEROP_SUBMISSIONS_PORT", serversync.TLSImplicit)
	master := auth.Credentials{Kind: auth.KindImpersonation, Impersonation: auth.ImpersonateMasterUser,
		Username: os.Getenv("SERVERSYNC_INTEROP_MASTER_USER"), Password: auth.NewSecret(os.Getenv("SERVERSYNC_INTEROP_MASTER_PASSWORD")),
		Mailbox: interopUser("carol")}
	id := interopSend(t, ep, master, interopUser("carol"), interopUser("dave"))
	waitForDelivery(t, interopUser("dave"), id)
}

func TestInteropFailures(t *testing.T) {
	ep := interopEndpoint(t, "SERVERSYNC_INTEROP_SUBMISSION_PORT", serversync.TLSStartTLS)
	ctx := context.Background()
	_, err := New(nil).OpenOutgoing(ctx, &serversync.Target{Endpoint: ep,
		Credentials: auth.Credentials{Kind: auth.KindPassword, Username: interopUser("bob"), Password: auth.NewSecret("not-bobs-Password")}})
	var ce *serversync.ConnectorError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, serversync.ErrorAuth, ce.Kind)
	assert.NotContains(t, err.Error(), "not-bobs-Password")

	noTLS := interopEndpoint(t, "SERVERSYNC_INTEROP_SMTP_NOTLS_PORT", serversync.TLSStartTLS)
	_, err = New(nil).OpenOutgoing(ctx, &serversync.Target{Endpoint: noTLS,
		Credentials: auth.Credentials{Kind: auth.KindPassword, Username: interopUser("bob"), Password: auth.NewSecret("bob-pass")}})
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "tls_unavailable", ce.Code)

	steps := New(nil).Probe(ctx, &serversync.Target{EmailAddress: interopUser("bob"), Endpoint: ep,
		Credentials: auth.Credentials{Kind: auth.KindPassword, Username: interopUser("bob"), Password: auth.NewSecret("bob-pass")}})
	require.NotEmpty(t, steps)
	for _, s := range steps {
		assert.True(t, s.OK, "%s: %v", s.Name, s.Err)
	}
	assert.Equal(t, "rcpt-to", steps[len(steps)-1].Name)
}

// Test Connection end to end: a profile and mailbox resolved to the real Postfix.
func TestInteropTestConnection(t *testing.T) {
	ep := interopEndpoint(t, "SERVERSYNC_INTEROP_SUBMISSION_PORT", serversync.TLSStartTLS)
	p := &serversync.Profile{ID: "p", ServerType: serversync.ServerTypeIMAPSMTP,
		IncomingServer: "localhost", OutgoingServer: "localhost", OutgoingPort: ep.Port,
		OutgoingTLS: serversync.TLSStartTLS, ExtraRootCAsPEM: ep.RootCAsPEM}
	serversync.NormalizeProfile(p)
	m := &serversync.Mailbox{ID: "m", EmailAddress: interopUser("bob"), Password: auth.NewSecret("bob-pass")}
	report := serversync.TestConnection(context.Background(), p, m, serversync.DefaultOrgSettings(), nil, New(nil))
	var names []string
	for _, s := range report.Outgoing {
		names = append(names, s.Name)
		assert.True(t, s.OK, "%s: %v", s.Name, s.Err)
	}
	assert.Equal(t, []string{"resolve", "connect", "tls", "authenticate", "mail-from", "rcpt-to"}, names)
	assert.True(t, report.OK())
}
