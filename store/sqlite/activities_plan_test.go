package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
)

// Correlation and the incoming pipeline look activities up by Message-ID, tracking
// token, conversation hash and message key, across every mailbox: each must search
// an index, not scan the table (a Message-ID that matched nothing scanned all 10,000
// activities in 21 ms; through the index it takes 60 µs).
func TestActivityLookupsUseIndexes(t *testing.T) {
	s := openStore(t, nil)
	for name, f := range map[string]serversync.ActivityFilter{
		"MessageID":        {MessageID: "m@x", Limit: 1},
		"MessageIDInbound": {MessageID: "m@x", Direction: serversync.Incoming, Limit: 1},
		"TrackingToken":    {TrackingToken: "CRM:0001001", Direction: serversync.Outgoing, Limit: 1},
		"ConversationHash": {ConversationHash: "h", Limit: 1},
		"MessageKey":       {MailboxID: "mb", MessageKey: "mid:m@x#0", Limit: 1},
	} {
		query, args := activitiesQuery(f)
		plan := queryPlan(t, s, query, args...)
		assert.Contains(t, strings.Join(plan, "; "), "SEARCH activities USING", "%s: %v", name, plan)
	}
}

// KnownMessageKeys answers a batch in one statement: each key must be a search of
// the (mailbox_id, message_key) index, never a scan of the mailbox's activities.
func TestKnownMessageKeysUsesTheIndex(t *testing.T) {
	s := openStore(t, nil)
	plan := queryPlan(t, s, knownKeysSQL, "mb", `["a","b"]`)
	joined := strings.Join(plan, "; ")
	assert.Contains(t, joined, "SEARCH activities USING COVERING INDEX", plan)
	assert.Contains(t, joined, "message_key=?", plan)
}

// Every connection, the writer's and the readers', gets the page cache asked for,
// CacheSizeDefault when none is.
func TestCacheSizeApplied(t *testing.T) {
	for size, want := range map[int64]int{0: -(CacheSizeDefault >> 10), 3 << 20: -3072, 100: -1} {
		s := openStore(t, &Options{CacheSize: size})
		for name, db := range map[string]interface {
			QueryRowContext(context.Context, string, ...any) *sql.Row
		}{"writer": s.writer, "reader": s.reader} {
			var got int
			require.NoError(t, db.QueryRowContext(context.Background(), "PRAGMA cache_size").Scan(&got))
			assert.Equal(t, want, got, "%s, CacheSize %d", name, size)
		}
	}
}

// The Syncer's scan for mailboxes not scheduled yet (Syncer.ScheduleReady) reads a
// partial index of them instead of the whole table.
func TestScheduledFilterUsesAnIndex(t *testing.T) {
	s := openStore(t, nil)
	yes, no := true, false
	for name, f := range map[string]serversync.MailboxFilter{
		"test pending": {TestAndEnablePending: &yes, Scheduled: &no},
		"enabled":      {Enabled: &yes, Scheduled: &no},
	} {
		query, args := mailboxesQuery(f)
		plan := queryPlan(t, s, query, args...)
		joined := strings.Join(plan, "; ")
		assert.Contains(t, joined, "USING INDEX mailboxes_unscheduled", "%s: %v", name, plan)
	}
}

// openStore opens a store in a fresh file with a throwaway key, closed when the
// test ends.
func openStore(t *testing.T, opts *Options) *Store {
	t.Helper()
	return openStoreAt(t, filepath.Join(t.TempDir(), "plan.db"), opts)
}

// openStoreAt is openStore on the file at path.
func openStoreAt(t *testing.T, path string, opts *Options) *Store {
	t.Helper()
	key, err := auth.NewKey(make([]byte, auth.KeySize))
	require.NoError(t, err)
	o := Options{}
	if opts != nil {
		o = *opts
	}
	o.Keys = auth.NewStaticKeys(key)
	s, err := Open(context.Background(), path, &o)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// queryPlan returns the details of SQLite's plan for query, one per step.
func queryPlan(t *testing.T, s *Store, query string, args ...any) []string {
	t.Helper()
	rows, err := s.reader.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+query, args...)
	require.NoError(t, err)
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		require.NoError(t, rows.Scan(&id, &parent, &unused, &detail))
		plan = append(plan, detail)
	}
	require.NoError(t, rows.Err())
	return plan
}
