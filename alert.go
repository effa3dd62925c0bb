package serversync

import (
	"cmp"
	"context"
	"fmt"
	"time"
)

// AlertLevel is the severity of an alert; each level can be switched off in OrgSettings.
type AlertLevel string

// Alert levels.
const (
	AlertError       AlertLevel = "Error"
	AlertWarning     AlertLevel = "Warning"
	AlertInformation AlertLevel = "Information"
)

// AlertScope says what an alert is about.
type AlertScope string

// Alert scopes: a whole profile, one mailbox, or one item (a message or an email).
const (
	ScopeProfile AlertScope = "Profile"
	ScopeMailbox AlertScope = "Mailbox"
	ScopeItem    AlertScope = "Item"
)

// Alert is a message to a person (a mailbox owner or a profile owner).
type Alert struct {
	ID         string
	Level      AlertLevel
	Scope      AlertScope
	Recipient  string // principal ID
	ProfileID  string
	MailboxID  string
	ActivityID string
	Code       string // stable, machine-readable: one of the Code… constants
	Message    string // what a person can act on; never contains secrets
	CreatedAt  time.Time
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
// profile's mailboxes failed within the last MassFailureWindow (an hour by
// default; once per window at most).
func (s *Syncer) checkMassFailure(ctx context.Context, w *work) {
	if w.p == nil || !w.p.SendAlertOnMassFailure || w.p.Owner == "" || !w.settings.AlertErrors {
		return
	}
	now := s.cfg.Now()
	since := now.Add(-s.cfg.MassFailureWindow)
	// At most one mass-failure alert per window: look for it before counting every
	// mailbox of the profile, which each failure would otherwise do again.
	for a, err := range s.store.ListAlerts(ctx, AlertFilter{ProfileID: w.p.ID, Recipient: w.p.Owner, Level: AlertError, Since: since}) {
		if err != nil || a.Code == CodeMassFailure {
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
		Code: CodeMassFailure, CreatedAt: now,
		Message: fmt.Sprintf("%d of the %d mailboxes of profile %q failed within the last %s: check the server and the profile.", failed, total, w.p.Name, window(s.cfg.MassFailureWindow)),
	}
	if err := s.store.AddAlert(ctx, a); err == nil {
		s.emit(Event{Kind: EventAlertRaised, ProfileID: w.p.ID, Alert: a})
	}
}
