package serversync

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"go.opentelemetry.io/otel/metric"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"
)

// Defaults of [Config].
const (
	WorkersDefault            = 32
	LeaseTTLDefault           = 2 * time.Minute
	LeaseBatchDefault         = 16
	ActivePollDefault         = 5 * time.Minute
	MaxIdlePollDefault        = 4 * time.Hour
	RetryIntervalDefault      = 5 * time.Minute
	IdleConnectionsDefault    = 100
	IdleWindowDefault         = time.Hour
	OutboxIntervalDefault     = 5 * time.Minute
	OutboxClaimTTLDefault     = 5 * time.Minute
	MaxSendAttemptsDefault    = 10
	ScanIntervalDefault       = time.Minute
	TickDefault               = time.Second
	SaveBatchDefault          = 100
	MaxMessageSizeDefault     = 64 << 20
	MassFailureWindowDefault  = time.Hour
	ShutdownLeaseGraceDefault = 10 * time.Second
	MaxSendWaitDefault        = 24 * time.Hour

	MaxTransientFailuresDefault = 10
)

// Connectors are the protocol implementations a Syncer uses, by server type
// (package connector/standard returns IMAP, POP3 and SMTP ready to use).
type Connectors struct {
	Incoming map[ServerType]IncomingConnector
	Outgoing map[ServerType]OutgoingConnector
}

// Config configures a [Syncer]. A nil *Config means defaults; zero fields take the
// …Default constants.
type Config struct {
	// Host identifies this process in leases (default: hostname-pid).
	Host string
	// Workers is the global limit of mailboxes and emails processed at once.
	Workers int
	// LeaseTTL is how long a mailbox lease lasts; it is renewed every third of it.
	LeaseTTL time.Duration
	// LeaseBatch is how many mailboxes are leased, and queued emails claimed, at
	// most per store call (never more than there are free workers).
	LeaseBatch int
	// ShutdownLeaseGrace bounds how long the outcome of work already done is still
	// recorded, and its lease released, once the Syncer is stopping (or the store
	// failing): past it, the lease lapses and another host redoes what is missing.
	ShutdownLeaseGrace time.Duration
	// ActivePoll is how soon a mailbox that just had new mail is polled again;
	// MaxIdlePoll caps the back-off of quiet mailboxes (a quarter of the time since
	// their last mail). The profile's MinPollingInterval is a floor on both.
	ActivePoll  time.Duration
	MaxIdlePoll time.Duration
	// RetryInterval is the wait after a transient error; after MaxTransientFailures
	// in a row the workload is disabled (failures of the store or the host's hooks
	// are not counted).
	RetryInterval        time.Duration
	MaxTransientFailures int
	// MassFailureWindow is how far back the profile alert for mass failures looks
	// (more than half of a profile's mailboxes failed within it), and how often at
	// most it is raised.
	MassFailureWindow time.Duration
	// IdleConnections caps the connections kept open waiting for new mail (IMAP
	// IDLE); IdleWindow is how recent a mailbox's last mail must be to get one.
	// IdleConnections < 0 turns IDLE off.
	IdleConnections int
	IdleWindow      time.Duration
	// OutboxInterval is how often the outgoing queue is scanned when nothing wakes
	// it (queuing an email does); OutboxClaimTTL is how long a claimed email is held.
	OutboxInterval time.Duration
	OutboxClaimTTL time.Duration
	// MaxSendAttempts is how many transient send failures an email survives.
	MaxSendAttempts int
	// MaxSendWait is how long a queued email waits for its mailbox to be approved
	// and its outgoing email enabled by Test & Enable (not tested yet, or disabled
	// after a failure) before it fails with the reason; the mailbox's owner gets a
	// Warning when emails start waiting. A mailbox that can never send (outgoing
	// method not ServerSideSync, no profile, rejected, no connector for its server
	// type) fails its emails at once.
	MaxSendWait time.Duration
	// ScanInterval is how often mailboxes waiting for their first sync or for Test
	// & Enable are scheduled; Tick is how often due mailboxes are looked for.
	ScanInterval time.Duration
	Tick         time.Duration
	// SaveBatch is how many messages are stored per transaction.
	SaveBatch int
	// MaxMessageSize is the largest message read whole; larger ones are tracked
	// from their first MaxMessageSize bytes, with a parse error saying so.
	MaxMessageSize int64
	// SendTestMessage makes Test & Enable send a message to the mailbox's own
	// address when it tests outgoing mail.
	SendTestMessage bool

	// Track is the host's tracking hook; nil tracks every message that passes the filter.
	Track TrackFunc
	// Resolver answers who an address belongs to, for the incoming filters; with
	// none, no address resolves and those filters keep only correlated mail.
	Resolver AddressResolver
	// OnEvent receives events; nil discards them.
	OnEvent func(Event)
	// Logger receives structured logs (no secrets); nil means slog.Default().
	Logger *slog.Logger
	// MeterProvider records metrics; nil means a no-op provider.
	MeterProvider metric.MeterProvider
	// Now is the clock; nil means time.Now. Tests inject one.
	Now func() time.Time
}

// Syncer is the server-side synchronization engine (DESIGN §4–§6): it leases due
// mailboxes from the Store, runs their incoming sync, sends queued email, runs Test
// & Enable, and raises alerts. Several Syncers (processes) may share one Store.
//
// A Syncer is safe for concurrent use. Run it once; Stop ends it.
type Syncer struct {
	store Store
	conns Connectors
	cfg   Config
	log   *slog.Logger
	met   *metrics

	workers  *semaphore.Weighted
	idle     *semaphore.Weighted
	connMu   sync.Mutex
	connSems map[string]*budget
	orphans  map[string][]ConnectionSlot // by budget key: slots held in the store whose release failed

	waitAlertMu sync.Mutex // one "emails are waiting" alert per mailbox, see warnWaiting

	wakeLeases chan struct{}
	wakeOutbox chan struct{}
	stopping   chan struct{}
	stopOnce   sync.Once
	done       chan struct{} // closed when Run returns, once started

	// runMu orders Run's start against Stop: Stop either finds Run started, with
	// its cancellation set up, or makes Run return before it does any work.
	runMu     sync.Mutex
	started   bool
	cancelRun context.CancelFunc

	// folderless holds the server types whose incoming sessions turned out to be
	// no FolderSession (POP3): no session is opened for a Sent copy again.
	folderless sync.Map
}

// NewSyncer returns a Syncer over store using connectors. It refuses, with an
// error that says what to change, a nil store, no connectors at all, and a Config
// with a value out of range (a *ValidationError naming the field): such a Syncer
// would start and then fail every mailbox.
func NewSyncer(store Store, connectors Connectors, cfg *Config) (*Syncer, error) {
	if store == nil {
		return nil, errors.New("serversync: NewSyncer needs a Store: pass one of the stores under store/ (memory, sqlite, postgres) or your own")
	}
	if len(connectors.Incoming) == 0 && len(connectors.Outgoing) == 0 {
		return nil, &ValidationError{Entity: "NewSyncer", Field: "Connectors",
			Reason: "no connectors: every mailbox would be disabled at its first sync; pass standard.Connectors(nil) from package connector/standard (IMAP, POP3, SMTP) or your own"}
	}
	c := Config{}
	if cfg != nil {
		c = *cfg
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	c.applyDefaults()
	if c.Now == nil {
		c.Now = time.Now
	}
	log := c.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Syncer{
		store:      store,
		conns:      connectors,
		cfg:        c,
		log:        log.With("syncer", c.Host),
		met:        newMetrics(c.MeterProvider),
		workers:    semaphore.NewWeighted(int64(c.Workers)),
		idle:       semaphore.NewWeighted(int64(max(c.IdleConnections, 0))),
		connSems:   make(map[string]*budget),
		wakeLeases: make(chan struct{}, 1),
		wakeOutbox: make(chan struct{}, 1),
		stopping:   make(chan struct{}),
		done:       make(chan struct{}),
	}
	return s, nil
}

// Host is the host ID this Syncer records in leases and claims.
func (s *Syncer) Host() string { return s.cfg.Host }

// ErrSyncerStopped is returned by Run after Stop, and by Run called twice.
var ErrSyncerStopped = errors.New("serversync: syncer stopped")

// Run processes work until ctx ends or Stop is called. One mailbox failing never
// stops the others: errors are recorded on the mailbox and raised as alerts. Run
// returns ctx's error, or ErrSyncerStopped after Stop.
func (s *Syncer) Run(ctx context.Context) error {
	s.runMu.Lock()
	if s.started {
		s.runMu.Unlock()
		return ErrSyncerStopped
	}
	s.started = true
	defer close(s.done)
	if s.isStopping() {
		s.runMu.Unlock()
		return ErrSyncerStopped
	}
	runCtx, cancel := context.WithCancel(ctx)
	s.cancelRun = cancel
	s.runMu.Unlock()
	defer cancel()

	var jobs sync.WaitGroup // mailbox and email jobs; they handle their own errors
	var loops errgroup.Group
	loops.Go(func() error { s.leaseLoop(runCtx, &jobs); return nil })
	loops.Go(func() error { s.outboxLoop(runCtx, &jobs); return nil })
	loops.Go(func() error { s.scanLoop(runCtx); return nil })
	_ = loops.Wait()
	jobs.Wait()
	select {
	case <-s.stopping:
		return ErrSyncerStopped
	default:
		return ctx.Err()
	}
}

// Stop stops taking new work and waits for the work in flight, until ctx ends;
// then it cancels what is left (leases still held expire or are released) and
// waits for Run to return. Stop returns when Run has returned, or when Run has
// not started: a Run called after Stop returns ErrSyncerStopped at once, doing
// nothing. Either way the Syncer no longer uses the Store once Stop returns.
func (s *Syncer) Stop(ctx context.Context) error {
	s.stopOnce.Do(func() { close(s.stopping) })
	s.runMu.Lock()
	started, cancelRun := s.started, s.cancelRun
	s.runMu.Unlock()
	if !started {
		return nil
	}
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		if cancelRun != nil { // nil: Run found Stop called and returned at once
			cancelRun()
		}
		<-s.done
		return ctx.Err()
	}
}

func (s *Syncer) isStopping() bool {
	select {
	case <-s.stopping:
		return true
	default:
		return false
	}
}

// wait blocks for d, a wake-up, Stop or ctx; it reports whether to go on.
func (s *Syncer) wait(ctx context.Context, d time.Duration, wake <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-s.stopping:
		return false
	case <-wake:
		return true
	case <-t.C:
		return true
	}
}

func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// leaseLoop leases due mailboxes for free workers and runs them.
func (s *Syncer) leaseLoop(ctx context.Context, jobs *sync.WaitGroup) {
	for {
		if s.isStopping() || ctx.Err() != nil {
			return
		}
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

// scanLoop schedules mailboxes that are ready but have no next sync time: new
// mailboxes after approval and Test & Enable, and mailboxes waiting for Test & Enable.
func (s *Syncer) scanLoop(ctx context.Context) {
	for {
		if n, err := s.ScheduleReady(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("schedule mailboxes", "err", err)
		} else if n > 0 {
			poke(s.wakeLeases)
		}
		if !s.wait(ctx, s.cfg.ScanInterval, nil) {
			return
		}
	}
}

// ScheduleReady makes due now every mailbox that waits for Test & Enable, or is
// enabled for incoming mail, but has no next sync time and no approval to wait
// for. It reports how many it scheduled. The Syncer calls it every ScanInterval; hosts may call it after
// changes (approval, Apply Default Email Settings) to start work sooner.
func (s *Syncer) ScheduleReady(ctx context.Context) (int, error) {
	settings, err := s.store.GetOrgSettings(ctx)
	if err != nil {
		return 0, err
	}
	yes, no := true, false
	var ids []string
	for _, filter := range []MailboxFilter{{TestAndEnablePending: &yes, Scheduled: &no}, {Enabled: &yes, Scheduled: &no}} {
		for m, err := range s.store.ListMailboxes(ctx, filter) {
			if err != nil {
				return 0, err
			}
			// Nothing is done for a mailbox waiting for approval: its test waits too.
			waiting := (&work{m: m, settings: settings}).awaitingApproval()
			if m.NextSyncAt.IsZero() && m.LeaseHost == "" && (m.TestAndEnablePending || m.IncomingEnabled) && !waiting {
				ids = append(ids, m.ID)
			}
		}
	}
	n := 0
	for _, id := range ids {
		now := s.cfg.Now()
		_, err := s.store.UpdateMailbox(ctx, id, func(m *Mailbox) error {
			if !m.NextSyncAt.IsZero() {
				return errChangedMeanwhile
			}
			m.NextSyncAt = now
			return nil
		})
		switch {
		case err == nil:
			n++
		case errors.Is(err, errChangedMeanwhile), errors.Is(err, ErrNotFound):
		default:
			return n, err
		}
	}
	return n, nil
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

// releaseLease releases a lease, retrying a store that fails for a moment: an
// unreleased lease parks the mailbox until it expires, LeaseTTL later.
func (s *Syncer) releaseLease(ctx context.Context, lease Lease, next time.Time, log *slog.Logger) {
	err := retryStore(ctx, func(ctx context.Context) error { return s.store.ReleaseLease(ctx, lease, next) })
	if err != nil && !errors.Is(err, ErrLeaseLost) {
		log.Warn("release lease: the mailbox waits for its lease to expire", "err", err)
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

// processMailbox runs what is due for one mailbox and returns its next sync time
// (zero: not scheduled until something changes).
func (s *Syncer) processMailbox(ctx context.Context, id string, log *slog.Logger) time.Time {
	m, err := s.store.GetMailbox(ctx, id)
	if err != nil {
		if !errors.Is(err, ErrNotFound) {
			log.Error("load mailbox", "err", err)
			return s.cfg.Now().Add(s.cfg.RetryInterval)
		}
		return time.Time{}
	}
	if m.TestAndEnablePending {
		tested, next, done := s.testInBackground(ctx, m, log)
		if done {
			return next
		}
		m = tested
	}
	w, err := s.loadWork(ctx, m)
	if err != nil {
		log.Error("load profile and settings", "err", err)
		return s.cfg.Now().Add(s.cfg.RetryInterval)
	}
	if !w.incomingActive() {
		log.Debug("incoming mail is not active for the mailbox", "approved", w.approved(), "enabled", m.IncomingEnabled, "method", m.IncomingMethod)
		return time.Time{}
	}
	if now := s.cfg.Now(); now.Before(m.Stats.IncomingPostponedUntil) {
		return m.Stats.IncomingPostponedUntil
	}
	return s.syncIncoming(ctx, w, log)
}

// work is what one job needs about a mailbox.
type work struct {
	m        *Mailbox
	p        *Profile
	settings *OrgSettings
}

func (s *Syncer) loadWork(ctx context.Context, m *Mailbox) (*work, error) {
	return loadWork(ctx, s.store, m)
}

func loadWork(ctx context.Context, store Store, m *Mailbox) (*work, error) {
	settings, err := store.GetOrgSettings(ctx)
	if err != nil {
		return nil, err
	}
	w := &work{m: m, settings: settings}
	if m.ProfileID != "" {
		if w.p, err = store.GetProfile(ctx, m.ProfileID); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// approved reports whether the mailbox may be processed at all (DESIGN §4.1).
func (w *work) approved() bool {
	return !w.settings.RequiresApproval(w.m) || w.m.Approval == ApprovalApproved
}

func (w *work) incomingActive() bool {
	return w.p != nil && w.approved() && w.m.IncomingEnabled &&
		(w.m.IncomingMethod == IncomingServerSideSync || w.m.IsForwardMailbox)
}

// connectionKey is what MaxConcurrentConnections counts (DESIGN §2): the profile's
// service account, or each mailbox's own credentials.
func (w *work) connectionKey(dir Direction) string {
	source := w.p.IncomingCredentialSource
	if dir == Outgoing {
		source = w.p.OutgoingCredentialSource
	}
	if source == CredentialsProfile || source == CredentialsServerToServer {
		return "profile:" + w.p.ID
	}
	return "mailbox:" + w.m.ID
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

// ConnectionSlotTTLDefault is how long a connection slot in the store lasts
// unrenewed (LeaseTTL if that is shorter); it is renewed every third of it. It
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
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownLeaseGraceDefault)
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
	ttl := min(s.cfg.LeaseTTL, ConnectionSlotTTLDefault)
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
			releaseCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownLeaseGraceDefault)
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

// nextPoll is when a mailbox that synced fine is polled again: soon after new mail,
// backing off on quiet mailboxes, never more often than the profile allows.
func (s *Syncer) nextPoll(w *work, now time.Time) time.Time {
	last := w.m.Stats.LastMailAt
	if last.IsZero() {
		last = w.m.CreatedAt
	}
	interval := min(max(now.Sub(last)/4, s.cfg.ActivePoll), s.cfg.MaxIdlePoll)
	if w.p != nil {
		interval = max(interval, w.p.MinPollingInterval)
	}
	return now.Add(interval)
}

func (s *Syncer) emit(e Event) {
	if s.cfg.OnEvent == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = s.cfg.Now()
	}
	if err := callHook("OnEvent", func() error { s.cfg.OnEvent(e); return nil }); err != nil {
		s.log.Error("event handler", "err", err)
	}
}
