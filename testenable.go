package serversync

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// TestAndEnable tests a mailbox's configured workloads against the real servers
// (incoming: connect, authenticate, open the inbox; outgoing: authenticate and, with
// Config.SendTestMessage, send a message to the mailbox's own address), records
// Incoming/Outgoing/overall status and TestCompletedOn, enables what passed,
// disables what failed, and raises alerts: Information on success, Error on
// failure. It returns the updated mailbox. ACT (appointments, contacts, tasks)
// needs Exchange, which this library does not connect to yet: it stays NotRun.
func (s *Syncer) TestAndEnable(ctx context.Context, mailboxID string) (*Mailbox, error) {
	m, err := s.store.GetMailbox(ctx, mailboxID)
	if err != nil {
		return nil, err
	}
	return s.testAndEnable(ctx, m)
}

// TestAndEnableProfile marks every mailbox of a profile for Test & Enable and makes
// them due now: the Syncer's workers test them in the background (on whichever
// host leases each). It reports how many mailboxes were marked.
func (s *Syncer) TestAndEnableProfile(ctx context.Context, profileID string) (int, error) {
	if _, err := s.store.GetProfile(ctx, profileID); err != nil {
		return 0, err
	}
	var ids []string
	for m, err := range s.store.ListMailboxes(ctx, MailboxFilter{ProfileID: profileID}) {
		if err != nil {
			return 0, err
		}
		ids = append(ids, m.ID)
	}
	now := s.cfg.Now()
	for _, id := range ids {
		if _, err := s.store.UpdateMailbox(ctx, id, func(m *Mailbox) error {
			m.TestAndEnablePending = true
			m.NextSyncAt = now
			return nil
		}); err != nil && !errors.Is(err, ErrNotFound) {
			return 0, err
		}
	}
	poke(s.wakeLeases)
	return len(ids), nil
}

// workloadResult is the outcome of testing one workload.
type workloadResult struct {
	tested bool
	err    error
}

func (s *Syncer) testAndEnable(ctx context.Context, m *Mailbox) (*Mailbox, error) {
	w, err := s.loadWork(ctx, m)
	if err != nil {
		return nil, err
	}
	var incoming, outgoing workloadResult
	switch {
	case w.p == nil:
		err := noProfileError("test", m)
		incoming, outgoing = workloadResult{m.IncomingMethod == IncomingServerSideSync, err}, workloadResult{m.OutgoingMethod == OutgoingServerSideSync, err}
	case !w.approved():
		err := notApprovedError("test", ErrorPermanent, m)
		incoming, outgoing = workloadResult{m.IncomingMethod == IncomingServerSideSync || m.IsForwardMailbox, err}, workloadResult{m.OutgoingMethod == OutgoingServerSideSync, err}
	default:
		if m.IncomingMethod == IncomingServerSideSync || m.IsForwardMailbox {
			incoming = workloadResult{true, s.testIncoming(ctx, w)}
		}
		if m.OutgoingMethod == OutgoingServerSideSync {
			outgoing = workloadResult{true, s.testOutgoing(ctx, w)}
		}
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}

	now := s.cfg.Now()
	status := func(r workloadResult) TestStatus {
		switch {
		case !r.tested:
			return TestNotRun
		case r.err != nil:
			return TestFailure
		}
		return TestSuccess
	}
	updated, err := s.store.UpdateMailbox(ctx, m.ID, func(m *Mailbox) error {
		m.IncomingStatus, m.OutgoingStatus = status(incoming), status(outgoing)
		m.IncomingEnabled = incoming.tested && incoming.err == nil
		m.OutgoingEnabled = outgoing.tested && outgoing.err == nil
		m.Status = TestSuccess
		if incoming.err != nil || outgoing.err != nil || (!incoming.tested && !outgoing.tested) {
			m.Status = TestFailure
		}
		s.noteTestOutcome(m, incoming, outgoing, now)
		m.TestCompletedOn = now
		m.TestAndEnablePending = false
		m.Stats.TransientFailureCount = 0
		m.Stats.IncomingPostponedUntil, m.Stats.OutgoingPostponedUntil = time.Time{}, time.Time{}
		if m.IncomingEnabled {
			m.NextSyncAt = now
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	w.m = updated
	s.emit(Event{Kind: EventMailboxTested, MailboxID: updated.ID, ProfileID: updated.ProfileID, Err: errors.Join(incoming.err, outgoing.err)})
	if updated.Status == TestSuccess {
		s.raise(ctx, w, AlertInformation, ScopeMailbox, "test_and_enable_succeeded", "",
			fmt.Sprintf("The mailbox %s was tested and enabled successfully.", updated.EmailAddress))
		return updated, nil
	}
	var problems []string
	scope := ScopeMailbox
	for _, r := range []struct {
		name string
		workloadResult
	}{{"incoming", incoming}, {"outgoing", outgoing}} {
		if r.err != nil {
			problems = append(problems, fmt.Sprintf("%s email: %v", r.name, r.err))
			if _, sc, _ := failureKind(r.err); sc == ScopeProfile {
				scope = ScopeProfile
			}
		}
	}
	if len(problems) == 0 {
		problems = append(problems, "no workload uses server-side synchronization")
	}
	s.raise(ctx, w, AlertError, scope, "test_and_enable_failed", "",
		fmt.Sprintf("Test & Enable failed for %s: %s.", updated.EmailAddress, strings.Join(problems, "; ")))
	return updated, nil
}

// testIncoming connects, authenticates and opens the inbox.
func (s *Syncer) testIncoming(ctx context.Context, w *work) error {
	in := s.conns.Incoming[w.p.ServerType]
	if in == nil {
		return noConnectorError("test", Incoming, w.p.ServerType)
	}
	target, err := s.resolveTarget(ctx, w, Incoming)
	if err != nil {
		return err
	}
	release, err := s.acquireConnection(ctx, w, Incoming)
	if err != nil {
		return err
	}
	defer release()
	if prober, ok := in.(Prober); ok {
		for _, step := range prober.Probe(ctx, target) {
			if !step.OK {
				return cmp.Or(step.Err, errors.New(step.Detail))
			}
		}
		return nil
	}
	session, err := in.OpenIncoming(ctx, target)
	if err != nil {
		return err
	}
	return session.Close()
}

// testOutgoing authenticates to the outgoing server and, when configured, sends a
// test message to the mailbox's own address.
func (s *Syncer) testOutgoing(ctx context.Context, w *work) error {
	out := s.conns.Outgoing[w.p.ServerType]
	if out == nil {
		return noConnectorError("test", Outgoing, w.p.ServerType)
	}
	target, err := s.resolveTarget(ctx, w, Outgoing)
	if err != nil {
		return err
	}
	release, err := s.acquireConnection(ctx, w, Outgoing)
	if err != nil {
		return err
	}
	defer release()
	session, err := out.OpenOutgoing(ctx, target)
	if err != nil {
		return err
	}
	defer session.Close()
	if !s.cfg.SendTestMessage {
		return nil
	}
	msg := &EmailActivity{
		ID: NewID(), From: Address{Email: w.m.EmailAddress}, To: []Address{{Email: w.m.EmailAddress}},
		Subject: "Test & Enable: test message", TextBody: "This message was sent by Test & Enable to check outgoing email.",
		SentAt: s.cfg.Now(),
	}
	msg.MessageID = newMessageID(msg.ID, w.m.EmailAddress)
	raw, err := composeMessage(msg)
	if err != nil {
		return err
	}
	return session.Send(ctx, Envelope{From: w.m.EmailAddress, To: []string{w.m.EmailAddress}}, bytes.NewReader(raw))
}
