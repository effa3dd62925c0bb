package imapconn_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
)

func TestCountMessages(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverConfig{})
	helper := ts.client(t, "alice")
	for i := range 4 {
		appendMessage(t, helper, "INBOX", testMessage(i, 100), time.Time{})
	}
	sess := ts.open(t, ts.target("alice"), nil)
	counter, ok := sess.(serversync.CountingSession)
	require.True(t, ok, "IMAP sessions count with STATUS")
	n, err := counter.CountMessages(context.Background(), serversync.InboxFolder)
	require.NoError(t, err)
	require.Equal(t, 4, n)
	// Counting selects nothing: fetching afterwards sees the same messages.
	got, _ := fetchAll(t, sess, serversync.FetchRequest{})
	require.Len(t, got, 4)
	_, err = counter.CountMessages(context.Background(), "No such folder")
	require.Error(t, err)
}
