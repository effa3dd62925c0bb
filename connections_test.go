package serversync_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/imapconn"
)

// openCounter counts the sessions open at once on a fake mail server, and their peak.
type openCounter struct {
	mu      sync.Mutex
	open    int
	peak    int
	byHost  map[string]int // sessions opened, by Syncer host
	opened  int
	holdFor func(n int) time.Duration // how long the nth session's Fetch keeps it open
}

func (c *openCounter) state() (peak, opened int, byHost map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	byHost = map[string]int{}
	for h, n := range c.byHost {
		byHost[h] = n
	}
	return c.peak, c.opened, byHost
}

// countingIncoming is an incoming connector of one Syncer host on the fake server:
// every session finds an empty inbox after holding its connection a while.
type countingIncoming struct {
	c    *openCounter
	host string
}

func (ci countingIncoming) OpenIncoming(ctx context.Context, _ *serversync.Target) (serversync.IncomingSession, error) {
	c := ci.c
	c.mu.Lock()
	defer c.mu.Unlock()
	c.open++
	c.peak = max(c.peak, c.open)
	c.opened++
	c.byHost[ci.host]++
	return &countingSession{c: c, hold: c.holdFor(c.opened)}, nil
}

type countingSession struct {
	c      *openCounter
	hold   time.Duration
	closed bool
}

func (s *countingSession) Fetch(ctx context.Context, _ serversync.FetchRequest, _ func(*serversync.RemoteMessage) error) (serversync.FetchResult, error) {
	t := time.NewTimer(s.hold)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return serversync.FetchResult{}, ctx.Err()
	case <-t.C:
	}
	return serversync.FetchResult{Cursor: []byte("end")}, nil
}

func (s *countingSession) Move(context.Context, string, string, string) error { return nil }
func (s *countingSession) Delete(context.Context, string, string) error       { return nil }
func (s *countingSession) Append(context.Context, string, time.Time, io.Reader, int64) error {
	return nil
}

func (s *countingSession) Close() error {
	if !s.closed {
		s.closed = true
		s.c.mu.Lock()
		s.c.open--
		s.c.mu.Unlock()
	}
	return nil
}

// MaxConcurrentConnections holds for all the Syncers (processes) sharing a store,
// not for each: two hosts syncing the mailboxes of a profile whose service account
// may have 2 connections open never have 3 open between them. Some syncs keep their
// connection longer than the slot's TTL, so the slots must be renewed while held.
func TestConnectionBudgetHoldsAcrossSyncers(t *testing.T) {
	const limit, mailboxes, leaseTTL = 2, 8, 300 * time.Millisecond
	e := newSyncEnv(t, func(p *serversync.Profile) {
		p.MaxConcurrentConnections = limit
		p.IncomingCredentialSource = serversync.CredentialsProfile // one budget for the profile
		p.UseImpersonation = true
		p.Username, p.Password = "service", auth.NewSecret("service-pass")
	})
	ctx := context.Background()
	for i := range mailboxes {
		m := e.mailbox(t, fmt.Sprintf("user%d", i), nil)
		_, err := e.store.UpdateMailbox(ctx, m.ID, func(m *serversync.Mailbox) error {
			m.IncomingMethod, m.IncomingEnabled, m.TestAndEnablePending = serversync.IncomingServerSideSync, true, false
			m.NextSyncAt = time.Now()
			return nil
		})
		require.NoError(t, err)
	}
	counter := &openCounter{byHost: map[string]int{}, holdFor: func(n int) time.Duration {
		if n%8 == 0 {
			return 2 * leaseTTL // renewed twice or more while held
		}
		return 20 * time.Millisecond
	}}
	for _, host := range []string{"host-a", "host-b"} {
		s, err := serversync.NewSyncer(e.store, serversync.Connectors{
			Incoming: map[serversync.ServerType]serversync.IncomingConnector{serversync.ServerTypeIMAPSMTP: countingIncoming{counter, host}},
		}, &serversync.Config{
			Host: host, LeaseTTL: leaseTTL, Tick: 5 * time.Millisecond, ActivePoll: 10 * time.Millisecond,
			MaxIdlePoll: 10 * time.Millisecond, ScanInterval: time.Hour, IdleConnections: -1, Logger: testLogger(),
		})
		require.NoError(t, err)
		run(t, s)
	}
	eventually(t, "40 syncs, by both hosts", func() bool {
		_, opened, byHost := counter.state()
		return opened >= 40 && byHost["host-a"] > 0 && byHost["host-b"] > 0
	})
	peak, opened, byHost := counter.state()
	t.Logf("%d sessions (by host: %v), at most %d open at once", opened, byHost, peak)
	assert.LessOrEqual(t, peak, limit, "connections open at once on the profile's service account")
	assert.Equal(t, limit, peak, "the budget is used in full")
}

// lossyReplies is a store whose every other AcquireConnectionSlot reply is lost on
// the way back, as when the database connection drops just after the commit: the
// slot is taken, but the caller sees an error.
type lossyReplies struct {
	serversync.Store
	slots serversync.ConnectionSlotStore
	mu    sync.Mutex
	calls int
}

func (l *lossyReplies) AcquireConnectionSlot(ctx context.Context, req serversync.ConnectionSlotRequest) (serversync.ConnectionSlot, bool, error) {
	slot, ok, err := l.slots.AcquireConnectionSlot(ctx, req)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.calls++; l.calls%2 == 1 && err == nil {
		return serversync.ConnectionSlot{}, false, errors.New("store: connection reset after the commit")
	}
	return slot, ok, err
}

func (l *lossyReplies) RenewConnectionSlot(ctx context.Context, slot serversync.ConnectionSlot, now time.Time, ttl time.Duration) (serversync.ConnectionSlot, error) {
	return l.slots.RenewConnectionSlot(ctx, slot, now, ttl)
}

func (l *lossyReplies) ReleaseConnectionSlot(ctx context.Context, slot serversync.ConnectionSlot) error {
	return l.slots.ReleaseConnectionSlot(ctx, slot)
}

// A slot whose grant never reached the Syncer is not lost with it: asking again
// gets the same slot, so a budget of one connection keeps working through lost
// replies instead of waiting for the phantom slots to expire.
func TestLostSlotRepliesTakeNoSecondSlot(t *testing.T) {
	e := newSyncEnv(t, func(p *serversync.Profile) {
		p.MaxConcurrentConnections = 1
		p.IncomingCredentialSource = serversync.CredentialsProfile
		p.UseImpersonation = true
		p.Username, p.Password = "service", auth.NewSecret("service-pass")
	})
	ctx := context.Background()
	for i := range 3 {
		m := e.mailbox(t, fmt.Sprintf("user%d", i), nil)
		_, err := e.store.UpdateMailbox(ctx, m.ID, func(m *serversync.Mailbox) error {
			m.IncomingMethod, m.IncomingEnabled, m.TestAndEnablePending = serversync.IncomingServerSideSync, true, false
			m.NextSyncAt = time.Now()
			return nil
		})
		require.NoError(t, err)
	}
	counter := &openCounter{byHost: map[string]int{}, holdFor: func(int) time.Duration { return time.Millisecond }}
	store := &lossyReplies{Store: e.store, slots: e.store.(serversync.ConnectionSlotStore)}
	s, err := serversync.NewSyncer(store, serversync.Connectors{
		Incoming: map[serversync.ServerType]serversync.IncomingConnector{serversync.ServerTypeIMAPSMTP: countingIncoming{counter, "host-a"}},
	}, &serversync.Config{ // slots last 30 s: a phantom would hold the budget past the test's patience
		Host: "host-a", Tick: 5 * time.Millisecond, ActivePoll: 10 * time.Millisecond, MaxIdlePoll: 10 * time.Millisecond,
		ScanInterval: time.Hour, IdleConnections: -1, Logger: testLogger(),
	})
	require.NoError(t, err)
	run(t, s)
	eventually(t, "20 syncs through lost replies", func() bool {
		_, opened, _ := counter.state()
		return opened >= 20
	})
	peak, _, _ := counter.state()
	assert.Equal(t, 1, peak)
}

// A large first fetch may open extra IMAP connections, but only as many as the
// profile's connection budget has room for.
func TestParallelFetchWithinTheConnectionBudget(t *testing.T) {
	e := newSyncEnv(t, func(p *serversync.Profile) { p.MaxConcurrentConnections = 2 })
	alice := e.mailbox(t, "alice", nil)
	const messages = 60 // 12 batches of 5
	for i := range messages {
		require.NoError(t, e.demo.Deliver(alice.EmailAddress, message("x@p.test", alice.EmailAddress, fmt.Sprintf("m%d", i), "", "b")))
	}
	e.imap = &imapconn.Options{FetchBatchSize: 5, MaxParallelFetch: 4}
	s := e.syncer(t, nil)
	testAndEnable(t, s, alice)
	eventually(t, "Test & Enable's connections closed", func() bool {
		e.demo.ResetPeakIMAPConnections()
		return e.demo.PeakIMAPConnections() == 0
	})
	run(t, s)
	eventually(t, "every message tracked", func() bool {
		return len(e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID})) == messages
	})
	assert.Equal(t, 2, e.demo.PeakIMAPConnections(), "the session and one extra fetch connection, not four")
}

func TestSendingWithinAConnectionBudgetOfOne(t *testing.T) {
	e := newSyncEnv(t, func(p *serversync.Profile) { p.MaxConcurrentConnections = 1 })
	alice := e.mailbox(t, "alice", nil)
	bob := e.mailbox(t, "bob", nil)
	s := e.syncer(t, nil)
	testAndEnable(t, s, alice)
	var queued []*serversync.EmailActivity
	for i := range 3 {
		a, err := s.QueueEmail(context.Background(), &serversync.EmailActivity{
			MailboxID: alice.ID, To: []serversync.Address{{Email: bob.EmailAddress}}, Subject: fmt.Sprintf("email %d", i),
		})
		require.NoError(t, err)
		queued = append(queued, a)
	}
	require.NoError(t, e.demo.Deliver(alice.EmailAddress, message("x@p.test", alice.EmailAddress, "incoming", "", "b")))
	run(t, s)
	for _, q := range queued {
		eventually(t, "sent", func() bool {
			a, err := e.store.GetActivity(context.Background(), q.ID)
			return err == nil && a.Status == serversync.StatusSent
		})
	}
	eventually(t, "incoming tracked", func() bool {
		return len(e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID, Direction: serversync.Incoming})) == 1
	})
	eventually(t, "Sent copies", func() bool {
		copies, err := e.demo.Messages(alice.EmailAddress, serversync.SentFolder)
		return err == nil && len(copies) == 3
	})
}
