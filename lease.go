package serversync

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// leaseLoop leases due mailboxes for free workers and runs them.
func (s *Syncer) leaseLoop(ctx context.Context, jobs *sync.WaitGroup) {
	for {
		if s.isStopping() || ctx.Err() != nil {
			return
		}
		s.retryReleases(ctx)
		free := 0
		for free < s.cfg.LeaseBatch && s.workers.TryAcquire(1) {
			free++
		}
		got := 0
		if free > 0 {
			leases, err := s.store.AcquireLeases(ctx, LeaseRequest{Host: s.cfg.Host, Now: s.cfg.Now(), TTL: s.cfg.LeaseTTL, Limit: free})
			if err != nil && ctx.Err() == nil {
				s.log.Error("acquire leases", "err", err)
			}
			for _, l := range leases {
				jobs.Add(1)
				go func() {
					defer jobs.Done()
					defer s.workers.Release(1)
					s.runMailbox(ctx, l)
				}()
			}
			got = len(leases)
			s.workers.Release(int64(free - got))
		}
		if got == free && free > 0 {
			continue // there may be more due right away
		}
		if !s.wait(ctx, s.cfg.Tick, s.wakeLeases) {
			return
		}
	}
}

// runMailbox processes one leased mailbox while a heartbeat renews its lease. A
// lost lease cancels the work at once: another host now owns the mailbox.
func (s *Syncer) runMailbox(ctx context.Context, lease Lease) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	log := s.log.With("mailbox", lease.MailboxID)
	if lease.TakenOver {
		log.Warn("took over a mailbox whose previous holder stopped renewing its lease")
	}
	stopHeartbeat := heartbeat(ctx, s.cfg.LeaseTTL/3, func(ctx context.Context) bool {
		now := s.cfg.Now()
		renewed, err := s.store.RenewLease(ctx, lease, now, s.cfg.LeaseTTL)
		if err == nil {
			lease = renewed
		}
		// Without a renewal (the store unreachable, say) the lease runs out and
		// another host may take the mailbox: stop before that can happen.
		expiring := err != nil && !now.Before(lease.ExpiresAt.Add(-s.cfg.LeaseTTL/3))
		if errors.Is(err, ErrLeaseLost) || expiring {
			log.Warn("lease lost or about to expire unrenewed: stopping work on the mailbox", "err", err)
			cancel(ErrLeaseLost)
			return false
		}
		if err != nil && ctx.Err() == nil {
			log.Error("renew lease", "err", err)
		}
		return true
	})

	next := s.processMailbox(ctx, lease.MailboxID, log)

	stopHeartbeat() // lease is this goroutine's again
	if errors.Is(context.Cause(ctx), ErrLeaseLost) {
		return
	}
	// Release even when Run's context ended, so another host can go on at once.
	releaseCtx, cancelRelease := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownLeaseGrace)
	defer cancelRelease()
	s.releaseLease(releaseCtx, lease, next, log)
}

// releaseLease releases a lease, retrying a store that fails for a moment. An
// unreleased lease parks the mailbox until it expires, LeaseTTL later, so one
// the store still refuses is kept and released again at every turn of the lease
// loop (retryReleases): after a database outage the mailbox goes on as soon as
// the store answers, not minutes later.
func (s *Syncer) releaseLease(ctx context.Context, lease Lease, next time.Time, log *slog.Logger) {
	err := retryStore(ctx, func(ctx context.Context) error { return s.store.ReleaseLease(ctx, lease, next) })
	if err != nil && !errors.Is(err, ErrLeaseLost) && !errors.Is(err, ErrNotFound) {
		log.Warn("release lease: retried until the store answers (or the lease expires)", "err", err)
		s.releaseMu.Lock()
		if s.unreleased == nil {
			s.unreleased = make(map[string]unreleasedLease)
		}
		s.unreleased[lease.MailboxID] = unreleasedLease{lease, next}
		s.releaseMu.Unlock()
	}
}

// unreleasedLease is a lease whose release the store refused, and the next sync
// time it was to record.
type unreleasedLease struct {
	lease Lease
	next  time.Time
}

// retryReleases tries once more to release the leases the store refused to. A
// lease that expired meanwhile is forgotten: the mailbox is due for anyone.
func (s *Syncer) retryReleases(ctx context.Context) {
	s.releaseMu.Lock()
	pending := s.unreleased
	s.unreleased = nil
	s.releaseMu.Unlock()
	now := s.cfg.Now()
	for id, u := range pending {
		if !now.Before(u.lease.ExpiresAt) {
			continue
		}
		err := s.store.ReleaseLease(ctx, u.lease, u.next)
		if err == nil || errors.Is(err, ErrLeaseLost) || errors.Is(err, ErrNotFound) || ctx.Err() != nil {
			continue
		}
		s.releaseMu.Lock()
		if s.unreleased == nil {
			s.unreleased = make(map[string]unreleasedLease)
		}
		if _, newer := s.unreleased[id]; !newer {
			s.unreleased[id] = u
		}
		s.releaseMu.Unlock()
	}
}

// retryStore calls write until it succeeds, fails with ErrLeaseLost or
// ErrNotFound, or ctx ends, waiting a little longer after each failure: a store
// that fails for a moment (a dropped connection, a database restarting) must not
// lose what only this call records.
func retryStore(ctx context.Context, write func(context.Context) error) error {
	for wait := 20 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		err := write(ctx)
		if err == nil || errors.Is(err, ErrLeaseLost) || errors.Is(err, ErrNotFound) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

// heartbeat calls beat every interval until beat returns false or stop is called.
// stop waits for a beat in progress, so what beat changes is the caller's again
// once stop returns.
func heartbeat(ctx context.Context, interval time.Duration, beat func(context.Context) bool) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if !beat(ctx) {
				return
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}
