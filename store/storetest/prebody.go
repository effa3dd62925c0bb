package storetest

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
)

// PreBodyColumnActivity returns an activity with every body field set, and its
// whole JSON: how a store kept an activity before bodies had a column of their
// own (storekit.EncodeActivity). A store's test writes the JSON into a row the old
// way, then calls CheckPreBodyColumnActivity.
func PreBodyColumnActivity(t *testing.T) (*serversync.EmailActivity, []byte) {
	t.Helper()
	old := FullActivity("mb1", "old-key")
	old.TextBody, old.HTMLBody = "old <text> body", "<p>old html</p>"
	old.Raw = []byte("From: a@example.test\r\n\r\nold raw")
	old.Attachments = []serversync.Attachment{{Filename: "a.txt", ContentType: "text/plain", Size: 7, Content: []byte("content")}}
	data, err := json.Marshal(old)
	require.NoError(t, err)
	return old, data
}

// CheckPreBodyColumnActivity checks that s reads and lists old, stored by a store's
// test the way PreBodyColumnActivity says, whole; that updated, it still reads
// whole; and that the update stored it the new way: storedData returns the row's
// data column, which must no longer hold the bodies.
func CheckPreBodyColumnActivity(t *testing.T, s serversync.Store, old *serversync.EmailActivity, storedData func() []byte) {
	t.Helper()
	ctx := context.Background()
	got, err := s.GetActivity(ctx, old.ID)
	require.NoError(t, err)
	assertSameRecord(t, old, got)
	listed := Collect(t, s.ListActivities(ctx, serversync.ActivityFilter{MailboxID: old.MailboxID}))
	require.Len(t, listed, 1)
	assertSameRecord(t, old, listed[0])

	updated, err := s.UpdateActivity(ctx, old.ID, func(a *serversync.EmailActivity) error {
		a.Subject = "changed"
		return nil
	})
	require.NoError(t, err)
	got, err = s.GetActivity(ctx, old.ID)
	require.NoError(t, err)
	assertSameRecord(t, updated, got)
	assert.Equal(t, "old <text> body", got.TextBody)
	assert.Equal(t, []byte("content"), got.Attachments[0].Content)

	stored := string(storedData())
	assert.NotContains(t, stored, "old raw", "the rewrite moved the bodies out of the JSON")
	assert.NotContains(t, stored, "old html")
}
