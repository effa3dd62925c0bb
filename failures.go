package serversync

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// notApprovedError is the failure of a mailbox whose email address awaits (or was
// refused) approval. kind says whether to wait for it: an email queued before the
// approval waits, one from a rejected address fails at once.
func notApprovedError(op string, kind ErrorKind, m *Mailbox) *ConnectorError {
	reason := fmt.Errorf("the email address %s is not approved: an administrator must approve it before email is processed", m.EmailAddress)
	if m.Approval == ApprovalRejected {
		reason = fmt.Errorf("the email address %s was rejected: an administrator must approve it before email is processed", m.EmailAddress)
	}
	return &ConnectorError{Op: op, Kind: kind, Scope: ScopeMailbox, Code: CodeNotApproved, Err: reason}
}

// noProfileError is the failure of a mailbox that uses server-side sync without a profile.
func noProfileError(op string, m *Mailbox) *ConnectorError {
	return &ConnectorError{Op: op, Kind: ErrorPermanent, Scope: ScopeMailbox, Code: CodeNoProfile,
		Err: fmt.Errorf("the mailbox %s has no email server profile: set one, then run Test & Enable", m.EmailAddress)}
}

// noConnectorError is the failure of a profile whose server type no connector handles.
func noConnectorError(op string, dir Direction, t ServerType) *ConnectorError {
	return &ConnectorError{Op: op, Kind: ErrorPermanent, Scope: ScopeProfile, Code: CodeNoConnector,
		Err: fmt.Errorf("no %s connector for server type %s: this Syncer cannot reach that kind of server", strings.ToLower(string(dir)), t)}
}

// noteError makes cause, met by workload, the mailbox's last error, counting
// repeats of its code.
func (s *Syncer) noteError(m *Mailbox, workload Direction, code string, cause error, now time.Time) {
	count := 1
	if m.Stats.LastError.Code == code && m.Stats.LastError.Workload == workload {
		count = m.Stats.LastError.Count + 1
	}
	m.Stats.LastError = LastError{Workload: workload, Code: code, Message: cause.Error(), Count: count, Host: s.cfg.Host, At: now}
}

// clearLastError forgets the mailbox's last error when workload just worked and
// the error was that workload's: an error of the other workload still stands (an
// incoming sync that works says nothing about why outgoing email was disabled).
func clearLastError(m *Mailbox, workload Direction) {
	if lastErrorOf(m, workload) {
		m.Stats.LastError = LastError{}
	}
}

// lastErrorOf reports whether the mailbox's last error is workload's. One recorded
// before errors named their workload counts as anyone's.
func lastErrorOf(m *Mailbox, workload Direction) bool {
	e := m.Stats.LastError
	return e.Message != "" && (e.Workload == workload || e.Workload == "")
}

// noteTestOutcome records what a Test & Enable found: its first failure becomes
// the last error; when every workload it tested passed, the last error is cleared,
// whichever workload it was.
func (s *Syncer) noteTestOutcome(m *Mailbox, incoming, outgoing, act workloadResult, now time.Time) {
	switch {
	case incoming.err != nil:
		s.noteError(m, Incoming, ClassifyError(incoming.err).Code, incoming.err, now)
	case outgoing.err != nil:
		s.noteError(m, Outgoing, ClassifyError(outgoing.err).Code, outgoing.err, now)
	case act.err != nil:
		s.noteError(m, ACT, ClassifyError(act.err).Code, act.err, now)
	case incoming.tested || outgoing.tested || act.tested:
		m.Stats.LastError = LastError{}
	}
}

// countFailure applies the failure rule every workload shares to m: a transient
// failure is retried RetryInterval from now, up to Config.MaxTransientFailures in
// a row (internal failures, such as the store's, are not counted); any other, or
// one too many, disables the workload, which the caller does.
func (s *Syncer) countFailure(m *Mailbox, class ErrorClass, now time.Time) (next time.Time, disabled bool) {
	if class.Kind == ErrorTransient {
		if !class.Internal() {
			m.Stats.TransientFailureCount++
		}
		if m.Stats.TransientFailureCount < s.cfg.MaxTransientFailures {
			return now.Add(s.cfg.RetryInterval), false
		}
	}
	return time.Time{}, true
}

// incomingFailed records a failed incoming sync: a permanent error disables the
// incoming workload at once; a transient one is retried RetryInterval later, up to
// Config.MaxTransientFailures times in a row, then disables it too (internal failures,
// such as the store's, are retried without counting). It returns when the mailbox
// is due next (zero when disabled).
func (s *Syncer) incomingFailed(ctx context.Context, w *work, started time.Time, cause error, log *slog.Logger) time.Time {
	if ctx.Err() != nil {
		// Stopping or the lease was lost: not the mailbox's fault. Try again soon.
		return s.cfg.Now().Add(s.cfg.Tick)
	}
	class := ClassifyError(cause)
	kind, scope, code := class.Kind, class.Scope, class.Code
	s.met.syncError(ctx, kind)
	now := s.cfg.Now()
	var disabled bool
	var next time.Time
	m, err := s.store.UpdateMailbox(ctx, w.m.ID, func(m *Mailbox) error {
		m.Stats.LastSyncStartedAt = started
		m.Stats.LastSyncDuration = now.Sub(started)
		s.noteError(m, Incoming, code, cause, now)
		if next, disabled = s.countFailure(m, class, now); disabled {
			m.IncomingEnabled, m.IncomingStatus, m.Status = false, TestFailure, TestFailure
		} else {
			m.Stats.IncomingPostponedUntil = next
		}
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
		if m.Stats.TransientFailureCount == 1 && !class.Internal() {
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

// window names a duration for a person: "hour" for the default mass-failure
// window, as the alert always said, the duration itself otherwise.
func window(d time.Duration) string {
	if d == time.Hour {
		return "hour"
	}
	return d.String()
}
