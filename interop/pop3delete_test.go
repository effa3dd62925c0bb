package interop_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
)

// syncBuffer is a log destination safe for the Syncer's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// A POP3 queue mailbox that deletes what it processed (user0009) empties its
// maildrop on Dovecot every poll. That is no cursor the server invalidated: the
// Syncer never logs it, whether a poll finds new mail or none, and offers nothing
// twice.
func TestPOP3DeleteAfterProcessingIsNoReset(t *testing.T) {
	h := newHarness(t)
	var log syncBuffer
	h.log = slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	q := h.mailbox(t, "user0009", h.profile(t, serversync.ServerTypePOP3SMTP, nil))
	q, err := h.admin.UpdateMailbox(context.Background(), q.ID, func(m *serversync.Mailbox) {
		m.Regarding = serversync.Regarding{Type: serversync.RegardingQueue, ID: "queue-user0009"}
		m.DeleteAfterProcessing = true
	})
	require.NoError(t, err)
	s := h.syncer(t, nil)
	h.testAndEnable(t, s, q)
	h.run(t, s)
	// The first sync must be over before mail arrives, or it may take and delete a
	// message before the test has seen it delivered.
	h.waitBetweenSyncs(t, q.ID)

	for round, subjects := range [][]string{{"first", "second"}, {"third"}, nil, {"fourth"}} {
		var ids []string
		for _, subject := range subjects {
			ids = append(ids, h.submit(t, "user0006", "user0009", subject))
		}
		for _, id := range ids {
			h.waitOnServer(t, "user0009", "INBOX", id, "delivered to the queue")
		}
		h.waitSynced(t, q.ID, h.pollAgain(t, q.ID))
		for _, id := range ids {
			h.waitTracked(t, q.ID, id)
			eventually(t, "deleted after processing", func() bool { return !h.onServer(t, "user0009", "INBOX", id) })
		}
		h.waitBetweenSyncs(t, q.ID)
		assert.False(t, strings.Contains(log.String(), "invalidated the cursor"), "round %d logged an invalidated cursor", round)
	}
	assert.Len(t, h.activities(t, serversync.ActivityFilter{MailboxID: q.ID}), 4)
	assert.Zero(t, h.getMailbox(t, q.ID).Stats.DuplicatesSkipped, "nothing was offered twice")
}

// Over POP3 too, moving ProcessEmailFrom earlier pulls the mail the cursor had
// passed (user0009): the next sync lists the maildrop from the start and reads the
// dates of what it had skipped.
func TestPOP3ProcessEmailFromMovedEarlier(t *testing.T) {
	h := newHarness(t)
	m := h.mailbox(t, "user0009", h.profile(t, serversync.ServerTypePOP3SMTP, nil))
	m, err := h.admin.UpdateMailbox(context.Background(), m.ID, func(m *serversync.Mailbox) { m.ProcessEmailFrom = time.Now().Add(time.Hour) })
	require.NoError(t, err)
	early := h.submit(t, "user0006", "user0009", "before the date")
	h.waitOnServer(t, "user0009", "INBOX", early, "delivered")
	s := h.syncer(t, nil)
	h.testAndEnable(t, s, m)
	h.run(t, s)
	h.waitSynced(t, m.ID, h.pollAgain(t, m.ID))
	require.Empty(t, h.activities(t, serversync.ActivityFilter{MailboxID: m.ID}), "mail before ProcessEmailFrom is skipped")

	_, err = h.admin.UpdateMailbox(context.Background(), m.ID, func(m *serversync.Mailbox) { m.ProcessEmailFrom = time.Now().Add(-time.Hour) })
	require.NoError(t, err)
	h.waitSynced(t, m.ID, h.pollAgain(t, m.ID))
	h.waitTracked(t, m.ID, early)
	h.waitSynced(t, m.ID, h.pollAgain(t, m.ID))
	assert.Len(t, h.activities(t, serversync.ActivityFilter{MailboxID: m.ID}), 1, "tracked once")
	assert.True(t, h.getMailbox(t, m.ID).IncomingResyncRequestedAt.IsZero())
}
