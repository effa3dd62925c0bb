package serversync_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/imapconn"
	"github.com/serversync/serversync/connector/standard"
	"github.com/serversync/serversync/internal/demoserver"
	"github.com/serversync/serversync/internal/netfault"
	"github.com/serversync/serversync/internal/testclock"
	"github.com/serversync/serversync/store/memory"
	"github.com/serversync/serversync/store/storetest"
)

// syncEnv is a store, an admin, an in-process mail system and a profile for it.
type syncEnv struct {
	store   serversync.Store
	admin   *serversync.Admin
	demo    *demoserver.Server
	profile *serversync.Profile
	clock   *testclock.Clock
	imap    *imapconn.Options // for the Syncers e.syncer makes; nil: defaults

	mu     sync.Mutex
	events []serversync.Event
}

func newSyncEnv(t *testing.T, configure func(*serversync.Profile)) *syncEnv {
	t.Helper()
	demo, err := demoserver.Start(map[string]string{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = demo.Close() })
	e := &syncEnv{store: memory.New(), demo: demo, clock: testclock.New(time.Now())}
	e.admin = serversync.NewAdmin(e.store, &serversync.AdminConfig{
		CanApprove: func(context.Context, string, *serversync.Mailbox) error { return nil },
		Now:        e.clock.Now, Logger: slog.New(slog.DiscardHandler),
	})
	p := &serversync.Profile{
		Name: "demo", Owner: "admin-user", ServerType: serversync.ServerTypeIMAPSMTP,
		IncomingServer: demo.Host, IncomingPort: demo.IMAPPort,
		OutgoingServer: demo.Host, OutgoingPort: demo.SMTPPort, OutgoingTLS: serversync.TLSImplicit,
		ExtraRootCAsPEM: demo.CAPEM, ConnectionTimeout: 10 * time.Second,
	}
	if configure != nil {
		configure(p)
	}
	e.profile, err = e.admin.CreateProfile(context.Background(), p)
	require.NoError(t, err)
	return e
}

// throughProxy makes the profile's incoming connections go through a netfault
// proxy, which it stores in *proxy, so that a test can drop them.
func throughProxy(t *testing.T, proxy **netfault.Proxy) func(*serversync.Profile) {
	return func(p *serversync.Profile) {
		px, err := netfault.Start(net.JoinHostPort(p.IncomingServer, strconv.Itoa(p.IncomingPort)))
		require.NoError(t, err)
		t.Cleanup(func() { _ = px.Close() })
		p.IncomingPort = px.Port()
		*proxy = px
	}
}

// mailbox creates a user mailbox on the demo server and in the store, approved.
func (e *syncEnv) mailbox(t *testing.T, name string, configure func(*serversync.Mailbox)) *serversync.Mailbox {
	t.Helper()
	require.NoError(t, e.demo.AddUser(name+"@example.test", name+"-pass"))
	return approvedMailbox(t, e.admin, e.store, e.profile.ID, name, configure)
}

// approvedMailbox creates an approved user mailbox name@example.test with the
// password name-pass, the same in every test environment of the package.
func approvedMailbox(t *testing.T, admin *serversync.Admin, store serversync.Store, profileID, name string, configure func(*serversync.Mailbox)) *serversync.Mailbox {
	t.Helper()
	ctx := context.Background()
	m := &serversync.Mailbox{
		Name: name, EmailAddress: name + "@example.test", ProfileID: profileID, Owner: "owner-" + name,
		Regarding: serversync.Regarding{Type: serversync.RegardingUser, ID: "user-" + name},
		Password:  auth.NewSecret(name + "-pass"), IncomingFilter: serversync.FilterAll,
	}
	if configure != nil {
		configure(m)
	}
	m, err := admin.CreateMailbox(ctx, m)
	require.NoError(t, err)
	require.NoError(t, admin.Approve(ctx, "admin-user", m.ID))
	m, err = store.GetMailbox(ctx, m.ID)
	require.NoError(t, err)
	return m
}

func (e *syncEnv) onEvent(ev serversync.Event) {
	e.mu.Lock()
	e.events = append(e.events, ev)
	e.mu.Unlock()
}

func (e *syncEnv) countEvents(kind serversync.EventKind) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.events {
		if ev.Kind == kind {
			n++
		}
	}
	return n
}

// syncer returns a Syncer for tests: fast ticks, the test clock, no IDLE unless asked.
func (e *syncEnv) syncer(t *testing.T, cfg *serversync.Config) *serversync.Syncer {
	t.Helper()
	c := serversync.Config{}
	if cfg != nil {
		c = *cfg
	}
	c.Tick = 10 * time.Millisecond
	c.ScanInterval = 20 * time.Millisecond
	c.OutboxInterval = 20 * time.Millisecond
	if c.IdleConnections == 0 {
		c.IdleConnections = -1
	}
	c.Now = e.clock.Now
	c.Logger = testLogger()
	if c.OnEvent == nil {
		c.OnEvent = e.onEvent
	}
	conns := standard.Connectors(&standard.Options{IMAP: e.imap, Logger: slog.New(slog.DiscardHandler)})
	// Exchange Server is left unwired: exchangeMailbox's mailboxes are the
	// environment's example of a server type its Syncers have no connector for
	// (TestSyncerOnEWS runs Exchange Server with a connector).
	delete(conns.Incoming, serversync.ServerTypeExchangeServer)
	delete(conns.Outgoing, serversync.ServerTypeExchangeServer)
	s, err := serversync.NewSyncer(e.store, conns, &c)
	require.NoError(t, err)
	return s
}

// run starts s and stops it when the test ends.
func run(t *testing.T, s *serversync.Syncer) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background()) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		assert.NoError(t, s.Stop(ctx))
		assert.ErrorIs(t, <-done, serversync.ErrSyncerStopped)
	})
}

func (e *syncEnv) activities(t *testing.T, f serversync.ActivityFilter) []*serversync.EmailActivity {
	return storetest.Collect(t, e.store.ListActivities(context.Background(), f))
}

func (e *syncEnv) alerts(t *testing.T, f serversync.AlertFilter) []*serversync.Alert {
	return storetest.Collect(t, e.store.ListAlerts(context.Background(), f))
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func message(from, to, subject, extraHeaders, body string) []byte {
	return []byte("From: " + from + "\r\nTo: " + to + "\r\nSubject: " + subject + "\r\n" + extraHeaders +
		"Date: Mon, 23 Nov 2026 09:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body + "\r\n")
}

func testAndEnable(t *testing.T, s *serversync.Syncer, m *serversync.Mailbox) *serversync.Mailbox {
	t.Helper()
	m, err := s.TestAndEnable(context.Background(), m.ID)
	require.NoError(t, err)
	require.Equal(t, serversync.TestSuccess, m.Status, "Test & Enable: %+v", m.Stats.LastError)
	return m
}

// Each Syncer records a host ID in leases and claims: the configured one, or a
// default that differs between Syncers.
func TestSyncerHost(t *testing.T) {
	e := newSyncEnv(t, nil)
	assert.Equal(t, "host-a", e.syncer(t, &serversync.Config{Host: "host-a"}).Host())
	one, two := e.syncer(t, nil).Host(), e.syncer(t, nil).Host()
	assert.NotEmpty(t, one)
	assert.NotEqual(t, one, two)
}

// testLogger discards logs unless SERVERSYNC_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("SERVERSYNC_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// With a MeterProvider installed, the Syncer's work shows in its metrics.
func TestMetrics(t *testing.T) {
	e := newSyncEnv(t, nil)
	alice := e.mailbox(t, "alice", nil)
	for i := range 3 {
		require.NoError(t, e.demo.Deliver(alice.EmailAddress, message("x@p.test", alice.EmailAddress, fmt.Sprintf("m%d", i), "", "b")))
	}
	reader := sdkmetric.NewManualReader()
	s := e.syncer(t, &serversync.Config{MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))})
	testAndEnable(t, s, alice)
	run(t, s)
	eventually(t, "tracked", func() bool { return len(e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID})) == 3 })

	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	found := map[string]bool{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			found[m.Name] = true
			if sum, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "serversync.messages.tracked" {
				require.Len(t, sum.DataPoints, 1)
				assert.Equal(t, int64(3), sum.DataPoints[0].Value)
			}
		}
	}
	assert.True(t, found["serversync.messages.tracked"], "metrics: %v", found)
	assert.True(t, found["serversync.sync.duration"])
}
