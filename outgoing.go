package serversync

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// SentFolder is where a copy of sent mail is appended when the protocol allows.
const SentFolder = "Sent"

// ErrInvalidEmail is wrapped by QueueEmail's errors for an email that cannot be
// sent: one malformed, or one its mailbox can never send as configured. The latter
// are *ConnectorError values whose Code says what to fix (CodeNoConnector,
// CodeNotServerSideSync, …).
var ErrInvalidEmail = errors.New("serversync: invalid outgoing email")

// QueueEmail queues an outgoing email for the mailbox a.MailboxID ("pending send").
// The Syncer sends it through the mailbox's profile; a Syncer on any host sharing
// the Store may send it, and only one will. a.From defaults to the mailbox's address;
// ID, MessageKey and MessageID are set when empty. The stored activity is returned.
//
// An email the mailbox can never send is refused with an error wrapping
// ErrInvalidEmail: an unknown mailbox (also ErrNotFound), an outgoing method other
// than ServerSideSync, no profile, a rejected address, or a server type none of
// this Syncer's connectors handles. One whose mailbox is not approved or not enabled
// yet is queued and waits for that, up to [Config].MaxSendWait.
func (s *Syncer) QueueEmail(ctx context.Context, a *EmailActivity) (*EmailActivity, error) {
	queued, err := queueEmail(ctx, s.store, a, s.cfg.Now(), &s.conns)
	if err == nil {
		poke(s.wakeOutbox)
	}
	return queued, err
}

// QueueEmail queues an outgoing email in store without a running Syncer (a host's
// web process, say); Syncers pick it up at their next outbox scan. It refuses what
// Syncer.QueueEmail refuses, except a server type without a connector: it does not
// know the Syncers' connectors, so such an email fails when a Syncer claims it.
func QueueEmail(ctx context.Context, store Store, a *EmailActivity, now time.Time) (*EmailActivity, error) {
	return queueEmail(ctx, store, a, now, nil)
}

// queueEmail checks a against the connectors in conns (nil: not checked) and queues it.
func queueEmail(ctx context.Context, store Store, a *EmailActivity, now time.Time, conns *Connectors) (*EmailActivity, error) {
	if a == nil || a.MailboxID == "" {
		return nil, fmt.Errorf("%w: no mailbox", ErrInvalidEmail)
	}
	m, err := store.GetMailbox(ctx, a.MailboxID)
	if errors.Is(err, ErrNotFound) {
		return nil, &ConnectorError{Op: "queue", Kind: ErrorPermanent, Scope: ScopeItem, Code: CodeMailboxNotFound,
			Err: fmt.Errorf("%w: no mailbox %s: %w", ErrInvalidEmail, a.MailboxID, err)}
	}
	if err != nil {
		return nil, err
	}
	if len(a.To)+len(a.Cc)+len(a.Bcc) == 0 {
		return nil, fmt.Errorf("%w: no recipient", ErrInvalidEmail)
	}
	for _, list := range [][]Address{a.To, a.Cc, a.Bcc} {
		for _, ad := range list {
			if !strings.Contains(ad.Email, "@") || strings.ContainsAny(ad.Email, "\r\n<> ") {
				return nil, fmt.Errorf("%w: bad recipient address %q", ErrInvalidEmail, ad.Email)
			}
		}
	}
	w, err := loadWork(ctx, store, m)
	if err != nil {
		return nil, err
	}
	if blocked := outgoingBlocked(w, conns); blocked != nil && blocked.Kind == ErrorPermanent {
		refused := *blocked
		refused.Op, refused.Err = "queue", fmt.Errorf("%w: %w", ErrInvalidEmail, blocked.Err)
		return nil, &refused
	}
	c := a.Clone()
	c.ID = cmp.Or(c.ID, NewID())
	c.MessageKey = cmp.Or(c.MessageKey, "out:"+c.ID)
	c.Direction, c.Status = Outgoing, StatusPendingSend
	if c.From.Email == "" {
		c.From = Address{Name: m.Name, Email: m.EmailAddress}
	}
	c.MessageID = cmp.Or(c.MessageID, strings.Trim(newMessageID(c.ID, c.From.Email), "<>"))
	c.ConversationHash = conversationHash(c.Subject, participants(c))
	c.CreatedAt, c.UpdatedAt = now, now
	if err := store.QueueOutgoing(ctx, c); err != nil {
		return nil, err
	}
	return c, nil
}

// outboxLoop claims due outgoing emails and sends them, every OutboxInterval and
// whenever an email is queued through this Syncer.
func (s *Syncer) outboxLoop(ctx context.Context, jobs *sync.WaitGroup) {
	for {
		if s.isStopping() || ctx.Err() != nil {
			return
		}
		claimed := s.claimAndSend(ctx, jobs)
		if claimed > 0 {
			continue // more may be due
		}
		if !s.wait(ctx, s.cfg.OutboxInterval, s.wakeOutbox) {
			return
		}
	}
}

func (s *Syncer) claimAndSend(ctx context.Context, jobs *sync.WaitGroup) int {
	free := 0
	for free < s.cfg.LeaseBatch && s.workers.TryAcquire(1) {
		free++
	}
	if free == 0 {
		return 0
	}
	claimed, err := s.store.ClaimOutgoing(ctx, ClaimRequest{Host: s.cfg.Host, Now: s.cfg.Now(), TTL: s.cfg.OutboxClaimTTL, Limit: free})
	if err != nil && ctx.Err() == nil {
		s.log.Error("claim outgoing email", "err", err)
	}
	for _, a := range claimed {
		jobs.Add(1)
		go func() {
			defer jobs.Done()
			defer s.workers.Release(1)
			s.send(ctx, a)
		}()
	}
	s.workers.Release(int64(free - len(claimed)))
	return len(claimed)
}

// send delivers one claimed email (DESIGN §5). The attempt is recorded before the
// message leaves (SendStartedAt); an email claimed with it still set was being sent
// when its sender died, so it is not sent again silently: it is marked failed with
// a warning that it may have been delivered.
func (s *Syncer) send(ctx context.Context, a *EmailActivity) {
	log := s.log.With("mailbox", a.MailboxID, "activity", a.ID)
	defer s.keepClaim(ctx, a, log)()
	m, err := s.store.GetMailbox(ctx, a.MailboxID)
	if errors.Is(err, ErrNotFound) {
		err = &ConnectorError{Op: "send", Kind: ErrorPermanent, Scope: ScopeItem, Code: CodeMailboxNotFound, Err: err}
	}
	if err != nil {
		s.finishSend(ctx, nil, a, err, log)
		return
	}
	w, err := s.loadWork(ctx, m)
	if err != nil {
		s.postponeSend(ctx, a, err, log)
		return
	}
	if !a.SendStartedAt.IsZero() {
		err := &ConnectorError{Op: "send", Kind: ErrorPermanent, Scope: ScopeItem, Code: CodeSendOutcomeUnknown,
			Err: errors.New("the previous attempt was interrupted while the server had the message: it may have been delivered, so it is not sent again automatically; check and queue it again if needed")}
		s.finishSend(ctx, w, a, err, log)
		return
	}
	if blocked := outgoingBlocked(w, &s.conns); blocked != nil {
		s.sendBlocked(ctx, w, a, blocked, log)
		return
	}
	out := s.conns.Outgoing[w.p.ServerType]
	if w.settings.TrackingToken.Enabled {
		if a.TrackingToken == "" {
			a.TrackingToken = trackingTokenFor(w.settings.TrackingToken, m.ID, a.ID)
		}
		a.Subject = addTrackingToken(w.settings.TrackingToken, a.Subject, a.TrackingToken)
	}
	a.SentAt = s.cfg.Now()
	raw, err := composeMessage(a)
	if err != nil {
		s.finishSend(ctx, w, a, &ConnectorError{Op: "compose", Kind: ErrorPermanent, Scope: ScopeItem, Code: CodeBadMessage, Err: err}, log)
		return
	}
	target, err := s.resolveTarget(ctx, w, Outgoing)
	if err != nil {
		s.finishSend(ctx, w, a, err, log) // classified by ResolveTarget
		return
	}
	sendErr, attempted := s.transmit(ctx, w, a, out, target, raw, log)
	if !attempted {
		return
	}
	s.finishSend(ctx, w, a, sendErr, log)
	// The Sent copy takes a connection of its own after the SMTP one is given back:
	// holding one while waiting for another would deadlock a full budget.
	if keeper, ok := out.(SentCopyKeeper); ok && keeper.KeepsSentCopy() {
		return
	}
	if sendErr == nil && w.settings.SaveCopyToSentFolder {
		s.saveSentCopy(ctx, w, raw, log)
	}
}

// outgoingBlocked says why the mailbox of w cannot send email now, or returns nil.
// A permanent error means it never will as configured: a person must change the
// mailbox, its profile or the deployment, and its emails fail at once. A transient
// one is a setup step still to come (approval, Test & Enable): its emails wait for
// it. conns nil skips the connector check.
func outgoingBlocked(w *work, conns *Connectors) *ConnectorError {
	m := w.m
	switch {
	case m.OutgoingMethod != OutgoingServerSideSync:
		return &ConnectorError{Op: "send", Kind: ErrorPermanent, Scope: ScopeMailbox, Code: CodeNotServerSideSync,
			Err: fmt.Errorf("the outgoing method of %s is %s, not ServerSideSync: this library sends email only for mailboxes that use server-side sync",
				m.EmailAddress, cmp.Or(string(m.OutgoingMethod), string(OutgoingNone)))}
	case w.p == nil:
		return noProfileError("send", m)
	case conns != nil && conns.Outgoing[w.p.ServerType] == nil:
		return noConnectorError("send", Outgoing, w.p.ServerType)
	case !w.approved() && m.Approval == ApprovalRejected:
		return notApprovedError("send", ErrorPermanent, m)
	case !w.approved():
		return notApprovedError("send", ErrorTransient, m)
	case !m.OutgoingEnabled:
		why := "it has not passed Test & Enable yet"
		if m.OutgoingStatus == TestFailure {
			why = "it was disabled after a failure (the mailbox's last error says which)"
		}
		return &ConnectorError{Op: "send", Kind: ErrorTransient, Scope: ScopeMailbox, Code: CodeOutgoingNotEnabled,
			Err: fmt.Errorf("outgoing email is not enabled for %s: %s; fix it and run Test & Enable", m.EmailAddress, why)}
	}
	return nil
}

// sendBlocked settles an email whose mailbox cannot send now (see outgoingBlocked).
// It fails at once when that is for good. Otherwise it waits for the setup to be
// finished, as a user queuing mail before Test & Enable expects, with one warning
// to the mailbox's owner, and fails once MaxSendWait has passed since it was
// queued: mail that leaves days late can do more harm than mail that visibly did
// not leave.
func (s *Syncer) sendBlocked(ctx context.Context, w *work, a *EmailActivity, blocked *ConnectorError, log *slog.Logger) {
	if blocked.Kind == ErrorPermanent {
		s.finishSend(ctx, w, a, blocked, log)
		return
	}
	if !a.CreatedAt.IsZero() && s.cfg.Now().Sub(a.CreatedAt) >= s.cfg.MaxSendWait {
		expired := *blocked
		expired.Kind = ErrorPermanent
		expired.Err = fmt.Errorf("not sent within %v of being queued (Config.MaxSendWait): %w; queue it again once that is done", s.cfg.MaxSendWait, blocked.Err)
		s.finishSend(ctx, w, a, &expired, log)
		return
	}
	s.postponeSend(ctx, a, blocked, log)
	s.warnWaiting(ctx, w, blocked, log)
}

// warnWaiting tells the mailbox's owner that its emails wait for why to be fixed,
// once: one Warning with why's code since the mailbox's last Test & Enable. Every
// waiting email finds its mailbox still blocked every OutboxInterval, and an alert
// each time would bury the one that matters. Syncers on other hosts may each raise one.
func (s *Syncer) warnWaiting(ctx context.Context, w *work, why *ConnectorError, log *slog.Logger) {
	if !w.settings.AlertWarnings {
		return
	}
	s.waitAlertMu.Lock()
	defer s.waitAlertMu.Unlock()
	for a, err := range s.store.ListAlerts(ctx, AlertFilter{MailboxID: w.m.ID, Level: AlertWarning, Since: w.m.TestCompletedOn}) {
		if err != nil {
			log.Warn("look for an earlier alert about waiting email", "err", err)
			return
		}
		if a.Code == why.Code && a.ActivityID == "" {
			return
		}
	}
	s.raise(ctx, w, AlertWarning, ScopeMailbox, why.Code, "", fmt.Sprintf(
		"Emails from %s are waiting to be sent: %v. They are sent once that is done; any still waiting %v after it was queued fails.",
		w.m.EmailAddress, why.Err, s.cfg.MaxSendWait))
}

// transmit hands the message to the server within the connection budget, recording
// the attempt just before. attempted is false when nothing was tried and nothing
// needs recording (stopping, or the claim was lost).
func (s *Syncer) transmit(ctx context.Context, w *work, a *EmailActivity, out OutgoingConnector, target *Target, raw []byte, log *slog.Logger) (err error, attempted bool) {
	release, err := s.acquireConnection(ctx, w, Outgoing)
	if err != nil {
		return nil, false // stopping: the claim expires and the email is sent later (SendStartedAt is not set)
	}
	defer release()
	session, err := out.OpenOutgoing(ctx, target)
	if err != nil {
		return err, true
	}
	defer session.Close()

	// Record the attempt: from here on the server may get the message.
	started := s.cfg.Now()
	recordCtx, cancel := context.WithTimeout(ctx, s.cfg.ShutdownLeaseGrace)
	defer cancel()
	var stored *EmailActivity
	err = retryStore(recordCtx, func(ctx context.Context) (err error) {
		stored, err = s.store.UpdateActivity(ctx, a.ID, func(x *EmailActivity) error {
			if !s.holdsClaim(x, a) {
				return ErrLeaseLost
			}
			x.Subject, x.TrackingToken, x.SentAt, x.SendStartedAt = a.Subject, a.TrackingToken, a.SentAt, started
			x.ClaimExpiresAt = started.Add(s.cfg.OutboxClaimTTL)
			x.ConversationHash = conversationHash(x.Subject, participants(x))
			x.UpdatedAt = started
			return nil
		})
		return err
	})
	if err != nil {
		// The claim runs out and the email is sent later, by this host or another.
		log.Warn("could not record the send attempt; not sending", "err", err)
		return nil, false
	}
	*a = *stored
	return session.Send(ctx, Envelope{From: a.From.Email, To: recipients(a)}, bytes.NewReader(raw)), true
}

// keepClaim renews the claim on a every third of OutboxClaimTTL until the returned
// stop is called, so that an email waiting for a connection or a slow server is not
// taken over by another host. A claim found lost is left alone: recording the attempt
// and the outcome check it.
func (s *Syncer) keepClaim(ctx context.Context, a *EmailActivity, log *slog.Logger) (stop func()) {
	claim := *a // the job goes on changing a
	return heartbeat(ctx, s.cfg.OutboxClaimTTL/3, func(ctx context.Context) bool {
		_, err := s.store.UpdateActivity(ctx, claim.ID, func(x *EmailActivity) error {
			if !s.holdsClaim(x, &claim) {
				return ErrLeaseLost
			}
			x.ClaimExpiresAt = s.cfg.Now().Add(s.cfg.OutboxClaimTTL)
			return nil
		})
		if err != nil && !errors.Is(err, ErrLeaseLost) && ctx.Err() == nil {
			log.Warn("renew the claim on an email", "err", err)
		}
		return !errors.Is(err, ErrLeaseLost)
	})
}

// holdsClaim reports whether x, as stored now, is still under the claim through
// which this Syncer got claimed. Each claim counts an attempt, so Attempts tells the
// claim in hand from a later one, by another host or by this one, made after it ran
// out.
// Only the holder may change a claimed email: a job whose claim ran out while it
// waited for a connection must not put back in the queue an email that another host
// has meanwhile sent.
func (s *Syncer) holdsClaim(x, claimed *EmailActivity) bool {
	return x.Status == StatusSending && x.ClaimedBy == s.cfg.Host && x.Attempts == claimed.Attempts
}

func recipients(a *EmailActivity) []string {
	var out []string
	for _, list := range [][]Address{a.To, a.Cc, a.Bcc} {
		for _, ad := range list {
			out = append(out, ad.Email)
		}
	}
	return out
}

// finishSend records the outcome of an attempt. Transient failures go back to the
// queue with exponential back-off until MaxSendAttempts; permanent ones fail the
// email with an item alert, and authentication failures disable outgoing mail.
func (s *Syncer) finishSend(ctx context.Context, w *work, a *EmailActivity, sendErr error, log *slog.Logger) {
	ctx = context.WithoutCancel(ctx) // record what happened even while stopping
	now := s.cfg.Now()
	class := ClassifyError(sendErr)
	kind, scope, code := class.Kind, class.Scope, class.Code
	if sendErr != nil && errors.Is(sendErr, context.Canceled) && code != CodeSendOutcomeUnknown {
		kind = ErrorTransient
	}
	// The outcome-unknown warning goes out before the failure is recorded: once the
	// email is Failed nobody looks at it again, so a crash in between would leave it
	// failed with nobody told. A crash after the warning has the next holder reconcile
	// the email again, and warn twice at worst.
	// The same holds for every failure known to be final before it is recorded.
	alerted := w != nil && sendErr != nil && (code == CodeSendOutcomeUnknown || kind != ErrorTransient)
	if alerted {
		level := AlertError
		if code == CodeSendOutcomeUnknown {
			level = AlertWarning
		}
		s.raise(ctx, w, level, ScopeItem, code, a.ID, fmt.Sprintf("The email %q could not be sent: %v", a.Subject, sendErr))
	}
	// Only this call knows the outcome: a store failing for a moment is retried, or
	// a delivered email would end as "may have been delivered" once its claim ran out.
	recordCtx, cancel := context.WithTimeout(ctx, s.cfg.ShutdownLeaseGrace)
	defer cancel()
	var final bool
	err := retryStore(recordCtx, func(ctx context.Context) error {
		_, err := s.store.UpdateActivity(ctx, a.ID, func(x *EmailActivity) error {
			// A delivered email is recorded as sent even when its claim ran out during the
			// send: the attempt is still the last one made, and whoever claimed it since
			// has not sent it again (it found the attempt and reported the outcome unknown).
			delivered := sendErr == nil && !a.SendStartedAt.IsZero() && x.SendStartedAt.Equal(a.SendStartedAt)
			if !delivered && !s.holdsClaim(x, a) {
				return ErrLeaseLost
			}
			x.UpdatedAt, x.ClaimedBy, x.ClaimExpiresAt = now, "", time.Time{}
			final = false
			switch {
			case sendErr == nil:
				x.Status, x.LastError, x.SentAt = StatusSent, "", cmpTime(a.SentAt, now)
			case kind == ErrorTransient && x.Attempts < s.cfg.MaxSendAttempts:
				backoff := time.Minute << min(max(x.Attempts-1, 0), 6)
				x.Status, x.LastError, x.NextAttemptAt, x.SendStartedAt = StatusPendingSend, sendErr.Error(), now.Add(backoff), time.Time{}
			default:
				x.Status, x.LastError = StatusFailed, sendErr.Error()
				final = true
			}
			return nil
		})
		return err
	})
	if errors.Is(err, ErrLeaseLost) {
		log.Warn("the claim on the email ran out before this outcome was recorded; its new holder decides", "send_err", sendErr)
		return
	}
	if err != nil {
		log.Error("record send outcome", "err", err, "send_err", sendErr)
		return
	}
	switch {
	case sendErr == nil:
		s.met.sent.Add(ctx, 1)
		s.emit(Event{Kind: EventEmailSent, MailboxID: a.MailboxID, ActivityID: a.ID})
		log.Debug("email sent")
		if w != nil && lastErrorOf(w.m, Outgoing) {
			s.outgoingWorked(ctx, w, log)
		}
	case !final:
		log.Warn("send failed; will retry", "code", code, "err", sendErr)
	default:
		s.met.sendFailures.Add(ctx, 1)
		log.Error("send failed", "code", code, "err", sendErr)
		s.emit(Event{Kind: EventEmailFailed, MailboxID: a.MailboxID, ActivityID: a.ID, Err: sendErr})
		if w == nil {
			return
		}
		if !alerted { // ran out of transient retries
			s.raise(ctx, w, AlertError, ScopeItem, code, a.ID, fmt.Sprintf("The email %q could not be sent: %v", a.Subject, sendErr))
		}
		// A mailbox whose outgoing email is off already (no connector for its server
		// type, say) is not disabled again: that would only repeat the alert.
		if (kind == ErrorAuth || scope == ScopeProfile) && w.m.OutgoingEnabled {
			s.disableOutgoing(ctx, w, sendErr, scope, code, log)
		}
	}
}

// postponeSend puts a claimed email back without counting an attempt.
func (s *Syncer) postponeSend(ctx context.Context, a *EmailActivity, why error, log *slog.Logger) {
	now := s.cfg.Now()
	_, err := s.store.UpdateActivity(context.WithoutCancel(ctx), a.ID, func(x *EmailActivity) error {
		if !s.holdsClaim(x, a) {
			return ErrLeaseLost
		}
		x.Status, x.ClaimedBy, x.ClaimExpiresAt = StatusPendingSend, "", time.Time{}
		x.Attempts = max(x.Attempts-1, 0)
		x.NextAttemptAt, x.LastError, x.UpdatedAt = now.Add(s.cfg.OutboxInterval), why.Error(), now
		return nil
	})
	switch {
	case errors.Is(err, ErrLeaseLost):
		log.Warn("the claim on the email ran out before it was postponed; its new holder decides", "why", why)
	case err != nil:
		log.Error("postpone email", "err", err)
	}
}

func (s *Syncer) disableOutgoing(ctx context.Context, w *work, cause error, scope AlertScope, code string, log *slog.Logger) {
	now := s.cfg.Now()
	m, err := s.store.UpdateMailbox(ctx, w.m.ID, func(m *Mailbox) error {
		m.OutgoingEnabled, m.OutgoingStatus, m.Status = false, TestFailure, TestFailure
		s.noteError(m, Outgoing, code, cause, now)
		return nil
	})
	if err != nil {
		log.Error("disable outgoing", "err", err)
		return
	}
	w = &work{m: m, p: w.p, settings: w.settings}
	log.Error("outgoing email disabled", "code", code, "err", cause)
	s.emit(Event{Kind: EventMailboxDisabled, MailboxID: m.ID, ProfileID: w.p.ID, Err: cause})
	s.raise(ctx, w, AlertError, scope, code, "",
		fmt.Sprintf("Outgoing email for %s was disabled: %v. Fix the problem, then run Test & Enable.", m.EmailAddress, cause))
}

// outgoingWorked clears the mailbox's last error after a send went through, when
// that error was outgoing email's.
func (s *Syncer) outgoingWorked(ctx context.Context, w *work, log *slog.Logger) {
	_, err := s.store.UpdateMailbox(ctx, w.m.ID, func(m *Mailbox) error {
		if !lastErrorOf(m, Outgoing) {
			return errChangedMeanwhile
		}
		clearLastError(m, Outgoing)
		return nil
	})
	if err != nil && !errors.Is(err, errChangedMeanwhile) && !errors.Is(err, ErrNotFound) {
		log.Warn("clear the mailbox's last error after a send", "err", err)
	}
}

// saveSentCopy appends the sent message to the Sent folder through the incoming
// connector, where its sessions have folders ([FolderSession]).
func (s *Syncer) saveSentCopy(ctx context.Context, w *work, raw []byte, log *slog.Logger) {
	in := s.conns.Incoming[w.p.ServerType]
	if _, folderless := s.folderless.Load(w.p.ServerType); in == nil || !w.incomingActive() || folderless {
		return
	}
	target, err := s.resolveTarget(ctx, w, Incoming)
	if err != nil {
		return
	}
	release, err := s.acquireConnection(ctx, w, Incoming)
	if err != nil {
		return
	}
	defer release()
	session, err := in.OpenIncoming(ctx, target)
	if err != nil {
		log.Warn("could not save a copy in the Sent folder", "err", err)
		return
	}
	defer session.Close()
	folders, ok := session.(FolderSession)
	if !ok {
		// Only a session says whether it has folders: remember the answer, so a
		// POP3 server is not logged in to after every send just to find out again.
		s.folderless.Store(w.p.ServerType, true)
		return
	}
	if err := folders.Append(ctx, SentFolder, s.cfg.Now(), bytes.NewReader(raw), int64(len(raw))); err != nil {
		log.Warn("could not save a copy in the Sent folder", "err", err)
	}
}
