package serversync

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// CountingSession is an optional ability of an IncomingSession: how many messages
// a folder holds now, without fetching them (IMAP STATUS, POP3 STAT). The Syncer
// asks it at the start of a mailbox's initial sync so progress has a total; a
// failure to count only leaves the total unknown.
type CountingSession interface {
	CountMessages(ctx context.Context, folder string) (int, error)
}

// SyncProgress is how far an initial sync (the first of a mailbox, or a resync
// from the start) has come.
type SyncProgress struct {
	// Total is how many messages the inbox held when the sync began; 0 when the
	// connector cannot count. Messages before ProcessEmailFrom are never
	// read, so Processed may end below Total.
	Total int
	// Processed counts the messages read so far: Tracked + Failed + Filtered + Duplicates.
	Processed  int
	Tracked    int // stored as tracked
	Failed     int // stored as failed (the Track hook refused them)
	Filtered   int // left out by the mailbox's IncomingFilter
	Duplicates int // tracked already
	Done       bool
}

// Percent is Processed as a share of Total (0–100), or -1 when Total is unknown.
func (p SyncProgress) Percent() int {
	if p.Total <= 0 {
		if p.Done {
			return 100
		}
		return -1
	}
	if p.Done || p.Processed >= p.Total {
		return 100
	}
	return p.Processed * 100 / p.Total
}

// ErrIncomingDisabled is what WaitInitialSync returns (wrapped) when the mailbox's
// incoming workload is off and will not sync until someone acts.
var ErrIncomingDisabled = errors.New("serversync: incoming email is disabled for the mailbox")

// InitialSyncPoll is how often WaitInitialSync reads the mailbox.
var InitialSyncPoll = 200 * time.Millisecond

// WaitInitialSync waits until a mailbox's first incoming sync has succeeded
// (Mailbox.Stats.LastSyncSucceededAt set) and returns the mailbox. It reads the
// store, so it works whichever process runs the sync. It returns an error wrapping
// ErrIncomingDisabled when the mailbox does not use ServerSideSync for incoming
// mail, or its incoming workload failed Test & Enable or was disabled by errors
// (the error names the mailbox's LastError code), and ctx's error when ctx ends
// first. A mailbox not yet tested is waited for: Test & Enable may come later.
func WaitInitialSync(ctx context.Context, store MailboxStore, mailboxID string) (*Mailbox, error) {
	t := time.NewTicker(InitialSyncPoll)
	defer t.Stop()
	for {
		m, err := store.GetMailbox(ctx, mailboxID)
		if err != nil {
			return nil, err
		}
		switch {
		case !m.Stats.LastSyncSucceededAt.IsZero():
			return m, nil
		case m.IncomingMethod != IncomingServerSideSync:
			return m, fmt.Errorf("%w: %s receives mail by %s, not ServerSideSync", ErrIncomingDisabled, m.EmailAddress, m.IncomingMethod)
		case m.IncomingStatus == TestFailure && !m.IncomingEnabled:
			return m, fmt.Errorf("%w: %s (last error %q: %s); fix it, then run Test & Enable",
				ErrIncomingDisabled, m.EmailAddress, m.Stats.LastError.Code, m.Stats.LastError.Message)
		}
		select {
		case <-ctx.Done():
			return m, ctx.Err()
		case <-t.C:
		}
	}
}

// initialProgress starts progress reporting when this run is a mailbox's initial
// sync or a resync from the start: it counts the inbox when the session can, keeps
// the total on the mailbox for a monitoring view, and reports 0 done.
func (r *incomingRun) initialProgress(ctx context.Context) error {
	if !r.w.m.Stats.LastSyncSucceededAt.IsZero() && r.stats.resyncRequest.IsZero() {
		return nil
	}
	r.progress = &SyncProgress{}
	if c, ok := r.session.(CountingSession); ok {
		n, err := c.CountMessages(ctx, InboxFolder)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			// Progress without a total; the fetch reports what is really wrong.
			r.log.Warn("count the inbox for progress", "err", err)
		case n != r.w.m.Stats.InitialSyncTotal:
			// Kept for a monitoring view; the run goes on with the mailbox it has.
			if _, err := r.s.store.UpdateMailbox(ctx, r.w.m.ID, func(m *Mailbox) error {
				m.Stats.InitialSyncTotal = n
				return nil
			}); err != nil {
				return err
			}
		}
		if err == nil {
			r.progress.Total = n
		}
	}
	r.log.Info("initial sync started", "messages_on_server", r.progress.Total)
	r.reportProgress()
	return nil
}

// reportProgress emits EventSyncProgress during an initial sync.
func (r *incomingRun) reportProgress() {
	if p := r.snapshotProgress(false); p != nil {
		r.s.emit(Event{Kind: EventSyncProgress, MailboxID: r.w.m.ID, ProfileID: r.w.p.ID, Progress: p})
	}
}

// snapshotProgress returns the initial sync's progress so far (nil when this run
// is not one).
func (r *incomingRun) snapshotProgress(done bool) *SyncProgress {
	if r.progress == nil {
		return nil
	}
	p := *r.progress
	p.Tracked, p.Failed, p.Filtered, p.Duplicates = r.stats.tracked, r.stats.failed, r.stats.filtered, r.stats.duplicates
	p.Processed = p.Tracked + p.Failed + p.Filtered + p.Duplicates
	p.Done = done
	return &p
}

// syncSummary logs a successful sync (at Info when it read mail, at Debug when it
// found nothing new, so idle mailboxes do not flood the log) and raises the
// Information alert of a first sync whose filter tracked nothing.
func (s *Syncer) syncSummary(ctx context.Context, before, after *work, st syncStats) {
	m := after.m
	attrs := []any{"mailbox", m.ID, "tracked", st.tracked, "failed", st.failed, "filtered", st.filtered,
		"duplicates", st.duplicates, "duration", m.Stats.LastSyncDuration}
	if st.progress != nil {
		attrs = append(attrs, "messages_on_server", st.progress.Total)
	}
	if st.tracked+st.failed+st.filtered+st.duplicates > 0 || st.progress != nil {
		s.log.Info("incoming sync finished", attrs...)
	} else {
		s.log.Debug("incoming sync finished", attrs...)
	}
	if before.m.Stats.LastSyncSucceededAt.IsZero() && st.filtered > 0 && st.tracked+st.failed == 0 {
		s.log.Info("the first sync tracked nothing: the mailbox's filter left every message out",
			"mailbox", m.ID, "filter", m.IncomingFilter, "filtered", st.filtered)
		s.raise(ctx, after, AlertInformation, ScopeMailbox, CodeAllMailFiltered, "",
			fmt.Sprintf("The first sync of %s read %d messages and tracked none: its incoming filter is %q%s. "+
				"To track them, set the mailbox's IncomingFilter to %q (or another filter) and read the inbox again: Admin.ChangeIncomingFilter does both.",
				m.EmailAddress, st.filtered, m.IncomingFilter, filterHint(m.IncomingFilter), FilterAll))
	}
}

// filterHint says in a few words what a filter keeps.
func filterHint(f IncomingFilter) string {
	switch f {
	case FilterResponsesToCRM:
		return ", which tracks only replies to email sent from the CRM (the default for user mailboxes)"
	case FilterLeadsContactsAccounts:
		return ", which tracks only mail from leads, contacts and accounts the AddressResolver knows"
	case FilterEmailEnabledRecords:
		return ", which tracks only mail from records the AddressResolver knows"
	case FilterNone:
		return ", which tracks nothing"
	}
	return ""
}

// logEvent logs the events an operator reads the log for that no other line
// reports: the outcome of every Test & Enable, at Info.
func (s *Syncer) logEvent(e Event) {
	if e.Kind != EventMailboxTested {
		return
	}
	if e.Err != nil {
		s.log.Info("Test & Enable failed", "mailbox", e.MailboxID, "profile", e.ProfileID, "code", ClassifyError(e.Err).Code, "err", e.Err)
		return
	}
	s.log.Info("Test & Enable passed", "mailbox", e.MailboxID, "profile", e.ProfileID)
}
