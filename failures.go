package serversync

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// failureKind classifies an error for the retry policy of DESIGN §6. Connector
// errors carry their own kind; anything else (the store, a host hook) is treated
// as transient, so trouble outside the mail server never disables a mailbox at once.
func failureKind(err error) (ErrorKind, AlertScope, string) {
	var ce *ConnectorError
	if errors.As(err, &ce) {
		return ce.Kind, ce.Scope, ce.Code
	}
	var panicked *HookPanicError
	if errors.As(err, &panicked) {
		return ErrorTransient, ScopeMailbox, "hook_panic"
	}
	return ErrorTransient, ScopeMailbox, codeInternal
}

// codeInternal marks a failure that is neither the mail server's nor the
// mailbox's, such as the store being unreachable: retried, but never counted
// towards disabling the mailbox, so an outage of the host's database does not
// leave every mailbox to be Test & Enabled again.
const codeInternal = "internal"

// noteError makes cause the mailbox's last error, counting repeats of its code.
func (s *Syncer) noteError(m *Mailbox, code string, cause error, now time.Time) {
	count := 1
	if m.Stats.LastError.Code == code {
		count = m.Stats.LastError.Count + 1
	}
	m.Stats.LastError = LastError{Code: code, Message: cause.Error(), Count: count, Host: s.cfg.Host, At: now}
}

// incomingFailed records a failed incoming sync: a permanent error disables the
// incoming workload at once; a transient one is retried RetryInterval later, up to
// MaxTransientFailures times in a row, then disables it too (internal failures,
// such as the store's, are retried without counting). It returns when the mailbox
// is due next (zero when disabled).
func (s *Syncer) incomingFailed(ctx context.Context, w *work, started time.Time, cause error, log *slog.Logger) time.Time {
	if ctx.Err() != nil {
		// Stopping or the lease was lost: not the mailbox's fault. Try again soon.
		return s.cfg.Now().Add(s.cfg.Tick)
	}
	kind, scope, code := failureKind(cause)
	s.met.syncError(ctx, kind)
	now := s.cfg.Now()
	var disabled bool
	var next time.Time
	m, err := s.store.UpdateMailbox(ctx, w.m.ID, func(m *Mailbox) error {
		m.Stats.LastSyncStartedAt = started
		m.Stats.LastSyncDuration = now.Sub(started)
		s.noteError(m, code, cause, now)
		disabled, next = false, time.Time{}
		if kind == ErrorTransient {
			if code != codeInternal {
				m.Stats.TransientFailureCount++
			}
			if m.Stats.TransientFailureCount < MaxTransientFailures {
				next = now.Add(s.cfg.RetryInterval)
				m.Stats.IncomingPostponedUntil = next
				return nil
			}
		}
		m.IncomingEnabled, m.IncomingStatus, m.Status = false, TestFailure, TestFailure
		disabled = true
		return nil
	})
	if err != nil {
		log.Error("record sync failure", "err", err, "sync_err", cause)
		return now.Add(s.cfg.RetryInterval)
	}
	w = &work{m: m, p: w.p, settings: w.settings}
	s.emit(Event{Kind: EventSyncFinished, MailboxID: m.ID, ProfileID: w.p.ID, Err: cause})
	if !disabled {
		log.Warn("incoming sync failed; will retry", "code", code, "attempt", m.Stats.TransientFailureCount, "err", cause)
		if m.Stats.TransientFailureCount == 1 && code != codeInternal {
			s.raise(ctx, w, AlertWarning, scope, code, "",
				fmt.Sprintf("Incoming email for %s could not be synchronised and will be retried: %v", m.EmailAddress, cause))
		}
		s.checkMassFailure(ctx, w)
		return next
	}
	log.Error("incoming sync failed; incoming email disabled", "code", code, "err", cause)
	s.emit(Event{Kind: EventMailboxDisabled, MailboxID: m.ID, ProfileID: w.p.ID, Err: cause})
	s.raise(ctx, w, AlertError, scope, code, "",
		fmt.Sprintf("Incoming email for %s was disabled: %v. Fix the problem, then run Test & Enable.", m.EmailAddress, cause))
	s.checkMassFailure(ctx, w)
	return time.Time{}
}

// raise stores an alert for the mailbox's owner and, for profile-level problems,
// the profile's owner, when the org settings keep that level.
func (s *Syncer) raise(ctx context.Context, w *work, level AlertLevel, scope AlertScope, code, activityID, message string) {
	switch {
	case level == AlertError && !w.settings.AlertErrors,
		level == AlertWarning && !w.settings.AlertWarnings,
		level == AlertInformation && !w.settings.AlertInformation:
		return
	}
	recipients := []string{cmp.Or(w.m.Owner, w.m.Regarding.ID)}
	if scope == ScopeProfile && w.p != nil && w.p.Owner != "" && w.p.Owner != recipients[0] {
		recipients = append(recipients, w.p.Owner)
	}
	for _, to := range recipients {
		a := &Alert{
			ID: NewID(), Level: level, Scope: scope, Recipient: to, MailboxID: w.m.ID, ActivityID: activityID,
			Code: code, Message: message, CreatedAt: s.cfg.Now(),
		}
		if w.p != nil {
			a.ProfileID = w.p.ID
		}
		if err := s.store.AddAlert(ctx, a); err != nil {
			s.log.Error("store alert", "err", err, "code", code)
			continue
		}
		s.emit(Event{Kind: EventAlertRaised, MailboxID: a.MailboxID, ProfileID: a.ProfileID, ActivityID: activityID, Alert: a})
	}
}

// checkMassFailure raises the profile alert of DESIGN §2 when more than half of a
// profile's mailboxes failed within the last hour (once an hour at most).
func (s *Syncer) checkMassFailure(ctx context.Context, w *work) {
	if w.p == nil || !w.p.SendAlertOnMassFailure || w.p.Owner == "" || !w.settings.AlertErrors {
		return
	}
	now := s.cfg.Now()
	since := now.Add(-MassFailureWindowDefault)
	// At most one mass-failure alert an hour: look for it before counting every
	// mailbox of the profile, which each failure would otherwise do again.
	for a, err := range s.store.ListAlerts(ctx, AlertFilter{ProfileID: w.p.ID, Recipient: w.p.Owner, Level: AlertError, Since: since}) {
		if err != nil || a.Code == "mass_failure" {
			return
		}
	}
	total, failed := 0, 0
	for m, err := range s.store.ListMailboxes(ctx, MailboxFilter{ProfileID: w.p.ID}) {
		if err != nil {
			return
		}
		total++
		if m.Stats.LastError.At.After(since) && m.Stats.LastError.At.After(m.Stats.LastSyncSucceededAt) {
			failed++
		}
	}
	if total == 0 || failed*2 <= total {
		return
	}
	a := &Alert{
		ID: NewID(), Level: AlertError, Scope: ScopeProfile, Recipient: w.p.Owner, ProfileID: w.p.ID,
		Code: "mass_failure", CreatedAt: now,
		Message: fmt.Sprintf("%d of the %d mailboxes of profile %q failed within the last hour: check the server and the profile.", failed, total, w.p.Name),
	}
	if err := s.store.AddAlert(ctx, a); err == nil {
		s.emit(Event{Kind: EventAlertRaised, ProfileID: w.p.ID, Alert: a})
	}
}
