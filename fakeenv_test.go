package serversync_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector/fakeconn"
	"github.com/serversync/serversync/store/memory"
	"github.com/serversync/serversync/store/storetest"
)

// fakeEnv is a memory store, an admin and a profile served by a fake connector:
// the Syncer's scheduling tested without a mail server. Make it inside a
// synctest bubble (see inBubble): the Syncer then runs on the bubble's clock and
// timers, with its production defaults, and a test's time.Sleep moves that clock
// only once every goroutine waits, so hours of retries and polls take no wall
// time and happen in one order.
type fakeEnv struct {
	store   serversync.Store
	admin   *serversync.Admin
	fake    *fakeconn.Connector
	profile *serversync.Profile

	mu     sync.Mutex
	events []serversync.Event
}

// inBubble runs f in a synctest bubble; the Syncers f starts with run are stopped
// inside it when f's test ends.
func inBubble(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	synctest.Test(t, f)
}

func newFakeEnv(t *testing.T, opts *fakeconn.Options, configure func(*serversync.Profile)) *fakeEnv {
	t.Helper()
	e := &fakeEnv{store: memory.New(), fake: fakeconn.New(opts)}
	e.admin = serversync.NewAdmin(e.store, &serversync.AdminConfig{
		CanApprove: func(context.Context, string, *serversync.Mailbox) error { return nil },
		Logger:     slog.New(slog.DiscardHandler),
	})
	p := &serversync.Profile{
		Name: "fake", Owner: "admin-user", ServerType: serversync.ServerTypeIMAPSMTP,
		IncomingServer: "imap.example.test", OutgoingServer: "smtp.example.test",
	}
	if configure != nil {
		configure(p)
	}
	var err error
	e.profile, err = e.admin.CreateProfile(context.Background(), p)
	require.NoError(t, err)
	return e
}

// mailbox creates an approved user mailbox.
func (e *fakeEnv) mailbox(t *testing.T, name string, configure func(*serversync.Mailbox)) *serversync.Mailbox {
	t.Helper()
	return approvedMailbox(t, e.admin, e.store, e.profile.ID, name, configure)
}

// syncer returns a Syncer on the fake with the production defaults, except what
// cfg sets; its clock is the bubble's.
func (e *fakeEnv) syncer(t *testing.T, cfg *serversync.Config) *serversync.Syncer {
	t.Helper()
	c := serversync.Config{}
	if cfg != nil {
		c = *cfg
	}
	c.Logger = testLogger()
	c.OnEvent = func(ev serversync.Event) {
		e.mu.Lock()
		e.events = append(e.events, ev)
		e.mu.Unlock()
	}
	s, err := serversync.NewSyncer(e.store, e.fake.Connectors(), &c)
	require.NoError(t, err)
	return s
}

// run starts s; it is stopped, inside the bubble, when the test ends.
func (e *fakeEnv) run(t *testing.T, s *serversync.Syncer) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background()) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		assert.NoError(t, s.Stop(ctx))
		assert.ErrorIs(t, <-done, serversync.ErrSyncerStopped)
		assert.Zero(t, e.fake.OpenSessions(), "every session closed")
	})
}

func (e *fakeEnv) get(t *testing.T, id string) *serversync.Mailbox {
	t.Helper()
	m, err := e.store.GetMailbox(context.Background(), id)
	require.NoError(t, err)
	return m
}

func (e *fakeEnv) activities(t *testing.T, f serversync.ActivityFilter) []*serversync.EmailActivity {
	return storetest.Collect(t, e.store.ListActivities(context.Background(), f))
}

func (e *fakeEnv) alerts(t *testing.T, f serversync.AlertFilter) []*serversync.Alert {
	return storetest.Collect(t, e.store.ListAlerts(context.Background(), f))
}

func (e *fakeEnv) countEvents(kind serversync.EventKind) int {
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

// callsFor returns the calls of op made for the mailbox.
func (e *fakeEnv) callsFor(op fakeconn.Op, m *serversync.Mailbox) []fakeconn.Call {
	var out []fakeconn.Call
	for _, c := range e.fake.CallsOf(op) {
		if c.Mailbox == m.EmailAddress {
			out = append(out, c)
		}
	}
	return out
}

// gaps returns the time between consecutive calls.
func gaps(calls []fakeconn.Call) []time.Duration {
	var out []time.Duration
	for i := 1; i < len(calls); i++ {
		out = append(out, calls[i].At.Sub(calls[i-1].At))
	}
	return out
}

// settle lets every goroutine of the bubble run until all of them wait, without
// moving the clock.
func settle() { synctest.Wait() }

// within returns what ch delivers, failing the test when nothing comes within d
// on the bubble's clock: the Syncer's loops keep that clock moving, so a broken
// Syncer fails the test at once rather than at the test binary's timeout.
func within[T any](t *testing.T, d time.Duration, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("%s: nothing within %v", what, d)
		var zero T
		return zero
	}
}
