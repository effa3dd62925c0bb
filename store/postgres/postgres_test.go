package postgres_test

import (
	"bytes"
	"context"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/internal/pgtest"
	"github.com/serversync/serversync/store/postgres"
	"github.com/serversync/serversync/store/storetest"
)

func keys(t testing.TB, fill byte, previous ...byte) auth.KeyProvider {
	t.Helper()
	k, err := auth.NewKey(bytes.Repeat([]byte{fill}, auth.KeySize))
	require.NoError(t, err)
	var old []auth.Key
	for _, f := range previous {
		o, err := auth.NewKey(bytes.Repeat([]byte{f}, auth.KeySize))
		require.NoError(t, err)
		old = append(old, o)
	}
	return auth.NewStaticKeys(k, old...)
}

// open opens a store on schema; the caller closes it.
func open(t testing.TB, schema string, k auth.KeyProvider) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), pgtest.URL(t), &postgres.Options{Keys: k, Schema: schema})
	require.NoError(t, err)
	return s
}

// harness opens each store on a schema of its own.
var harness = storetest.Harness{
	NewStore: func(tb testing.TB) serversync.Store {
		return open(tb, pgtest.FreshSchema(tb), keys(tb, 1))
	},
	NewDatabase: func(tb testing.TB) func(auth.KeyProvider) serversync.Store {
		schema := pgtest.FreshSchema(tb)
		return func(k auth.KeyProvider) serversync.Store { return open(tb, schema, k) }
	},
	// The lease benchmark leases among 100,000 mailboxes, seeded with one COPY in
	// seconds and vacuumed now rather than have autovacuum wake up for the new rows
	// mid-measurement.
	LeaseBenchMailboxes: 100_000,
	SeedMailboxes: func(tb testing.TB, s serversync.Store, mailboxes []*serversync.Mailbox) {
		ctx := context.Background()
		ps := s.(*postgres.Store)
		for chunk := range slices.Chunk(mailboxes, 10_000) {
			require.NoError(tb, ps.CopyMailboxes(ctx, chunk))
		}
		require.NoError(tb, ps.Vacuum(ctx, "mailboxes"))
	},
}

// TestConformance runs the Store conformance suite, each subtest on its own schema.
func TestConformance(t *testing.T) {
	pgtest.URL(t)
	storetest.RunHarness(t, harness)
}
