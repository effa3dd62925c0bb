package memory

import (
	"cmp"
	"context"
	"iter"
	"slices"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/store/storekit"
)

var _ serversync.ACTStore = (*Store)(nil)

// SaveACTRecord implements serversync.ACTStore.
func (s *Store) SaveACTRecord(ctx context.Context, r *serversync.ACTRecord) (*serversync.ACTRecord, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	var stored *serversync.ACTRecord
	if r != nil {
		stored = s.actRecords[r.ID]
		if stored == nil {
			if _, ok := s.mailboxes[r.MailboxID]; !ok && r.MailboxID != "" {
				return nil, notFound("mailbox", r.MailboxID)
			}
		}
	}
	out, err := storekit.ACTHostSave(stored, r)
	if err != nil {
		return nil, err
	}
	if s.actRecords == nil {
		s.actRecords = map[string]*serversync.ACTRecord{}
	}
	s.actRecords[out.ID] = out
	return out.Clone(), nil
}

// ApplyACTChanges implements serversync.ACTStore.
func (s *Store) ApplyACTChanges(ctx context.Context, a serversync.ACTApply) ([]*serversync.ACTRecord, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	if _, ok := s.mailboxes[a.MailboxID]; !ok {
		return nil, notFound("mailbox", a.MailboxID)
	}
	// Check everything first: all or nothing. Later writes of one record see the
	// earlier ones.
	staged := map[string]*serversync.ACTRecord{}
	removed := map[string]bool{}
	current := func(id string) *serversync.ACTRecord {
		if removed[id] {
			return nil
		}
		if r, ok := staged[id]; ok {
			return r
		}
		return s.actRecords[id]
	}
	out := make([]*serversync.ACTRecord, 0, len(a.Writes))
	for _, w := range a.Writes {
		rec, err := storekit.ACTApplyWrite(current(idOf(w)), w, a.MailboxID)
		if err != nil {
			return nil, err
		}
		if w.Remove {
			removed[w.Record.ID] = true
			delete(staged, w.Record.ID)
		} else {
			delete(removed, w.Record.ID)
			staged[w.Record.ID] = rec
		}
		if rec != nil {
			out = append(out, rec.Clone())
		}
	}
	for _, c := range a.Conflicts {
		if c == nil || c.ID == "" {
			return nil, storekit.Required("ACTConflict", "ID")
		}
	}
	if s.actRecords == nil {
		s.actRecords = map[string]*serversync.ACTRecord{}
	}
	for id := range removed {
		delete(s.actRecords, id)
	}
	for id, r := range staged {
		s.actRecords[id] = r
	}
	for _, c := range a.Conflicts {
		s.actConflicts = append(s.actConflicts, c.Clone())
	}
	if a.Cursor != nil {
		s.cursors[cursorKey{a.Cursor.MailboxID, a.Cursor.Folder}] = cloneCursor(a.Cursor)
	}
	return out, nil
}

func idOf(w serversync.ACTWrite) string {
	if w.Record == nil {
		return ""
	}
	return w.Record.ID
}

// MarkACTPushed implements serversync.ACTStore.
func (s *Store) MarkACTPushed(ctx context.Context, id string, version int64, serverID, changeKey string) (*serversync.ACTRecord, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	stored, ok := s.actRecords[id]
	if !ok {
		return nil, notFound("ACT record", id)
	}
	out, remove := storekit.ACTPushed(stored, version, serverID, changeKey)
	if remove {
		delete(s.actRecords, id)
		return nil, nil
	}
	s.actRecords[id] = out
	return out.Clone(), nil
}

// GetACTRecord implements serversync.ACTStore.
func (s *Store) GetACTRecord(ctx context.Context, id string) (*serversync.ACTRecord, error) {
	if err := s.rlock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	r, ok := s.actRecords[id]
	if !ok {
		return nil, notFound("ACT record", id)
	}
	return r.Clone(), nil
}

// ListACTRecords implements serversync.ACTStore.
func (s *Store) ListACTRecords(ctx context.Context, filter serversync.ACTRecordFilter) iter.Seq2[*serversync.ACTRecord, error] {
	if err := s.rlock(ctx); err != nil {
		return snapshot[*serversync.ACTRecord](ctx, nil, err)
	}
	defer s.mu.RUnlock()
	var out []*serversync.ACTRecord
	for _, r := range s.actRecords {
		if storekit.MatchACTRecord(r, filter) {
			out = append(out, r.Clone())
		}
	}
	slices.SortFunc(out, func(a, b *serversync.ACTRecord) int { return cmp.Compare(a.ID, b.ID) })
	if filter.Limit > 0 && len(out) > filter.Limit {
		out = out[:filter.Limit]
	}
	return snapshot(ctx, out, nil)
}

// ListACTConflicts implements serversync.ACTStore.
func (s *Store) ListACTConflicts(ctx context.Context, mailboxID string) iter.Seq2[*serversync.ACTConflict, error] {
	if err := s.rlock(ctx); err != nil {
		return snapshot[*serversync.ACTConflict](ctx, nil, err)
	}
	defer s.mu.RUnlock()
	var out []*serversync.ACTConflict
	for _, c := range s.actConflicts {
		if c.MailboxID == mailboxID {
			out = append(out, c.Clone())
		}
	}
	return snapshot(ctx, out, nil)
}

// deleteACT forgets a deleted mailbox's records and conflicts; the lock is held.
func (s *Store) deleteACT(mailboxID string) {
	for id, r := range s.actRecords {
		if r.MailboxID == mailboxID {
			delete(s.actRecords, id)
		}
	}
	s.actConflicts = slices.DeleteFunc(s.actConflicts, func(c *serversync.ACTConflict) bool { return c.MailboxID == mailboxID })
}
