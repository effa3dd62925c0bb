package serversync_test

import (
	"context"
	"iter"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector/standard"
	"github.com/serversync/serversync/store/memory"
)

// watchedStore counts the Syncer's calls that look for work, and those made after
// stopped was set: a Syncer whose Stop returned must not touch the store again.
type watchedStore struct {
	serversync.Store
	stopped   atomic.Bool
	calls     atomic.Int64
	lateCalls atomic.Int64
}

func (w *watchedStore) note() {
	w.calls.Add(1)
	if w.stopped.Load() {
		w.lateCalls.Add(1)
	}
}

func (w *watchedStore) ListMailboxes(ctx context.Context, f serversync.MailboxFilter) iter.Seq2[*serversync.Mailbox, error] {
	w.note()
	return w.Store.ListMailboxes(ctx, f)
}

func (w *watchedStore) AcquireLeases(ctx context.Context, r serversync.LeaseRequest) ([]serversync.Lease, error) {
	w.note()
	return w.Store.AcquireLeases(ctx, r)
}

func (w *watchedStore) ClaimOutgoing(ctx context.Context, r serversync.ClaimRequest) ([]*serversync.EmailActivity, error) {
	w.note()
	return w.Store.ClaimOutgoing(ctx, r)
}

func newWatchedSyncer(t *testing.T) (*serversync.Syncer, *watchedStore) {
	t.Helper()
	store := &watchedStore{Store: memory.New()}
	s, err := serversync.NewSyncer(store, standard.Connectors(nil), &serversync.Config{Logger: testLogger(), Tick: time.Millisecond})
	require.NoError(t, err)
	return s, store
}

func waitRun(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return")
		return nil
	}
}

// Stop right after `go Run`, as a host's shutdown path may do, with a context that
// has already ended so that Stop cancels Run's work at once: under -race this
// caught Run setting up that cancellation while Stop read it.
func TestStopRightAfterRun(t *testing.T) {
	for i := range 50 {
		s, _ := newWatchedSyncer(t)
		done := make(chan error, 1)
		go func() { done <- s.Run(context.Background()) }()
		// From at once to a little later, so that Stop meets Run at each step of
		// its start: nothing here waits for a point in time.
		time.Sleep(time.Duration(i%10) * 20 * time.Microsecond)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := s.Stop(ctx); err != nil {
			assert.ErrorIs(t, err, context.Canceled)
		}
		assert.ErrorIs(t, waitRun(t, done), serversync.ErrSyncerStopped)
	}
}

// Stop either waits for Run or, when Run has not started yet, makes it return at
// once without doing anything: nothing touches the store once Stop has returned,
// so a host may close the store right after.
func TestNothingHappensAfterStop(t *testing.T) {
	for i := range 50 {
		s, store := newWatchedSyncer(t)
		done := make(chan error, 1)
		go func() { done <- s.Run(context.Background()) }()
		require.NoError(t, s.Stop(context.Background()))
		store.stopped.Store(true)
		assert.ErrorIs(t, waitRun(t, done), serversync.ErrSyncerStopped)
		require.Zero(t, store.lateCalls.Load(), "round %d: the Syncer looked for work after Stop returned", i)
	}
}

// Run after Stop returns ErrSyncerStopped at once, without looking for work.
func TestRunAfterStop(t *testing.T) {
	s, store := newWatchedSyncer(t)
	require.NoError(t, s.Stop(context.Background()))
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background()) }()
	assert.ErrorIs(t, waitRun(t, done), serversync.ErrSyncerStopped)
	assert.Zero(t, store.calls.Load(), "a stopped Syncer looked for work")
	assert.NoError(t, s.Stop(context.Background()), "Stop again")
}

// Run twice: the second call returns ErrSyncerStopped at once and the first goes
// on until Stop.
func TestRunTwice(t *testing.T) {
	s, store := newWatchedSyncer(t)
	first := make(chan error, 1)
	go func() { first <- s.Run(context.Background()) }()
	require.Eventually(t, func() bool { return store.calls.Load() > 0 }, 20*time.Second, time.Millisecond, "Run looks for work")
	assert.ErrorIs(t, s.Run(context.Background()), serversync.ErrSyncerStopped)
	select {
	case err := <-first:
		t.Fatalf("the first Run returned: %v", err)
	default:
	}
	require.NoError(t, s.Stop(context.Background()))
	assert.ErrorIs(t, waitRun(t, first), serversync.ErrSyncerStopped)
}

// Run returns its context's error when that ends first, and Stop after it returns at once.
func TestRunEndsWithItsContext(t *testing.T) {
	s, _ := newWatchedSyncer(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	cancel()
	assert.ErrorIs(t, waitRun(t, done), context.Canceled)
	assert.NoError(t, s.Stop(context.Background()))
}
