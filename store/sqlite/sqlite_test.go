package sqlite_test

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/store/sqlite"
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

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) serversync.Store {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "serversync.db"), &sqlite.Options{Keys: keys(t, 1)})
		require.NoError(t, err)
		return s
	})
}
