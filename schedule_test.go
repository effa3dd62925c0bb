package serversync_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector/fakeconn"
)

// A mailbox is polled ActivePoll after new mail, then less and less often while
// it stays quiet (a quarter of the time since its last mail, up to MaxIdlePoll);
// new mail brings it back to ActivePoll. The profile's MinPollingInterval is a
// floor on every interval.
func TestPollingBacksOffOnQuietMailboxes(t *testing.T) {
	const maxIdlePoll = time.Hour // reached after four quiet hours
	for _, floor := range []time.Duration{0, 30 * time.Minute} {
		t.Run("MinPollingInterval="+floor.String(), func(t *testing.T) {
			inBubble(t, func(t *testing.T) {
				e := newFakeEnv(t, nil, func(p *serversync.Profile) { p.MinPollingInterval = floor })
				alice := e.mailbox(t, "alice", nil)
				e.fake.Deliver(alice.EmailAddress, message("x@p.test", alice.EmailAddress, "first", "", "b"))
				s := e.syncer(t, &serversync.Config{IdleConnections: -1, MaxIdlePoll: maxIdlePoll})
				testAndEnable(t, s, alice)
				e.run(t, s)
				time.Sleep(8 * time.Hour)
				settle()

				fetches := e.callsFor(fakeconn.OpFetch, alice)
				require.Equal(t, 1, fetches[0].Delivered)
				lastMail := fetches[0].At
				want := func(at time.Time) time.Duration {
					return max(min(max(at.Sub(lastMail)/4, serversync.ActivePollDefault), maxIdlePoll), floor)
				}
				for i, gap := range gaps(fetches) {
					w := want(fetches[i].At)
					assert.GreaterOrEqual(t, gap, w, "poll %d", i+1)
					assert.LessOrEqual(t, gap, w+serversync.TickDefault, "poll %d is due %v after the one before", i+1, w)
				}
				assert.Equal(t, maxIdlePoll, gaps(fetches)[len(fetches)-2], "a quiet mailbox ends up at MaxIdlePoll")

				e.fake.Deliver(alice.EmailAddress, message("x@p.test", alice.EmailAddress, "second", "", "b"))
				time.Sleep(2 * maxIdlePoll)
				settle()
				fetches = e.callsFor(fakeconn.OpFetch, alice)
				var found bool
				for i, f := range fetches[1:] {
					if f.Delivered == 1 {
						found = true
						require.Greater(t, len(fetches), i+2)
						assert.Equal(t, max(serversync.ActivePollDefault, floor), fetches[i+2].At.Sub(f.At), "new mail: polled again ActivePoll later")
						break
					}
				}
				assert.True(t, found, "the second message was fetched")
				assert.Len(t, e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID}), 2)
			})
		})
	}
}

// With IDLE, new mail is tracked the moment it arrives, on the connection that
// waited for it: no poll, no reconnect, no time passing.
func TestIdleTracksNewMailAtOnce(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		e := newFakeEnv(t, nil, nil)
		alice := e.mailbox(t, "alice", nil)
		e.fake.Deliver(alice.EmailAddress, message("x@p.test", alice.EmailAddress, "first", "", "b"))
		s := e.syncer(t, nil)
		testAndEnable(t, s, alice)
		e.run(t, s)
		settle()
		require.Len(t, e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID}), 1)
		require.Len(t, e.callsFor(fakeconn.OpWait, alice), 1, "waiting in IDLE")

		time.Sleep(time.Minute)
		arrived := time.Now()
		e.fake.Deliver(alice.EmailAddress, message("x@p.test", alice.EmailAddress, "second", "", "b"))
		settle()
		assert.Equal(t, arrived, time.Now(), "no time passed")
		assert.Len(t, e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID}), 2, "tracked through IDLE")
		assert.Len(t, e.callsFor(fakeconn.OpOpenIncoming, alice), 1, "on the same connection")
		assert.Len(t, e.callsFor(fakeconn.OpWait, alice), 2, "which waits again")
	})
}

// An IDLE wait ends after ActivePoll and the mailbox is polled on its quiet
// schedule from then on, each poll's connection waiting again; a mailbox whose
// last mail is older than IdleWindow is not kept waiting at all.
func TestIdleEndsAfterActivePollAndIdleWindow(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		e := newFakeEnv(t, nil, nil)
		alice := e.mailbox(t, "alice", nil)
		e.fake.Deliver(alice.EmailAddress, message("x@p.test", alice.EmailAddress, "first", "", "b"))
		s := e.syncer(t, nil)
		testAndEnable(t, s, alice)
		e.run(t, s)
		settle()
		lastMail := time.Now()
		time.Sleep(serversync.IdleWindowDefault + serversync.MaxIdlePollDefault)
		settle()

		waits := e.callsFor(fakeconn.OpWait, alice)
		opens := e.callsFor(fakeconn.OpOpenIncoming, alice)
		require.NotEmpty(t, waits)
		for i, w := range waits {
			assert.ErrorIs(t, w.Err, context.DeadlineExceeded, "wait %d timed out", i)
			assert.Equal(t, opens[i].At, w.At, "each connection waits right after its sync")
			if i+1 < len(opens) {
				// The wait ended ActivePoll after it began; the next poll is then
				// due as for any quiet mailbox.
				ended := w.At.Add(serversync.ActivePollDefault)
				want := ended.Add(max(ended.Sub(lastMail)/4, serversync.ActivePollDefault))
				assert.GreaterOrEqual(t, opens[i+1].At, want, "poll %d", i+1)
				assert.LessOrEqual(t, opens[i+1].At, want.Add(serversync.TickDefault), "poll %d", i+1)
			}
		}
		last := waits[len(waits)-1].At
		assert.LessOrEqual(t, last.Sub(lastMail), serversync.IdleWindowDefault, "no IDLE once the last mail is older than IdleWindow")
		assert.Greater(t, len(opens), len(waits), "the mailbox is still polled")
	})
}

// An IDLE connection that breaks after it has lasted a while (a restarted
// server, a NAT that forgot it) is redialed at once, so new mail still comes in
// within seconds; one that breaks sooner waits for the next poll, so a server
// that drops every IDLE is not redialed in a loop.
func TestBrokenIdleConnectionRedialTiming(t *testing.T) {
	for _, tc := range []struct {
		name     string
		idled    time.Duration
		redialIn time.Duration
	}{
		{"AfterTwoMinutes", 2 * time.Minute, 0},
		{"AfterTenSeconds", 10 * time.Second, serversync.ActivePollDefault},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inBubble(t, func(t *testing.T) {
				e := newFakeEnv(t, nil, nil)
				alice := e.mailbox(t, "alice", nil)
				e.fake.Deliver(alice.EmailAddress, message("x@p.test", alice.EmailAddress, "first", "", "b"))
				s := e.syncer(t, nil)
				testAndEnable(t, s, alice)
				e.run(t, s)
				settle()
				require.Len(t, e.callsFor(fakeconn.OpWait, alice), 1, "waiting in IDLE")

				time.Sleep(tc.idled)
				dropped := time.Now()
				e.fake.Drop(alice.EmailAddress)
				settle()
				wait := e.callsFor(fakeconn.OpWait, alice)[0]
				kind := serversync.ClassifyError(wait.Err).Kind
				require.Equal(t, serversync.ErrorTransient, kind, "the wait broke: %v", wait.Err)
				time.Sleep(serversync.ActivePollDefault + time.Minute)
				settle()
				opens := e.callsFor(fakeconn.OpOpenIncoming, alice)
				require.GreaterOrEqual(t, len(opens), 2)
				redial := opens[1].At.Sub(dropped)
				assert.GreaterOrEqual(t, redial, tc.redialIn)
				assert.LessOrEqual(t, redial, tc.redialIn+serversync.TickDefault)
				m := e.get(t, alice.ID)
				assert.Zero(t, m.Stats.TransientFailureCount, "a broken IDLE is not a failed sync")
			})
		})
	}
}

// slowTrack is a Track hook that blocks until its context ends, reporting on
// entered when it starts and on canceled when it gives up.
func slowTrack(entered, canceled chan<- time.Time) serversync.TrackFunc {
	return func(ctx context.Context, _ *serversync.EmailActivity, _ *serversync.Mailbox) error {
		entered <- time.Now()
		<-ctx.Done()
		canceled <- time.Now()
		return ctx.Err()
	}
}

// A host that loses its lease (another host took the mailbox, its own having
// stalled past the lease) stops working on that mailbox at the next heartbeat,
// stores nothing and leaves the new holder's lease alone.
func TestLostLeaseStopsWorkAtTheNextHeartbeat(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		ctx := context.Background()
		e := newFakeEnv(t, nil, nil)
		alice := e.mailbox(t, "alice", nil)
		e.fake.Deliver(alice.EmailAddress, message("x@p.test", alice.EmailAddress, "slow", "", "b"))
		entered, canceled := make(chan time.Time, 1), make(chan time.Time, 1)
		s := e.syncer(t, &serversync.Config{IdleConnections: -1, Track: slowTrack(entered, canceled)})
		testAndEnable(t, s, alice)
		e.run(t, s)
		leased := within(t, time.Minute, "the sync", entered)

		// Another host, its clock past the lease's expiry, takes the mailbox.
		stolen, err := e.store.AcquireLeases(ctx, serversync.LeaseRequest{Host: "other-host", Now: leased.Add(serversync.LeaseTTLDefault), TTL: time.Hour, Limit: 1})
		require.NoError(t, err)
		require.Len(t, stolen, 1)
		require.True(t, stolen[0].TakenOver)

		stopped := within(t, serversync.LeaseTTLDefault, "the work stopped", canceled)
		assert.Equal(t, serversync.LeaseTTLDefault/3, stopped.Sub(leased), "stopped at the first heartbeat")
		time.Sleep(time.Hour)
		settle()
		assert.Empty(t, e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID}), "nothing stored by the host that lost the lease")
		m := e.get(t, alice.ID)
		assert.Equal(t, "other-host", m.LeaseHost, "the new holder's lease is untouched")
		assert.Equal(t, 1, m.ForcedUnlockCount)
		assert.Len(t, e.callsFor(fakeconn.OpFetch, alice), 1, "the mailbox is the other host's now")
	})
}

// Work that outlasts the lease many times over keeps it: the heartbeat renews it,
// and no other host gets the mailbox meanwhile.
func TestSlowWorkKeepsItsLease(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		ctx := context.Background()
		e := newFakeEnv(t, nil, nil)
		alice := e.mailbox(t, "alice", nil)
		e.fake.Deliver(alice.EmailAddress, message("x@p.test", alice.EmailAddress, "slow", "", "b"))
		const slow = 10 * serversync.LeaseTTLDefault
		s := e.syncer(t, &serversync.Config{IdleConnections: -1, Track: func(ctx context.Context, _ *serversync.EmailActivity, _ *serversync.Mailbox) error {
			select {
			case <-time.After(slow):
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}})
		testAndEnable(t, s, alice)
		e.run(t, s)
		for elapsed := time.Duration(0); elapsed < slow; elapsed += serversync.LeaseTTLDefault / 4 {
			time.Sleep(serversync.LeaseTTLDefault / 4)
			taken, err := e.store.AcquireLeases(ctx, serversync.LeaseRequest{Host: "other-host", Now: time.Now(), TTL: time.Hour, Limit: 1})
			require.NoError(t, err)
			require.Empty(t, taken, "another host took the mailbox %v into the work", elapsed)
		}
		settle()
		assert.Len(t, e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID}), 1)
		assert.Zero(t, e.get(t, alice.ID).ForcedUnlockCount)
	})
}

// renewFails is a store whose lease renewals fail, as when it is unreachable.
type renewFails struct{ serversync.Store }

func (renewFails) RenewLease(context.Context, serversync.Lease, time.Time, time.Duration) (serversync.Lease, error) {
	return serversync.Lease{}, errors.New("database unreachable")
}

// A host that cannot renew its lease stops working on the mailbox before the
// lease runs out, so two hosts never work on it at once.
func TestUnrenewableLeaseStopsWorkBeforeItExpires(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		e := newFakeEnv(t, nil, nil)
		alice := e.mailbox(t, "alice", nil)
		e.fake.Deliver(alice.EmailAddress, message("x@p.test", alice.EmailAddress, "slow", "", "b"))
		e.store = renewFails{e.store}
		entered, canceled := make(chan time.Time, 1), make(chan time.Time, 1)
		s := e.syncer(t, &serversync.Config{IdleConnections: -1, Track: slowTrack(entered, canceled)})
		testAndEnable(t, s, alice)
		e.run(t, s)
		leased := within(t, time.Minute, "the sync", entered)
		stopped := within(t, serversync.LeaseTTLDefault, "the work stopped", canceled)
		assert.Less(t, stopped.Sub(leased), serversync.LeaseTTLDefault, "stopped before the lease ran out")
		assert.Equal(t, 2*serversync.LeaseTTLDefault/3, stopped.Sub(leased), "at the heartbeat that found it about to expire")
		settle()
		assert.Empty(t, e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID}))
	})
}
