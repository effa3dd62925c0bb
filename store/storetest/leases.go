package storetest

import (
	"cmp"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
)

// acquire calls AcquireLeases and fails the test on error.
func acquire(t *testing.T, s serversync.Store, host string, now time.Time, ttl time.Duration, limit int) []serversync.Lease {
	t.Helper()
	got, err := s.AcquireLeases(t.Context(), serversync.LeaseRequest{Host: host, Now: now, TTL: ttl, Limit: limit})
	require.NoError(t, err)
	return got
}

// acquireAll acquires every due mailbox (up to 1000) for a minute.
func acquireAll(t *testing.T, s serversync.Store, host string, now time.Time) []serversync.Lease {
	t.Helper()
	return acquire(t, s, host, now, time.Minute, 1000)
}

// scheduled stores a mailbox without profile due at next.
func scheduled(t *testing.T, s serversync.Store, email string, next time.Time) *serversync.Mailbox {
	t.Helper()
	m := NewMailbox("", email)
	m.NextSyncAt = next
	return createMailbox(t, s, m)
}

func leaseIDs(leases []serversync.Lease) []string {
	var out []string
	for _, l := range leases {
		out = append(out, l.MailboxID)
	}
	return out
}

func testLeases(t *testing.T, h harness) {
	h.run(t, "OnlyDueMailboxesMostOverdueFirst", func(t *testing.T, s serversync.Store) {
		now := BaseTime
		scheduled(t, s, "unscheduled@example.com", time.Time{})
		scheduled(t, s, "future@example.com", now.Add(time.Second))
		late := scheduled(t, s, "late@example.com", now.Add(-time.Minute))
		exact := scheduled(t, s, "exact@example.com", now)
		latest := scheduled(t, s, "latest@example.com", now.Add(-time.Hour).In(otherZone))
		later := scheduled(t, s, "later@example.com", now.Add(-10*time.Minute))

		got := acquire(t, s, "host-a", now, time.Minute, 10)
		assert.Equal(t, []string{latest.ID, later.ID, late.ID, exact.ID}, leaseIDs(got), "most overdue first; NextSyncAt == Now is due")
	})

	h.run(t, "Limit", func(t *testing.T, s serversync.Store) {
		var want []string
		for i := range 5 {
			want = append(want, scheduled(t, s, fmt.Sprintf("m%d@example.com", i), BaseTime.Add(time.Duration(i-10)*time.Minute)).ID)
		}
		assert.Equal(t, want[:2], leaseIDs(acquire(t, s, "host-a", BaseTime, time.Minute, 2)))
		assert.Equal(t, want[2:4], leaseIDs(acquire(t, s, "host-b", BaseTime, time.Minute, 2)))
		assert.Equal(t, want[4:], leaseIDs(acquire(t, s, "host-a", BaseTime, time.Minute, 2)))
		assert.Empty(t, acquire(t, s, "host-c", BaseTime, time.Minute, 2))
	})

	h.run(t, "RecordedOnMailbox", func(t *testing.T, s serversync.Store) {
		m := scheduled(t, s, "alice@example.com", BaseTime.Add(-time.Minute))
		now, ttl := BaseTime.In(otherZone), 3*time.Minute
		got := acquire(t, s, "host-a", now, ttl, 10)
		require.Len(t, got, 1)
		l := got[0]
		assert.Equal(t, m.ID, l.MailboxID)
		assert.Equal(t, "host-a", l.Host)
		assert.True(t, now.Add(ttl).Equal(l.ExpiresAt), "ExpiresAt = Now+TTL")
		assert.False(t, l.TakenOver)

		stored := mustGetMailbox(t, s, m.ID)
		assert.Equal(t, "host-a", stored.LeaseHost)
		assert.True(t, l.ExpiresAt.Equal(stored.LeaseExpiresAt))
		assert.Equal(t, 0, stored.ForcedUnlockCount)
		assert.True(t, m.NextSyncAt.Equal(stored.NextSyncAt), "acquiring leaves NextSyncAt alone")
		// Everything else is untouched.
		stored.LeaseHost, stored.LeaseExpiresAt = "", time.Time{}
		assertSameRecord(t, m, stored)
	})

	h.run(t, "LiveLeaseNotAcquiredAgain", func(t *testing.T, s serversync.Store) {
		scheduled(t, s, "alice@example.com", BaseTime)
		require.Len(t, acquire(t, s, "host-a", BaseTime, time.Minute, 10), 1)
		assert.Empty(t, acquire(t, s, "host-a", BaseTime, time.Minute, 10), "not by the holder")
		assert.Empty(t, acquire(t, s, "host-b", BaseTime.Add(59*time.Second), time.Minute, 10), "not by another host")
	})

	h.run(t, "ExpiredLeaseTakenOver", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		m := scheduled(t, s, "alice@example.com", BaseTime)
		old := acquire(t, s, "host-a", BaseTime, time.Minute, 10)
		require.Len(t, old, 1)

		later := BaseTime.Add(time.Minute + time.Second)
		got := acquire(t, s, "host-b", later, 2*time.Minute, 10)
		require.Len(t, got, 1, "an expired lease is taken over")
		l := got[0]
		assert.Equal(t, m.ID, l.MailboxID)
		assert.Equal(t, "host-b", l.Host)
		assert.True(t, l.TakenOver)
		assert.Greater(t, l.Token, old[0].Token)
		assert.True(t, later.Add(2*time.Minute).Equal(l.ExpiresAt))

		stored := mustGetMailbox(t, s, m.ID)
		assert.Equal(t, "host-b", stored.LeaseHost)
		assert.Equal(t, 1, stored.ForcedUnlockCount)
		assert.True(t, l.ExpiresAt.Equal(stored.LeaseExpiresAt))

		_, err := s.RenewLease(ctx, old[0], later, time.Minute)
		require.ErrorIs(t, err, serversync.ErrLeaseLost, "the old holder's renew fails")
		require.ErrorIs(t, s.ReleaseLease(ctx, old[0], time.Time{}), serversync.ErrLeaseLost, "the old holder's release fails")
		stored = mustGetMailbox(t, s, m.ID)
		assert.Equal(t, "host-b", stored.LeaseHost, "the failed calls changed nothing")
		assert.True(t, m.NextSyncAt.Equal(stored.NextSyncAt))

		renewed, err := s.RenewLease(ctx, l, later.Add(time.Minute), 2*time.Minute)
		require.NoError(t, err, "the new holder's lease works")
		require.NoError(t, s.ReleaseLease(ctx, renewed, time.Time{}))

		// The same host taking its own expired lease is a takeover too.
		_, err = s.UpdateMailbox(ctx, m.ID, func(m *serversync.Mailbox) error {
			m.NextSyncAt = BaseTime
			return nil
		})
		require.NoError(t, err)
		first := acquire(t, s, "host-a", later, time.Minute, 10)
		require.Len(t, first, 1)
		assert.False(t, first[0].TakenOver, "a released lease is not taken over")
		second := acquire(t, s, "host-a", later.Add(time.Hour), time.Minute, 10)
		require.Len(t, second, 1)
		assert.True(t, second[0].TakenOver)
		assert.Equal(t, 2, mustGetMailbox(t, s, m.ID).ForcedUnlockCount)
		_, err = s.RenewLease(ctx, first[0], later.Add(time.Hour), time.Minute)
		require.ErrorIs(t, err, serversync.ErrLeaseLost, "a token from an earlier acquisition is stale even for the same host")
	})

	h.run(t, "TokenIncreases", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		m := scheduled(t, s, "alice@example.com", BaseTime)
		other := scheduled(t, s, "bob@example.com", BaseTime)
		var last int64
		for i := range 5 {
			now := BaseTime.Add(time.Duration(i) * time.Hour)
			got := acquire(t, s, fmt.Sprint("host-", i%2), now, time.Minute, 10)
			require.Len(t, got, 2)
			for _, l := range got {
				if l.MailboxID != m.ID {
					continue
				}
				if i > 0 {
					assert.Greater(t, l.Token, last)
				}
				last = l.Token
			}
			for _, l := range got {
				next := now.Add(time.Minute)
				if l.MailboxID == other.ID && i%2 == 0 {
					continue // left to expire: the next round takes it over
				}
				require.NoError(t, s.ReleaseLease(ctx, l, next))
			}
		}
	})

	h.run(t, "RenewExtends", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		m := scheduled(t, s, "alice@example.com", BaseTime)
		got := acquire(t, s, "host-a", BaseTime, time.Minute, 10)
		require.Len(t, got, 1)

		renewAt := BaseTime.Add(50 * time.Second)
		renewed, err := s.RenewLease(ctx, got[0], renewAt, 5*time.Minute)
		require.NoError(t, err)
		assert.Equal(t, got[0].MailboxID, renewed.MailboxID)
		assert.Equal(t, got[0].Host, renewed.Host)
		assert.Equal(t, got[0].Token, renewed.Token, "renewing keeps the token")
		assert.True(t, renewAt.Add(5*time.Minute).Equal(renewed.ExpiresAt), "ExpiresAt = now+ttl")
		assert.True(t, renewed.ExpiresAt.Equal(mustGetMailbox(t, s, m.ID).LeaseExpiresAt))

		assert.Empty(t, acquire(t, s, "host-b", BaseTime.Add(2*time.Minute), time.Minute, 10), "the renewed lease holds past the old expiry")
		// Both the original and the renewed value identify the lease.
		_, err = s.RenewLease(ctx, got[0], renewAt.Add(time.Minute), 5*time.Minute)
		require.NoError(t, err)
		taken := acquire(t, s, "host-b", renewAt.Add(6*time.Minute+time.Second), time.Minute, 10)
		require.Len(t, taken, 1, "and expires at the renewed time")
		assert.True(t, taken[0].TakenOver)
		_, err = s.RenewLease(ctx, renewed, renewAt.Add(7*time.Minute), time.Minute)
		require.ErrorIs(t, err, serversync.ErrLeaseLost)
	})

	h.run(t, "RenewAfterExpiryWhileNotTakenOver", func(t *testing.T, s serversync.Store) {
		// The lease is "no longer held" only once it was taken or released: a holder
		// that renews late, before anyone took the mailbox, still holds it.
		m := scheduled(t, s, "alice@example.com", BaseTime)
		got := acquire(t, s, "host-a", BaseTime, time.Minute, 10)
		require.Len(t, got, 1)
		late := BaseTime.Add(10 * time.Minute)
		renewed, err := s.RenewLease(t.Context(), got[0], late, time.Minute)
		require.NoError(t, err)
		assert.True(t, late.Add(time.Minute).Equal(renewed.ExpiresAt))
		assert.Empty(t, acquire(t, s, "host-b", late.Add(30*time.Second), time.Minute, 10))
		assert.Equal(t, 0, mustGetMailbox(t, s, m.ID).ForcedUnlockCount)
	})

	h.run(t, "ReleaseSchedules", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		m := scheduled(t, s, "alice@example.com", BaseTime)
		got := acquire(t, s, "host-a", BaseTime, time.Hour, 10)
		require.Len(t, got, 1)
		next := BaseTime.Add(5 * time.Minute)
		require.NoError(t, s.ReleaseLease(ctx, got[0], next))

		stored := mustGetMailbox(t, s, m.ID)
		assert.Empty(t, stored.LeaseHost, "release clears the lease")
		assert.True(t, stored.LeaseExpiresAt.IsZero(), "release clears the lease")
		assert.True(t, next.Equal(stored.NextSyncAt), "release schedules the next sync")
		assert.Equal(t, 0, stored.ForcedUnlockCount)

		assert.Empty(t, acquire(t, s, "host-b", next.Add(-time.Second), time.Minute, 10), "not due before nextSync, although the old lease has not expired")
		again := acquire(t, s, "host-b", next, time.Minute, 10)
		require.Len(t, again, 1, "a released mailbox is acquired again when due")
		assert.False(t, again[0].TakenOver)
		assert.Equal(t, 0, mustGetMailbox(t, s, m.ID).ForcedUnlockCount)
	})

	h.run(t, "ReleaseUnscheduled", func(t *testing.T, s serversync.Store) {
		m := scheduled(t, s, "alice@example.com", BaseTime)
		got := acquire(t, s, "host-a", BaseTime, time.Minute, 10)
		require.Len(t, got, 1)
		require.NoError(t, s.ReleaseLease(t.Context(), got[0], time.Time{}))
		assert.True(t, mustGetMailbox(t, s, m.ID).NextSyncAt.IsZero())
		assert.Empty(t, acquire(t, s, "host-a", BaseTime.Add(100*365*24*time.Hour), time.Minute, 10), "a mailbox released with a zero time is not scheduled")
	})

	h.run(t, "ReleaseTwiceAndRenewAfterRelease", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		scheduled(t, s, "alice@example.com", BaseTime)
		got := acquire(t, s, "host-a", BaseTime, time.Minute, 10)
		require.Len(t, got, 1)
		require.NoError(t, s.ReleaseLease(ctx, got[0], BaseTime.Add(time.Hour)))
		require.ErrorIs(t, s.ReleaseLease(ctx, got[0], BaseTime), serversync.ErrLeaseLost)
		_, err := s.RenewLease(ctx, got[0], BaseTime, time.Minute)
		require.ErrorIs(t, err, serversync.ErrLeaseLost)
	})

	h.run(t, "ForgedLeaseRefused", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		m := scheduled(t, s, "alice@example.com", BaseTime)
		got := acquire(t, s, "host-a", BaseTime, time.Minute, 10)
		require.Len(t, got, 1)
		for name, l := range map[string]serversync.Lease{
			"OtherToken":   {MailboxID: m.ID, Host: "host-a", ExpiresAt: got[0].ExpiresAt, Token: got[0].Token + 1},
			"OtherHost":    {MailboxID: m.ID, Host: "host-b", ExpiresAt: got[0].ExpiresAt, Token: got[0].Token},
			"OtherMailbox": {MailboxID: serversync.NewID(), Host: "host-a", ExpiresAt: got[0].ExpiresAt, Token: got[0].Token},
		} {
			_, err := s.RenewLease(ctx, l, BaseTime, time.Minute)
			require.ErrorIs(t, err, serversync.ErrLeaseLost, name)
			require.ErrorIs(t, s.ReleaseLease(ctx, l, time.Time{}), serversync.ErrLeaseLost, name)
		}
		stored := mustGetMailbox(t, s, m.ID)
		assert.Equal(t, "host-a", stored.LeaseHost)
		assert.True(t, got[0].ExpiresAt.Equal(stored.LeaseExpiresAt))
	})

	h.run(t, "ConcurrentAcquirersShareNothing", func(t *testing.T, s serversync.Store) {
		const mailboxes, workers = 100, 8
		for i := range mailboxes {
			scheduled(t, s, fmt.Sprintf("m%03d@example.com", i), BaseTime.Add(-time.Duration(i)*time.Second))
		}
		var (
			wg  sync.WaitGroup
			mu  sync.Mutex
			got = map[string]string{}
		)
		for w := range workers {
			host := fmt.Sprint("host-", w)
			wg.Go(func() {
				leases, err := s.AcquireLeases(t.Context(), serversync.LeaseRequest{Host: host, Now: BaseTime, TTL: time.Minute, Limit: 15})
				if !assert.NoError(t, err) {
					return
				}
				mu.Lock()
				defer mu.Unlock()
				for _, l := range leases {
					if prev, dup := got[l.MailboxID]; dup {
						t.Errorf("mailbox %s leased to %s and %s", l.MailboxID, prev, host)
					}
					got[l.MailboxID] = host
				}
			})
		}
		wg.Wait()
		assert.Len(t, got, mailboxes, "8 hosts × 15 cover all 100 mailboxes")
	})

	h.run(t, "ConcurrentTakeoverHasOneWinner", func(t *testing.T, s serversync.Store) {
		m := scheduled(t, s, "alice@example.com", BaseTime)
		require.Len(t, acquire(t, s, "dead-host", BaseTime, time.Minute, 10), 1)
		const workers = 8
		var (
			wg      sync.WaitGroup
			winners atomic.Int32
		)
		for w := range workers {
			wg.Go(func() {
				leases, err := s.AcquireLeases(t.Context(), serversync.LeaseRequest{Host: fmt.Sprint("host-", w), Now: BaseTime.Add(time.Hour), TTL: time.Minute, Limit: 10})
				assert.NoError(t, err)
				for _, l := range leases {
					assert.True(t, l.TakenOver)
					winners.Add(1)
				}
			})
		}
		wg.Wait()
		assert.Equal(t, int32(1), winners.Load())
		assert.Equal(t, 1, mustGetMailbox(t, s, m.ID).ForcedUnlockCount)
	})

	h.run(t, "ConcurrentAcquireRelease", func(t *testing.T, s serversync.Store) {
		// Hosts repeatedly acquire and release while a shared injected clock advances.
		// Leases outlive the test's clock, so a mailbox is free only once released: a
		// holder leaves the map before releasing and a new holder enters it after
		// acquiring, so finding a mailbox in the map means two hosts hold it.
		const mailboxes, workers, rounds = 100, 4, 50
		for i := range mailboxes {
			scheduled(t, s, fmt.Sprintf("m%03d@example.com", i), BaseTime)
		}
		var (
			clock    atomic.Int64 // seconds since BaseTime
			mu       sync.Mutex
			holders  = map[string]string{}
			tokens   = map[string]int64{}
			acquired atomic.Int64
			wg       sync.WaitGroup
		)
		for w := range workers {
			host := fmt.Sprint("host-", w)
			wg.Go(func() {
				for range rounds {
					now := BaseTime.Add(time.Duration(clock.Add(1)) * time.Second)
					leases, err := s.AcquireLeases(t.Context(), serversync.LeaseRequest{Host: host, Now: now, TTL: 24 * time.Hour, Limit: 5})
					if !assert.NoError(t, err) {
						return
					}
					mu.Lock()
					for _, l := range leases {
						acquired.Add(1)
						if prev, held := holders[l.MailboxID]; held {
							t.Errorf("mailbox %s acquired by %s while %s holds it", l.MailboxID, host, prev)
						}
						if l.Token <= tokens[l.MailboxID] {
							t.Errorf("mailbox %s: token %d after %d", l.MailboxID, l.Token, tokens[l.MailboxID])
						}
						holders[l.MailboxID] = host
						tokens[l.MailboxID] = l.Token
					}
					mu.Unlock()
					for _, l := range leases {
						mu.Lock()
						delete(holders, l.MailboxID)
						mu.Unlock()
						assert.NoError(t, s.ReleaseLease(t.Context(), l, now))
					}
				}
			})
		}
		wg.Wait()
		assert.Positive(t, acquired.Load())
	})

	h.run(t, "ConcurrentExpiryAndTakeover", func(t *testing.T, s serversync.Store) {
		// Like ConcurrentAcquireRelease, but hosts stall now and then (keep a lease
		// without releasing it) and leases are short, so other hosts take them over
		// as the injected clock passes their expiry. Goroutines read the clock at
		// different moments, so the history is checked afterwards, in token order:
		// each acquisition follows either a successful release of the previous one
		// or, as a takeover, its expiry; a release succeeds only if no takeover
		// followed.
		const (
			mailboxes, workers, rounds = 50, 4, 60
			ttl                        = 10 * time.Second
		)
		var all []*serversync.Mailbox
		for i := range mailboxes {
			all = append(all, scheduled(t, s, fmt.Sprintf("m%03d@example.com", i), BaseTime))
		}
		type event struct {
			lease    serversync.Lease
			at       time.Time
			released bool // ReleaseLease succeeded
			lost     bool // ReleaseLease failed with ErrLeaseLost
		}
		var (
			clock   atomic.Int64 // seconds since BaseTime
			mu      sync.Mutex
			history = map[string][]*event{}
			wg      sync.WaitGroup
		)
		for w := range workers {
			host := fmt.Sprint("host-", w)
			wg.Go(func() {
				for r := range rounds {
					now := BaseTime.Add(time.Duration(clock.Add(1)) * time.Second)
					leases, err := s.AcquireLeases(t.Context(), serversync.LeaseRequest{Host: host, Now: now, TTL: ttl, Limit: 4})
					if !assert.NoError(t, err) {
						return
					}
					events := make([]*event, len(leases))
					mu.Lock()
					for i, l := range leases {
						events[i] = &event{lease: l, at: now}
						history[l.MailboxID] = append(history[l.MailboxID], events[i])
					}
					mu.Unlock()
					for i, l := range leases {
						if (r+i+w)%4 == 0 {
							continue // stall: the lease is never released and expires
						}
						err := s.ReleaseLease(t.Context(), l, now)
						mu.Lock()
						if err == nil {
							events[i].released = true
						} else if assert.ErrorIs(t, err, serversync.ErrLeaseLost) {
							events[i].lost = true
						}
						mu.Unlock()
					}
				}
			})
		}
		wg.Wait()

		takeovers := 0
		for _, m := range all {
			evs := history[m.ID]
			slices.SortFunc(evs, func(a, b *event) int { return cmp.Compare(a.lease.Token, b.lease.Token) })
			forced := 0
			for k, e := range evs {
				if k > 0 {
					prev := evs[k-1]
					require.NotEqual(t, prev.lease.Token, e.lease.Token, "mailbox %s: two acquisitions with one token", m.ID)
					if e.lease.TakenOver {
						assert.False(t, prev.released, "mailbox %s: token %d released although token %d took it over", m.ID, prev.lease.Token, e.lease.Token)
						assert.False(t, prev.lease.ExpiresAt.After(e.at), "mailbox %s: token %d taken over at %v before its expiry %v", m.ID, prev.lease.Token, e.at, prev.lease.ExpiresAt)
					} else {
						assert.True(t, prev.released, "mailbox %s: token %d acquired while token %d was neither released nor expired", m.ID, e.lease.Token, prev.lease.Token)
					}
				} else {
					assert.False(t, e.lease.TakenOver, "mailbox %s: the first lease takes nothing over", m.ID)
				}
				if e.lost {
					require.Less(t, k, len(evs)-1, "mailbox %s: release of the last lease failed", m.ID)
					assert.True(t, evs[k+1].lease.TakenOver, "mailbox %s: release of token %d lost without a takeover", m.ID, e.lease.Token)
				}
				if e.lease.TakenOver {
					forced++
				}
			}
			takeovers += forced
			assert.Equal(t, forced, mustGetMailbox(t, s, m.ID).ForcedUnlockCount, "mailbox %s: ForcedUnlockCount counts takeovers", m.ID)
		}
		assert.Positive(t, takeovers, "stalled leases were taken over")
	})
}
