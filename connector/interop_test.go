package connector_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/imapconn"
	"github.com/serversync/serversync/connector/pop3conn"
	"github.com/serversync/serversync/connector/smtpconn"
	"github.com/serversync/serversync/internal/mailtest"
)

// This package's own Dovecot users (scripts/mailservers makes them): go test runs
// packages at once, and mail another package delivers must not land in these INBOXes.
const (
	bob  = "connector-bob"
	dave = "connector-dave"
)

// The interop proof: one message travels Postfix (submission with STARTTLS, SASL
// through Dovecot) → LMTP → Dovecot, and our IMAP and POP3 connectors read the very
// same bytes; a Dovecot master user reads it by impersonation, and a wrong master
// password is an authentication error on every protocol.
func TestInteropProof(t *testing.T) {
	e := mailtest.Load(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	messageID := fmt.Sprintf("proof-%d@serversync.test", time.Now().UnixNano())
	submitted := []byte("From: Bob <" + e.Login(bob) + ">\r\nTo: Dave <" + e.Login(dave) + ">\r\n" +
		"Subject: =?UTF-8?Q?interop_proof_=E2=9C=93?=\r\nMessage-ID: <" + messageID + ">\r\n" +
		"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" +
		"Sent with Bob's credentials, read as Dave.\r\n")

	out, err := smtpconn.New(nil).OpenOutgoing(ctx, e.Target(mailtest.Submission, bob))
	require.NoError(t, err)
	require.NoError(t, out.Send(ctx, serversync.Envelope{From: e.Login(bob), To: []string{e.Login(dave)}}, bytes.NewReader(submitted)))
	require.NoError(t, out.Close())

	viaIMAP := waitFor(t, ctx, imapconn.New(nil), e.Target(mailtest.IMAPS, dave), messageID)
	viaPOP3 := waitFor(t, ctx, pop3conn.New(nil), e.Target(mailtest.POP3S, dave), messageID)
	assert.Equal(t, string(viaIMAP), string(viaPOP3), "IMAP and POP3 deliver identical bytes")
	assert.True(t, bytes.HasSuffix(viaIMAP, submitted), "Postfix only prepended trace headers:\n%s", viaIMAP)

	master := auth.Credentials{Kind: auth.KindImpersonation, Impersonation: auth.ImpersonateMasterUser,
		Username: e.MasterUser, Password: auth.NewSecret(e.MasterPassword), Mailbox: e.Login(dave)}
	for _, tc := range []struct {
		name      string
		connector serversync.IncomingConnector
		service   mailtest.Service
	}{
		{"IMAP", imapconn.New(nil), mailtest.IMAPS},
		{"POP3", pop3conn.New(nil), mailtest.POP3S},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := e.Target(tc.service, dave)
			target.Credentials = master
			got := waitFor(t, ctx, tc.connector, target, messageID)
			assert.Equal(t, string(viaIMAP), string(got), "the master user reads Dave's mailbox")

			target.Credentials.Password = auth.NewSecret("not-the-master-password")
			_, err := tc.connector.OpenIncoming(ctx, target)
			requireAuthError(t, err)
		})
	}
	t.Run("SMTP", func(t *testing.T) {
		target := e.Target(mailtest.Submissions, dave)
		target.Credentials = master
		target.Credentials.Password = auth.NewSecret("not-the-master-password")
		_, err := smtpconn.New(nil).OpenOutgoing(ctx, target)
		requireAuthError(t, err)
	})
}

func requireAuthError(t *testing.T, err error) {
	t.Helper()
	var ce *serversync.ConnectorError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, serversync.ErrorAuth, ce.Kind, "%v", err)
	assert.Equal(t, serversync.ScopeProfile, ce.Scope, "a service account's failure concerns the whole profile")
	assert.NotContains(t, fmt.Sprintf("%v %+v", err, err), "not-the-master-password")
}

// waitFor fetches target's inbox until the message with messageID is there and
// returns its bytes.
func waitFor(t *testing.T, ctx context.Context, c serversync.IncomingConnector, target *serversync.Target, messageID string) []byte {
	t.Helper()
	s, err := c.OpenIncoming(ctx, target)
	require.NoError(t, err)
	defer s.Close()
	for ctx.Err() == nil {
		var found []byte
		_, err := s.Fetch(ctx, serversync.FetchRequest{}, func(m *serversync.RemoteMessage) error {
			b, err := io.ReadAll(m.Body)
			if bytes.Contains(b, []byte("<"+messageID+">")) {
				found = b
			}
			return err
		})
		require.NoError(t, err)
		if found != nil {
			return found
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s never arrived", messageID)
	return nil
}

// A profile pointed at the port of another protocol on real Dovecot and Postfix
// (an IMAPS profile at the POP3S port…) fails permanently for the whole profile,
// saying to check the port and server type; a TLS profile at a plaintext port
// says the server did not answer with TLS. Nothing is retried as a network error.
func TestInteropWrongPort(t *testing.T) {
	e := mailtest.Load(t)
	type client struct {
		name string
		open func(ctx context.Context, target *serversync.Target) error
	}
	imapClient := client{"IMAP", func(ctx context.Context, target *serversync.Target) error {
		s, err := imapconn.New(nil).OpenIncoming(ctx, target)
		if err == nil {
			_ = s.Close()
		}
		return err
	}}
	pop3Client := client{"POP3", func(ctx context.Context, target *serversync.Target) error {
		s, err := pop3conn.New(nil).OpenIncoming(ctx, target)
		if err == nil {
			_ = s.Close()
		}
		return err
	}}
	smtpClient := client{"SMTP", func(ctx context.Context, target *serversync.Target) error {
		s, err := smtpconn.New(nil).OpenOutgoing(ctx, target)
		if err == nil {
			_ = s.Close()
		}
		return err
	}}
	for _, tc := range []struct {
		client client
		mode   serversync.TLSMode
		at     mailtest.Service
		code   string
	}{
		{imapClient, serversync.TLSImplicit, mailtest.POP3S, serversync.CodeProtocolMismatch},
		{imapClient, serversync.TLSImplicit, mailtest.Submissions, serversync.CodeProtocolMismatch},
		{imapClient, serversync.TLSStartTLS, mailtest.POP3, serversync.CodeProtocolMismatch},
		{imapClient, serversync.TLSStartTLS, mailtest.Submission, serversync.CodeProtocolMismatch},
		{imapClient, serversync.TLSImplicit, mailtest.IMAP, serversync.CodeTLSMismatch},
		{pop3Client, serversync.TLSImplicit, mailtest.IMAPS, serversync.CodeProtocolMismatch},
		{pop3Client, serversync.TLSImplicit, mailtest.Submissions, serversync.CodeProtocolMismatch},
		{pop3Client, serversync.TLSStartTLS, mailtest.IMAP, serversync.CodeProtocolMismatch},
		{pop3Client, serversync.TLSImplicit, mailtest.POP3, serversync.CodeTLSMismatch},
		{smtpClient, serversync.TLSImplicit, mailtest.IMAPS, serversync.CodeProtocolMismatch},
		{smtpClient, serversync.TLSImplicit, mailtest.POP3S, serversync.CodeProtocolMismatch},
		{smtpClient, serversync.TLSStartTLS, mailtest.IMAP, serversync.CodeProtocolMismatch},
		{smtpClient, serversync.TLSStartTLS, mailtest.POP3, serversync.CodeProtocolMismatch},
		{smtpClient, serversync.TLSImplicit, mailtest.Submission, serversync.CodeTLSMismatch},
	} {
		t.Run(fmt.Sprintf("%s %s at %s", tc.client.name, tc.mode, tc.at), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			target := e.Target(tc.at, bob)
			target.Endpoint.TLS = tc.mode
			err := tc.client.open(ctx, target)
			var ce *serversync.ConnectorError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, tc.code, ce.Code, "%v", err)
			assert.Equal(t, serversync.ErrorPermanent, ce.Kind, "%v", err)
			assert.Equal(t, serversync.ScopeProfile, ce.Scope, "%v", err)
			assert.Contains(t, err.Error(), "check the port")
			assert.NotContains(t, err.Error(), mailtest.Password(bob))
		})
	}
}

// A plaintext or STARTTLS profile at an implicit-TLS port meets a server that
// waits silently for a TLS handshake: indistinguishable from a server that does
// not answer, so the error stays transient, but it says what to check.
func TestInteropStartTLSAtImplicitTLSPort(t *testing.T) {
	e := mailtest.Load(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name string
		at   mailtest.Service
		open func(*serversync.Target) error
	}{
		{"IMAP", mailtest.IMAPS, func(target *serversync.Target) error {
			_, err := imapconn.New(nil).OpenIncoming(ctx, target)
			return err
		}},
		{"SMTP", mailtest.Submissions, func(target *serversync.Target) error {
			_, err := smtpconn.New(nil).OpenOutgoing(ctx, target)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := e.Target(tc.at, bob)
			target.Endpoint.TLS = serversync.TLSStartTLS
			target.Endpoint.Timeout = time.Second
			err := tc.open(target)
			var ce *serversync.ConnectorError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, serversync.ErrorTransient, ce.Kind, "%v", err)
			assert.Contains(t, err.Error(), "expects TLS from the start")
		})
	}
}
