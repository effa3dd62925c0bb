package storetest

import (
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
)

func testOrgSettings(t *testing.T, h harness) {
	h.run(t, "DefaultsWhenNeverStored", func(t *testing.T, s serversync.Store) {
		got, err := s.GetOrgSettings(t.Context())
		require.NoError(t, err)
		assertSameRecord(t, serversync.DefaultOrgSettings(), got)
	})

	h.run(t, "UpdateStartsFromDefaults", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		want := FullOrgSettings()
		updated, err := s.UpdateOrgSettings(ctx, func(cur *serversync.OrgSettings) error {
			assertSameRecord(t, serversync.DefaultOrgSettings(), cur, "update gets the defaults when nothing was stored")
			*cur = *want.Clone()
			return nil
		})
		require.NoError(t, err)
		assertSameRecord(t, want, updated)
		got, err := s.GetOrgSettings(ctx)
		require.NoError(t, err)
		assertSameRecord(t, want, got)
	})

	h.run(t, "UpdateSeesStoredSettings", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		_, err := s.UpdateOrgSettings(ctx, func(cur *serversync.OrgSettings) error {
			*cur = *FullOrgSettings()
			return nil
		})
		require.NoError(t, err)
		_, err = s.UpdateOrgSettings(ctx, func(cur *serversync.OrgSettings) error {
			assertSameRecord(t, FullOrgSettings(), cur)
			cur.AllowNonSSLEmail = false
			return nil
		})
		require.NoError(t, err)
		want := FullOrgSettings()
		want.AllowNonSSLEmail = false
		got, err := s.GetOrgSettings(ctx)
		require.NoError(t, err)
		assertSameRecord(t, want, got)
	})

	h.run(t, "UpdateCallbackErrorStoresNothing", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		boom := errors.New("callback refused")
		updated, err := s.UpdateOrgSettings(ctx, func(cur *serversync.OrgSettings) error {
			cur.AllowNonSSLEmail = true
			cur.DefaultProfileID = "half"
			return boom
		})
		assert.Same(t, boom, err, "the callback's error is returned as is")
		assert.Nil(t, updated)
		got, err := s.GetOrgSettings(ctx)
		require.NoError(t, err)
		assertSameRecord(t, serversync.DefaultOrgSettings(), got)

		// Also once settings were stored.
		_, err = s.UpdateOrgSettings(ctx, func(cur *serversync.OrgSettings) error {
			*cur = *FullOrgSettings()
			return nil
		})
		require.NoError(t, err)
		_, err = s.UpdateOrgSettings(ctx, func(cur *serversync.OrgSettings) error {
			cur.DefaultTenantID = "half"
			return boom
		})
		assert.Same(t, boom, err)
		got, err = s.GetOrgSettings(ctx)
		require.NoError(t, err)
		assertSameRecord(t, FullOrgSettings(), got)
	})

	h.run(t, "CopiesOut", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		got, err := s.GetOrgSettings(ctx)
		require.NoError(t, err)
		got.AllowNonSSLEmail = true
		got.TrackingToken.Prefix = "XXX"

		var kept *serversync.OrgSettings
		updated, err := s.UpdateOrgSettings(ctx, func(cur *serversync.OrgSettings) error {
			kept = cur
			cur.DefaultTenantID = "tenant"
			return nil
		})
		require.NoError(t, err)
		updated.DefaultTenantID = "changed by caller"
		kept.DefaultTenantID = "changed through the callback's pointer"

		want := serversync.DefaultOrgSettings()
		want.DefaultTenantID = "tenant"
		got, err = s.GetOrgSettings(ctx)
		require.NoError(t, err)
		assertSameRecord(t, want, got)
	})

	h.run(t, "ConcurrentUpdatesLoseNothing", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		const workers, perWorker = 10, 10
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for range perWorker {
					_, err := s.UpdateOrgSettings(ctx, func(cur *serversync.OrgSettings) error {
						cur.MaxAttachmentSize++
						return nil
					})
					assert.NoError(t, err)
				}
			})
		}
		wg.Wait()
		got, err := s.GetOrgSettings(ctx)
		require.NoError(t, err)
		assert.Equal(t, int64(serversync.MaxAttachmentSizeDefault+workers*perWorker), got.MaxAttachmentSize)
	})
}
