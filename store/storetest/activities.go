package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
)

// saveTracked calls SaveTracked and fails the test on error.
func saveTracked(t *testing.T, s serversync.Store, cursor *serversync.Cursor, activities ...*serversync.EmailActivity) serversync.SaveResult {
	t.Helper()
	res, err := s.SaveTracked(t.Context(), cursor, activities)
	require.NoError(t, err)
	return res
}

func mustGetActivity(t *testing.T, s serversync.Store, id string) *serversync.EmailActivity {
	t.Helper()
	a, err := s.GetActivity(t.Context(), id)
	require.NoError(t, err)
	return a
}

func requireCursor(t *testing.T, s serversync.Store, want *serversync.Cursor) {
	t.Helper()
	got, err := s.GetCursor(t.Context(), want.MailboxID, want.Folder)
	require.NoError(t, err)
	assertSameRecord(t, want, got)
}

func testActivities(t *testing.T, h harness) {
	h.run(t, "SaveTrackedRoundTrip", func(t *testing.T, s serversync.Store) {
		full := FullActivity("mb-1", "uid-1")
		plain := NewActivity("mb-1", "uid-2")
		cursor := NewCursor("mb-1", "INBOX", "uidvalidity=7;uid=2")
		res := saveTracked(t, s, cursor, full, plain)
		assert.Equal(t, 2, res.Inserted)
		assert.Empty(t, res.Duplicates)
		assertSameRecord(t, full, mustGetActivity(t, s, full.ID))
		assertSameRecord(t, plain, mustGetActivity(t, s, plain.ID))
		requireCursor(t, s, cursor)
	})

	h.run(t, "MessageKeyOfMaximumLength", func(t *testing.T, s serversync.Store) {
		// Keys are opaque: the incoming pipeline writes up to MessageKeyMaxLength
		// bytes of Message-ID, '#', ':' and a digest, and keys that differ only at
		// the end are different messages.
		key := "mid:" + strings.Repeat("x", serversync.MessageKeyMaxLength-4-2) + "#"
		first, second := NewActivity("mb-1", key+"a"), NewActivity("mb-1", key+"b")
		res := saveTracked(t, s, nil, first, second)
		assert.Equal(t, 2, res.Inserted)
		res = saveTracked(t, s, nil, NewActivity("mb-1", key+"a"))
		assert.Equal(t, []int{0}, res.Duplicates)
		got := Collect(t, s.ListActivities(t.Context(), serversync.ActivityFilter{MailboxID: "mb-1", MessageKey: key + "b"}))
		require.Len(t, got, 1)
		assert.Equal(t, second.ID, got[0].ID)
	})

	h.run(t, "KnownMessageKeys", func(t *testing.T, s serversync.Store) {
		// One call answers a whole batch: only keys stored for that mailbox are
		// known, keys are exact (no prefix or case folding), repeats are allowed,
		// and a list longer than any bound on SQL parameters is answered whole.
		long := "mid:" + strings.Repeat("x", serversync.MessageKeyMaxLength-4-2) + "#"
		saveTracked(t, s, nil, NewActivity("mb-1", "mid:a@x#1"), NewActivity("mb-1", "digest:2"),
			NewActivity("mb-1", long+"a"), NewActivity("mb-2", "mid:b@x#3"))
		ctx := t.Context()
		known, err := s.KnownMessageKeys(ctx, "mb-1", []string{"mid:a@x#1", "mid:a@x", "MID:A@X#1", "mid:b@x#3",
			"digest:2", "mid:a@x#1", long + "a", long + "b", "sha256:9", ""})
		require.NoError(t, err)
		assert.Equal(t, map[string]bool{"mid:a@x#1": true, "digest:2": true, long + "a": true}, known)

		known, err = s.KnownMessageKeys(ctx, "mb-2", []string{"mid:a@x#1", "mid:b@x#3"})
		require.NoError(t, err)
		assert.Equal(t, map[string]bool{"mid:b@x#3": true}, known)

		known, err = s.KnownMessageKeys(ctx, "mb-none", []string{"mid:a@x#1"})
		require.NoError(t, err)
		assert.Empty(t, known)
		known, err = s.KnownMessageKeys(ctx, "mb-1", nil)
		require.NoError(t, err)
		assert.NotNil(t, known)
		assert.Empty(t, known)

		var batch []*serversync.EmailActivity
		var keys []string
		for i := range 40_000 {
			key := fmt.Sprintf("mid:many-%d@x#%d", i, i)
			keys = append(keys, key)
			if i%1000 == 7 {
				batch = append(batch, NewActivity("mb-3", key))
			}
		}
		saveTracked(t, s, nil, batch...)
		known, err = s.KnownMessageKeys(ctx, "mb-3", keys)
		require.NoError(t, err)
		assert.Len(t, known, len(batch))
		for _, a := range batch {
			assert.True(t, known[a.MessageKey], a.MessageKey)
		}
	})

	h.run(t, "AttachmentsAndRawRoundTrip", func(t *testing.T, s serversync.Store) {
		a := NewActivity("mb-1", "uid-1")
		content := make([]byte, 256)
		for i := range content {
			content[i] = byte(i)
		}
		a.Attachments = []serversync.Attachment{
			{Filename: "all-bytes.bin", ContentType: "application/octet-stream", Size: 256, Content: content},
			{Filename: "empty.txt", ContentType: "text/plain"},
			{Filename: "big.iso", Size: 1 << 30, Omitted: true},
		}
		a.Raw = []byte("From: x\r\n\r\n\x00\x01\xff")
		saveTracked(t, s, nil, a)
		got := mustGetActivity(t, s, a.ID)
		require.Len(t, got.Attachments, 3)
		assert.Equal(t, content, got.Attachments[0].Content)
		assert.Empty(t, got.Attachments[1].Content)
		assert.True(t, got.Attachments[2].Omitted)
		assert.Equal(t, a.Raw, got.Raw)
		assertSameRecord(t, a, got)
	})

	h.run(t, "ParseWarningsRoundTrip", func(t *testing.T, s serversync.Store) {
		// Warnings quote what was odd in a message: quotes, backslashes, non-ASCII.
		warned := NewActivity("mb-1", "uid-1")
		warned.ParseWarnings = []string{"header: no Date", `header: Date "sometime \\ last week"`, "part 2: invalid x-klingon text; bad bytes replaced: «\uFFFD»"}
		plain := NewActivity("mb-1", "uid-2")
		saveTracked(t, s, nil, warned, plain)
		assert.Equal(t, warned.ParseWarnings, mustGetActivity(t, s, warned.ID).ParseWarnings)
		assert.Empty(t, mustGetActivity(t, s, plain.ID).ParseWarnings)
		assert.Empty(t, mustGetActivity(t, s, warned.ID).ParseError, "warnings are not an error")
	})

	h.run(t, "ZeroTimesStayZero", func(t *testing.T, s serversync.Store) {
		a := NewActivity("mb-1", "uid-1")
		saveTracked(t, s, nil, a)
		got := mustGetActivity(t, s, a.ID)
		for name, tm := range map[string]time.Time{
			"SentAt": got.SentAt, "NextAttemptAt": got.NextAttemptAt, "ClaimExpiresAt": got.ClaimExpiresAt,
		} {
			assert.True(t, tm.IsZero(), "%s = %v", name, tm)
		}
	})

	h.run(t, "ResaveSkipsDuplicatesAndAdvancesCursor", func(t *testing.T, s serversync.Store) {
		first := []*serversync.EmailActivity{NewActivity("mb-1", "uid-1"), NewActivity("mb-1", "uid-2")}
		saveTracked(t, s, NewCursor("mb-1", "INBOX", "2"), first...)

		// A retry after a crash: the same messages get new IDs and maybe other content.
		retry := []*serversync.EmailActivity{NewActivity("mb-1", "uid-1"), NewActivity("mb-1", "uid-3"), NewActivity("mb-1", "uid-2")}
		retry[0].Subject = "must not replace the stored one"
		cursor := NewCursor("mb-1", "INBOX", "3")
		cursor.UpdatedAt = BaseTime.Add(time.Minute)
		res := saveTracked(t, s, cursor, retry...)
		assert.Equal(t, 1, res.Inserted)
		assert.Equal(t, []int{0, 2}, res.Duplicates)
		requireCursor(t, s, cursor)

		assertSameRecord(t, first[0], mustGetActivity(t, s, first[0].ID), "the stored activity is kept")
		_, err := s.GetActivity(t.Context(), retry[0].ID)
		require.ErrorIs(t, err, serversync.ErrNotFound, "a skipped duplicate is not stored under its new ID")
		mustGetActivity(t, s, retry[1].ID)
		assert.Len(t, Collect(t, s.ListActivities(t.Context(), serversync.ActivityFilter{})), 3)
	})

	h.run(t, "DuplicatesWithinOneBatch", func(t *testing.T, s serversync.Store) {
		batch := []*serversync.EmailActivity{
			NewActivity("mb-1", "uid-1"), NewActivity("mb-1", "uid-2"), NewActivity("mb-1", "uid-1"),
			NewActivity("mb-1", "uid-3"), NewActivity("mb-1", "uid-2"),
		}
		res := saveTracked(t, s, nil, batch...)
		assert.Equal(t, 3, res.Inserted)
		assert.Equal(t, []int{2, 4}, res.Duplicates)
		assertSameRecord(t, batch[0], mustGetActivity(t, s, batch[0].ID), "the first of the batch wins")
		_, err := s.GetActivity(t.Context(), batch[2].ID)
		require.ErrorIs(t, err, serversync.ErrNotFound)
		assert.Len(t, Collect(t, s.ListActivities(t.Context(), serversync.ActivityFilter{})), 3)
	})

	h.run(t, "SameKeyInTwoMailboxes", func(t *testing.T, s serversync.Store) {
		a, b := NewActivity("mb-1", "uid-1"), NewActivity("mb-2", "uid-1")
		res := saveTracked(t, s, nil, a, b)
		assert.Equal(t, 2, res.Inserted)
		assert.Empty(t, res.Duplicates)
		mustGetActivity(t, s, a.ID)
		mustGetActivity(t, s, b.ID)
	})

	h.run(t, "NilCursor", func(t *testing.T, s serversync.Store) {
		a := NewActivity("mb-1", "uid-1")
		res := saveTracked(t, s, nil, a)
		assert.Equal(t, 1, res.Inserted)
		_, err := s.GetCursor(t.Context(), "mb-1", "INBOX")
		require.ErrorIs(t, err, serversync.ErrNotFound)
	})

	h.run(t, "CursorOnly", func(t *testing.T, s serversync.Store) {
		cursor := NewCursor("mb-1", "INBOX", "42")
		res := saveTracked(t, s, cursor)
		assert.Equal(t, 0, res.Inserted)
		assert.Empty(t, res.Duplicates)
		requireCursor(t, s, cursor)
		res = saveTracked(t, s, nil)
		assert.Equal(t, 0, res.Inserted)
	})

	h.run(t, "CursorsPerMailboxAndFolder", func(t *testing.T, s serversync.Store) {
		cursors := []*serversync.Cursor{
			NewCursor("mb-1", "INBOX", "a"), NewCursor("mb-1", "Sent", "b"),
			NewCursor("mb-2", "INBOX", "c"), NewCursor("mb-2", "Archive/2024", "d"),
		}
		for _, c := range cursors {
			saveTracked(t, s, c)
		}
		for _, c := range cursors {
			requireCursor(t, s, c)
		}
		for _, missing := range [][2]string{{"mb-1", "Archive/2024"}, {"mb-3", "INBOX"}, {"mb-1", "inbox"}} {
			_, err := s.GetCursor(t.Context(), missing[0], missing[1])
			require.ErrorIs(t, err, serversync.ErrNotFound, "cursor %v", missing)
		}
		// Overwrite one; the others stay.
		replaced := NewCursor("mb-1", "INBOX", "z")
		replaced.UpdatedAt = BaseTime.Add(time.Hour).In(otherZone)
		saveTracked(t, s, replaced)
		requireCursor(t, s, replaced)
		requireCursor(t, s, cursors[1])
		requireCursor(t, s, cursors[2])
	})

	h.run(t, "CursorBinaryData", func(t *testing.T, s serversync.Store) {
		c := &serversync.Cursor{MailboxID: "mb-1", Folder: "INBOX", Data: []byte{0, 0xff, 0x80, 0}, UpdatedAt: BaseTime}
		saveTracked(t, s, c)
		requireCursor(t, s, c)
	})

	for _, tc := range []struct {
		name  string
		spoil func(batch []*serversync.EmailActivity)
		field string
	}{
		{"EmptyIDFirst", func(b []*serversync.EmailActivity) { b[0].ID = "" }, "ID"},
		{"EmptyIDLast", func(b []*serversync.EmailActivity) { b[len(b)-1].ID = "" }, "ID"},
		{"EmptyMessageKeyFirst", func(b []*serversync.EmailActivity) { b[0].MessageKey = "" }, "MessageKey"},
		{"EmptyMessageKeyLast", func(b []*serversync.EmailActivity) { b[len(b)-1].MessageKey = "" }, "MessageKey"},
	} {
		h.run(t, "SaveTrackedIsAtomic/"+tc.name, func(t *testing.T, s serversync.Store) {
			ctx := t.Context()
			before := NewCursor("mb-1", "INBOX", "before")
			existing := NewActivity("mb-1", "uid-0")
			saveTracked(t, s, before, existing)

			batch := []*serversync.EmailActivity{NewActivity("mb-1", "uid-1"), NewActivity("mb-1", "uid-2"), NewActivity("mb-1", "uid-3")}
			tc.spoil(batch)
			_, err := s.SaveTracked(ctx, NewCursor("mb-1", "INBOX", "after"), batch)
			require.Error(t, err, "an activity without %s is refused", tc.field)

			requireCursor(t, s, before)
			all := Collect(t, s.ListActivities(ctx, serversync.ActivityFilter{}))
			require.Len(t, all, 1, "no activity of the failed batch is stored")
			assertSameRecord(t, existing, all[0])
		})
	}

	h.run(t, "SaveTrackedIsAtomic/IDAlreadyUsed", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		before := NewCursor("mb-1", "INBOX", "before")
		existing := NewActivity("mb-1", "uid-0")
		saveTracked(t, s, before, existing)

		clash := NewActivity("mb-1", "uid-2")
		clash.ID = existing.ID // a new message under an ID already used
		_, err := s.SaveTracked(ctx, NewCursor("mb-1", "INBOX", "after"),
			[]*serversync.EmailActivity{NewActivity("mb-1", "uid-1"), clash})
		requireDuplicate(t, err, "EmailActivity", "ID")
		requireCursor(t, s, before)
		all := Collect(t, s.ListActivities(ctx, serversync.ActivityFilter{}))
		require.Len(t, all, 1)
		assertSameRecord(t, existing, all[0])
	})

	h.run(t, "SaveTrackedIsAtomic/IDTwiceInBatch", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		a, b := NewActivity("mb-1", "uid-1"), NewActivity("mb-1", "uid-2")
		b.ID = a.ID
		_, err := s.SaveTracked(ctx, NewCursor("mb-1", "INBOX", "after"), []*serversync.EmailActivity{a, b})
		requireDuplicate(t, err, "EmailActivity", "ID")
		_, err = s.GetCursor(ctx, "mb-1", "INBOX")
		require.ErrorIs(t, err, serversync.ErrNotFound)
		assert.Empty(t, Collect(t, s.ListActivities(ctx, serversync.ActivityFilter{})))
	})

	h.run(t, "GetMissing", func(t *testing.T, s serversync.Store) {
		_, err := s.GetActivity(t.Context(), serversync.NewID())
		require.ErrorIs(t, err, serversync.ErrNotFound)
		_, err = s.GetCursor(t.Context(), "mb-1", "INBOX")
		require.ErrorIs(t, err, serversync.ErrNotFound)
	})

	h.run(t, "CopiesIn", func(t *testing.T, s serversync.Store) {
		a := FullActivity("mb-1", "uid-1")
		want := deepCopyActivity(a)
		c := NewCursor("mb-1", "INBOX", "cursor")
		wantCursor := &serversync.Cursor{MailboxID: c.MailboxID, Folder: c.Folder, Data: slices.Clone(c.Data), UpdatedAt: c.UpdatedAt}
		saveTracked(t, s, c, a)

		a.Subject = "changed"
		a.To[0].Email = "changed@example.com"
		a.References[0] = "changed"
		a.Attachments[0].Content[0] = 'X'
		a.Attachments[0].Filename = "changed"
		a.Raw[0] = 'X'
		a.ParseWarnings[0] = "changed"
		c.Data[0] = 'X'

		assertSameRecord(t, want, mustGetActivity(t, s, want.ID))
		requireCursor(t, s, wantCursor)

		q := FullActivity("mb-1", "out-1")
		wantQ := deepCopyActivity(q)
		wantQ.Status = serversync.StatusPendingSend
		require.NoError(t, s.QueueOutgoing(t.Context(), q))
		q.Attachments[0].Content[0] = 'X'
		q.Raw[0] = 'X'
		q.Cc[0].Name = "changed"
		assertSameRecord(t, wantQ, mustGetActivity(t, s, wantQ.ID))
	})

	h.run(t, "CopiesOut", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		want := FullActivity("mb-1", "uid-1")
		wantCursor := NewCursor("mb-1", "INBOX", "cursor")
		saveTracked(t, s, wantCursor, deepCopyActivity(want))

		mutate := func(a *serversync.EmailActivity) {
			a.Subject = "changed"
			a.To[0].Email = "changed@example.com"
			a.InReplyTo[0] = "changed"
			a.Attachments[0].Content[0] = 'X'
			a.Attachments[1].Filename = "changed"
			a.Raw[0] = 'X'
			a.ParseWarnings[0] = "changed"
		}
		mutate(mustGetActivity(t, s, want.ID))
		listed := Collect(t, s.ListActivities(ctx, serversync.ActivityFilter{}))
		require.Len(t, listed, 1)
		mutate(listed[0])
		var kept *serversync.EmailActivity
		updated, err := s.UpdateActivity(ctx, want.ID, func(a *serversync.EmailActivity) error {
			kept = a
			return nil
		})
		require.NoError(t, err)
		mutate(updated)
		mutate(kept)
		got, err := s.GetCursor(ctx, "mb-1", "INBOX")
		require.NoError(t, err)
		got.Data[0] = 'X'

		assertSameRecord(t, want, mustGetActivity(t, s, want.ID))
		requireCursor(t, s, wantCursor)
	})

	h.run(t, "UpdateActivity", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		a := NewActivity("mb-1", "uid-1")
		saveTracked(t, s, nil, a)
		want := FullActivity("mb-1", "uid-1")
		want.ID = a.ID
		updated, err := s.UpdateActivity(ctx, a.ID, func(cur *serversync.EmailActivity) error {
			assertSameRecord(t, a, cur, "update gets the stored activity")
			*cur = *deepCopyActivity(want)
			return nil
		})
		require.NoError(t, err)
		assertSameRecord(t, want, updated, "UpdateActivity returns the stored result")
		assertSameRecord(t, want, mustGetActivity(t, s, a.ID))
	})

	h.run(t, "UpdateActivityCallbackErrorStoresNothing", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		a := FullActivity("mb-1", "uid-1")
		saveTracked(t, s, nil, deepCopyActivity(a))
		boom := errors.New("callback refused")
		updated, err := s.UpdateActivity(ctx, a.ID, func(cur *serversync.EmailActivity) error {
			cur.Status = serversync.StatusFailed
			cur.Attachments[0].Content[0] = 'X'
			return boom
		})
		assert.Same(t, boom, err, "the callback's error is returned as is")
		assert.Nil(t, updated)
		assertSameRecord(t, a, mustGetActivity(t, s, a.ID))
	})

	h.run(t, "UpdateActivityMissing", func(t *testing.T, s serversync.Store) {
		called := false
		_, err := s.UpdateActivity(t.Context(), serversync.NewID(), func(*serversync.EmailActivity) error {
			called = true
			return nil
		})
		require.ErrorIs(t, err, serversync.ErrNotFound)
		assert.False(t, called)
	})

	for _, tc := range []struct {
		name   string
		change func(*serversync.EmailActivity)
		field  string
	}{
		{"MailboxID", func(a *serversync.EmailActivity) { a.MailboxID = "mb-2" }, "MailboxID"},
		{"MessageKey", func(a *serversync.EmailActivity) { a.MessageKey = "uid-99" }, "MessageKey"},
		{"MessageKeyToTakenOne", func(a *serversync.EmailActivity) { a.MessageKey = "uid-2" }, "MessageKey"},
	} {
		h.run(t, "UpdateActivityCannotChange/"+tc.name, func(t *testing.T, s serversync.Store) {
			a, other := NewActivity("mb-1", "uid-1"), NewActivity("mb-1", "uid-2")
			saveTracked(t, s, nil, a, other)
			updated, err := s.UpdateActivity(t.Context(), a.ID, func(cur *serversync.EmailActivity) error {
				tc.change(cur)
				cur.Subject = "must not be stored"
				return nil
			})
			requireValidation(t, err, tc.field)
			assert.Nil(t, updated)
			assertSameRecord(t, a, mustGetActivity(t, s, a.ID), "nothing is stored")
		})
	}

	testActivityList(t, h)

	h.run(t, "ConcurrentOverlappingSaves", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		const keys, workers, batch = 60, 6, 10
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			inserted int
		)
		for w := range workers {
			wg.Go(func() {
				// Each worker walks all keys in overlapping windows from its own offset.
				for start := 0; start < keys; start += batch / 2 {
					var acts []*serversync.EmailActivity
					for i := range batch {
						acts = append(acts, NewActivity("mb-1", fmt.Sprintf("uid-%03d", (start+i+w*7)%keys)))
					}
					res, err := s.SaveTracked(ctx, NewCursor("mb-1", "INBOX", fmt.Sprint(w)), acts)
					if !assert.NoError(t, err) {
						return
					}
					assert.Equal(t, len(acts), res.Inserted+len(res.Duplicates))
					mu.Lock()
					inserted += res.Inserted
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		assert.Equal(t, keys, inserted, "every key is inserted exactly once")
		seen := map[string]int{}
		for _, a := range Collect(t, s.ListActivities(ctx, serversync.ActivityFilter{MailboxID: "mb-1"})) {
			seen[a.MessageKey]++
		}
		assert.Len(t, seen, keys)
		for k, n := range seen {
			assert.Equal(t, 1, n, "key %s stored %d times", k, n)
		}
	})
}

func testActivityList(t *testing.T, h harness) {
	// IDs and keys sort against the storing order, so a store that orders by either
	// instead of by storing order fails.
	setup := func(t *testing.T, s serversync.Store) []*serversync.EmailActivity {
		t.Helper()
		var all []*serversync.EmailActivity
		mk := func(i int, mailbox string, dir serversync.Direction, status serversync.ActivityStatus) *serversync.EmailActivity {
			a := NewActivity(mailbox, fmt.Sprintf("key-%02d", 20-i))
			a.ID = fmt.Sprintf("act-%02d-%s", 20-i, serversync.NewID())
			a.Direction = dir
			a.Status = status
			a.MessageID = fmt.Sprintf("msg-%d@example.org", i%3)
			a.TrackingToken = fmt.Sprintf("CRM:%d", i%2)
			a.ConversationHash = fmt.Sprintf("hash-%d", i%4)
			all = append(all, a)
			return a
		}
		saveTracked(t, s, nil,
			mk(0, "mb-1", serversync.Incoming, serversync.StatusTracked),
			mk(1, "mb-2", serversync.Incoming, serversync.StatusTracked),
			mk(2, "mb-1", serversync.Incoming, serversync.StatusFailed),
		)
		require.NoError(t, s.QueueOutgoing(t.Context(), mk(3, "mb-1", serversync.Outgoing, serversync.StatusPendingSend)))
		saveTracked(t, s, nil,
			mk(4, "mb-2", serversync.Incoming, serversync.StatusTracked),
			mk(5, "mb-1", serversync.Outgoing, serversync.StatusSent),
		)
		require.NoError(t, s.QueueOutgoing(t.Context(), mk(6, "mb-2", serversync.Outgoing, serversync.StatusPendingSend)))
		saveTracked(t, s, nil, mk(7, "mb-1", serversync.Incoming, serversync.StatusTracked))
		return all
	}

	for _, tc := range []struct {
		name   string
		filter func(all []*serversync.EmailActivity) serversync.ActivityFilter
		want   []int // indexes in storing order
	}{
		{"All", func([]*serversync.EmailActivity) serversync.ActivityFilter { return serversync.ActivityFilter{} },
			[]int{0, 1, 2, 3, 4, 5, 6, 7}},
		{"MailboxID", func([]*serversync.EmailActivity) serversync.ActivityFilter {
			return serversync.ActivityFilter{MailboxID: "mb-2"}
		}, []int{1, 4, 6}},
		{"Direction", func([]*serversync.EmailActivity) serversync.ActivityFilter {
			return serversync.ActivityFilter{Direction: serversync.Outgoing}
		}, []int{3, 5, 6}},
		{"Status", func([]*serversync.EmailActivity) serversync.ActivityFilter {
			return serversync.ActivityFilter{Status: serversync.StatusPendingSend}
		}, []int{3, 6}},
		{"MessageKey", func(all []*serversync.EmailActivity) serversync.ActivityFilter {
			return serversync.ActivityFilter{MessageKey: all[4].MessageKey}
		}, []int{4}},
		{"MessageID", func([]*serversync.EmailActivity) serversync.ActivityFilter {
			return serversync.ActivityFilter{MessageID: "msg-1@example.org"}
		}, []int{1, 4, 7}},
		{"TrackingToken", func([]*serversync.EmailActivity) serversync.ActivityFilter {
			return serversync.ActivityFilter{TrackingToken: "CRM:1"}
		}, []int{1, 3, 5, 7}},
		{"ConversationHash", func([]*serversync.EmailActivity) serversync.ActivityFilter {
			return serversync.ActivityFilter{ConversationHash: "hash-2"}
		}, []int{2, 6}},
		{"Limit", func([]*serversync.EmailActivity) serversync.ActivityFilter {
			return serversync.ActivityFilter{Limit: 3}
		}, []int{0, 1, 2}},
		{"LimitWithFilter", func([]*serversync.EmailActivity) serversync.ActivityFilter {
			return serversync.ActivityFilter{MailboxID: "mb-1", Limit: 2}
		}, []int{0, 2}},
		{"Combined", func([]*serversync.EmailActivity) serversync.ActivityFilter {
			return serversync.ActivityFilter{MailboxID: "mb-1", Direction: serversync.Incoming, Status: serversync.StatusTracked}
		}, []int{0, 7}},
		{"NoMatch", func([]*serversync.EmailActivity) serversync.ActivityFilter {
			return serversync.ActivityFilter{MailboxID: "mb-1", MessageID: "nope"}
		}, nil},
	} {
		h.run(t, "List/"+tc.name, func(t *testing.T, s serversync.Store) {
			all := setup(t, s)
			got := Collect(t, s.ListActivities(t.Context(), tc.filter(all)))
			var idx []int
			for _, a := range got {
				i := slices.IndexFunc(all, func(w *serversync.EmailActivity) bool { return w.ID == a.ID })
				require.GreaterOrEqual(t, i, 0, "unknown activity %s", a.ID)
				idx = append(idx, i)
				assertSameRecord(t, all[i], a)
			}
			assert.Equal(t, tc.want, idx)
		})
	}

	h.run(t, "List/OrderKeptAfterUpdate", func(t *testing.T, s serversync.Store) {
		all := setup(t, s)
		_, err := s.UpdateActivity(t.Context(), all[0].ID, func(a *serversync.EmailActivity) error {
			a.UpdatedAt = BaseTime.Add(time.Hour)
			a.Subject = "updated"
			return nil
		})
		require.NoError(t, err)
		got := Collect(t, s.ListActivities(t.Context(), serversync.ActivityFilter{MailboxID: "mb-1"}))
		require.NotEmpty(t, got)
		assert.Equal(t, all[0].ID, got[0].ID, "an update does not move an activity in the storing order")
	})

	h.run(t, "List/StopsWhenLoopBreaks", func(t *testing.T, s serversync.Store) {
		all := setup(t, s)
		var seen []string
		for a, err := range s.ListActivities(t.Context(), serversync.ActivityFilter{}) {
			require.NoError(t, err)
			seen = append(seen, a.ID)
			if len(seen) == 3 {
				break
			}
		}
		assert.Equal(t, []string{all[0].ID, all[1].ID, all[2].ID}, seen)
		assert.Len(t, Collect(t, s.ListActivities(t.Context(), serversync.ActivityFilter{})), len(all))
	})
}

// deepCopyActivity copies a down to its byte slices (EmailActivity.Clone shares
// attachment contents and Raw). ParseWarnings are copied here too, so that the
// suite does not trust the Clone it checks stores with.
func deepCopyActivity(a *serversync.EmailActivity) *serversync.EmailActivity {
	c := a.Clone()
	for i := range c.Attachments {
		c.Attachments[i].Content = slices.Clone(c.Attachments[i].Content)
	}
	c.Raw = slices.Clone(a.Raw)
	c.ParseWarnings = slices.Clone(a.ParseWarnings)
	return c
}
