package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/internal/testcert"
)

// The README's command: the whole Exchange Online flow against the fakes, with
// one app token for both mailboxes.
func TestFakes(t *testing.T) {
	var out bytes.Buffer
	res, err := run(context.Background(), options{}, &out)
	text := out.String()
	require.NoError(t, err, text)

	assert.Equal(t, map[string]serversync.TestStatus{alice: serversync.TestSuccess, bob: serversync.TestSuccess}, res.status)
	var subjects []string
	for _, a := range res.tracked[alice] {
		subjects = append(subjects, a.Subject)
	}
	assert.Equal(t, []string{"Quote request for 40 chairs", "Invoice INV-2291", "Re: Delivery date"}, subjects, "alice's inbox, each once")
	assert.Empty(t, res.tracked[bob], "bob's inbox was empty")

	require.NotNil(t, res.sent)
	assert.Equal(t, serversync.StatusSent, res.sent.Status)
	assert.True(t, res.onFake, "delivered to bob's inbox on the fake Graph")
	require.NotNil(t, res.arrived, "tracked in bob's mailbox")
	assert.Equal(t, res.sent.ID, res.arrived.CorrelatedTo)
	assert.Equal(t, serversync.CorrelatedByTrackingToken, res.arrived.CorrelationMethod)
	assert.Equal(t, serversync.RecordRef{Type: "case", ID: "CAS-01042"}, res.arrived.Regarding, "the sent email's regarding link")
	assert.Equal(t, serversync.Outgoing, res.sent.Direction)
	// Bob's answer, tracked in alice's mailbox, names her email in In-Reply-To.
	require.NotNil(t, res.reply, "bob's reply tracked in alice's mailbox")
	assert.Equal(t, res.sent.ID, res.reply.CorrelatedTo)
	assert.Equal(t, serversync.CorrelatedByHeaders, res.reply.CorrelationMethod)
	assert.Equal(t, serversync.RecordRef{Type: "case", ID: "CAS-01042"}, res.reply.Regarding)
	assert.Equal(t, []string{res.sent.MessageID}, res.reply.InReplyTo)

	// Test & Enable, the first sync and sending for two mailboxes: one token.
	assert.Equal(t, 1, res.tokens, "token requests")
	assert.Positive(t, res.stats.Requests)
	assert.Zero(t, res.stats.Throttled)

	assert.Regexp(t, `alice@contoso\.test\s+approved, Test & Enable: Success`, text)
	assert.Regexp(t, `bob@contoso\.test\s+approved, Test & Enable: Success`, text)
	assert.Contains(t, text, "tracked   3 messages in alice@contoso.test\n")
	assert.Contains(t, text, "correlated to the sent email by its tracking token CRM:")
	assert.Contains(t, text, "so regarding case CAS-01042 too")
	assert.Contains(t, text, `correlated to alice@contoso.test's sent email "Order 1042 has shipped CRM:`)
	assert.Contains(t, text, "by its In-Reply-To header")
	assert.Contains(t, text, "tokens    1 issued by the identity provider for 2 mailboxes")
	assert.Contains(t, text, "key [REDACTED]")
	assert.NotContains(t, text, "PRIVATE KEY")
}

// The real-tenant flags are checked before anything connects.
func TestRealTenantFlags(t *testing.T) {
	dir := t.TempDir()
	cc, err := testcert.NewClientCert("flags", 2048, time.Now().Add(-time.Hour), time.Now().AddDate(0, 0, 1))
	require.NoError(t, err)
	other, err := testcert.NewClientCert("other", 2048, time.Now().Add(-time.Hour), time.Now().AddDate(0, 0, 1))
	require.NoError(t, err)
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
		return path
	}
	cert, key, otherKey := write("app.crt", cc.CertPEM), write("app.key", cc.KeyPEM), write("other.key", other.KeyPEM)
	full := options{tenant: "contoso.onmicrosoft.com", clientID: "app", certFile: cert, keyFile: key, mailbox: "a@contoso.com"}

	for _, tt := range []struct {
		name   string
		change func(*options)
		want   string
	}{
		{"only -to", func(o *options) { *o = options{to: "b@contoso.com"} }, "needs -tenant, -client-id, -cert, -key, -mailbox too"},
		{"no -key", func(o *options) { o.keyFile = "" }, "needs -key too"},
		{"not an address", func(o *options) { o.mailbox = "alice" }, `-mailbox "alice" is not an email address`},
		{"missing file", func(o *options) { o.certFile = filepath.Join(dir, "none.crt") }, "-cert: open"},
		{"wrong key", func(o *options) { o.keyFile = otherKey }, "-key is not the private key of -cert"},
	} {
		o := full
		tt.change(&o)
		_, err := realTenant(o)
		assert.ErrorContains(t, err, tt.want, tt.name)
		if err != nil {
			assert.NotContains(t, err.Error(), "PRIVATE KEY", tt.name)
		}
	}
	su, err := realTenant(full)
	require.NoError(t, err)
	assert.Equal(t, serversync.CredentialsServerToServer, su.profile.IncomingCredentialSource)
	assert.Empty(t, su.profile.IncomingServer, "Graph's own URL, filled in on save")
	assert.Empty(t, su.profile.TokenURL, "Entra ID's token endpoint by default")
	require.Len(t, su.mailboxes, 1)
	assert.False(t, su.mailboxes[0].ProcessEmailFrom.IsZero(), "only recent mail")
	assert.Empty(t, su.to, "no -to: nothing sent")
}

// The real-tenant mode's flow, pointed at the fakes: one mailbox Test & Enabled,
// only its last day of mail tracked, and the test email sent to itself tracked too.
func TestRealTenantModeOnFakes(t *testing.T) {
	su, err := startFakes(io.Discard)
	require.NoError(t, err)
	defer su.close()
	old := fmt.Appendf(nil, "From: <old@fabrikam.test>\r\nTo: <%s>\r\nSubject: last week\r\nMessage-ID: <old@example.test>\r\n\r\nold\r\n", alice)
	_, err = su.fakes.graph.Deliver(alice, "inbox", old, time.Now().AddDate(0, 0, -7))
	require.NoError(t, err)

	dir := t.TempDir()
	cert, key := filepath.Join(dir, "app.crt"), filepath.Join(dir, "app.key")
	require.NoError(t, os.WriteFile(cert, []byte(su.profile.CertificatePEM), 0o600))
	require.NoError(t, os.WriteFile(key, []byte(su.profile.CertificateKey.Reveal()), 0o600))
	var out bytes.Buffer
	res, err := run(context.Background(), options{
		tenant: fakeDomain, clientID: fakeClientID, certFile: cert, keyFile: key, mailbox: alice, to: alice,
		graphURL: su.fakes.graph.URL(), tokenURL: su.profile.TokenURL, extraRootCAs: su.profile.ExtraRootCAsPEM,
	}, &out)
	text := out.String()
	require.NoError(t, err, text)

	assert.Equal(t, map[string]serversync.TestStatus{alice: serversync.TestSuccess}, res.status)
	assert.Len(t, res.tracked[alice], len(inboxSample), "the last day's mail, not last week's")
	require.NotNil(t, res.sent)
	require.NotNil(t, res.arrived, "the email to itself tracked")
	assert.Equal(t, res.sent.ID, res.arrived.CorrelatedTo)
	assert.Nil(t, res.reply, "no answer to itself")
	assert.Equal(t, 1, su.fakes.aad.TokenRequests())
	assert.Equal(t, -1, res.tokens, "not counted for a real tenant")
	assert.NotContains(t, text, "tokens    ")
	assert.Contains(t, text, "graph     ")
}
