package serversync

import (
	"context"
	"errors"
	"time"
)

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
// enabled for incoming mail or ACT, but has no next sync time and no approval to wait
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
			if m.NextSyncAt.IsZero() && m.LeaseHost == "" && (m.TestAndEnablePending || m.IncomingEnabled || m.ACTEnabled) && !waiting {
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
