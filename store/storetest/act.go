package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
)

// actStoreOf returns s as an ACTStore, skipping t for a store without one.
func actStoreOf(t *testing.T, s serversync.Store) serversync.ACTStore {
	t.Helper()
	as, ok := s.(serversync.ACTStore)
	if !ok {
		t.Skip("storetest: the store implements no serversync.ACTStore")
	}
	return as
}

// NewACTRecord returns a host-side appointment record of the mailbox.
func NewACTRecord(mailboxID, id string) *serversync.ACTRecord {
	return &serversync.ACTRecord{ID: id, MailboxID: mailboxID, Kind: serversync.KindAppointment,
		Item: []byte(`{"Subject":"` + id + `"}`), UID: "uid-" + id, HostModifiedAt: BaseTime}
}

func actMailbox(t *testing.T, s serversync.Store, email string) *serversync.Mailbox {
	t.Helper()
	p := createProfile(t, s, "P "+email)
	return createMailbox(t, s, NewMailbox(p.ID, email))
}

func requireSameACTRecord(t *testing.T, want, got *serversync.ACTRecord, msgAndArgs ...any) {
	t.Helper()
	require.NotNil(t, got, msgAndArgs...)
	w, g := *want, *got
	assert.True(t, w.HostModifiedAt.Equal(g.HostModifiedAt), "HostModifiedAt")
	assert.True(t, w.ServerModifiedAt.Equal(g.ServerModifiedAt), "ServerModifiedAt")
	w.HostModifiedAt, g.HostModifiedAt, w.ServerModifiedAt, g.ServerModifiedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	assert.JSONEq(t, string(w.Item), string(g.Item), msgAndArgs...)
	w.Item, g.Item = nil, nil
	assert.Equal(t, w, g, msgAndArgs...)
}

func listACT(t *testing.T, s serversync.ACTStore, f serversync.ACTRecordFilter) []string {
	t.Helper()
	var ids []string
	for _, r := range Collect(t, s.ListACTRecords(t.Context(), f)) {
		ids = append(ids, r.ID)
	}
	return ids
}

func testACT(t *testing.T, h harness) {
	h.run(t, "HostSaveQueuesAndCoalesces", func(t *testing.T, s serversync.Store) {
		as := actStoreOf(t, s)
		m := actMailbox(t, s, "alice@example.com")
		r := NewACTRecord(m.ID, "r1")
		r.ServerID, r.ChangeKey, r.Version = "/forged", "forged", 7 // the host cannot set these
		got, err := as.SaveACTRecord(t.Context(), r)
		require.NoError(t, err)
		want := NewACTRecord(m.ID, "r1")
		want.Version, want.Pending = 1, true
		requireSameACTRecord(t, want, got)
		stored, err := as.GetACTRecord(t.Context(), "r1")
		require.NoError(t, err)
		requireSameACTRecord(t, want, stored)

		// The server's handle, once pushed, stays through the next host change.
		_, err = as.MarkACTPushed(t.Context(), "r1", 1, "/cal/r1.ics", `"e1"`)
		require.NoError(t, err)
		again := NewACTRecord(m.ID, "r1")
		again.Item, again.HostModifiedAt = []byte(`{"Subject":"changed"}`), BaseTime.Add(time.Minute)
		again.ServerID = "/elsewhere"
		got, err = as.SaveACTRecord(t.Context(), again)
		require.NoError(t, err)
		want = NewACTRecord(m.ID, "r1")
		want.Item, want.HostModifiedAt = []byte(`{"Subject":"changed"}`), BaseTime.Add(time.Minute)
		want.ServerID, want.ChangeKey, want.Version, want.Pending = "/cal/r1.ics", `"e1"`, 2, true
		requireSameACTRecord(t, want, got)

		// A delete is a pending tombstone.
		del := got.Clone()
		del.Deleted = true
		got, err = as.SaveACTRecord(t.Context(), del)
		require.NoError(t, err)
		assert.True(t, got.Deleted && got.Pending)
		assert.Equal(t, int64(3), got.Version)

		got.Item[0] = 'X' // a copy
		stored, err = as.GetACTRecord(t.Context(), "r1")
		require.NoError(t, err)
		assert.Equal(t, byte('{'), stored.Item[0])
	})

	h.run(t, "HostSaveRefusesWhatCannotChange", func(t *testing.T, s serversync.Store) {
		as := actStoreOf(t, s)
		m := actMailbox(t, s, "alice@example.com")
		_, err := as.SaveACTRecord(t.Context(), NewACTRecord(m.ID, "r1"))
		require.NoError(t, err)
		for field, change := range map[string]func(*serversync.ACTRecord){
			"UID":  func(r *serversync.ACTRecord) { r.UID = "other" },
			"Kind": func(r *serversync.ACTRecord) { r.Kind = serversync.KindTask },
		} {
			r := NewACTRecord(m.ID, "r1")
			change(r)
			_, err := as.SaveACTRecord(t.Context(), r)
			var ve *serversync.ValidationError
			require.ErrorAs(t, err, &ve, field)
			assert.Equal(t, field, ve.Field)
		}
		for field, change := range map[string]func(*serversync.ACTRecord){
			"ID":  func(r *serversync.ACTRecord) { r.ID = "" },
			"UID": func(r *serversync.ACTRecord) { r.UID = "" },
		} {
			r := NewACTRecord(m.ID, "new")
			change(r)
			_, err := as.SaveACTRecord(t.Context(), r)
			var ve *serversync.ValidationError
			require.ErrorAs(t, err, &ve, field)
			assert.Equal(t, field, ve.Field)
		}
		_, err = as.GetACTRecord(t.Context(), "new")
		require.ErrorIs(t, err, serversync.ErrNotFound)
	})

	h.run(t, "ApplyStoresChangesCursorAndConflictsTogether", func(t *testing.T, s serversync.Store) {
		as := actStoreOf(t, s)
		m := actMailbox(t, s, "alice@example.com")
		held, err := as.SaveACTRecord(t.Context(), NewACTRecord(m.ID, "held"))
		require.NoError(t, err)
		_, err = as.SaveACTRecord(t.Context(), NewACTRecord(m.ID, "doomed"))
		require.NoError(t, err)
		fromServer := NewACTRecord(m.ID, "new")
		fromServer.ServerID, fromServer.ChangeKey, fromServer.ServerModifiedAt = "/cal/new.ics", `"n1"`, BaseTime.Add(time.Hour)
		updated := held.Clone()
		updated.Item, updated.ChangeKey, updated.Pending = []byte(`{"Subject":"server"}`), `"h2"`, false
		conflict := &serversync.ACTConflict{ID: "c1", MailboxID: m.ID, RecordID: "held", Kind: serversync.KindAppointment,
			ServerID: "/cal/held.ics", Policy: serversync.ACTServerWins, Winner: serversync.ACTWinnerServer,
			HostItem: []byte(`{"Subject":"held"}`), ServerItem: []byte(`{"Subject":"server"}`), At: BaseTime}
		cursor := NewCursor(m.ID, serversync.ACTFolder(serversync.KindAppointment), "token-2")
		out, err := as.ApplyACTChanges(t.Context(), serversync.ACTApply{MailboxID: m.ID, Cursor: cursor,
			Writes: []serversync.ACTWrite{
				{Record: fromServer},
				{Record: updated, PrevVersion: 1},
				{Record: NewACTRecord(m.ID, "doomed"), PrevVersion: 1, Remove: true},
			},
			Conflicts: []*serversync.ACTConflict{conflict}})
		require.NoError(t, err)
		require.Len(t, out, 3)
		assert.Equal(t, int64(1), out[0].Version)
		assert.Equal(t, int64(2), out[1].Version)
		assert.Equal(t, "doomed", out[2].ID)

		got, err := as.GetACTRecord(t.Context(), "new")
		require.NoError(t, err)
		want := fromServer.Clone()
		want.Version = 1
		requireSameACTRecord(t, want, got)
		got, err = as.GetACTRecord(t.Context(), "held")
		require.NoError(t, err)
		want = updated.Clone()
		want.Version = 2
		requireSameACTRecord(t, want, got)
		_, err = as.GetACTRecord(t.Context(), "doomed")
		require.ErrorIs(t, err, serversync.ErrNotFound)
		c, err := s.GetCursor(t.Context(), m.ID, cursor.Folder)
		require.NoError(t, err)
		assert.Equal(t, "token-2", string(c.Data))
		conflicts := Collect(t, as.ListACTConflicts(t.Context(), m.ID))
		require.Len(t, conflicts, 1)
		assert.True(t, conflicts[0].At.Equal(BaseTime))
		conflicts[0].At = conflict.At
		assert.Equal(t, conflict, conflicts[0])
	})

	h.run(t, "ApplyOfAChangedRecordStoresNothing", func(t *testing.T, s serversync.Store) {
		as := actStoreOf(t, s)
		m := actMailbox(t, s, "alice@example.com")
		_, err := as.SaveACTRecord(t.Context(), NewACTRecord(m.ID, "r1"))
		require.NoError(t, err)
		fromServer := NewACTRecord(m.ID, "new")
		fromServer.ServerID = "/cal/new.ics"
		stale := NewACTRecord(m.ID, "r1")
		stale.Item = []byte(`{"Subject":"server"}`)
		_, err = as.ApplyACTChanges(t.Context(), serversync.ACTApply{MailboxID: m.ID,
			Cursor:    NewCursor(m.ID, serversync.ACTFolder(serversync.KindAppointment), "token-2"),
			Writes:    []serversync.ACTWrite{{Record: fromServer}, {Record: stale, PrevVersion: 0}}, // r1 is at version 1
			Conflicts: []*serversync.ACTConflict{{ID: "c1", MailboxID: m.ID, RecordID: "r1", At: BaseTime}}})
		require.ErrorIs(t, err, serversync.ErrACTRecordChanged)
		_, err = as.GetACTRecord(t.Context(), "new")
		require.ErrorIs(t, err, serversync.ErrNotFound, "nothing of the batch stored")
		_, err = s.GetCursor(t.Context(), m.ID, serversync.ACTFolder(serversync.KindAppointment))
		require.ErrorIs(t, err, serversync.ErrNotFound, "nor its cursor")
		assert.Empty(t, Collect(t, as.ListACTConflicts(t.Context(), m.ID)), "nor its conflicts")
		got, err := as.GetACTRecord(t.Context(), "r1")
		require.NoError(t, err)
		assert.JSONEq(t, `{"Subject":"r1"}`, string(got.Item))

		// A new record whose ID is taken is a changed record too.
		_, err = as.ApplyACTChanges(t.Context(), serversync.ACTApply{MailboxID: m.ID, Writes: []serversync.ACTWrite{{Record: NewACTRecord(m.ID, "r1")}}})
		require.ErrorIs(t, err, serversync.ErrACTRecordChanged)
	})

	h.run(t, "MarkPushed", func(t *testing.T, s serversync.Store) {
		as := actStoreOf(t, s)
		m := actMailbox(t, s, "alice@example.com")
		_, err := as.SaveACTRecord(t.Context(), NewACTRecord(m.ID, "r1"))
		require.NoError(t, err)
		got, err := as.MarkACTPushed(t.Context(), "r1", 1, "/cal/r1.ics", `"e1"`)
		require.NoError(t, err)
		assert.False(t, got.Pending)
		assert.Equal(t, "/cal/r1.ics", got.ServerID)
		assert.Equal(t, `"e1"`, got.ChangeKey)
		assert.Equal(t, int64(1), got.Version)

		// The host changed it while it was pushed: still pending, with the
		// server's handle and version of what was pushed.
		changed := NewACTRecord(m.ID, "r1")
		changed.Item = []byte(`{"Subject":"again"}`)
		_, err = as.SaveACTRecord(t.Context(), changed)
		require.NoError(t, err)
		got, err = as.MarkACTPushed(t.Context(), "r1", 1, "/cal/r1.ics", `"e2"`)
		require.NoError(t, err)
		assert.True(t, got.Pending)
		assert.Equal(t, `"e2"`, got.ChangeKey)
		assert.Equal(t, int64(2), got.Version)

		// A tombstone goes once its delete is on the server, not before.
		del := got.Clone()
		del.Deleted = true
		_, err = as.SaveACTRecord(t.Context(), del)
		require.NoError(t, err)
		got, err = as.MarkACTPushed(t.Context(), "r1", 2, "/cal/r1.ics", `"e3"`)
		require.NoError(t, err)
		require.NotNil(t, got, "version 3 (the delete) was not pushed")
		got, err = as.MarkACTPushed(t.Context(), "r1", 3, "", "")
		require.NoError(t, err)
		assert.Nil(t, got)
		_, err = as.GetACTRecord(t.Context(), "r1")
		require.ErrorIs(t, err, serversync.ErrNotFound)
		_, err = as.MarkACTPushed(t.Context(), "r1", 3, "", "")
		require.ErrorIs(t, err, serversync.ErrNotFound)
	})

	h.run(t, "ListFilters", func(t *testing.T, s serversync.Store) {
		as := actStoreOf(t, s)
		m := actMailbox(t, s, "alice@example.com")
		other := actMailbox(t, s, "bob@example.com")
		for _, id := range []string{"c", "a", "b"} {
			_, err := as.SaveACTRecord(t.Context(), NewACTRecord(m.ID, id))
			require.NoError(t, err)
		}
		task := NewACTRecord(m.ID, "t")
		task.Kind = serversync.KindTask
		_, err := as.SaveACTRecord(t.Context(), task)
		require.NoError(t, err)
		_, err = as.SaveACTRecord(t.Context(), NewACTRecord(other.ID, "z"))
		require.NoError(t, err)
		_, err = as.MarkACTPushed(t.Context(), "b", 1, "/cal/b.ics", `"b"`)
		require.NoError(t, err)

		yes, no := true, false
		assert.Equal(t, []string{"a", "b", "c", "t"}, listACT(t, as, serversync.ACTRecordFilter{MailboxID: m.ID}))
		assert.Equal(t, []string{"a", "b", "c"}, listACT(t, as, serversync.ACTRecordFilter{MailboxID: m.ID, Kind: serversync.KindAppointment}))
		assert.Equal(t, []string{"a", "c", "t"}, listACT(t, as, serversync.ACTRecordFilter{MailboxID: m.ID, Pending: &yes}))
		assert.Equal(t, []string{"b"}, listACT(t, as, serversync.ACTRecordFilter{MailboxID: m.ID, Pending: &no}))
		assert.Equal(t, []string{"b"}, listACT(t, as, serversync.ACTRecordFilter{MailboxID: m.ID, ServerID: "/cal/b.ics"}))
		assert.Equal(t, []string{"c"}, listACT(t, as, serversync.ACTRecordFilter{MailboxID: m.ID, UID: "uid-c"}))
		assert.Equal(t, []string{"a", "b"}, listACT(t, as, serversync.ACTRecordFilter{MailboxID: m.ID, Limit: 2}))
		assert.Equal(t, []string{"z"}, listACT(t, as, serversync.ACTRecordFilter{MailboxID: other.ID}))
	})

	h.run(t, "DeleteMailboxDeletesItsRecords", func(t *testing.T, s serversync.Store) {
		as := actStoreOf(t, s)
		m := actMailbox(t, s, "alice@example.com")
		keep := actMailbox(t, s, "bob@example.com")
		_, err := as.SaveACTRecord(t.Context(), NewACTRecord(m.ID, "r1"))
		require.NoError(t, err)
		_, err = as.SaveACTRecord(t.Context(), NewACTRecord(keep.ID, "r2"))
		require.NoError(t, err)
		_, err = as.ApplyACTChanges(t.Context(), serversync.ACTApply{MailboxID: m.ID,
			Cursor:    NewCursor(m.ID, serversync.ACTFolder(serversync.KindContact), "t"),
			Conflicts: []*serversync.ACTConflict{{ID: "c1", MailboxID: m.ID, RecordID: "r1", At: BaseTime}}})
		require.NoError(t, err)
		require.NoError(t, s.DeleteMailbox(t.Context(), m.ID))
		_, err = as.GetACTRecord(t.Context(), "r1")
		require.ErrorIs(t, err, serversync.ErrNotFound)
		assert.Empty(t, Collect(t, as.ListACTConflicts(t.Context(), m.ID)))
		_, err = as.GetACTRecord(t.Context(), "r2")
		require.NoError(t, err)
	})

	h.run(t, "ClosedAndCancelled", func(t *testing.T, s serversync.Store) {
		as := actStoreOf(t, s)
		m := actMailbox(t, s, "alice@example.com")
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := as.SaveACTRecord(ctx, NewACTRecord(m.ID, "r1"))
		require.ErrorIs(t, err, context.Canceled)
		_, err = as.GetACTRecord(t.Context(), "r1")
		require.ErrorIs(t, err, serversync.ErrNotFound, "stored nothing")
	})
}
