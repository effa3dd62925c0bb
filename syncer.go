package serversync

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"
)

// Connectors are the protocol implementations a Syncer uses, by server type
// (package connector/standard returns IMAP, POP3 and SMTP ready to use).
type Connectors struct {
	Incoming map[ServerType]IncomingConnector
	Outgoing map[ServerType]OutgoingConnector
	// ACT syncs appointments, contacts and tasks (connector/dav for IMAP and POP3
	// profiles, whose ACT server is Profile.ACTServerURL).
	ACT map[ServerType]ACTConnector
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

	releaseMu  sync.Mutex
	unreleased map[string]unreleasedLease // by mailbox ID: leases the store refused to release

	appTokens   appTokens // shared app-only tokens of server-to-server profiles
	actRefused  sync.Map  // ACT record ID → the version the server refused and its owner was told of
	certCheckMu sync.Mutex
	certChecked map[string]time.Time // by profile ID: when its certificate expiry was last looked at
}

// NewSyncer returns a Syncer over store using connectors. It refuses, with an
// error that says what to change, a nil store, no connectors at all, and a Config
// with a value out of range (a *ValidationError naming the field): such a Syncer
// would start and then fail every mailbox.
func NewSyncer(store Store, connectors Connectors, cfg *Config) (*Syncer, error) {
	if store == nil {
		return nil, errors.New("serversync: NewSyncer needs a Store: pass one of the stores under store/ (memory, sqlite, postgres) or your own")
	}
	if len(connectors.Incoming) == 0 && len(connectors.Outgoing) == 0 && len(connectors.ACT) == 0 {
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
	s.checkCertificateExpiry(ctx, w)
	// ACT first: an incoming sync may keep the lease while it waits for mail (IDLE).
	var actNext time.Time
	if w.actActive() {
		if now := s.cfg.Now(); now.Before(m.Stats.ACTPostponedUntil) {
			actNext = m.Stats.ACTPostponedUntil
		} else {
			actNext = s.syncACT(ctx, w, log)
		}
	}
	if !w.incomingActive() {
		log.Debug("incoming mail is not active for the mailbox", "approved", w.approved(), "enabled", m.IncomingEnabled, "method", m.IncomingMethod)
		return actNext
	}
	if now := s.cfg.Now(); now.Before(w.m.Stats.IncomingPostponedUntil) {
		return earliest(actNext, w.m.Stats.IncomingPostponedUntil)
	}
	return earliest(actNext, s.syncIncoming(ctx, w, log))
}

// earliest is the earlier of two due times, zero meaning "not due".
func earliest(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero() || a.Before(b):
		return a
	}
	return b
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

func (s *Syncer) emit(e Event) {
	s.logEvent(e)
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
