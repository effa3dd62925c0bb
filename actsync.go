package serversync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"time"
)

// This file runs the ACT workload (DESIGN §12): the host's changes go out from
// the records it saved, the server's come in through the connector's change
// tracking, both through an ACTStore.

// ACTRecordChange is what Config.OnACTChange is told of one record a server
// change wrote.
type ACTRecordChange struct {
	// Record is the record as stored (as it was, when Removed).
	Record *ACTRecord
	// Removed reports that the server deleted the item and the record is gone.
	Removed bool
	// Conflict is set when the change settled a conflict.
	Conflict *ACTConflict
}

// ErrNoACTStore is returned by the ACT methods of a Syncer whose store
// implements no ACTStore.
var ErrNoACTStore = errors.New("serversync: the store keeps no ACT records (it implements no ACTStore)")

func (s *Syncer) actStore() (ACTStore, error) {
	st, ok := s.store.(ACTStore)
	if !ok {
		return nil, ErrNoACTStore
	}
	return st, nil
}

// SaveACTItem stores a host change of an ACT item of the mailbox named by
// item.Header().MailboxID, to be pushed to the server at the mailbox's next ACT
// sync: the queue of the host's side. recordID "" creates a record (with a new
// ID); an existing record's pending change, if any, is replaced (changes
// coalesce). A new record's UID is item's, or a new one: it is fixed from now on,
// so a push repeated after a crash finds the item it created. The item's
// ServerID and ChangeKey are the Syncer's to set and are ignored. Only records
// saved here are ever written to the server.
func (s *Syncer) SaveACTItem(ctx context.Context, recordID string, item ACTItem) (*ACTRecord, error) {
	st, err := s.actStore()
	if err != nil {
		return nil, err
	}
	if item == nil {
		return nil, &ValidationError{Entity: "ACTRecord", Field: "Item", Reason: "is required"}
	}
	h := *item.Header()
	if h.MailboxID == "" {
		return nil, &ValidationError{Entity: "ACTRecord", Field: "MailboxID", Reason: "is required (the item's MailboxID)"}
	}
	if _, err := s.store.GetMailbox(ctx, h.MailboxID); err != nil {
		return nil, err
	}
	r := &ACTRecord{ID: recordID, MailboxID: h.MailboxID, Kind: item.ACTKind(), UID: h.UID, HostModifiedAt: s.cfg.Now()}
	if recordID == "" {
		r.ID = NewID()
	} else if stored, err := st.GetACTRecord(ctx, recordID); err == nil {
		r.UID = stored.UID
	} else if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	if r.UID == "" {
		r.UID = NewID()
	}
	if r.Item, err = encodeACTItem(item); err != nil {
		return nil, err
	}
	saved, err := st.SaveACTRecord(ctx, r)
	if err != nil {
		return nil, err
	}
	s.actDue(ctx, h.MailboxID)
	return saved, nil
}

// DeleteACTItem deletes an item on the host's side: the record stays as a
// tombstone until the delete reached the server. A record never pushed is
// deleted the same way (a push may have reached the server before a crash).
func (s *Syncer) DeleteACTItem(ctx context.Context, recordID string) (*ACTRecord, error) {
	st, err := s.actStore()
	if err != nil {
		return nil, err
	}
	stored, err := st.GetACTRecord(ctx, recordID)
	if err != nil {
		return nil, err
	}
	r := stored.Clone()
	r.Deleted, r.HostModifiedAt = true, s.cfg.Now()
	saved, err := st.SaveACTRecord(ctx, r)
	if err != nil {
		return nil, err
	}
	s.actDue(ctx, r.MailboxID)
	return saved, nil
}

// ACTRecord returns one ACT record.
func (s *Syncer) ACTRecord(ctx context.Context, id string) (*ACTRecord, error) {
	st, err := s.actStore()
	if err != nil {
		return nil, err
	}
	return st.GetACTRecord(ctx, id)
}

// ACTRecords streams a mailbox's ACT records: the host's side of its
// appointments, contacts and tasks (filter.MailboxID is required).
func (s *Syncer) ACTRecords(ctx context.Context, filter ACTRecordFilter) iter.Seq2[*ACTRecord, error] {
	st, err := s.actStore()
	if err != nil {
		return func(yield func(*ACTRecord, error) bool) { yield(nil, err) }
	}
	return st.ListACTRecords(ctx, filter)
}

// ACTConflicts streams the conflicts met on a mailbox's ACT items, oldest first.
func (s *Syncer) ACTConflicts(ctx context.Context, mailboxID string) iter.Seq2[*ACTConflict, error] {
	st, err := s.actStore()
	if err != nil {
		return func(yield func(*ACTConflict, error) bool) { yield(nil, err) }
	}
	return st.ListACTConflicts(ctx, mailboxID)
}

// actDue makes a mailbox whose ACT is enabled due now, so a host change goes
// out soon. A failure only delays it to the next poll.
func (s *Syncer) actDue(ctx context.Context, mailboxID string) {
	now := s.cfg.Now()
	_, err := s.store.UpdateMailbox(ctx, mailboxID, func(m *Mailbox) error {
		if !m.ACTEnabled || (!m.NextSyncAt.IsZero() && !m.NextSyncAt.After(now)) {
			return errChangedMeanwhile
		}
		m.NextSyncAt = now
		return nil
	})
	if err == nil {
		poke(s.wakeLeases)
	}
}

func (w *work) actActive() bool {
	return w.p != nil && w.approved() && w.m.ACTEnabled && w.m.ACTMethod == OutgoingServerSideSync
}

// syncACT runs one ACT sync of the mailbox and returns when it is due next.
func (s *Syncer) syncACT(ctx context.Context, w *work, log *slog.Logger) time.Time {
	started := s.cfg.Now()
	st, err := s.runACT(ctx, w, log)
	if err != nil {
		return s.actFailed(ctx, w, started, err, log)
	}
	now := s.cfg.Now()
	m, err := s.store.UpdateMailbox(ctx, w.m.ID, func(m *Mailbox) error {
		if lastErrorOf(m, ACT) {
			m.Stats.TransientFailureCount = 0
		}
		m.Stats.ACTPostponedUntil = time.Time{}
		clearLastError(m, ACT)
		return nil
	})
	if err != nil {
		log.Error("record ACT sync", "err", err)
		return now.Add(s.cfg.RetryInterval)
	}
	w.m = m
	log.Debug("ACT sync done", "from_server", st.pulled, "to_server", st.pushed, "conflicts", st.conflicts)
	s.emit(Event{Kind: EventACTSynced, MailboxID: m.ID, ProfileID: w.p.ID, Items: st.pulled + st.pushed})
	interval := s.cfg.ActivePoll
	if w.p != nil {
		interval = max(interval, w.p.MinPollingInterval)
	}
	return now.Add(interval)
}

// actStats is what one ACT sync did.
type actStats struct{ pulled, pushed, conflicts int }

// openACT opens the mailbox's ACT session with a connection slot; release gives
// both back.
func (s *Syncer) openACT(ctx context.Context, w *work) (ACTStore, ACTSession, func(), error) {
	st, err := s.actStore()
	if err != nil {
		return nil, nil, nil, &ConnectorError{Op: "connect", Kind: ErrorPermanent, Scope: ScopeProfile, Code: CodeACTStoreMissing, Err: err}
	}
	conn := s.conns.ACT[w.p.ServerType]
	if conn == nil {
		return nil, nil, nil, noConnectorError("connect", ACT, w.p.ServerType)
	}
	target, err := s.resolveTarget(ctx, w, ACT)
	if err != nil {
		return nil, nil, nil, err
	}
	release, err := s.acquireConnection(ctx, w, ACT)
	if err != nil {
		return nil, nil, nil, err
	}
	sess, err := conn.OpenACT(ctx, target)
	if err != nil {
		release()
		return nil, nil, nil, err
	}
	return st, sess, func() { _ = sess.Close(); release() }, nil
}

func (s *Syncer) runACT(ctx context.Context, w *work, log *slog.Logger) (actStats, error) {
	var stats actStats
	st, sess, release, err := s.openACT(ctx, w)
	if err != nil {
		return stats, err
	}
	defer release()
	if err := s.claimACTOwner(ctx, w, sess); err != nil {
		return stats, err
	}
	for _, kind := range ACTKinds {
		if err := s.pullACT(ctx, w, st, sess, kind, &stats); err != nil {
			return stats, err
		}
		pushed := stats.pushed
		if err := s.pushACT(ctx, w, st, sess, kind, &stats, log); err != nil {
			return stats, err
		}
		if stats.pushed > pushed {
			// Move the cursor past this sync's own writes (each is recognised by
			// its ChangeKey and skipped): a cursor that is a listing of ETags would
			// otherwise never have seen an item created here and deleted on the
			// server before the next sync, and its delete would be lost.
			if err := s.pullACT(ctx, w, st, sess, kind, &stats); err != nil {
				return stats, err
			}
		}
	}
	return stats, nil
}

// claimACTOwner checks the mailbox's owner marker, where the server keeps one
// (a server that cannot keep one is synced without it):
// unmarked, or marked by another deployment while SyncACTFromThisOrgOnly is on,
// it is marked as this deployment's; marked by another one otherwise, it is not
// this deployment's to sync.
func (s *Syncer) claimACTOwner(ctx context.Context, w *work, sess ACTSession) error {
	marker, ok := sess.(ACTOwnerMarker)
	if !ok {
		return nil
	}
	self, err := s.actOwnerID(ctx, w)
	if err != nil {
		return err
	}
	owner, err := marker.ACTOwner(ctx)
	switch {
	case err != nil:
		return err
	case owner == self:
		return nil
	case owner != "" && !w.settings.SyncACTFromThisOrgOnly:
		return &ConnectorError{Op: "owner", Kind: ErrorPermanent, Scope: ScopeMailbox, Code: CodeACTOwnedElsewhere,
			Err: fmt.Errorf("the appointments, contacts and tasks of %s are synced by another deployment (%q): turn on SyncACTFromThisOrgOnly to take them over", w.m.EmailAddress, owner)}
	}
	if err := marker.SetACTOwner(ctx, self); errors.Is(err, errors.ErrUnsupported) {
		// The server keeps no marker (Xandikos): the mailbox is synced, unguarded.
		s.log.Debug("the ACT server keeps no owner marker", "mailbox", w.m.ID, "err", err)
		return nil
	} else if err != nil {
		return err
	}
	return nil
}

// actOwnerID is this deployment's ACT owner ID, made and stored the first time.
func (s *Syncer) actOwnerID(ctx context.Context, w *work) (string, error) {
	if w.settings.ACTOwnerID != "" {
		return w.settings.ACTOwnerID, nil
	}
	settings, err := s.store.UpdateOrgSettings(ctx, func(o *OrgSettings) error {
		if o.ACTOwnerID == "" {
			o.ACTOwnerID = "serversync:" + NewID()
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	w.settings = settings
	return settings.ACTOwnerID, nil
}

// pullACT brings the server's changes of kind into the store, with the cursor
// after them in the same store call. A host save racing with it makes the store
// refuse the batch; it is read again.
func (s *Syncer) pullACT(ctx context.Context, w *work, st ACTStore, sess ACTSession, kind ACTKind, stats *actStats) error {
	for attempt := 1; ; attempt++ {
		err := s.pullACTOnce(ctx, w, st, sess, kind, stats)
		if !errors.Is(err, ErrACTRecordChanged) || attempt == 3 {
			return err
		}
	}
}

// actBatch is the store writes one pull makes, and what to tell the host.
type actBatch struct {
	apply  ACTApply
	notify []ACTRecordChange // by write index; Record nil: not told
	staged map[string]int    // record ID → index of its write
}

func (b *actBatch) write(rec *ACTRecord, prev int64, remove bool, tell bool, conflict *ACTConflict) {
	if i, ok := b.staged[rec.ID]; ok {
		prev = b.apply.Writes[i].PrevVersion + 1
	}
	b.staged[rec.ID] = len(b.apply.Writes)
	b.apply.Writes = append(b.apply.Writes, ACTWrite{Record: rec, PrevVersion: prev, Remove: remove})
	change := ACTRecordChange{Removed: remove, Conflict: conflict}
	if tell {
		change.Record = rec
	}
	b.notify = append(b.notify, change)
	if conflict != nil {
		b.apply.Conflicts = append(b.apply.Conflicts, conflict)
	}
}

// staged returns the record as the batch leaves it, when the batch wrote it.
func (b *actBatch) current(rec *ACTRecord) *ACTRecord {
	if rec == nil {
		return nil
	}
	if i, ok := b.staged[rec.ID]; ok {
		if b.apply.Writes[i].Remove {
			return nil
		}
		c := b.apply.Writes[i].Record.Clone()
		c.Version = b.apply.Writes[i].PrevVersion + 1
		return c
	}
	return rec
}

func (s *Syncer) pullACTOnce(ctx context.Context, w *work, st ACTStore, sess ACTSession, kind ACTKind, stats *actStats) error {
	folder := ACTFolder(kind)
	var cursor []byte
	if cur, err := s.store.GetCursor(ctx, w.m.ID, folder); err == nil {
		cursor = cur.Data
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	changes, err := sess.Changes(ctx, kind, cursor)
	if err != nil {
		return err
	}
	if !changes.Reset && len(changes.Changes) == 0 && bytes.Equal(changes.Cursor, cursor) {
		return nil
	}
	now := s.cfg.Now()
	b := &actBatch{staged: map[string]int{}}
	b.apply.MailboxID = w.m.ID
	b.apply.Cursor = &Cursor{MailboxID: w.m.ID, Folder: folder, Data: changes.Cursor, UpdatedAt: now}
	listed := map[string]bool{} // server IDs the changes name
	for _, ch := range changes.Changes {
		listed[ch.ServerID] = true
		if err := s.applyServerChange(ctx, w, st, b, kind, ch, now); err != nil {
			return err
		}
	}
	if changes.Reset {
		// Every item on the server was listed (in the window, when there is one):
		// the ones the store holds that were not are gone from the server.
		var gone []string
		for rec, err := range st.ListACTRecords(ctx, ACTRecordFilter{MailboxID: w.m.ID, Kind: kind}) {
			if err != nil {
				return err
			}
			if rec.ServerID != "" && !listed[rec.ServerID] && !outsideWindow(rec, changes.Window) {
				gone = append(gone, rec.ServerID)
			}
		}
		for _, id := range gone {
			if err := s.applyServerChange(ctx, w, st, b, kind, ACTChange{ServerID: id, Deleted: true}, now); err != nil {
				return err
			}
		}
	}
	stored, err := st.ApplyACTChanges(ctx, b.apply)
	if err != nil {
		return err
	}
	stats.pulled += len(changes.Changes)
	stats.conflicts += len(b.apply.Conflicts)
	if s.cfg.OnACTChange == nil {
		return nil
	}
	byID := map[string]*ACTRecord{}
	for _, r := range stored {
		byID[r.ID] = r
	}
	for i, n := range b.notify {
		if n.Record == nil || b.staged[n.Record.ID] != i { // not told, or written again later in the batch
			continue
		}
		if r := byID[n.Record.ID]; r != nil {
			n.Record = r
		}
		if err := callHook("OnACTChange", func() error { s.cfg.OnACTChange(ctx, n); return nil }); err != nil {
			s.log.Error("ACT change handler", "err", err)
		}
	}
	return nil
}

// outsideWindow reports whether a held record is an appointment a reset
// limited to window could not have listed: one wholly outside it. A recurring
// one is judged by its first occurrence, the only one known without expanding
// its rule: the series is taken as listable only when that occurrence lies in
// the window and was not removed. Anything that cannot be told is kept, since
// wrongly keeping a deleted item costs less than deleting the host's.
func outsideWindow(rec *ACTRecord, window ACTWindow) bool {
	if window.IsZero() || rec.Kind != KindAppointment {
		return false
	}
	item, err := rec.Decode()
	a, ok := item.(*Appointment)
	if err != nil || !ok || a.Start.IsZero() {
		return true
	}
	start, end := a.Start.Time, a.End.Time
	if a.End.IsZero() || end.Before(start) {
		end = start
	}
	from, until := window.From, window.Until
	if a.AllDay {
		// Dates: the day runs in the mailbox's zone, which may be a day off UTC;
		// only a day surely in the window counts.
		from, until = from.Add(24*time.Hour), until.Add(-24*time.Hour)
	}
	afterFrom := window.From.IsZero() || end.After(from) || (end.Equal(start) && !start.Before(from))
	beforeUntil := window.Until.IsZero() || start.Before(until)
	overlaps := afterFrom && beforeUntil
	if !overlaps {
		return true
	}
	if a.Recurrence != nil {
		for _, ex := range a.Recurrence.Exceptions {
			if ex.Equal(a.Start.Time) {
				return true
			}
		}
	}
	return false
}

// findACTRecord returns the record of the server item, by ServerID or, for an
// item the store does not know by it, by UID among records not yet on the
// server: the host's create whose push reached the server just before a crash.
func findACTRecord(ctx context.Context, st ACTStore, b *actBatch, mailboxID string, kind ACTKind, serverID, uid string) (*ACTRecord, error) {
	for r, err := range st.ListACTRecords(ctx, ACTRecordFilter{MailboxID: mailboxID, Kind: kind, ServerID: serverID, Limit: 1}) {
		if err != nil {
			return nil, err
		}
		return b.current(r), nil
	}
	if uid == "" {
		return nil, nil
	}
	for r, err := range st.ListACTRecords(ctx, ACTRecordFilter{MailboxID: mailboxID, Kind: kind, UID: uid, Limit: 1}) {
		if err != nil {
			return nil, err
		}
		if r = b.current(r); r != nil && r.ServerID == "" {
			return r, nil
		}
	}
	return nil, nil
}

// applyServerChange adds to the batch what one server change does to the store.
func (s *Syncer) applyServerChange(ctx context.Context, w *work, st ACTStore, b *actBatch, kind ACTKind, ch ACTChange, now time.Time) error {
	var uid, changeKey string
	var data []byte
	serverModified := now
	if !ch.Deleted {
		if ch.Item == nil {
			return nil
		}
		h := ch.Item.Header()
		uid, changeKey = h.UID, h.ChangeKey
		if mod := actModified(ch.Item); !mod.IsZero() {
			serverModified = mod
		}
		var err error
		if data, err = encodeACTItem(ch.Item); err != nil {
			return err
		}
	}
	rec, err := findACTRecord(ctx, st, b, w.m.ID, kind, ch.ServerID, uid)
	if err != nil || (rec == nil && ch.Deleted) {
		return err
	}
	if rec == nil { // new on the server
		b.write(&ACTRecord{ID: NewID(), MailboxID: w.m.ID, Kind: kind, Item: data, ServerID: ch.ServerID, UID: uid,
			ChangeKey: changeKey, ServerModifiedAt: serverModified}, 0, false, true, nil)
		return nil
	}
	next := rec.Clone()
	switch {
	case !ch.Deleted && rec.ServerID == "":
		// The host's own create, whose push was not recorded: adopt the server's
		// handle and push the host's version over it.
		next.ServerID, next.ChangeKey = ch.ServerID, changeKey
		b.write(next, rec.Version, false, false, nil)
		return nil
	case !ch.Deleted && changeKey != "" && changeKey == rec.ChangeKey:
		return nil // this sync's own write, reported back
	case ch.Deleted && (!rec.Pending || rec.Deleted):
		b.write(next, rec.Version, true, true, nil)
		return nil
	case !rec.Pending:
		next.Item, next.ChangeKey, next.ServerModifiedAt = data, changeKey, serverModified
		b.write(next, rec.Version, false, true, nil)
		return nil
	}
	// Changed on both sides.
	policy := w.settings.ACTConflictPolicy
	hostWins := policy == ACTHostWins || (policy == ACTLastModifiedWins && rec.HostModifiedAt.After(serverModified))
	conflict := &ACTConflict{ID: NewID(), MailboxID: w.m.ID, RecordID: rec.ID, Kind: kind, ServerID: ch.ServerID, Policy: policy,
		Winner: ACTWinnerServer, HostDeleted: rec.Deleted, ServerDeleted: ch.Deleted, ServerItem: data, At: now}
	if !rec.Deleted {
		conflict.HostItem = rec.Item
	}
	switch {
	case hostWins && ch.Deleted:
		// The host's version is created again (same UID) at the next push.
		conflict.Winner = ACTWinnerHost
		next.ServerID, next.ChangeKey = "", ""
		b.write(next, rec.Version, false, false, conflict)
	case hostWins:
		// Pushed over the server's version: its ChangeKey is the one to replace.
		conflict.Winner = ACTWinnerHost
		next.ChangeKey = changeKey
		b.write(next, rec.Version, false, false, conflict)
	case ch.Deleted:
		b.write(next, rec.Version, true, true, conflict)
	default:
		next.Item, next.ChangeKey, next.ServerModifiedAt = data, changeKey, serverModified
		next.Pending, next.Deleted = false, false
		b.write(next, rec.Version, false, true, conflict)
	}
	return nil
}

// actModified is when the server says the item last changed, zero if it does not.
func actModified(item ACTItem) time.Time {
	switch it := item.(type) {
	case *Appointment:
		return it.Modified
	case *Contact:
		return it.Modified
	case *Task:
		return it.Modified
	}
	return time.Time{}
}

// pushACT writes the host's pending changes of kind to the server. A write the
// server refuses as a conflict is left pending: the next pull brings the
// server's change, and the conflict policy settles it.
func (s *Syncer) pushACT(ctx context.Context, w *work, st ACTStore, sess ACTSession, kind ACTKind, stats *actStats, log *slog.Logger) error {
	pending := true
	var queue []*ACTRecord
	for rec, err := range st.ListACTRecords(ctx, ACTRecordFilter{MailboxID: w.m.ID, Kind: kind, Pending: &pending}) {
		if err != nil {
			return err
		}
		queue = append(queue, rec)
	}
	for _, rec := range queue {
		serverID, changeKey, err := s.pushACTRecord(ctx, sess, rec)
		if errors.Is(err, ErrACTConflict) {
			log.Info("an ACT item changed on the server while it was pushed: the next sync settles it", "record", rec.ID, "kind", kind)
			continue
		}
		if class := ClassifyError(err); err != nil && class.Scope == ScopeItem {
			// One item the server will not take must not hold up the others; it
			// stays pending, and its owner is told once per version of it.
			log.Warn("the server refused an ACT item; it stays pending", "record", rec.ID, "kind", kind, "code", class.Code, "err", err)
			if warned, _ := s.actRefused.Swap(rec.ID, rec.Version); warned != rec.Version {
				s.raise(ctx, w, AlertWarning, ScopeItem, class.Code, "",
					fmt.Sprintf("The %s %s of %s was not synchronised: %v. Fix or delete it; it is tried again at every sync.", kind, rec.ID, w.m.EmailAddress, err))
			}
			continue
		}
		if err != nil {
			return err
		}
		if _, err := st.MarkACTPushed(ctx, rec.ID, rec.Version, serverID, changeKey); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		stats.pushed++
	}
	return nil
}

// pushACTRecord writes one record's change and returns the server's handle and
// version of the item ("" after a delete).
func (s *Syncer) pushACTRecord(ctx context.Context, sess ACTSession, rec *ACTRecord) (serverID, changeKey string, err error) {
	if rec.Deleted {
		if rec.ServerID == "" {
			return "", "", nil
		}
		return "", "", sess.Delete(ctx, rec.Kind, rec.ServerID, rec.ChangeKey)
	}
	item, err := rec.Decode()
	if err != nil {
		return "", "", &ConnectorError{Op: "put", Kind: ErrorPermanent, Scope: ScopeItem, Code: CodeACTItemRefused, Err: err}
	}
	err = sess.Put(ctx, item, rec.ChangeKey)
	var conflict *ACTConflictError
	if errors.As(err, &conflict) && rec.ServerID == "" && conflict.ServerID != "" {
		// The server holds the record's UID already: this push's own create, made
		// before a crash kept it from being recorded. Take it over.
		item.Header().ServerID = conflict.ServerID
		err = sess.Put(ctx, item, "")
	}
	if err != nil {
		return "", "", err
	}
	h := item.Header()
	return h.ServerID, h.ChangeKey, nil
}

// actFailed records a failed ACT sync the way incomingFailed does for mail: a
// permanent error disables ACT at once (ACTStatus Failure); a transient one is
// retried RetryInterval later, up to Config.MaxTransientFailures times in a row.
func (s *Syncer) actFailed(ctx context.Context, w *work, started time.Time, cause error, log *slog.Logger) time.Time {
	if ctx.Err() != nil {
		return s.cfg.Now().Add(s.cfg.Tick)
	}
	class := ClassifyError(cause)
	kind, scope, code := class.Kind, class.Scope, class.Code
	s.met.syncError(ctx, kind)
	now := s.cfg.Now()
	var disabled bool
	var next time.Time
	m, err := s.store.UpdateMailbox(ctx, w.m.ID, func(m *Mailbox) error {
		s.noteError(m, ACT, code, cause, now)
		if next, disabled = s.countFailure(m, class, now); disabled {
			m.ACTEnabled, m.ACTStatus, m.Status = false, TestFailure, TestFailure
		} else {
			m.Stats.ACTPostponedUntil = next
		}
		return nil
	})
	if err != nil {
		log.Error("record ACT sync failure", "err", err, "sync_err", cause)
		return now.Add(s.cfg.RetryInterval)
	}
	w.m = m
	s.emit(Event{Kind: EventACTSynced, MailboxID: m.ID, ProfileID: w.p.ID, Err: cause})
	if !disabled {
		log.Warn("ACT sync failed; will retry", "code", code, "attempt", m.Stats.TransientFailureCount, "err", cause)
		if m.Stats.TransientFailureCount == 1 && !class.Internal() {
			s.raise(ctx, w, AlertWarning, scope, code, "",
				fmt.Sprintf("Appointments, contacts and tasks of %s could not be synchronised and will be retried: %v", m.EmailAddress, cause))
		}
		return next
	}
	log.Error("ACT sync failed; ACT disabled", "code", code, "err", cause)
	s.emit(Event{Kind: EventMailboxDisabled, MailboxID: m.ID, ProfileID: w.p.ID, Err: cause})
	s.raise(ctx, w, AlertError, scope, code, "",
		fmt.Sprintf("Appointments, contacts and tasks of %s are no longer synchronised: %v. Fix the problem, then run Test & Enable.", m.EmailAddress, cause))
	return time.Time{}
}

// testACT checks ACT for real: the session opens (the calendar, the task list
// and the address book are found), the owner marker allows this deployment, and
// a probe item of each kind can be written and deleted.
func (s *Syncer) testACT(ctx context.Context, w *work) error {
	_, sess, release, err := s.openACT(ctx, w)
	if err != nil {
		return err
	}
	defer release()
	if err := s.claimACTOwner(ctx, w, sess); err != nil {
		return err
	}
	now := s.cfg.Now().UTC().Truncate(time.Second)
	const subject = "serversync Test & Enable probe (deleted at once)"
	for _, item := range []ACTItem{
		&Appointment{Subject: subject, Start: DateTime{Time: now}, End: DateTime{Time: now.Add(time.Hour)}},
		&Contact{DisplayName: subject, FamilyName: "serversync probe"},
		&Task{Subject: subject},
	} {
		item.Header().UID = "serversync-probe-" + NewID()
		if err := sess.Put(ctx, item, ""); err != nil {
			return fmt.Errorf("write a probe %s: %w", item.ACTKind(), err)
		}
		h := item.Header()
		if err := sess.Delete(ctx, item.ACTKind(), h.ServerID, h.ChangeKey); err != nil {
			return fmt.Errorf("delete the probe %s %s: %w", item.ACTKind(), h.ServerID, err)
		}
	}
	return nil
}
