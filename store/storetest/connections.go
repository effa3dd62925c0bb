package storetest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
)

// slotsOf returns s as a ConnectionSlotStore, skipping t for a store without one.
func slotsOf(t *testing.T, s serversync.Store) serversync.ConnectionSlotStore {
	t.Helper()
	cs, ok := s.(serversync.ConnectionSlotStore)
	if !ok {
		t.Skip("storetest: the store implements no serversync.ConnectionSlotStore")
	}
	return cs
}

// takeSlot calls AcquireConnectionSlot and fails the test on error.
func takeSlot(t *testing.T, s serversync.ConnectionSlotStore, key string, limit int, host string, now time.Time, ttl time.Duration) (serversync.ConnectionSlot, bool) {
	t.Helper()
	slot, ok, err := s.AcquireConnectionSlot(t.Context(), serversync.ConnectionSlotRequest{Key: key, Limit: limit, Host: host, Now: now, TTL: ttl})
	require.NoError(t, err)
	return slot, ok
}

// mustTakeSlot takes a slot that must be free.
func mustTakeSlot(t *testing.T, s serversync.ConnectionSlotStore, key string, limit int, host string, now time.Time, ttl time.Duration) serversync.ConnectionSlot {
	t.Helper()
	slot, ok := takeSlot(t, s, key, limit, host, now, ttl)
	require.True(t, ok, "a slot of %q (limit %d) is free at %v", key, limit, now)
	return slot
}

func testConnectionSlots(t *testing.T, h harness) {
	h.run(t, "LimitHonoured", func(t *testing.T, s serversync.Store) {
		cs := slotsOf(t, s)
		now, ttl := BaseTime.In(otherZone), time.Minute
		a := mustTakeSlot(t, cs, "profile:p1", 2, "host-a", now, ttl)
		b := mustTakeSlot(t, cs, "profile:p1", 2, "host-b", now, ttl)
		for _, slot := range []serversync.ConnectionSlot{a, b} {
			assert.Equal(t, "profile:p1", slot.Key)
			assert.True(t, now.Add(ttl).Equal(slot.ExpiresAt), "ExpiresAt = Now+TTL")
			assert.GreaterOrEqual(t, slot.Slot, 0)
			assert.Less(t, slot.Slot, 2)
		}
		assert.Equal(t, "host-a", a.Host)
		assert.Equal(t, "host-b", b.Host)
		assert.NotEqual(t, a.Slot, b.Slot)
		assert.NotEqual(t, a.Token, b.Token)

		_, ok := takeSlot(t, cs, "profile:p1", 2, "host-a", now, ttl)
		assert.False(t, ok, "both slots held, by any host")
		_, ok = takeSlot(t, cs, "profile:p1", 2, "host-c", now.Add(59*time.Second), ttl)
		assert.False(t, ok, "not before they expire")
		mustTakeSlot(t, cs, "mailbox:m1", 1, "host-a", now, ttl) // another budget counts apart
	})

	h.run(t, "ReleaseFreesTheSlot", func(t *testing.T, s serversync.Store) {
		cs := slotsOf(t, s)
		ctx := t.Context()
		a := mustTakeSlot(t, cs, "mailbox:m1", 1, "host-a", BaseTime, time.Minute)
		require.NoError(t, cs.ReleaseConnectionSlot(ctx, a))
		b := mustTakeSlot(t, cs, "mailbox:m1", 1, "host-b", BaseTime, time.Minute)
		assert.Equal(t, 0, b.Slot)
		assert.NotEqual(t, a.Token, b.Token, "a token is never handed out twice")

		// The first holder's slot is gone, although the new one has its number.
		require.ErrorIs(t, cs.ReleaseConnectionSlot(ctx, a), serversync.ErrLeaseLost)
		_, err := cs.RenewConnectionSlot(ctx, a, BaseTime, time.Minute)
		require.ErrorIs(t, err, serversync.ErrLeaseLost)
		_, ok := takeSlot(t, cs, "mailbox:m1", 1, "host-c", BaseTime, time.Minute)
		assert.False(t, ok, "the stale release freed nothing")

		// The same host acquiring again gets a new token: its old one stays lost.
		require.NoError(t, cs.ReleaseConnectionSlot(ctx, b))
		c := mustTakeSlot(t, cs, "mailbox:m1", 1, "host-b", BaseTime, time.Minute)
		require.ErrorIs(t, cs.ReleaseConnectionSlot(ctx, b), serversync.ErrLeaseLost)
		require.NoError(t, cs.ReleaseConnectionSlot(ctx, c))
	})

	h.run(t, "ExpiryFreesTheSlot", func(t *testing.T, s serversync.Store) {
		cs := slotsOf(t, s)
		ctx := t.Context()
		dead := mustTakeSlot(t, cs, "profile:p1", 1, "dead-host", BaseTime, time.Minute)
		_, ok := takeSlot(t, cs, "profile:p1", 1, "host-b", BaseTime.Add(time.Minute-time.Microsecond), time.Minute)
		require.False(t, ok)
		b := mustTakeSlot(t, cs, "profile:p1", 1, "host-b", BaseTime.Add(time.Minute), time.Minute) // ExpiresAt == Now: expired
		assert.Equal(t, "host-b", b.Host)
		assert.NotEqual(t, dead.Token, b.Token)

		_, err := cs.RenewConnectionSlot(ctx, dead, BaseTime.Add(time.Minute), time.Minute)
		require.ErrorIs(t, err, serversync.ErrLeaseLost, "a renew of a slot taken over fails")
		require.ErrorIs(t, cs.ReleaseConnectionSlot(ctx, dead), serversync.ErrLeaseLost)
		_, ok = takeSlot(t, cs, "profile:p1", 1, "host-c", BaseTime.Add(time.Minute), time.Minute)
		assert.False(t, ok, "the dead holder's calls freed nothing")
	})

	h.run(t, "RenewExtends", func(t *testing.T, s serversync.Store) {
		cs := slotsOf(t, s)
		ctx := t.Context()
		a := mustTakeSlot(t, cs, "profile:p1", 1, "host-a", BaseTime, time.Minute)
		renewed, err := cs.RenewConnectionSlot(ctx, a, BaseTime.Add(50*time.Second).In(otherZone), 2*time.Minute)
		require.NoError(t, err)
		assert.True(t, BaseTime.Add(170*time.Second).Equal(renewed.ExpiresAt), "ExpiresAt = now+ttl")
		assert.Equal(t, a.Token, renewed.Token)
		assert.Equal(t, a.Slot, renewed.Slot)
		_, ok := takeSlot(t, cs, "profile:p1", 1, "host-b", BaseTime.Add(169*time.Second), time.Minute)
		assert.False(t, ok, "held until the renewed expiry")

		// Past its expiry, but nobody needed the slot: still held, and renewable.
		renewed, err = cs.RenewConnectionSlot(ctx, a, BaseTime.Add(time.Hour), time.Minute)
		require.NoError(t, err, "an expired slot nobody freed is still its holder's")
		_, ok = takeSlot(t, cs, "profile:p1", 1, "host-b", BaseTime.Add(time.Hour+59*time.Second), time.Minute)
		assert.False(t, ok)
		require.NoError(t, cs.ReleaseConnectionSlot(ctx, renewed), "the old value of a renewed slot still names it")
	})

	h.run(t, "ForgedSlotIsNotHeld", func(t *testing.T, s serversync.Store) {
		cs := slotsOf(t, s)
		ctx := t.Context()
		a := mustTakeSlot(t, cs, "profile:p1", 2, "host-a", BaseTime, time.Minute)
		for name, forged := range map[string]serversync.ConnectionSlot{
			"other host":  {Key: a.Key, Slot: a.Slot, Host: "host-b", Token: a.Token},
			"other token": {Key: a.Key, Slot: a.Slot, Host: a.Host, Token: a.Token + 1000},
			"other key":   {Key: "profile:p2", Slot: a.Slot, Host: a.Host, Token: a.Token},
			"other slot":  {Key: a.Key, Slot: a.Slot + 1, Host: a.Host, Token: a.Token},
		} {
			_, err := cs.RenewConnectionSlot(ctx, forged, BaseTime, time.Minute)
			require.ErrorIs(t, err, serversync.ErrLeaseLost, name)
			require.ErrorIs(t, cs.ReleaseConnectionSlot(ctx, forged), serversync.ErrLeaseLost, name)
		}
		require.NoError(t, cs.ReleaseConnectionSlot(ctx, a))
	})

	h.run(t, "LoweredLimitCountsEveryHeldSlot", func(t *testing.T, s serversync.Store) {
		cs := slotsOf(t, s)
		ctx := t.Context()
		var held []serversync.ConnectionSlot
		for range 3 {
			held = append(held, mustTakeSlot(t, cs, "profile:p1", 3, "host-a", BaseTime, time.Minute))
		}
		_, ok := takeSlot(t, cs, "profile:p1", 2, "host-b", BaseTime, time.Minute)
		assert.False(t, ok, "3 held, limit now 2")
		require.NoError(t, cs.ReleaseConnectionSlot(ctx, held[0]))
		_, ok = takeSlot(t, cs, "profile:p1", 2, "host-b", BaseTime, time.Minute)
		assert.False(t, ok, "2 held, limit 2")
		require.NoError(t, cs.ReleaseConnectionSlot(ctx, held[2]))
		b := mustTakeSlot(t, cs, "profile:p1", 2, "host-b", BaseTime, time.Minute)
		assert.Less(t, b.Slot, 2)
		assert.NotEqual(t, held[1].Slot, b.Slot)
	})

	h.run(t, "LimitBelowOneRefused", func(t *testing.T, s serversync.Store) {
		cs := slotsOf(t, s)
		_, ok, err := cs.AcquireConnectionSlot(t.Context(), serversync.ConnectionSlotRequest{Key: "profile:p1", Limit: 0, Host: "host-a", Now: BaseTime, TTL: time.Minute})
		require.Error(t, err)
		assert.False(t, ok)
	})

	h.run(t, "ConcurrentAcquirersNeverExceedTheLimit", func(t *testing.T, s serversync.Store) {
		// Hosts acquire and release slots of one budget at once. A holder counts
		// itself in after acquiring and out before releasing, so the count exceeding
		// the limit means more slots were held than the budget has. Slots outlive the
		// test, so only releases free them.
		cs := slotsOf(t, s)
		const limit, workers, rounds = 3, 8, 40
		var (
			inUse, peak, granted atomic.Int64
			wg                   sync.WaitGroup
		)
		for w := range workers {
			host := fmt.Sprint("host-", w)
			wg.Go(func() {
				for range rounds {
					slot, ok, err := cs.AcquireConnectionSlot(t.Context(), serversync.ConnectionSlotRequest{Key: "profile:p1", Limit: limit, Host: host, Now: BaseTime, TTL: 24 * time.Hour})
					if !assert.NoError(t, err) {
						return
					}
					if !ok {
						continue
					}
					granted.Add(1)
					n := inUse.Add(1)
					for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
					}
					assert.Less(t, slot.Slot, limit)
					inUse.Add(-1)
					assert.NoError(t, cs.ReleaseConnectionSlot(t.Context(), slot))
				}
			})
		}
		wg.Wait()
		assert.LessOrEqual(t, peak.Load(), int64(limit), "slots held at once")
		assert.Positive(t, granted.Load())
	})

	h.run(t, "ConcurrentTakeoverOfExpiredSlots", func(t *testing.T, s serversync.Store) {
		// A dead host left every slot expired; hosts racing for them get at most
		// Limit, and the dead host's slots are all lost.
		cs := slotsOf(t, s)
		const limit, workers = 2, 8
		var dead []serversync.ConnectionSlot
		for range limit {
			dead = append(dead, mustTakeSlot(t, cs, "profile:p1", limit, "dead-host", BaseTime, time.Minute))
		}
		var (
			wg  sync.WaitGroup
			won atomic.Int32
		)
		for w := range workers {
			wg.Go(func() {
				_, ok, err := cs.AcquireConnectionSlot(t.Context(), serversync.ConnectionSlotRequest{Key: "profile:p1", Limit: limit, Host: fmt.Sprint("host-", w), Now: BaseTime.Add(time.Hour), TTL: time.Minute})
				assert.NoError(t, err)
				if ok {
					won.Add(1)
				}
			})
		}
		wg.Wait()
		assert.Equal(t, int32(limit), won.Load())
		for _, slot := range dead {
			require.ErrorIs(t, cs.ReleaseConnectionSlot(t.Context(), slot), serversync.ErrLeaseLost)
		}
	})

	h.run(t, "CancelledContext", func(t *testing.T, s serversync.Store) {
		cs := slotsOf(t, s)
		a := mustTakeSlot(t, cs, "profile:p1", 1, "host-a", BaseTime, time.Minute)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, _, err := cs.AcquireConnectionSlot(ctx, serversync.ConnectionSlotRequest{Key: "profile:p2", Limit: 1, Host: "host-a", Now: BaseTime, TTL: time.Minute})
		require.ErrorIs(t, err, context.Canceled)
		_, err = cs.RenewConnectionSlot(ctx, a, BaseTime, time.Hour)
		require.ErrorIs(t, err, context.Canceled)
		require.ErrorIs(t, cs.ReleaseConnectionSlot(ctx, a), context.Canceled)
		// Nothing was stored: p2 is free, a is held and not renewed.
		mustTakeSlot(t, cs, "profile:p2", 1, "host-b", BaseTime, time.Minute)
		_, ok := takeSlot(t, cs, "profile:p1", 1, "host-b", BaseTime, time.Minute)
		assert.False(t, ok)
		mustTakeSlot(t, cs, "profile:p1", 1, "host-b", BaseTime.Add(time.Minute), time.Minute)
	})

	t.Run("CallAfterCloseFails", func(t *testing.T) {
		t.Parallel()
		s := h.openUnmanaged(t)
		t.Cleanup(func() { _ = s.Close() }) // when skipped; closing twice does nothing
		cs := slotsOf(t, s)
		a := mustTakeSlot(t, cs, "profile:p1", 1, "host-a", BaseTime, time.Minute)
		require.NoError(t, s.Close())
		_, _, err := cs.AcquireConnectionSlot(t.Context(), serversync.ConnectionSlotRequest{Key: "profile:p2", Limit: 1, Host: "host-a", Now: BaseTime, TTL: time.Minute})
		require.Error(t, err)
		_, err = cs.RenewConnectionSlot(t.Context(), a, BaseTime, time.Minute)
		require.Error(t, err)
		require.Error(t, cs.ReleaseConnectionSlot(t.Context(), a))
	})
}
