package serversync_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/standard"
	"github.com/serversync/serversync/internal/pgtest"
	"github.com/serversync/serversync/store/postgres"
)

// testGate holds the incoming connections of the mailboxes it watches (by login)
// until a second connection of the same mailbox arrives, which means two tests
// overlap (recorded: what these tests must never see), or until a Test & Enable
// is refused the mailbox's test lock (it waits its turn, so the holder may go on).
// Holding the first test open is what makes each interleaving below certain.
type testGate struct {
	mu         sync.Mutex
	boxes      map[string]*gatedBox // by login
	logins     map[string]string    // mailbox ID → login
	overlapped []string
	entered    chan string                   // the login of each held connection
	callers    map[string]map[*testCall]bool // mailbox ID → the testAsync calls that read it
	// calls, when set, is how many testAsync calls of a mailbox must have begun
	// before a refused claim of its lock lets its held test go on.
	calls int
}

type gatedBox struct {
	password string // when set, only connections with this password are held and counted
	inflight int
	release  chan struct{}
	released bool
	refused  bool // a claim of the lock was refused while the connection was held
}

func newTestGate() *testGate {
	return &testGate{boxes: map[string]*gatedBox{}, logins: map[string]string{}, entered: make(chan string, 64), callers: map[string]map[*testCall]bool{}}
}

// watch holds the first connection of m; with a password, the first one made
// with that password.
func (g *testGate) watch(m *serversync.Mailbox, password string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.boxes[m.EmailAddress] = &gatedBox{password: password, release: make(chan struct{})}
	g.logins[m.ID] = m.EmailAddress
}

// open lets m's connections go.
func (g *testGate) open(m *serversync.Mailbox) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.boxes[m.EmailAddress].open()
}

func (b *gatedBox) open() {
	if !b.released {
		b.released = true
		close(b.release)
	}
}

// refused is called when a Test & Enable of mailbox id was refused its lock.
func (g *testGate) refused(id string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if b := g.boxes[g.logins[id]]; b != nil {
		b.refused = true
		if len(g.callers[id]) >= g.calls {
			b.open()
		}
	}
}

// awaitCalls makes a refused claim release a held test only once n testAsync
// calls of the mailbox have begun, so that each call begins while the first
// test still runs.
func (g *testGate) awaitCalls(n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls = n
}

// connect runs open, first holding it as the gate says. A connection held for
// long goes on anyway, so that a test without the fix fails instead of hanging.
func (g *testGate) connect(ctx context.Context, login, password string, open func() error) error {
	g.mu.Lock()
	b := g.boxes[login]
	if b == nil || (b.password != "" && b.password != password) {
		g.mu.Unlock()
		return open()
	}
	if b.inflight++; b.inflight > 1 {
		g.overlapped = append(g.overlapped, login)
		b.open()
	}
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		b.inflight--
		g.mu.Unlock()
	}()
	select {
	case g.entered <- login:
	default:
	}
	held := time.NewTimer(30 * time.Second)
	defer held.Stop()
	select {
	case <-b.release:
	case <-held.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	return open()
}

func (g *testGate) overlaps() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.overlapped...)
}

func (g *testGate) waitEntered(t *testing.T, login string) {
	t.Helper()
	select {
	case got := <-g.entered:
		require.Equal(t, login, got)
	case <-time.After(20 * time.Second):
		t.Fatalf("timed out waiting for a test of %s to connect", login)
	}
}

// gatedIncoming passes incoming connections through a testGate. It is no Prober,
// so Test & Enable opens a session through it whatever the wrapped connector offers.
type gatedIncoming struct {
	serversync.IncomingConnector
	gate *testGate
}

func (c *gatedIncoming) OpenIncoming(ctx context.Context, target *serversync.Target) (serversync.IncomingSession, error) {
	var session serversync.IncomingSession
	err := c.gate.connect(ctx, target.Credentials.Username, target.Credentials.Password.Reveal(), func() (err error) {
		session, err = c.IncomingConnector.OpenIncoming(ctx, target)
		return err
	})
	return session, err
}

// lockWatch is a Store that tells the gate when a Test & Enable is refused the
// lock of a mailbox, and when a testAsync call has read the mailbox.
type lockWatch struct {
	serversync.Store
	gate *testGate
}

func (s *lockWatch) GetMailbox(ctx context.Context, id string) (*serversync.Mailbox, error) {
	m, err := s.Store.GetMailbox(ctx, id)
	// The call counts once it has read the mailbox: a held test let go before
	// that would end before the call sees it running.
	if call, ok := ctx.Value(testCallKey{}).(*testCall); ok {
		s.gate.mu.Lock()
		if s.gate.callers[id] == nil {
			s.gate.callers[id] = map[*testCall]bool{}
		}
		s.gate.callers[id][call] = true
		if b := s.gate.boxes[s.gate.logins[id]]; b != nil && b.refused && len(s.gate.callers[id]) >= s.gate.calls {
			b.open()
		}
		s.gate.mu.Unlock()
	}
	return m, err
}

// testCall marks the context of one testAsync call, so that a lockWatch can
// tell when it has begun.
type (
	testCall    struct{ _ byte } // not zero-sized: distinct calls get distinct pointers
	testCallKey struct{}
)

func (s *lockWatch) UpdateMailbox(ctx context.Context, id string, update func(*serversync.Mailbox) error) (*serversync.Mailbox, error) {
	var held bool
	m, err := s.Store.UpdateMailbox(ctx, id, func(m *serversync.Mailbox) error {
		held = m.TestHost != ""
		return update(m)
	})
	// Only a refused claim of the test lock counts, not every update that
	// decides to change nothing (ScheduleReady's, say).
	if err != nil && held && strings.Contains(err.Error(), "another Test & Enable of the mailbox is running") {
		s.gate.refused(id)
	}
	return m, err
}

// gatedEnv is a syncEnv whose Syncers connect through a testGate.
func gatedEnv(t *testing.T) (*syncEnv, *testGate) {
	e := newSyncEnv(t, nil)
	g := newTestGate()
	e.store = &lockWatch{Store: e.store, gate: g}
	return e, g
}

// gatedSyncer is e.syncer with the gate in front of IMAP and its own host name.
func (e *syncEnv) gatedSyncer(t *testing.T, g *testGate, host string, scanInterval time.Duration) *serversync.Syncer {
	return e.gatedSyncerOn(t, e.store, g, host, scanInterval)
}

// gatedSyncerOn is gatedSyncer on a store of its own, as another process has.
func (e *syncEnv) gatedSyncerOn(t *testing.T, store serversync.Store, g *testGate, host string, scanInterval time.Duration) *serversync.Syncer {
	t.Helper()
	conns := standard.Connectors(&standard.Options{Logger: slog.New(slog.DiscardHandler)})
	conns.Incoming[serversync.ServerTypeIMAPSMTP] = &gatedIncoming{IncomingConnector: conns.Incoming[serversync.ServerTypeIMAPSMTP], gate: g}
	s, err := serversync.NewSyncer(store, conns, &serversync.Config{
		Host: host, Tick: 10 * time.Millisecond, ScanInterval: scanInterval, OutboxInterval: 20 * time.Millisecond,
		IdleConnections: -1, Now: e.clock.Now, Logger: testLogger(), OnEvent: e.onEvent,
	})
	require.NoError(t, err)
	return s
}

func (e *syncEnv) mailboxEvents(kind serversync.EventKind, id string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.events {
		if ev.Kind == kind && ev.MailboxID == id {
			n++
		}
	}
	return n
}

type testOutcome struct {
	m   *serversync.Mailbox
	err error
}

func testAsync(s *serversync.Syncer, id string) <-chan testOutcome {
	done := make(chan testOutcome, 1)
	go func() {
		m, err := s.TestAndEnable(context.WithValue(context.Background(), testCallKey{}, &testCall{}), id)
		done <- testOutcome{m, err}
	}()
	return done
}

// A mailbox created with a wrong password is being tested in the background when
// the password is fixed and the mailbox tested explicitly: the background test,
// computed from the old password, must neither overwrite the explicit outcome nor
// alert.
func TestStaleBackgroundTestNeverOverwrites(t *testing.T) {
	ctx := context.Background()
	e, g := gatedEnv(t)
	alice := e.mailbox(t, "alice", func(m *serversync.Mailbox) { m.Password = auth.NewSecret("wrong") })
	require.True(t, alice.TestAndEnablePending)
	g.watch(alice, "wrong")
	s := e.gatedSyncer(t, g, "syncer-a", 20*time.Millisecond)
	run(t, s)
	g.waitEntered(t, alice.EmailAddress) // the background test, with the wrong password

	_, err := e.admin.UpdateMailbox(ctx, alice.ID, func(m *serversync.Mailbox) { m.Password = auth.NewSecret("alice-pass") })
	require.NoError(t, err)
	// The stale test goes on when the explicit one has finished or waits for it.
	explicit := <-testAsync(s, alice.ID)
	g.open(alice)
	require.NoError(t, explicit.err)
	assert.Equal(t, serversync.TestSuccess, explicit.m.Status)

	// The background job ends either by storing its outcome (a second test event)
	// or by going on to sync the mailbox the explicit test enabled.
	eventually(t, "the background job to finish", func() bool {
		return e.mailboxEvents(serversync.EventMailboxTested, alice.ID) > 1 || e.mailboxEvents(serversync.EventSyncFinished, alice.ID) > 0
	})
	m, err := e.store.GetMailbox(ctx, alice.ID)
	require.NoError(t, err)
	assert.Equal(t, serversync.TestSuccess, m.Status, "the stale outcome must not overwrite the explicit one")
	assert.True(t, m.IncomingEnabled && m.OutgoingEnabled)
	assert.False(t, m.TestAndEnablePending)
	assert.Equal(t, 1, e.mailboxEvents(serversync.EventMailboxTested, alice.ID))
	assert.Empty(t, e.alerts(t, serversync.AlertFilter{MailboxID: alice.ID, Level: serversync.AlertError}))
	assert.Len(t, e.alerts(t, serversync.AlertFilter{MailboxID: alice.ID, Level: serversync.AlertInformation}), 1)
}

// A newcomer's mailbox is created, approved and tested with a Syncer running: it is
// tested once and alerted once, whether the Syncer's background test or the
// explicit call gets to it first, and the Syncer does not test it before approval.
func TestNewcomerIsTestedOnce(t *testing.T) {
	for _, first := range []string{"background", "explicit"} {
		t.Run(first+" first", func(t *testing.T) {
			ctx := context.Background()
			e, g := gatedEnv(t)
			require.NoError(t, e.demo.AddUser("newcomer@example.test", "newcomer-pass"))
			m, err := e.admin.CreateMailbox(ctx, &serversync.Mailbox{
				Name: "newcomer", EmailAddress: "newcomer@example.test", ProfileID: e.profile.ID, Owner: "owner-newcomer",
				Regarding: serversync.Regarding{Type: serversync.RegardingUser, ID: "user-newcomer"},
				Password:  auth.NewSecret("newcomer-pass"),
			})
			require.NoError(t, err)
			require.True(t, m.TestAndEnablePending)
			// Scans happen when the test says so: at start and by ScheduleReady.
			s := e.gatedSyncer(t, g, "syncer-a", time.Hour)
			run(t, s)
			_, err = s.ScheduleReady(ctx)
			require.NoError(t, err)
			eventually(t, "the Syncer to be done with the unapproved mailbox", func() bool {
				m, err := e.store.GetMailbox(ctx, m.ID)
				return err == nil && m.NextSyncAt.IsZero() && m.LeaseHost == ""
			})
			// Watched before it is approved: approval may make the mailbox due, and
			// a test that got past an unwatched gate would leave only its sync
			// connection to be held.
			g.watch(m, "")
			require.NoError(t, e.admin.Approve(ctx, "admin-user", m.ID))

			var got testOutcome
			if first == "background" {
				n, err := s.ScheduleReady(ctx)
				require.NoError(t, err)
				if n == 0 { // the Syncer's own first scan, started by run, got there first
					m, err := e.store.GetMailbox(ctx, m.ID)
					require.NoError(t, err)
					require.True(t, !m.NextSyncAt.IsZero() || m.LeaseHost != "", "the approved mailbox waits for Test & Enable")
				}
				g.waitEntered(t, m.EmailAddress)
				got = <-testAsync(s, m.ID)
			} else {
				explicit := testAsync(s, m.ID)
				g.waitEntered(t, m.EmailAddress)
				_, err = s.ScheduleReady(ctx)
				require.NoError(t, err)
				// The explicit test is let go when the background job is refused
				// the lock (the gate opens itself, and the call returns), or else
				// when that job is over.
				returned := false
				eventually(t, "the Syncer to be done with the mailbox", func() bool {
					select {
					case got = <-explicit:
						returned = true
						return true
					default:
					}
					m, err := e.store.GetMailbox(ctx, m.ID)
					return err == nil && m.NextSyncAt.IsZero() && m.LeaseHost == ""
				})
				g.open(m)
				if !returned {
					got = <-explicit
				}
			}
			require.NoError(t, got.err)
			assert.Equal(t, serversync.TestSuccess, got.m.Status)
			eventually(t, "the enabled mailbox to sync", func() bool {
				_, _ = s.ScheduleReady(ctx)
				return e.mailboxEvents(serversync.EventSyncFinished, m.ID) > 0
			})

			assert.Equal(t, 1, e.mailboxEvents(serversync.EventMailboxTested, m.ID), "tests")
			assert.Empty(t, e.alerts(t, serversync.AlertFilter{MailboxID: m.ID, Level: serversync.AlertError}))
			assert.Len(t, e.alerts(t, serversync.AlertFilter{MailboxID: m.ID, Level: serversync.AlertInformation}), 1)
			stored, err := e.store.GetMailbox(ctx, m.ID)
			require.NoError(t, err)
			assert.False(t, stored.TestAndEnablePending)
			assert.Equal(t, serversync.TestSuccess, stored.Status)
			assert.Empty(t, g.overlaps())
		})
	}
}

// Two Syncers share a store; each is asked to test every mailbox at the same time
// while both also test them in the background: no mailbox is ever tested by two at
// once, and each is tested once.
func TestTwoSyncersNeverTestOneMailboxAtOnce(t *testing.T) {
	e, g := gatedEnv(t)
	testTwoSyncers(t, e, g, e.store)
}

// The same with two processes' stores on one PostgreSQL database: the lock is
// taken by the database's row-locked update.
func TestTwoSyncersNeverTestOneMailboxAtOnceOnPostgreSQL(t *testing.T) {
	ctx := context.Background()
	url, schema := pgtest.URL(t), pgtest.FreshSchema(t)
	key, err := auth.NewKey(bytes.Repeat([]byte{7}, auth.KeySize))
	require.NoError(t, err)
	open := func() serversync.Store {
		s, err := postgres.Open(ctx, pgtest.WithParam(url, "pool_max_conns=4"), &postgres.Options{Keys: auth.NewStaticKeys(key), Schema: schema})
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	e, g := gatedEnv(t)
	first, second := open(), open()
	e.store = &lockWatch{Store: first, gate: g}
	e.admin = serversync.NewAdmin(first, &serversync.AdminConfig{
		CanApprove: func(context.Context, string, *serversync.Mailbox) error { return nil },
		Now:        e.clock.Now, Logger: slog.New(slog.DiscardHandler),
	})
	p := e.profile.Clone()
	p.ID = ""
	e.profile, err = e.admin.CreateProfile(ctx, p)
	require.NoError(t, err)
	testTwoSyncers(t, e, g, &lockWatch{Store: second, gate: g})
}

func testTwoSyncers(t *testing.T, e *syncEnv, g *testGate, secondStore serversync.Store) {
	var boxes []*serversync.Mailbox
	for i := range 6 {
		m := e.mailbox(t, fmt.Sprintf("user%d", i), nil)
		require.True(t, m.TestAndEnablePending)
		g.watch(m, "")
		boxes = append(boxes, m)
	}
	a := e.gatedSyncer(t, g, "syncer-a", 20*time.Millisecond)
	b := e.gatedSyncerOn(t, secondStore, g, "syncer-b", 20*time.Millisecond)
	g.awaitCalls(2) // a call that begins after a test ended rightly runs one of its own
	run(t, a)
	run(t, b)
	var calls []<-chan testOutcome
	for _, m := range boxes {
		calls = append(calls, testAsync(a, m.ID), testAsync(b, m.ID))
	}
	for _, c := range calls {
		got := <-c
		require.NoError(t, got.err)
		assert.Equal(t, serversync.TestSuccess, got.m.Status)
	}
	assert.Empty(t, g.overlaps(), "mailboxes tested by two at once")
	for _, m := range boxes {
		eventually(t, "the enabled mailbox to sync", func() bool { return e.mailboxEvents(serversync.EventSyncFinished, m.ID) > 0 })
		assert.Equal(t, 1, e.mailboxEvents(serversync.EventMailboxTested, m.ID), m.EmailAddress)
		assert.Len(t, e.alerts(t, serversync.AlertFilter{MailboxID: m.ID, Level: serversync.AlertInformation}), 1, m.EmailAddress)
	}
}

// An outcome computed from settings that changed during the test describes
// nothing current: an explicit call stores nothing, raises no alert and says so,
// and the mailbox stays marked for Test & Enable.
func TestChangedSettingsDiscardTheOutcome(t *testing.T) {
	for name, change := range map[string]func(*syncEnv, *serversync.Mailbox) error{
		"mailbox password": func(e *syncEnv, m *serversync.Mailbox) error {
			_, err := e.admin.UpdateMailbox(context.Background(), m.ID, func(m *serversync.Mailbox) { m.Password = auth.NewSecret("changed") })
			return err
		},
		"profile server": func(e *syncEnv, _ *serversync.Mailbox) error {
			_, err := e.admin.UpdateProfile(context.Background(), e.profile.ID, func(p *serversync.Profile) { p.IncomingServer = "127.0.0.2" })
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			e, g := gatedEnv(t)
			alice := e.mailbox(t, "alice", nil)
			g.watch(alice, "")
			s := e.gatedSyncer(t, g, "syncer-a", time.Hour) // not running: no background tests
			explicit := testAsync(s, alice.ID)
			g.waitEntered(t, alice.EmailAddress)
			require.NoError(t, change(e, alice))
			g.open(alice)
			got := <-explicit
			require.ErrorIs(t, got.err, serversync.ErrSettingsChanged)

			m, err := e.store.GetMailbox(ctx, alice.ID)
			require.NoError(t, err)
			assert.Equal(t, serversync.TestNotRun, m.Status)
			assert.False(t, m.AnyEnabled())
			assert.True(t, m.TestAndEnablePending, "still to be tested, with the new settings")
			assert.Empty(t, m.TestHost, "the lock is released")
			assert.Zero(t, e.mailboxEvents(serversync.EventMailboxTested, alice.ID))
			assert.Empty(t, e.alerts(t, serversync.AlertFilter{MailboxID: alice.ID}))
		})
	}
}

// A test lock whose holder died (it stopped renewing) blocks the mailbox until it
// lapses, then the next test takes it over.
func TestLapsedTestLockIsTakenOver(t *testing.T) {
	ctx := context.Background()
	e, g := gatedEnv(t)
	alice := e.mailbox(t, "alice", nil)
	_, err := e.store.UpdateMailbox(ctx, alice.ID, func(m *serversync.Mailbox) error {
		m.TestRun++
		m.TestHost, m.TestLockExpiresAt = "dead-host", e.clock.Now().Add(time.Minute)
		return nil
	})
	require.NoError(t, err)
	s := e.gatedSyncer(t, g, "syncer-a", time.Hour)

	waiting, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, err = s.TestAndEnable(waiting, alice.ID)
	require.ErrorIs(t, err, context.DeadlineExceeded, "the call waits while the lock holds")

	e.clock.Advance(2 * time.Minute)
	m := testAndEnable(t, s, alice)
	assert.True(t, m.IncomingEnabled && m.OutgoingEnabled)
	assert.Empty(t, m.TestHost)
	assert.Equal(t, m.TestRun, m.TestRunStored)
}

// A test that outlived its lock (its host stalled past LeaseTTL without renewing
// it) stores nothing and raises no alert: the test that took the lock over wins.
func TestTestThatOutlivedItsLockStoresNothing(t *testing.T) {
	ctx := context.Background()
	e, g := gatedEnv(t)
	alice := e.mailbox(t, "alice", nil)
	g.watch(alice, "")
	a := e.gatedSyncer(t, g, "syncer-a", time.Hour)
	b := e.gatedSyncer(t, g, "syncer-b", time.Hour)
	stalled := testAsync(a, alice.ID)
	g.waitEntered(t, alice.EmailAddress)
	// a's heartbeat renews every LeaseTTL/3 of real time: the lock lapses first.
	e.clock.Advance(serversync.LeaseTTLDefault + time.Second)
	fresh := <-testAsync(b, alice.ID) // its connection meets a's, which opens the gate
	require.NoError(t, fresh.err)
	assert.Equal(t, serversync.TestSuccess, fresh.m.Status)
	late := <-stalled
	require.ErrorIs(t, late.err, serversync.ErrLeaseLost)

	m, err := e.store.GetMailbox(ctx, alice.ID)
	require.NoError(t, err)
	assert.Equal(t, m.TestRun, m.TestRunStored, "the outcome stored is the last test's")
	assert.Empty(t, m.TestHost)
	assert.Equal(t, 1, e.mailboxEvents(serversync.EventMailboxTested, alice.ID))
	assert.Len(t, e.alerts(t, serversync.AlertFilter{MailboxID: alice.ID}), 1)
}

// A test that takes longer than LeaseTTL keeps its lock by renewing it, so a test
// asked for meanwhile still waits for it.
func TestLongTestRenewsItsLock(t *testing.T) {
	ctx := context.Background()
	e, g := gatedEnv(t)
	alice := e.mailbox(t, "alice", nil)
	g.watch(alice, "")
	const ttl = 60 * time.Millisecond // renewed every 20 ms of real time
	syncer := func(host string) *serversync.Syncer {
		conns := standard.Connectors(&standard.Options{Logger: slog.New(slog.DiscardHandler)})
		conns.Incoming[serversync.ServerTypeIMAPSMTP] = &gatedIncoming{IncomingConnector: conns.Incoming[serversync.ServerTypeIMAPSMTP], gate: g}
		s, err := serversync.NewSyncer(e.store, conns, &serversync.Config{
			Host: host, LeaseTTL: ttl, Now: e.clock.Now, Logger: testLogger(), OnEvent: e.onEvent,
		})
		require.NoError(t, err)
		return s
	}
	long := testAsync(syncer("syncer-a"), alice.ID)
	g.waitEntered(t, alice.EmailAddress)
	for range 5 { // 150 ms of the test clock: the lock outlives its first TTL only if renewed
		e.clock.Advance(ttl / 2)
		eventually(t, "the lock to be renewed", func() bool {
			m, err := e.store.GetMailbox(ctx, alice.ID)
			return err == nil && m.TestLockExpiresAt.After(e.clock.Now().Add(ttl/2))
		})
	}
	next := <-testAsync(syncer("syncer-b"), alice.ID) // refused the lock: the gate opens
	require.NoError(t, next.err)
	first := <-long
	require.NoError(t, first.err)
	assert.Equal(t, first.m.TestRun, next.m.TestRunStored, "the second call is answered by the long test")
	assert.Equal(t, 1, e.mailboxEvents(serversync.EventMailboxTested, alice.ID))
	assert.Empty(t, g.overlaps())
}

// Test & Enable for a whole profile runs in the background: every mailbox of the
// profile is tested by the running Syncer and enabled.
func TestTestAndEnableProfile(t *testing.T) {
	e := newSyncEnv(t, nil)
	alice := e.mailbox(t, "alice", nil)
	bob := e.mailbox(t, "bob", nil)
	s := e.syncer(t, nil)
	run(t, s)
	n, err := s.TestAndEnableProfile(context.Background(), e.profile.ID)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	for _, m := range []*serversync.Mailbox{alice, bob} {
		eventually(t, m.EmailAddress+" tested and enabled", func() bool {
			got, err := e.store.GetMailbox(context.Background(), m.ID)
			return err == nil && got.Status == serversync.TestSuccess && got.IncomingEnabled && got.OutgoingEnabled && !got.TestAndEnablePending
		})
	}
	_, err = s.TestAndEnableProfile(context.Background(), serversync.NewID())
	assert.ErrorIs(t, err, serversync.ErrNotFound)
}

func TestApplyDefaultSettingsTestsAndEnablesInTheBackground(t *testing.T) {
	e := newSyncEnv(t, nil)
	_, err := e.admin.UpdateOrgSettings(context.Background(), func(s *serversync.OrgSettings) { s.DefaultProfileID = e.profile.ID })
	require.NoError(t, err)
	alice := e.mailbox(t, "alice", nil)
	wrong := e.mailbox(t, "wrong", func(m *serversync.Mailbox) { m.Password = auth.NewSecret("nope") })
	unapproved := e.mailbox(t, "unapproved", nil)
	require.NoError(t, e.admin.Reject(context.Background(), "admin-user", unapproved.ID))
	require.NoError(t, e.admin.ApplyDefaultEmailSettings(context.Background(), []string{alice.ID, wrong.ID, unapproved.ID}))
	s := e.syncer(t, &serversync.Config{SendTestMessage: true})
	run(t, s)
	tested := func(id string) *serversync.Mailbox {
		var m *serversync.Mailbox
		eventually(t, "tested", func() bool {
			var err error
			m, err = e.store.GetMailbox(context.Background(), id)
			return err == nil && !m.TestAndEnablePending && !m.TestCompletedOn.IsZero()
		})
		return m
	}
	a := tested(alice.ID)
	assert.True(t, a.IncomingEnabled && a.OutgoingEnabled)
	assert.Equal(t, serversync.TestSuccess, a.Status)
	w := tested(wrong.ID)
	assert.False(t, w.IncomingEnabled || w.OutgoingEnabled)
	assert.Equal(t, serversync.TestFailure, w.Status)
	u := tested(unapproved.ID)
	assert.Equal(t, serversync.TestFailure, u.Status)

	// The alerts are raised just after the results are stored.
	eventually(t, "the alerts", func() bool {
		return len(e.alerts(t, serversync.AlertFilter{MailboxID: alice.ID, Level: serversync.AlertInformation})) > 0 &&
			len(e.alerts(t, serversync.AlertFilter{MailboxID: wrong.ID, Level: serversync.AlertError})) > 0
	})
	info := e.alerts(t, serversync.AlertFilter{MailboxID: alice.ID, Level: serversync.AlertInformation})
	require.Len(t, info, 1)
	assert.Equal(t, "test_and_enable_succeeded", info[0].Code)
	assert.Len(t, e.alerts(t, serversync.AlertFilter{MailboxID: wrong.ID, Level: serversync.AlertError}), 1)
	eventually(t, "the test message arrives and is tracked", func() bool {
		return len(e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID})) == 1
	})
}
