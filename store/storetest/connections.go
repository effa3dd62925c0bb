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

// slotRequest is a new request (a new ID) for a slot of key.
func slotRequest(key string, limit int, host string, now time.Time, ttl time.Duration) serversync.ConnectionSlotRequest {
	return serversync.ConnectionSlotRequest{ID: serversync.NewID(), Key: key, Limit: limit, Host: host, Now: now, TTL: ttl}
}

// ask calls AcquireConnectionSlot and fails the test on error.
func ask(t *testing.T, s serversync.ConnectionSlotStore, req serversync.ConnectionSlotRequest) (serversync.ConnectionSlot, bool) {
	t.Helper()
	slot, ok, err := s.AcquireConnectionSlot(t.Context(), req)
	require.NoError(t, err)
	return slot, ok
}

// mustTakeSlot takes a slot that must be free, with a new request.
func mustTakeSlot(t *testing.T, s serversync.ConnectionSlotStore, key string, limit int, host string, now time.Time, ttl time.Duration) serversync.ConnectionSlot {
	t.Helper()
	slot, ok := ask(t, s, slotRequest(key, limit, host, now, ttl))
	require.True(t, ok, "a slot of %q (limit %d) is free at %v", key, limit, now)
	return slot
}

// assertFull asks for a slot that must not be free, and gives the place in line
// it gets back, so that it holds up no later request.
func assertFull(t *testing.T, s serversync.ConnectionSlotStore, key string, limit int, host string, now time.Time, msg string) {
	t.Helper()
	place, ok := ask(t, s, slotRequest(key, limit, host, now, time.Minute))
	if !assert.False(t, ok, msg) {
		return
	}
	assert.Equal(t, -1, place.Slot, "a place in line")
	require.NoError(t, s.ReleaseConnectionSlot(t.Context(), place))
}

func testConnectionSlots(t *testing.T, h harness) {
	h.run(t, "LimitHonoured", func(t *testing.T, s serversync.Store) {
		cs := slotsOf(t, s)
		now, ttl := BaseTime.In(otherZone), time.Minute
		reqA := slotRequest("profile:p1", 2, "host-a", now, ttl)
		a, ok := ask(t, cs, reqA)
		require.True(t, ok)
		b := mustTakeSlot(t, cs, "profile:p1", 2, "host-b", now, ttl)
		for _, slot := range []serversync.ConnectionSlot{a, b} {
			assert.Equal(t, "profile:p1", slot.Key)
			assert.True(t, now.Add(ttl).Equal(slot.ExpiresAt), "ExpiresAt = Now+TTL")
			assert.GreaterOrEqual(t, slot.Slot, 0)
			assert.Less(t, slot.Slot, 2)
		}
		assert.Equal(t, reqA.ID, a.ID)
		assert.Equal(t, "host-a", a.Host)
		assert.Equal(t, "host-b", b.Host)
		assert.NotEqual(t, a.Slot, b.Slot)

		assertFull(t, cs, "profile:p1", 2, "host-a", now, "both slots held, by any host")
		assertFull(t, cs, "profile:p1", 2, "host-c", now.Add(59*time.Second), "not before they expire")
		mustTakeSlot(t, cs, "mailbox:m1", 1, "host-a", now, ttl) // another budget counts apart
	})

	h.run(t, "AskingAgainIsNotASecondSlot", func(t *testing.T, s serversync.Store) {
		// A reply lost on the way (a dropped connection) makes the caller ask again
		// with the same ID: it gets the slot it already has, extended.
		cs := slotsOf(t, s)
		req := slotRequest("profile:p1", 2, "host-a", BaseTime, time.Minute)
		first, ok := ask(t, cs, req)
		require.True(t, ok)
		req.Now = BaseTime.Add(30 * time.Second)
		again, ok := ask(t, cs, req)
		require.True(t, ok)
		assert.Equal(t, first.Slot, again.Slot)
		assert.True(t, BaseTime.Add(90*time.Second).Equal(again.ExpiresAt))
		mustTakeSlot(t, cs, "profile:p1", 2, "host-b", BaseTime, time.Minute)
		assertFull(t, cs, "profile:p1", 2, "host-c", BaseTime, "two slots held, not three")
		require.NoError(t, cs.ReleaseConnectionSlot(t.Context(), first))
		require.ErrorIs(t, cs.ReleaseConnectionSlot(t.Context(), again), serversync.ErrLeaseLost, "one slot, released once")
	})

	h.run(t, "ReleaseFreesTheSlot", func(t *testing.T, s serversync.Store) {
		cs := slotsOf(t, s)
		ctx := t.Context()
		a := mustTakeSlot(t, cs, "mailbox:m1", 1, "host-a", BaseTime, time.Minute)
		require.NoError(t, cs.ReleaseConnectionSlot(ctx, a))
		b := mustTakeSlot(t, cs, "mailbox:m1", 1, "host-b", BaseTime, time.Minute)
		assert.Equal(t, 0, b.Slot)

		// The first holder's slot is gone, although the new one has its number.
		require.ErrorIs(t, cs.ReleaseConnectionSlot(ctx, a), serversync.ErrLeaseLost)
		_, err := cs.RenewConnectionSlot(ctx, a, BaseTime, time.Minute)
		require.ErrorIs(t, err, serversync.ErrLeaseLost)
		assertFull(t, cs, "mailbox:m1", 1, "host-c", BaseTime, "the stale release freed nothing")
		require.NoError(t, cs.ReleaseConnectionSlot(ctx, b))
	})

	h.run(t, "ExpiryFreesTheSlot", func(t *testing.T, s serversync.Store) {
		cs := slotsOf(t, s)
		ctx := t.Context()
		dead := mustTakeSlot(t, cs, "profile:p1", 1, "dead-host", BaseTime, time.Minute)
		assertFull(t, cs, "profile:p1", 1, "host-b", BaseTime.Add(time.Minute-time.Microsecond), "not yet expired")
		b := mustTakeSlot(t, cs, "profile:p1", 1, "host-b", BaseTime.Add(time.Minute), time.Minute) // ExpiresAt == Now: expired
		assert.Equal(t, "host-b", b.Host)

		_, err := cs.RenewConnectionSlot(ctx, dead, BaseTime.Add(time.Minute), time.Minute)
		require.ErrorIs(t, err, serversync.ErrLeaseLost, "a renew of a slot taken over fails")
		require.ErrorIs(t, cs.ReleaseConnectionSlot(ctx, dead), serversync.ErrLeaseLost)
		assertFull(t, cs, "profile:p1", 1, "host-c", BaseTime.Add(time.Minute), "the dead holder's calls freed nothing")
	})

	h.run(t, "RenewExtends", func(t *testing.T, s serversync.Store) {
		cs := slotsOf(t, s)
		ctx := t.Context()
		a := mustTakeSlot(t, cs, "profile:p1", 1, "host-a", BaseTime, time.Minute)
		renewed, err := cs.RenewConnectionSlot(ctx, a, BaseTime.Add(50*time.Second).In(otherZone), 2*time.Minute)
		require.NoError(t, err)
		assert.True(t, BaseTime.Add(170*time.Second).Equal(renewed.ExpiresAt), "ExpiresAt = now+ttl")
		assert.Equal(t, a.ID, renewed.ID)
		assert.Equal(t, a.Slot, renewed.Slot)
		assertFull(t, cs, "profile:p1", 1, "host-b", BaseTime.Add(169*time.Second), "held until the renewed expiry")

		// Past its expiry, but nobody needed the slot: still held, and renewable.
		renewed, err = cs.RenewConnectionSlot(ctx, a, BaseTime.Add(time.Hour), time.Minute)
		require.NoError(t, err, "an expired slot nobody freed is still its holder's")
		assertFull(t, cs, "profile:p1", 1, "host-b", BaseTime.Add(time.Hour+59*time.Second), "renewed")
		require.NoError(t, cs.ReleaseConnectionSlot(ctx, a), "the old value of a renewed slot still names it")
	})

	h.run(t, "ForgedSlotIsNotHeld", func(t *testing.T, s serversync.Store) {
		cs := slotsOf(t, s)
		ctx := t.Context()
		a := mustTakeSlot(t, cs, "profile:p1", 2, "host-a", BaseTime, time.Minute)
		for name, forged := range map[string]serversync.ConnectionSlot{
			"other host": {ID: a.ID, Key: a.Key, Slot: a.Slot, Host: "host-b"},
			"other ID":   {ID: serversync.NewID(), Key: a.Key, Slot: a.Slot, Host: a.Host},
			"other key":  {ID: a.ID, Key: "profile:p2", Slot: a.Slot, Host: a.Host},
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
		assertFull(t, cs, "profile:p1", 2, "host-b", BaseTime, "3 held, limit now 2")
		require.NoError(t, cs.ReleaseConnectionSlot(ctx, held[0]))
		assertFull(t, cs, "profile:p1", 2, "host-b", BaseTime, "2 held, limit 2")
		require.NoError(t, cs.ReleaseConnectionSlot(ctx, held[2]))
		b := mustTakeSlot(t, cs, "profile:p1", 2, "host-b", BaseTime, time.Minute)
		assert.Less(t, b.Slot, 2)
		assert.NotEqual(t, held[1].Slot, b.Slot)
	})

	h.run(t, "BadRequestRefused", func(t *testing.T, s serversync.Store) {
		cs := slotsOf(t, s)
		noLimit := slotRequest("profile:p1", 0, "host-a", BaseTime, time.Minute)
		_, ok, err := cs.AcquireConnectionSlot(t.Context(), noLimit)
		require.Error(t, err)
		assert.False(t, ok)
		noID := slotRequest("profile:p1", 1, "host-a", BaseTime, time.Minute)
		noID.ID = ""
		_, ok, err = cs.AcquireConnectionSlot(t.Context(), noID)
		require.Error(t, err)
		assert.False(t, ok)
	})

	h.run(t, "FirstComeFirstServed", func(t *testing.T, s serversync.Store) {
		cs := slotsOf(t, s)
		ctx := t.Context()
		a := mustTakeSlot(t, cs, "profile:p1", 1, "host-a", BaseTime, time.Minute)
		reqB := slotRequest("profile:p1", 1, "host-b", BaseTime, time.Minute)
		b, ok := ask(t, cs, reqB)
		require.False(t, ok)
		assert.Equal(t, -1, b.Slot)
		assert.Equal(t, reqB.ID, b.ID)
		assert.Equal(t, "host-b", b.Host)
		assert.True(t, BaseTime.Add(time.Minute).Equal(b.ExpiresAt), "kept until Now+TTL without a WaitTTL")
		reqC := slotRequest("profile:p1", 1, "host-c", BaseTime, time.Minute)
		_, ok = ask(t, cs, reqC)
		require.False(t, ok)
		require.NoError(t, cs.ReleaseConnectionSlot(ctx, a))

		later := func(req serversync.ConnectionSlotRequest) serversync.ConnectionSlotRequest {
			req.Now, req.WaitTTL = BaseTime.Add(time.Second), 10*time.Second
			return req
		}
		again, ok := ask(t, cs, later(reqC))
		assert.False(t, ok, "host-b is first in line")
		assert.True(t, BaseTime.Add(11*time.Second).Equal(again.ExpiresAt), "kept until Now+WaitTTL")
		reqD := later(slotRequest("profile:p1", 1, "host-d", BaseTime, time.Minute))
		_, ok = ask(t, cs, reqD)
		assert.False(t, ok, "a new request queues behind everyone")
		stolen := later(reqB)
		stolen.Host = "host-c"
		_, ok, _ = cs.AcquireConnectionSlot(ctx, stolen) // an error or a place of its own
		assert.False(t, ok, "a place is its holder's: host-c cannot take host-b's")
		got, ok := ask(t, cs, later(reqB))
		require.True(t, ok, "the first in line gets the free slot")
		assert.Equal(t, 0, got.Slot)
		require.NoError(t, cs.ReleaseConnectionSlot(ctx, got))
		_, ok = ask(t, cs, later(reqD))
		assert.False(t, ok, "host-c is ahead of host-d")
		_, ok = ask(t, cs, later(reqC))
		assert.True(t, ok)
	})

	h.run(t, "PlaceInLineGivenUpOrExpired", func(t *testing.T, s serversync.Store) {
		cs := slotsOf(t, s)
		ctx := t.Context()
		req := func(host string) serversync.ConnectionSlotRequest {
			r := slotRequest("profile:p1", 1, host, BaseTime, time.Hour)
			r.WaitTTL = 10 * time.Second
			return r
		}
		at := func(r serversync.ConnectionSlotRequest, now time.Time) serversync.ConnectionSlotRequest {
			r.Now = now
			return r
		}
		a, _ := ask(t, cs, req("host-a"))
		b, ok := ask(t, cs, req("host-b"))
		require.False(t, ok)
		reqC := req("host-c")
		_, ok = ask(t, cs, reqC)
		require.False(t, ok)
		require.NoError(t, cs.ReleaseConnectionSlot(ctx, a))
		require.NoError(t, cs.ReleaseConnectionSlot(ctx, b), "host-b gives up its place")
		a, ok = ask(t, cs, at(reqC, BaseTime.Add(time.Second)))
		require.True(t, ok, "host-c moved up")
		require.NoError(t, cs.ReleaseConnectionSlot(ctx, a))

		// A waiter that stops asking (it died) loses its place once WaitTTL passes.
		a, _ = ask(t, cs, at(req("host-a"), BaseTime.Add(2*time.Second)))
		dead, ok := ask(t, cs, at(req("dead-host"), BaseTime.Add(2*time.Second)))
		require.False(t, ok)
		reqD := at(req("host-d"), BaseTime.Add(2*time.Second))
		_, ok = ask(t, cs, reqD)
		require.False(t, ok)
		require.NoError(t, cs.ReleaseConnectionSlot(ctx, a))
		_, ok = ask(t, cs, at(reqD, dead.ExpiresAt.Add(-time.Microsecond)))
		assert.False(t, ok, "the dead host is still first in line")
		got, ok := ask(t, cs, at(reqD, dead.ExpiresAt))
		assert.True(t, ok, "its place expired")
		assert.Equal(t, "host-d", got.Host)
		require.ErrorIs(t, cs.ReleaseConnectionSlot(ctx, dead), serversync.ErrLeaseLost)
	})

	h.run(t, "ConcurrentAcquirersNeverExceedTheLimit", func(t *testing.T, s serversync.Store) {
		// Hosts acquire and release slots of one budget at once. A holder counts
		// itself in after acquiring and out before releasing, so the count exceeding
		// the limit means more slots were held than the budget has. Slots outlive the
		// test, so only releases free them; a request not served gives its place up.
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
					slot, ok, err := cs.AcquireConnectionSlot(t.Context(), slotRequest("profile:p1", limit, host, BaseTime, 24*time.Hour))
					if !assert.NoError(t, err) {
						return
					}
					if ok {
						granted.Add(1)
						n := inUse.Add(1)
						for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
						}
						assert.Less(t, slot.Slot, limit)
						inUse.Add(-1)
					}
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
				_, ok, err := cs.AcquireConnectionSlot(t.Context(), slotRequest("profile:p1", limit, fmt.Sprint("host-", w), BaseTime.Add(time.Hour), time.Minute))
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
		_, _, err := cs.AcquireConnectionSlot(ctx, slotRequest("profile:p2", 1, "host-a", BaseTime, time.Minute))
		require.ErrorIs(t, err, context.Canceled)
		_, err = cs.RenewConnectionSlot(ctx, a, BaseTime, time.Hour)
		require.ErrorIs(t, err, context.Canceled)
		require.ErrorIs(t, cs.ReleaseConnectionSlot(ctx, a), context.Canceled)
		// Nothing was stored: p2 is free, a is held and not renewed.
		mustTakeSlot(t, cs, "profile:p2", 1, "host-b", BaseTime, time.Minute)
		assertFull(t, cs, "profile:p1", 1, "host-b", BaseTime, "not renewed, not released")
		mustTakeSlot(t, cs, "profile:p1", 1, "host-b", BaseTime.Add(time.Minute), time.Minute)
	})

	t.Run("CallAfterCloseFails", func(t *testing.T) {
		t.Parallel()
		s := h.openUnmanaged(t)
		t.Cleanup(func() { _ = s.Close() }) // when skipped; closing twice does nothing
		cs := slotsOf(t, s)
		a := mustTakeSlot(t, cs, "profile:p1", 1, "host-a", BaseTime, time.Minute)
		require.NoError(t, s.Close())
		_, _, err := cs.AcquireConnectionSlot(t.Context(), slotRequest("profile:p2", 1, "host-a", BaseTime, time.Minute))
		require.ErrorIs(t, err, serversync.ErrClosed)
		_, err = cs.RenewConnectionSlot(t.Context(), a, BaseTime, time.Minute)
		require.ErrorIs(t, err, serversync.ErrClosed)
		require.ErrorIs(t, cs.ReleaseConnectionSlot(t.Context(), a), serversync.ErrClosed)
	})
}
