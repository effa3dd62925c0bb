package serversync_test

import (
	"bytes"
	"context"
	"fmt"
	"iter"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/standard"
	"github.com/serversync/serversync/internal/pgtest"
	"github.com/serversync/serversync/store/postgres"
	"github.com/serversync/serversync/store/sqlite"
)

// lockedLog collects a Syncer's log records as text.
type lockedLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// loggingSyncer is e.syncer with its debug log kept in log.
func (e *syncEnv) loggingSyncer(t *testing.T, log *lockedLog) *serversync.Syncer {
	t.Helper()
	s, err := serversync.NewSyncer(e.store, standard.Connectors(&standard.Options{Logger: slog.New(slog.DiscardHandler)}), &serversync.Config{
		Tick: 10 * time.Millisecond, ScanInterval: 20 * time.Millisecond, OutboxInterval: 20 * time.Millisecond,
		IdleConnections: -1, Now: e.clock.Now, OnEvent: e.onEvent,
		Logger: slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	require.NoError(t, err)
	return s
}

// withTrace prepends what the servers on the way add to a delivered message.
func withTrace(hop string, raw []byte) []byte {
	return append([]byte("Return-Path: <sender@partner.test>\r\nDelivered-To: alice@example.test\r\n"+
		"Received: from "+hop+" by mx.example.test;\r\n\tMon, 23 Nov 2026 09:00:05 +0000\r\nX-Spam-Score: 0.1\r\n"), raw...)
}

func (e *syncEnv) stats(t *testing.T, id string) serversync.MailboxStats {
	m, err := e.store.GetMailbox(context.Background(), id)
	require.NoError(t, err)
	return m.Stats
}

// Different messages that share a Message-ID (a list copy and a reused ID here)
// are each tracked; the same message delivered twice, with different trace headers,
// is tracked once, and the copy is counted and logged as a duplicate.
func TestMessagesSharingAMessageID(t *testing.T) {
	e := newSyncEnv(t, nil)
	alice := e.mailbox(t, "alice", nil)
	id := "Message-ID: <reused@partner.test>\r\n"
	first := message("sender@partner.test", alice.EmailAddress, "Order 1", id, "First order.")
	second := message("sender@partner.test", alice.EmailAddress, "Order 2", id, "Second order.")
	for _, raw := range [][]byte{withTrace("a.partner.test", first), second, withTrace("b.partner.test", first)} {
		require.NoError(t, e.demo.Deliver(alice.EmailAddress, raw))
	}
	var log lockedLog
	s := e.loggingSyncer(t, &log)
	testAndEnable(t, s, alice)
	run(t, s)
	eventually(t, "the sync recorded", func() bool { return e.stats(t, alice.ID).ItemsProcessedLastSync > 0 })

	got := e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID})
	require.Len(t, got, 2, "both messages with the Message-ID are tracked, the redelivery is not")
	assert.Equal(t, "Order 1", got[0].Subject)
	assert.Equal(t, "Order 2", got[1].Subject)
	assert.NotEqual(t, got[0].MessageKey, got[1].MessageKey)
	st := e.stats(t, alice.ID)
	assert.Equal(t, 1, st.DuplicatesSkippedLastSync)
	assert.EqualValues(t, 1, st.DuplicatesSkipped)
	assert.Equal(t, 2, e.countEvents(serversync.EventMailTracked))
	assert.Contains(t, log.String(), "skipped as a duplicate")
	assert.Contains(t, log.String(), "key="+got[0].MessageKey, "the log names the key")
	assert.NotContains(t, log.String(), "First order", "and no content")
}

// A store written before message keys had a content digest holds "mid:<id>" keys.
// Each store keeps deduplicating against them, with nothing rewritten: the message
// they were tracked from, delivered again with other trace headers, is a
// duplicate; a different message reusing the Message-ID is tracked.
func TestLegacyMessageKeysKeepDeduplicating(t *testing.T) {
	for _, tc := range []struct {
		name string
		open func(t *testing.T) (open func() serversync.Store)
	}{
		{"memory", nil},
		{"sqlite", func(t *testing.T) func() serversync.Store {
			keys := testKeys(t)
			path := filepath.Join(t.TempDir(), "old.db")
			return func() serversync.Store {
				s, err := sqlite.Open(context.Background(), path, &sqlite.Options{Keys: keys})
				require.NoError(t, err)
				return s
			}
		}},
		{"postgres", func(t *testing.T) func() serversync.Store {
			url, schema := pgtest.URL(t), pgtest.FreshSchema(t)
			keys := testKeys(t)
			return func() serversync.Store {
				s, err := postgres.Open(context.Background(), url, &postgres.Options{Keys: keys, Schema: schema})
				require.NoError(t, err)
				return s
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newSyncEnv(t, nil)
			var reopen func() serversync.Store
			if tc.open != nil {
				reopen = tc.open(t)
				e.useStore(t, reopen())
			}
			alice := e.mailbox(t, "alice", nil)
			ctx := context.Background()
			sent := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
			old := message("sender@partner.test", alice.EmailAddress, "Tracked long ago", "Message-ID: <old@partner.test>\r\n", "Old.")
			// What the previous release stored for old: the Message-ID alone as key.
			legacy := &serversync.EmailActivity{
				ID: serversync.NewID(), MailboxID: alice.ID, MessageKey: "mid:old@partner.test",
				Direction: serversync.Incoming, Status: serversync.StatusTracked, MessageID: "old@partner.test",
				Subject: "Tracked long ago", From: serversync.Address{Email: "sender@partner.test"},
				To: []serversync.Address{{Email: alice.EmailAddress}}, TextBody: "Old.\r\n", SentAt: sent,
				ReceivedAt: sent, CreatedAt: sent, UpdatedAt: sent,
			}
			_, err := e.store.SaveTracked(ctx, nil, []*serversync.EmailActivity{legacy})
			require.NoError(t, err)
			if reopen != nil { // the database as the upgraded release opens it
				require.NoError(t, e.store.Close())
				e.useStore(t, reopen())
			}

			reused := message("other@partner.test", alice.EmailAddress, "Not the same", "Message-ID: <old@partner.test>\r\n", "New.")
			require.NoError(t, e.demo.Deliver(alice.EmailAddress, withTrace("c.partner.test", old)))
			require.NoError(t, e.demo.Deliver(alice.EmailAddress, reused))
			s := e.syncer(t, nil)
			testAndEnable(t, s, alice)
			run(t, s)
			eventually(t, "the sync recorded", func() bool { return !e.stats(t, alice.ID).LastSyncSucceededAt.IsZero() })

			got := e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID})
			require.Len(t, got, 2)
			assert.Equal(t, legacy.ID, got[0].ID, "the old activity stays as it was")
			assert.Equal(t, "Not the same", got[1].Subject, "a different message reusing the Message-ID is tracked")
			assert.True(t, strings.HasPrefix(got[1].MessageKey, "mid:old@partner.test#"), got[1].MessageKey)
			assert.Equal(t, 1, e.stats(t, alice.ID).DuplicatesSkippedLastSync, "the redelivery of the old message is a duplicate")
		})
	}
}

// useStore moves the environment to store, with its profile.
func (e *syncEnv) useStore(t *testing.T, store serversync.Store) {
	t.Helper()
	t.Cleanup(func() { _ = store.Close() })
	e.store = store
	e.admin = serversync.NewAdmin(store, &serversync.AdminConfig{
		CanApprove: func(context.Context, string, *serversync.Mailbox) error { return nil },
		Now:        e.clock.Now, Logger: slog.New(slog.DiscardHandler),
	})
	if _, err := store.GetProfile(context.Background(), e.profile.ID); err == nil {
		return
	}
	p, err := e.admin.CreateProfile(context.Background(), e.profile)
	require.NoError(t, err)
	e.profile = p
}

func testKeys(t *testing.T) auth.KeyProvider {
	key, err := auth.NewKey(bytes.Repeat([]byte{7}, 32))
	require.NoError(t, err)
	return auth.NewStaticKeys(key)
}

// legacyLookups counts the activity lookups by a key without a content digest.
type legacyLookups struct {
	serversync.Store
	mu sync.Mutex
	n  int
}

func (l *legacyLookups) ListActivities(ctx context.Context, f serversync.ActivityFilter) iter.Seq2[*serversync.EmailActivity, error] {
	if f.MessageKey != "" && !strings.Contains(f.MessageKey, "#") && !strings.HasPrefix(f.MessageKey, "digest:") {
		l.mu.Lock()
		l.n++
		l.mu.Unlock()
	}
	return l.Store.ListActivities(ctx, f)
}

// A mailbox that never held a key from before keys had a digest is not searched
// for one: each new message costs one lookup, not two.
func TestNoLegacyLookupsWithoutLegacyKeys(t *testing.T) {
	e := newSyncEnv(t, nil)
	store := &legacyLookups{Store: e.store}
	e.store = store
	alice := e.mailbox(t, "alice", nil)
	for i := range 5 {
		require.NoError(t, e.demo.Deliver(alice.EmailAddress, message("x@partner.test", alice.EmailAddress,
			fmt.Sprintf("message %d", i), fmt.Sprintf("Message-ID: <m%d@partner.test>\r\n", i), "body")))
	}
	s := e.syncer(t, nil)
	testAndEnable(t, s, alice)
	run(t, s)
	eventually(t, "five tracked", func() bool { return len(e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID})) == 5 })
	store.mu.Lock()
	defer store.mu.Unlock()
	assert.Zero(t, store.n, "lookups by legacy key")
}
