package sqlite_test

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
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

// harness opens each store on a new file under the test's temporary directory.
var harness = storetest.Harness{
	NewStore: func(tb testing.TB) serversync.Store {
		return open(tb, filepath.Join(tb.TempDir(), "serversync.db"), keys(tb, 1))
	},
	NewDatabase: func(tb testing.TB) func(auth.KeyProvider) serversync.Store {
		path := filepath.Join(tb.TempDir(), "serversync.db")
		return func(k auth.KeyProvider) serversync.Store { return open(tb, path, k) }
	},
}

func TestConformance(t *testing.T) {
	storetest.RunHarness(t, harness)
}
