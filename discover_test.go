package serversync_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/ews"
	"github.com/serversync/serversync/connector/ews/ewstest"
)

// A discovered server is used until Config.DiscoveryTTL has passed, then
// discovered again; when discovery fails, the server found before is kept.
func TestDiscoveryTTL(t *testing.T) {
	ctx := context.Background()
	srv, err := ewstest.NewServer(nil)
	require.NoError(t, err)
	defer srv.Close()
	srv.AddUser("alice", "alice-pass", "alice@example.test")
	srv.SetAutodiscover("example.test", ewstest.AutodiscoverConfig{JSON: true})

	e := newSyncEnv(t, nil)
	p, err := e.admin.CreateProfile(ctx, &serversync.Profile{
		Name: "exchange-server", Owner: "admin-user", ServerType: serversync.ServerTypeExchangeServer, AutoDiscover: true,
		IncomingCredentialSource: serversync.CredentialsMailbox, ConnectionTimeout: 10 * time.Second,
	})
	require.NoError(t, err)
	m := approvedMailbox(t, e.admin, e.store, p.ID, "alice", func(m *serversync.Mailbox) { m.Username = "alice" })
	client := srv.Client()
	defer client.CloseIdleConnections()
	conn := ews.New(&ews.Options{HTTPClient: client, Logger: slog.New(slog.DiscardHandler)})
	cfg := serversync.Config{Now: e.clock.Now, Logger: testLogger(), DiscoveryTTL: time.Hour}
	s, err := serversync.NewSyncer(e.store, serversync.Connectors{
		Incoming: map[serversync.ServerType]serversync.IncomingConnector{serversync.ServerTypeExchangeServer: conn},
		Outgoing: map[serversync.ServerType]serversync.OutgoingConnector{serversync.ServerTypeExchangeServer: conn},
	}, &cfg)
	require.NoError(t, err)
	discoveries := func() int { return len(srv.AutodiscoverRequests()) }
	stored := func() *serversync.Mailbox {
		m, err := e.store.GetMailbox(ctx, m.ID)
		require.NoError(t, err)
		return m
	}

	testAndEnable(t, s, m)
	assert.Equal(t, 1, discoveries())
	first := stored().DiscoveredServerAt
	assert.Equal(t, srv.EWSURL(), stored().DiscoveredServer)

	e.clock.Advance(30 * time.Minute)
	testAndEnable(t, s, m)
	assert.Equal(t, 1, discoveries(), "fresh: not discovered again")

	e.clock.Advance(31 * time.Minute)
	testAndEnable(t, s, m)
	assert.Equal(t, 2, discoveries(), "older than the TTL: discovered again")
	assert.True(t, stored().DiscoveredServerAt.After(first))

	// Autodiscover breaks: the server found before keeps the mailbox working.
	srv.SetAutodiscover("example.test", ewstest.AutodiscoverConfig{})
	e.clock.Advance(2 * time.Hour)
	testAndEnable(t, s, m)
	assert.Greater(t, discoveries(), 2, "tried")
	assert.Equal(t, srv.EWSURL(), stored().DiscoveredServer, "kept")

	// Without a server found before, a failed discovery fails the test with its reason.
	_, err = e.store.UpdateMailbox(ctx, m.ID, func(m *serversync.Mailbox) error {
		m.DiscoveredServer, m.DiscoveredServerAt = "", time.Time{}
		return nil
	})
	require.NoError(t, err)
	got, err := s.TestAndEnable(ctx, m.ID)
	require.NoError(t, err)
	assert.Equal(t, serversync.TestFailure, got.Status)
	assert.Equal(t, serversync.CodeBadTarget, got.Stats.LastError.Code)
	assert.Contains(t, got.Stats.LastError.Message, "Autodiscover found no EWS URL")
}

func TestDiscoveryTTLConfig(t *testing.T) {
	_, err := serversync.NewSyncer(newSyncEnv(t, nil).store, serversync.Connectors{
		Incoming: map[serversync.ServerType]serversync.IncomingConnector{serversync.ServerTypeExchangeServer: ews.New(nil)},
	}, &serversync.Config{DiscoveryTTL: -time.Second})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "DiscoveryTTL")
}

// Test Connection of an AutoDiscover profile discovers first, as a step, and
// stores nothing.
func TestTestConnectionDiscovers(t *testing.T) {
	ctx := context.Background()
	srv, err := ewstest.NewServer(nil)
	require.NoError(t, err)
	defer srv.Close()
	srv.AddUser("alice", "alice-pass", "alice@example.test")
	client := srv.Client()
	defer client.CloseIdleConnections()
	conn := ews.New(&ews.Options{HTTPClient: client, Logger: slog.New(slog.DiscardHandler)})
	p := &serversync.Profile{Name: "exchange", ServerType: serversync.ServerTypeExchangeServer, AutoDiscover: true,
		IncomingCredentialSource: serversync.CredentialsMailbox, OutgoingCredentialSource: serversync.CredentialsMailbox,
		IncomingPort: 443, OutgoingPort: 443, ConnectionTimeout: 10 * time.Second}
	m := &serversync.Mailbox{ID: "mb-1", EmailAddress: "alice@example.test", Username: "alice", Password: auth.NewSecret("alice-pass")}

	report := serversync.TestConnection(ctx, p, m, nil, conn, conn)
	require.Len(t, report.Incoming, 1)
	assert.Equal(t, "autodiscover", report.Incoming[0].Name)
	assert.False(t, report.OK())
	assert.Contains(t, report.Incoming[0].Detail, "Autodiscover found no EWS URL")

	srv.SetAutodiscover("example.test", ewstest.AutodiscoverConfig{POX: true})
	report = serversync.TestConnection(ctx, p, m, nil, conn, conn)
	assert.True(t, report.OK(), "%+v", report)
	var names []string
	for _, s := range report.Incoming {
		names = append(names, s.Name)
	}
	assert.Equal(t, []string{"autodiscover", "resolve", "mailbox", "open-inbox", "sent-items"}, names)
	assert.Equal(t, "found the server at "+srv.EWSURL(), report.Incoming[0].Detail)
	assert.Empty(t, m.DiscoveredServer, "Test Connection stores nothing")
}
