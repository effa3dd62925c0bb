package postgres_test

import (
	"bytes"
	"context"
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

// TestConformance runs the Store conformance suite, each subtest on its own schema.
func TestConformance(t *testing.T) {
	pgtest.URL(t)
	storetest.Run(t, func(t *testing.T) serversync.Store {
		return open(t, pgtest.FreshSchema(t), keys(t, 1))
	})
}
