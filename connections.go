package serversync

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"golang.org/x/sync/semaphore"
)

// connectionKey is what MaxConcurrentConnections counts (DESIGN §2): each
// mailbox's own credentials, or else the profile's (its service account, its
// server-to-server or Windows identity, or anonymous access).
func (w *work) connectionKey(dir Direction) string {
	if w.p.credentialSource(dir).UsesMailboxCredentials() {
		return "mailbox:" + w.m.ID
	}
	return "profile:" + w.p.ID
}

// acquireConnection waits for a connection slot of the mailbox's budget. Budgets
// are kept only while in use, so memory does not grow with the mailboxes ever seen.
//
// The slot is taken in this process first, then, when the store counts connections
// for every process sharing it ([ConnectionSlotStore]), in the store: the process's
// semaphore keeps its own callers in line without store traffic, and at most the
// budget's limit of them per process ask the store at a time.
func (s *Syncer) acquireConnection(ctx context.Context, w *work, dir Direction) (release func(), err error) {
	b, done := s.connectionBudget(w, dir)
	if err := b.sem.Acquire(ctx, 1); err != nil {
		done()
		return nil, err
	}
	releaseShared, err := s.waitForSharedSlot(ctx, b)
	if err != nil {
		b.sem.Release(1)
		done()
		return nil, err
	}
	return func() { releaseShared(); b.sem.Release(1); done() }, nil
}

// tryAcquireConnection takes a connection slot only if one is free now: for extra
// connections a fetch can do without.
func (s *Syncer) tryAcquireConnection(ctx context.Context, w *work, dir Direction) (release func(), ok bool) {
	b, done := s.connectionBudget(w, dir)
	if !b.sem.TryAcquire(1) {
		done()
		return nil, false
	}
	request := NewID()
	releaseShared, err := s.takeSharedSlot(ctx, b, request)
	if releaseShared == nil {
		if err != nil && ctx.Err() == nil {
			s.log.Warn("take a connection slot in the store: fetching with fewer connections", "budget", b.key, "err", err)
		}
		s.withdraw(ctx, b, request)
		b.sem.Release(1)
		done()
		return nil, false
	}
	return func() { releaseShared(); b.sem.Release(1); done() }, true
}

// waitForSharedSlot takes a slot of b in the store, waiting in the store's line
// while other processes hold them all, until ctx ends. It asks again with back-off
// (a slot this process gives back wakes it at once). A store that fails is retried
// the same way: connecting over the budget is never the way out.
func (s *Syncer) waitForSharedSlot(ctx context.Context, b *budget) (release func(), err error) {
	request := NewID() // one request however often it asks, so a lost reply grants no second slot
	logged := false
	maxWait := min(sharedSlotMaxWait, s.cfg.LeaseTTL/4) // well within the place's TTL
	for wait := min(sharedSlotFirstWait, maxWait); ; wait = min(2*wait, maxWait) {
		release, err := s.takeSharedSlot(ctx, b, request)
		if release != nil {
			return release, nil
		}
		if err != nil && !logged && ctx.Err() == nil {
			s.log.Warn("take a connection slot in the store: retrying", "budget", b.key, "err", err)
			logged = true
		}
		// Jitter keeps the processes waiting for one budget from asking in step.
		t := time.NewTimer(wait/2 + rand.N(wait/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			s.withdraw(ctx, b, request)
			return nil, ctx.Err()
		case <-b.freed:
		case <-t.C:
		}
		t.Stop()
	}
}

// Back-off of waitForSharedSlot. A connection is held for a sync or a send, seconds
// to minutes, so a wait of up to a second adds little; each ask is one store round
// trip, and at most the budget's limit of callers per process ask. A place in line
// is kept for sharedSlotWaitTTL (or LeaseTTL if shorter) after each ask: a process
// that dies while waiting holds up the line no longer than that.
const (
	sharedSlotFirstWait = 25 * time.Millisecond
	sharedSlotMaxWait   = time.Second
	sharedSlotWaitTTL   = 10 * time.Second
)

// ConnectionSlotTTLDefault is Config.ConnectionSlotTTL's default: how long a
// connection slot in the store lasts unrenewed (LeaseTTL if that is shorter). It
// bounds how long a process that died, or could not release a slot, holds up the
// budget: a third of a minute of renewing costs one store round trip per open
// connection every 10 s.
const ConnectionSlotTTLDefault = 30 * time.Second

// adoptOrphan takes over, by renewing it, a slot of budget key that this process
// holds but could not release (the store failed for longer than the release
// retried): rather than one slot less until it expires, the budget keeps it.
func (s *Syncer) adoptOrphan(ctx context.Context, slots ConnectionSlotStore, key string, ttl time.Duration) (ConnectionSlot, bool) {
	for {
		s.connMu.Lock()
		orphans := s.orphans[key]
		if len(orphans) == 0 {
			s.connMu.Unlock()
			return ConnectionSlot{}, false
		}
		orphan := orphans[len(orphans)-1]
		if orphans = orphans[:len(orphans)-1]; len(orphans) == 0 {
			delete(s.orphans, key)
		} else {
			s.orphans[key] = orphans
		}
		s.connMu.Unlock()
		renewed, err := slots.RenewConnectionSlot(ctx, orphan, s.cfg.Now(), ttl)
		switch {
		case err == nil:
			return renewed, true
		case !errors.Is(err, ErrLeaseLost): // the store still failing: try again next time
			s.connMu.Lock()
			s.orphans[key] = append(s.orphans[key], orphan)
			s.connMu.Unlock()
			return ConnectionSlot{}, false
		}
	}
}

// withdraw gives back whatever the store holds for a request its caller gave up:
// a place in line, so that those behind need not wait for it to expire, or a slot
// granted by a call whose reply was lost.
func (s *Syncer) withdraw(ctx context.Context, b *budget, request string) {
	slots, shared := s.store.(ConnectionSlotStore)
	if !shared {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownLeaseGrace)
	defer cancel()
	err := slots.ReleaseConnectionSlot(ctx, ConnectionSlot{ID: request, Key: b.key, Host: s.cfg.Host})
	if err != nil && !errors.Is(err, ErrLeaseLost) {
		s.log.Warn("withdraw a connection slot request: it expires instead", "budget", b.key, "err", err)
	}
}

// takeSharedSlot takes a slot of b in the store for request if one is free now for
// it, and keeps it renewed until release; release is nil when none is. Without a
// ConnectionSlotStore it succeeds at once: the process's semaphore is the whole budget.
func (s *Syncer) takeSharedSlot(ctx context.Context, b *budget, request string) (release func(), err error) {
	slots, shared := s.store.(ConnectionSlotStore)
	if !shared {
		return func() {}, nil
	}
	ttl := s.cfg.ConnectionSlotTTL
	take := func(ctx context.Context, request string) (ConnectionSlot, bool, error) {
		return slots.AcquireConnectionSlot(ctx, ConnectionSlotRequest{ID: request, Key: b.key, Limit: int(b.limit), Host: s.cfg.Host,
			Now: s.cfg.Now(), TTL: ttl, WaitTTL: min(ttl, sharedSlotWaitTTL)})
	}
	slot, ok := s.adoptOrphan(ctx, slots, b.key, ttl)
	if !ok {
		if slot, ok, err = take(ctx, request); !ok {
			return nil, err
		}
	}
	held, retaking := true, ""
	retake := func(ctx context.Context) {
		if next, ok, _ := take(ctx, retaking); ok {
			slot, held = next, true
			s.log.Info("connection slot taken again", "budget", b.key, "slot", slot.Slot)
		}
	}
	stopHeartbeat := heartbeat(ctx, ttl/3, func(ctx context.Context) bool {
		if !held {
			// The connection has run over the budget since its slot was lost; it
			// counts again as soon as it is served.
			retake(ctx)
			return true
		}
		renewed, err := slots.RenewConnectionSlot(ctx, slot, s.cfg.Now(), ttl)
		switch {
		case err == nil:
			slot = renewed
		case errors.Is(err, ErrLeaseLost):
			// Not renewed for a whole TTL (the store unreachable, the process
			// stalled) and freed by another process. The work goes on rather than
			// be cut half way (a send cut there is an email of unknown fate).
			s.log.Warn("connection slot lost: the budget may be over its limit until this connection closes", "budget", b.key, "slot", slot.Slot)
			held, retaking = false, NewID()
			retake(ctx)
		case ctx.Err() == nil:
			s.log.Error("renew connection slot", "budget", b.key, "err", err)
		}
		return true
	})
	return func() {
		stopHeartbeat() // slot, held and retaking are this goroutine's again
		if !held {
			s.withdraw(ctx, b, retaking)
		} else {
			// Released even when the caller's context ended: an unreleased slot
			// blocks the budget until it expires.
			releaseCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownLeaseGrace)
			defer cancel()
			err := retryStore(releaseCtx, func(ctx context.Context) error { return slots.ReleaseConnectionSlot(ctx, slot) })
			if err != nil && !errors.Is(err, ErrLeaseLost) {
				s.log.Warn("release connection slot: it is used again by this process or expires", "budget", b.key, "err", err)
				s.connMu.Lock()
				if s.orphans == nil {
					s.orphans = make(map[string][]ConnectionSlot)
				}
				s.orphans[b.key] = append(s.orphans[b.key], slot)
				s.connMu.Unlock()
			}
		}
		select { // wake a caller of this process waiting for the store
		case b.freed <- struct{}{}:
		default:
		}
	}, nil
}

// connectionBudget returns the budget that w's connections in direction dir count
// against, and done to call when the caller no longer holds or waits for it.
func (s *Syncer) connectionBudget(w *work, dir Direction) (b *budget, done func()) {
	limit := int64(cmp.Or(w.p.MaxConcurrentConnections, MaxConcurrentConnectionsDefault))
	key := w.connectionKey(dir)
	// Per limit in the process, so a changed limit takes effect at once; one key in
	// the store, which counts every slot held under it whatever limit it was taken with.
	localKey := fmt.Sprintf("%s/%d", key, limit)
	s.connMu.Lock()
	b = s.connSems[localKey]
	if b == nil {
		b = &budget{sem: semaphore.NewWeighted(limit), key: key, limit: limit, freed: make(chan struct{}, 1)}
		s.connSems[localKey] = b
	}
	b.users++
	s.connMu.Unlock()
	return b, func() {
		s.connMu.Lock()
		if b.users--; b.users == 0 {
			delete(s.connSems, localKey)
		}
		s.connMu.Unlock()
	}
}

// budget is one connection budget and how many callers hold or wait for it.
type budget struct {
	sem   *semaphore.Weighted
	key   string // what the store counts it under (ConnectionSlotRequest.Key)
	limit int64
	freed chan struct{} // a slot of this process was given back
	users int
}
