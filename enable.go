package serversync

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// TestAndEnable tests a mailbox's configured workloads against the real servers
// (incoming: connect, authenticate, open the inbox; outgoing: authenticate and, with
// Config.SendTestMessage, send a message to the mailbox's own address; ACT: open
// the calendar, task list and address book, check the owner marker, and write and
// delete a probe item of each kind), records Incoming/Outgoing/ACT/overall status
// and TestCompletedOn, enables what passed, disables what failed, and raises
// alerts: Information on success, Error on failure. It returns the updated mailbox.
//
// Use it when a person asks for one mailbox to be tested and waits for the answer
// (a "Test & Enable" button). For many mailboxes use TestAndEnableProfile or
// Admin.ApplyDefaultEmailSettings, which leave the tests to the running Syncers.
//
// One Test & Enable runs per mailbox at a time, whichever Syncer (process) runs it.
// When one is running already (a background test, or another caller's),
// TestAndEnable waits for it until ctx ends. If that test stored its outcome and
// the mailbox's settings are still the ones this call saw when it began, that
// outcome is the answer: the servers were just tested with these very settings,
// and a second test would only raise a second alert. Otherwise it runs its own.
//
// The outcome is stored only if nothing it depends on changed while the test ran:
// the mailbox's address, credentials, delivery methods, profile and approval, the
// profile's servers, ports, TLS and credential settings, and the org settings
// connectors read. If something did, nothing is stored, no alert is raised and the
// error wraps ErrSettingsChanged: call again to test the new settings. A stored
// outcome clears TestAndEnablePending (except for a mailbox still waiting for
// approval), so the Syncers do not test the same settings again. A call that
// stalled past its lock (LeaseTTL, renewed while it runs) stores nothing either
// and returns an error wrapping ErrLeaseLost.
func (s *Syncer) TestAndEnable(ctx context.Context, mailboxID string) (*Mailbox, error) {
	m, err := s.store.GetMailbox(ctx, mailboxID)
	if err != nil {
		return nil, err
	}
	w, err := s.loadWork(ctx, m)
	if err != nil {
		return nil, err
	}
	asked := testInputsOf(w)
	// Runs numbered above since started after this call did, or were running
	// when it did: their outcome answers it when the settings are the same.
	since := m.TestRun
	if s.testLocked(m) {
		since--
	}
	for wait := 10 * time.Millisecond; ; wait = min(2*wait, 500*time.Millisecond) {
		run, current, err := s.lockTest(ctx, mailboxID, func(w *work) error {
			if s.testLocked(w.m) {
				return errTestBusy
			}
			if w.m.TestRunStored > since && testInputsOf(w) == asked {
				return errTestAnswered
			}
			return nil
		})
		switch {
		case errors.Is(err, errTestAnswered):
			return current, nil
		case errors.Is(err, errTestBusy):
			// The holder may be another process: nothing signals its end but the
			// record, so look again, less often the longer it takes.
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			case <-t.C:
			}
			continue
		case err != nil:
			return nil, err
		}
		return s.runTest(ctx, run)
	}
}

// ErrSettingsChanged is returned by Syncer.TestAndEnable when the mailbox's
// settings changed while it was tested: the outcome described settings that no
// longer apply, so nothing was stored and no alert was raised.
var ErrSettingsChanged = errors.New("serversync: the mailbox's settings changed during Test & Enable; its outcome was discarded")

// errTestLockLost means a test ran past its lock's expiry without renewing it and
// another test took the lock: the late test must not store anything.
var errTestLockLost = fmt.Errorf("%w: the Test & Enable lock ran out and another test took it", ErrLeaseLost)

// Reasons a claim of the test lock is refused; they never leave this file.
var (
	errTestBusy         = errors.New("serversync: another Test & Enable of the mailbox is running")
	errTestAnswered     = errors.New("serversync: a Test & Enable of the same settings finished meanwhile")
	errNothingToTest    = errors.New("serversync: the mailbox no longer waits for Test & Enable")
	errAwaitingApproval = errors.New("serversync: the mailbox waits for approval before it is tested")
)

// TestAndEnableProfile marks every mailbox of a profile for Test & Enable and makes
// them due now: the Syncer's workers test them in the background (on whichever
// host leases each). It reports how many mailboxes were marked. Use it after a
// profile changed (a new server, a new service account password): it returns at
// once, and the outcomes arrive as EventMailboxTested events and alerts. A mailbox
// whose test is running when it is marked is tested again only if that test's
// outcome is discarded because the settings changed under it; a mailbox waiting
// for approval is tested once it is approved.
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

// testInBackground runs the Test & Enable a leased mailbox waits for. It returns
// the mailbox to go on with, or done and when to look at the mailbox again. It
// tests nothing when another test is running (that test's holder clears or keeps
// the pending flag), when an explicit test cleared the flag meanwhile, or while
// the mailbox waits for approval (testing it would only fail and alert).
func (s *Syncer) testInBackground(ctx context.Context, m *Mailbox, log *slog.Logger) (_ *Mailbox, next time.Time, done bool) {
	run, current, err := s.lockTest(ctx, m.ID, func(w *work) error {
		switch {
		case !w.m.TestAndEnablePending:
			return errNothingToTest
		case w.awaitingApproval():
			return errAwaitingApproval
		case s.testLocked(w.m):
			return errTestBusy
		}
		return nil
	})
	switch {
	case errors.Is(err, errNothingToTest), errors.Is(err, errAwaitingApproval):
		return current, time.Time{}, false
	case errors.Is(err, errTestBusy):
		// Unscheduled, the mailbox is looked at again by ScheduleReady, every
		// ScanInterval: still pending if the holder died, enabled if it succeeded. A
		// next sync time would replace the one the holder stores when it enables
		// incoming mail, since this lease is released after that.
		log.Debug("Test & Enable of the mailbox is running already: not testing it again", "host", current.TestHost)
		return nil, time.Time{}, true
	case err != nil:
		log.Error("test and enable", "err", err)
		return nil, s.cfg.Now().Add(s.cfg.RetryInterval), true
	}
	tested, err := s.runTest(ctx, run)
	switch {
	case errors.Is(err, ErrSettingsChanged):
		// Still pending: test the new settings at once.
		log.Info("the mailbox's settings changed during Test & Enable: its outcome was discarded")
		return nil, s.cfg.Now(), true
	case err != nil:
		log.Error("test and enable", "err", err)
		return nil, s.cfg.Now().Add(s.cfg.RetryInterval), true
	}
	return tested, time.Time{}, false
}

// testLocked reports whether a test of m is running: its lock is held and has not
// lapsed.
func (s *Syncer) testLocked(m *Mailbox) bool {
	return m.TestHost != "" && s.cfg.Now().Before(m.TestLockExpiresAt)
}

// awaitingApproval reports whether the mailbox needs an approval that nobody has
// given or refused yet.
func (w *work) awaitingApproval() bool {
	switch w.m.Approval {
	case ApprovalEmpty, ApprovalPending, "":
		return w.settings.RequiresApproval(w.m)
	}
	return false
}

// testRun is one Test & Enable holding the mailbox's test lock.
type testRun struct {
	number int64      // the mailbox's TestRun when the lock was taken
	host   string     // the Syncer host that took it
	w      *work      // what is tested
	inputs testInputs // w's digest, compared when the outcome is stored
}

// holds reports whether m's test lock is still this run's.
func (r *testRun) holds(m *Mailbox) bool { return m.TestRun == r.number && m.TestHost == r.host }

// lockTest takes the mailbox's test lock if admit, called inside the store's
// update with the current mailbox (and the profile and org settings read just
// before), allows it. The lock is taken by the same atomic update that checks it,
// which is what serializes tests across processes sharing a store. When admit
// refuses, lockTest returns its error and the mailbox as admit saw it.
func (s *Syncer) lockTest(ctx context.Context, id string, admit func(*work) error) (*testRun, *Mailbox, error) {
	m, err := s.store.GetMailbox(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	w, err := s.loadWork(ctx, m)
	if err != nil {
		return nil, nil, err
	}
	now := s.cfg.Now()
	var seen *Mailbox
	locked, err := s.store.UpdateMailbox(ctx, id, func(m *Mailbox) error {
		seen = m.Clone()
		if err := admit(&work{m: m, p: w.p, settings: w.settings}); err != nil {
			return err
		}
		m.TestRun++
		m.TestHost, m.TestLockExpiresAt = s.cfg.Host, now.Add(s.cfg.LeaseTTL)
		return nil
	})
	if err != nil {
		return nil, seen, err
	}
	run := &testRun{number: locked.TestRun, host: s.cfg.Host, w: &work{m: locked, p: w.p, settings: w.settings}}
	if locked.ProfileID != m.ProfileID { // changed between the read and the lock
		if run.w, err = s.loadWork(ctx, locked); err != nil {
			s.unlockTest(ctx, run)
			return nil, nil, err
		}
	}
	run.inputs = testInputsOf(run.w)
	return run, locked, nil
}

// unlockTest gives up the test lock without storing an outcome, even when ctx
// has ended; a lock it cannot release lapses after LeaseTTL.
func (s *Syncer) unlockTest(ctx context.Context, run *testRun) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownLeaseGrace)
	defer cancel()
	_, err := s.store.UpdateMailbox(ctx, run.w.m.ID, func(m *Mailbox) error {
		if !run.holds(m) {
			return errTestLockLost
		}
		m.TestHost, m.TestLockExpiresAt = "", time.Time{}
		return nil
	})
	if err != nil && !errors.Is(err, errTestLockLost) && !errors.Is(err, ErrNotFound) {
		s.log.Warn("release the Test & Enable lock: it lapses on its own", "mailbox", run.w.m.ID, "err", err)
	}
}

// runTest tests the workloads while a heartbeat renews the test lock, then stores
// the outcome and raises its alert. A lock that cannot be renewed stops the test:
// past its expiry another test may run, and two must never overlap.
func (s *Syncer) runTest(ctx context.Context, run *testRun) (*Mailbox, error) {
	testCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	expires := run.w.m.TestLockExpiresAt
	stopHeartbeat := heartbeat(testCtx, s.cfg.LeaseTTL/3, func(ctx context.Context) bool {
		now := s.cfg.Now()
		_, err := s.store.UpdateMailbox(ctx, run.w.m.ID, func(m *Mailbox) error {
			if !run.holds(m) {
				return errTestLockLost
			}
			m.TestLockExpiresAt = now.Add(s.cfg.LeaseTTL)
			return nil
		})
		switch {
		case err == nil:
			expires = now.Add(s.cfg.LeaseTTL)
		case errors.Is(err, errTestLockLost), errors.Is(err, ErrNotFound):
			cancel(err)
			return false
		case !now.Before(expires.Add(-s.cfg.LeaseTTL / 3)):
			cancel(errTestLockLost) // about to lapse unrenewed
			return false
		case ctx.Err() == nil:
			s.log.Error("renew the Test & Enable lock", "mailbox", run.w.m.ID, "err", err)
		}
		return true
	})
	incoming, outgoing, act := s.testWorkloads(testCtx, run.w)
	stopHeartbeat()
	if testCtx.Err() != nil {
		s.unlockTest(ctx, run)
		return nil, context.Cause(testCtx)
	}
	return s.storeTest(ctx, run, incoming, outgoing, act)
}

// workloadResult is the outcome of testing one workload.
type workloadResult struct {
	tested bool
	err    error
}

// testWorkloads tests what the mailbox uses server-side synchronization for.
func (s *Syncer) testWorkloads(ctx context.Context, w *work) (incoming, outgoing, act workloadResult) {
	m := w.m
	switch {
	case w.p == nil:
		err := noProfileError("test", m)
		return workloadResult{m.IncomingMethod == IncomingServerSideSync, err}, workloadResult{m.OutgoingMethod == OutgoingServerSideSync, err},
			workloadResult{m.ACTMethod == OutgoingServerSideSync, err}
	case !w.approved():
		err := notApprovedError("test", ErrorPermanent, m)
		return workloadResult{m.IncomingMethod == IncomingServerSideSync || m.IsForwardMailbox, err}, workloadResult{m.OutgoingMethod == OutgoingServerSideSync, err},
			workloadResult{m.ACTMethod == OutgoingServerSideSync, err}
	}
	if m.IncomingMethod == IncomingServerSideSync || m.IsForwardMailbox {
		incoming = workloadResult{true, s.testIncoming(ctx, w)}
	}
	if m.OutgoingMethod == OutgoingServerSideSync {
		outgoing = workloadResult{true, s.testOutgoing(ctx, w)}
	}
	if m.ACTMethod == OutgoingServerSideSync {
		act = workloadResult{true, s.testACT(ctx, w)}
	}
	return incoming, outgoing, act
}

// storeTest stores a test's outcome and raises its alert, unless what the test
// depended on changed meanwhile (ErrSettingsChanged) or its lock was lost; either
// way it releases the lock.
func (s *Syncer) storeTest(ctx context.Context, run *testRun, incoming, outgoing, act workloadResult) (*Mailbox, error) {
	// The check needs the profile and org settings as they are now; they are read
	// just before the update, which must not call the store. A change in between is
	// the one it can miss: microseconds, against the seconds a test takes.
	latest, err := s.loadWork(ctx, run.w.m)
	if errors.Is(err, ErrNotFound) { // the profile tested is gone
		s.unlockTest(ctx, run)
		return nil, ErrSettingsChanged
	} else if err != nil {
		s.unlockTest(ctx, run)
		return nil, err
	}
	at := s.cfg.Now()
	status := func(r workloadResult) TestStatus {
		switch {
		case !r.tested:
			return TestNotRun
		case r.err != nil:
			return TestFailure
		}
		return TestSuccess
	}
	var stale bool
	updated, err := s.store.UpdateMailbox(ctx, run.w.m.ID, func(m *Mailbox) error {
		if !run.holds(m) {
			return errTestLockLost
		}
		m.TestHost, m.TestLockExpiresAt = "", time.Time{}
		current := &work{m: m, p: latest.p, settings: latest.settings}
		if stale = testInputsOf(current) != run.inputs; stale {
			return nil // only the lock is released
		}
		m.IncomingStatus, m.OutgoingStatus, m.ACTStatus = status(incoming), status(outgoing), status(act)
		m.IncomingEnabled = incoming.tested && incoming.err == nil
		m.OutgoingEnabled = outgoing.tested && outgoing.err == nil
		m.ACTEnabled = act.tested && act.err == nil
		m.Status = TestSuccess
		if incoming.err != nil || outgoing.err != nil || act.err != nil || (!incoming.tested && !outgoing.tested && !act.tested) {
			m.Status = TestFailure
		}
		s.noteTestOutcome(m, incoming, outgoing, act, at)
		m.TestCompletedOn = at
		m.TestRunStored = run.number
		// A mailbox waiting for approval is tested again once approved.
		m.TestAndEnablePending = m.TestAndEnablePending && current.awaitingApproval()
		m.Stats.TransientFailureCount = 0
		m.Stats.IncomingPostponedUntil, m.Stats.OutgoingPostponedUntil, m.Stats.ACTPostponedUntil = time.Time{}, time.Time{}, time.Time{}
		if m.IncomingEnabled || m.ACTEnabled {
			m.NextSyncAt = at
		}
		return nil
	})
	if err != nil {
		if !errors.Is(err, errTestLockLost) {
			s.unlockTest(ctx, run)
		}
		return nil, err
	}
	if stale {
		return nil, ErrSettingsChanged
	}
	w := &work{m: updated, p: run.w.p, settings: run.w.settings}
	s.emit(Event{Kind: EventMailboxTested, MailboxID: updated.ID, ProfileID: updated.ProfileID, Err: errors.Join(incoming.err, outgoing.err, act.err)})
	if updated.Status == TestSuccess {
		s.raise(ctx, w, AlertInformation, ScopeMailbox, CodeTestAndEnableSucceeded, "",
			fmt.Sprintf("The mailbox %s was tested and enabled successfully.", updated.EmailAddress))
		return updated, nil
	}
	var problems []string
	scope := ScopeMailbox
	for _, r := range []struct {
		name string
		workloadResult
	}{{"incoming email", incoming}, {"outgoing email", outgoing}, {"appointments, contacts and tasks", act}} {
		if r.err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", r.name, r.err))
			if ClassifyError(r.err).Scope == ScopeProfile {
				scope = ScopeProfile
			}
		}
	}
	if len(problems) == 0 {
		problems = append(problems, "no workload uses server-side synchronization")
	}
	s.raise(ctx, w, AlertError, scope, CodeTestAndEnableFailed, "",
		fmt.Sprintf("Test & Enable failed for %s: %s.", updated.EmailAddress, strings.Join(problems, "; ")))
	return updated, nil
}

// testInputs is a digest of everything a Test & Enable outcome depends on. It
// covers secrets, so it is only ever kept in memory and compared.
type testInputs [sha256.Size]byte

// testInputsOf digests the mailbox's address, credentials, delivery methods,
// profile ID and approval, the profile's servers, ports, TLS, credential settings
// and secrets, and the org settings connectors read. OAuth tokens are left out:
// the test itself refreshes and stores them; so is the server AutoDiscover found,
// which the test itself discovers and stores, from the address and profile that
// are in.
func testInputsOf(w *work) testInputs {
	m := w.m
	in := struct {
		EmailAddress, Username, Password, ProfileID    string
		IncomingMethod                                 IncomingMethod
		OutgoingMethod, ACTMethod                      OutgoingMethod
		IsForwardMailbox, Approved, AllowPlaintextAuth bool
		DefaultTenantID                                string
		ACTFromThisOrgOnly                             bool
		Profile                                        Profile // a value: %#v prints pointers as addresses
		ProfileSecrets                                 []string
	}{
		EmailAddress: m.EmailAddress, Username: m.Username, Password: m.Password.Reveal(), ProfileID: m.ProfileID,
		IncomingMethod: m.IncomingMethod, OutgoingMethod: m.OutgoingMethod,
		ACTMethod: m.ACTMethod, IsForwardMailbox: m.IsForwardMailbox, Approved: w.approved(),
		AllowPlaintextAuth: w.settings.AllowCredentialsOverNonSecureChannels, DefaultTenantID: w.settings.DefaultTenantID,
		ACTFromThisOrgOnly: w.settings.SyncACTFromThisOrgOnly,
	}
	if w.p != nil {
		// What only names the profile, schedules or reports on its mailboxes does not
		// change how a test goes.
		p := w.p.Clone()
		p.Name, p.Description, p.Owner = "", "", ""
		p.ProcessEmailFrom, p.CreatedAt, p.UpdatedAt = time.Time{}, time.Time{}, time.Time{}
		p.MinPollingInterval, p.MaxConcurrentConnections = 0, 0
		p.MoveFailedToUndeliverable, p.SendAlertOnMassFailure = false, false
		in.Profile = *p
		in.ProfileSecrets = []string{p.Password.Reveal(), p.ClientSecret.Reveal(), p.CertificateKey.Reveal()}
	}
	// %#v prints every field, secrets redacted (they are in ProfileSecrets).
	h := sha256.New()
	fmt.Fprintf(h, "%#v", in)
	return testInputs(h.Sum(nil))
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
