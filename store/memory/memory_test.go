package memory_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/store/memory"
	"github.com/serversync/serversync/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(*testing.T) serversync.Store { return memory.New() })
}

// The memory store's streams are snapshots taken under the lock, so the loop body
// may call the store, writes included, without deadlocking; records changed or
// added meanwhile are not seen by the running loop.
func TestListIsASnapshot(t *testing.T) {
	ctx := t.Context()
	s := memory.New()
	t.Cleanup(func() { _ = s.Close() })
	for _, name := range []string{"Alpha", "Bravo", "Charlie"} {
		require.NoError(t, s.CreateProfile(ctx, storetest.NewProfile(name)))
	}
	var seen []string
	for p, err := range s.ListProfiles(ctx) {
		require.NoError(t, err)
		seen = append(seen, p.Name)
		_, err := s.UpdateProfile(ctx, p.ID, func(p *serversync.Profile) error {
			p.Description = "visited"
			return nil
		})
		require.NoError(t, err)
		require.NoError(t, s.CreateProfile(ctx, storetest.NewProfile(p.Name+" copy")))
	}
	assert.Equal(t, []string{"Alpha", "Bravo", "Charlie"}, seen)

	n := 0
	for p, err := range s.ListProfiles(ctx) {
		require.NoError(t, err)
		n++
		if p.Name == "Alpha" {
			assert.Equal(t, "visited", p.Description)
		}
	}
	assert.Equal(t, 6, n)
}

func TestClosedErrors(t *testing.T) {
	s := memory.New()
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "closing again does nothing")
	_, err := s.GetOrgSettings(t.Context())
	require.ErrorIs(t, err, memory.ErrClosed)
	for _, err := range s.ListAlerts(t.Context(), serversync.AlertFilter{}) {
		require.ErrorIs(t, err, memory.ErrClosed)
	}
}

// A memory store seals nothing, so it does not offer secret rotation.
func TestNoSecretRotator(t *testing.T) {
	var s serversync.Store = memory.New()
	_, ok := s.(serversync.SecretRotator)
	assert.False(t, ok)
}
