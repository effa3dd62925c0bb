package pop3conn_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector/connectortest"
)

func TestCountMessages(t *testing.T) {
	srv := newMemServer(t, nil)
	for i := range 3 {
		srv.deliver("alice", connectortest.Message(i, "x"))
	}
	s := open(t, srv.target("alice", "alice-pass", serversync.TLSStartTLS))
	counter, ok := s.(serversync.CountingSession)
	require.True(t, ok, "POP3 sessions count with STAT")
	n, err := counter.CountMessages(context.Background(), serversync.InboxFolder)
	require.NoError(t, err)
	require.Equal(t, 3, n)
	_, err = counter.CountMessages(context.Background(), "Sent")
	requireCode(t, err, serversync.ErrorPermanent, serversync.CodeFolderNotFound)
}
