package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
)

func testProfiles(t *testing.T, h harness) {
	h.run(t, "CreateGetRoundTrip", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		want := FullProfile("Contoso")
		require.NoError(t, s.CreateProfile(ctx, want))
		got, err := s.GetProfile(ctx, want.ID)
		require.NoError(t, err)
		assertSameRecord(t, want, got)
		assert.True(t, want.ProcessEmailFrom.Equal(got.ProcessEmailFrom))
		assert.True(t, want.UpdatedAt.Equal(got.UpdatedAt))
	})

	h.run(t, "SecretsRoundTripRevealed", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		p := NewProfile("Secrets")
		p.Password = auth.NewSecret("p@ss wörd")
		p.ClientSecret = auth.NewSecret("client-secret-value")
		p.CertificateKey = auth.NewSecret("-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n")
		require.NoError(t, s.CreateProfile(ctx, p))
		got, err := s.GetProfile(ctx, p.ID)
		require.NoError(t, err)
		assertSecret(t, "p@ss wörd", got.Password, "Password")
		assertSecret(t, "client-secret-value", got.ClientSecret, "ClientSecret")
		assertSecret(t, p.CertificateKey.Reveal(), got.CertificateKey, "CertificateKey")

		unset := NewProfile("No secrets")
		require.NoError(t, s.CreateProfile(ctx, unset))
		got, err = s.GetProfile(ctx, unset.ID)
		require.NoError(t, err)
		assertSecret(t, "", got.Password, "Password")
		assertSecret(t, "", got.ClientSecret, "ClientSecret")
		assertSecret(t, "", got.CertificateKey, "CertificateKey")
	})

	h.run(t, "ZeroTimesStayZero", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		p := NewProfile("Zero")
		p.CreatedAt, p.UpdatedAt = BaseTime, BaseTime // ProcessEmailFrom stays zero
		require.NoError(t, s.CreateProfile(ctx, p))
		got, err := s.GetProfile(ctx, p.ID)
		require.NoError(t, err)
		assert.True(t, got.ProcessEmailFrom.IsZero(), "ProcessEmailFrom = %v", got.ProcessEmailFrom)
	})

	h.run(t, "GetMissing", func(t *testing.T, s serversync.Store) {
		_, err := s.GetProfile(t.Context(), serversync.NewID())
		require.ErrorIs(t, err, serversync.ErrNotFound)
	})

	h.run(t, "CreateEmptyIDFails", func(t *testing.T, s serversync.Store) {
		p := NewProfile("No ID")
		p.ID = ""
		require.Error(t, s.CreateProfile(t.Context(), p))
		assert.Empty(t, Collect(t, s.ListProfiles(t.Context())))
	})

	h.run(t, "CreateDuplicateID", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		first := NewProfile("First")
		require.NoError(t, s.CreateProfile(ctx, first))
		second := NewProfile("Second")
		second.ID = first.ID
		requireDuplicate(t, s.CreateProfile(ctx, second), "Profile", "ID")
		got, err := s.GetProfile(ctx, first.ID)
		require.NoError(t, err)
		assertSameRecord(t, first, got)
		assert.Len(t, Collect(t, s.ListProfiles(ctx)), 1)
	})

	for _, tc := range []struct{ name, existing, duplicate string }{
		{"SameCase", "Contoso IMAP", "Contoso IMAP"},
		{"Upper", "Contoso IMAP", "CONTOSO IMAP"},
		{"Lower", "Contoso IMAP", "contoso imap"},
		{"Mixed", "contoso imap", "cOnToSo ImAp"},
	} {
		h.run(t, "CreateDuplicateName/"+tc.name, func(t *testing.T, s serversync.Store) {
			ctx := t.Context()
			first := NewProfile(tc.existing)
			require.NoError(t, s.CreateProfile(ctx, first))
			dup := NewProfile(tc.duplicate)
			requireDuplicate(t, s.CreateProfile(ctx, dup), "Profile", "Name")

			_, err := s.GetProfile(ctx, dup.ID)
			require.ErrorIs(t, err, serversync.ErrNotFound, "nothing stored")
			all := Collect(t, s.ListProfiles(ctx))
			require.Len(t, all, 1)
			assertSameRecord(t, first, all[0])
		})
	}

	h.run(t, "CopiesIn", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		p := FullProfile("Original")
		want := p.Clone()
		require.NoError(t, s.CreateProfile(ctx, p))
		p.Name = "Changed"
		p.Scopes[0] = "changed-scope"
		p.Password = auth.NewSecret("changed")
		p.CreatedAt = BaseTime.Add(99)
		got, err := s.GetProfile(ctx, want.ID)
		require.NoError(t, err)
		assertSameRecord(t, want, got)
	})

	h.run(t, "CopiesOut", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		want := FullProfile("Original")
		require.NoError(t, s.CreateProfile(ctx, want))

		got, err := s.GetProfile(ctx, want.ID)
		require.NoError(t, err)
		got.Name = "Changed by Get caller"
		got.Scopes[0] = "changed-by-get"

		listed := Collect(t, s.ListProfiles(ctx))
		require.Len(t, listed, 1)
		listed[0].Name = "Changed by List caller"
		listed[0].Scopes[1] = "changed-by-list"

		var kept *serversync.Profile
		updated, err := s.UpdateProfile(ctx, want.ID, func(p *serversync.Profile) error {
			kept = p
			return nil
		})
		require.NoError(t, err)
		updated.Name = "Changed by Update caller"
		updated.Scopes[0] = "changed-by-update"
		kept.Name = "Changed through the callback's pointer"
		kept.Scopes[1] = "changed-by-callback"

		got, err = s.GetProfile(ctx, want.ID)
		require.NoError(t, err)
		assertSameRecord(t, want, got)
	})

	h.run(t, "Update", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		p := NewProfile("Before")
		require.NoError(t, s.CreateProfile(ctx, p))

		full := FullProfile("After")
		full.ID = p.ID
		calls := 0
		updated, err := s.UpdateProfile(ctx, p.ID, func(cur *serversync.Profile) error {
			calls++
			assertSameRecord(t, p, cur, "update gets the stored profile")
			*cur = *full.Clone()
			return nil
		})
		require.NoError(t, err)
		assert.GreaterOrEqual(t, calls, 1)
		assertSameRecord(t, full, updated, "UpdateProfile returns the stored result")
		got, err := s.GetProfile(ctx, p.ID)
		require.NoError(t, err)
		assertSameRecord(t, full, got)
	})

	h.run(t, "UpdateCallbackErrorStoresNothing", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		p := FullProfile("Keep me")
		require.NoError(t, s.CreateProfile(ctx, p))
		boom := errors.New("callback refused")
		updated, err := s.UpdateProfile(ctx, p.ID, func(cur *serversync.Profile) error {
			cur.Name = "Half changed"
			cur.Password = auth.NewSecret("half")
			return boom
		})
		require.Error(t, err)
		assert.Same(t, boom, err, "the callback's error is returned as is")
		assert.Nil(t, updated)
		got, err := s.GetProfile(ctx, p.ID)
		require.NoError(t, err)
		assertSameRecord(t, p, got)
	})

	h.run(t, "UpdateMissing", func(t *testing.T, s serversync.Store) {
		called := false
		_, err := s.UpdateProfile(t.Context(), serversync.NewID(), func(*serversync.Profile) error {
			called = true
			return nil
		})
		require.ErrorIs(t, err, serversync.ErrNotFound)
		assert.False(t, called, "update must not be called for a missing profile")
	})

	h.run(t, "UpdateToTakenName", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		a, b := NewProfile("Alpha"), NewProfile("Bravo")
		require.NoError(t, s.CreateProfile(ctx, a))
		require.NoError(t, s.CreateProfile(ctx, b))
		_, err := s.UpdateProfile(ctx, b.ID, func(p *serversync.Profile) error {
			p.Name = "ALPHA"
			p.Description = "must not be stored"
			return nil
		})
		requireDuplicate(t, err, "Profile", "Name")
		got, err := s.GetProfile(ctx, b.ID)
		require.NoError(t, err)
		assertSameRecord(t, b, got)
	})

	h.run(t, "UpdateOwnNameCase", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		p := NewProfile("alpha")
		require.NoError(t, s.CreateProfile(ctx, p))
		updated, err := s.UpdateProfile(ctx, p.ID, func(p *serversync.Profile) error {
			p.Name = "Alpha"
			return nil
		})
		require.NoError(t, err, "a profile may change the case of its own name")
		assert.Equal(t, "Alpha", updated.Name)
	})

	h.run(t, "UpdateFreesOldName", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		p := NewProfile("Old name")
		require.NoError(t, s.CreateProfile(ctx, p))
		_, err := s.UpdateProfile(ctx, p.ID, func(p *serversync.Profile) error {
			p.Name = "New name"
			return nil
		})
		require.NoError(t, err)
		require.NoError(t, s.CreateProfile(ctx, NewProfile("old NAME")))
		requireDuplicate(t, s.CreateProfile(ctx, NewProfile("NEW name")), "Profile", "Name")
	})

	h.run(t, "Delete", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		p, other := NewProfile("Doomed"), NewProfile("Other")
		require.NoError(t, s.CreateProfile(ctx, p))
		require.NoError(t, s.CreateProfile(ctx, other))
		require.NoError(t, s.DeleteProfile(ctx, p.ID))
		_, err := s.GetProfile(ctx, p.ID)
		require.ErrorIs(t, err, serversync.ErrNotFound)
		require.ErrorIs(t, s.DeleteProfile(ctx, p.ID), serversync.ErrNotFound)
		_, err = s.GetProfile(ctx, other.ID)
		require.NoError(t, err, "other profiles stay")
		require.NoError(t, s.CreateProfile(ctx, NewProfile("DOOMED")), "a deleted profile's name is free again")
	})

	h.run(t, "DeleteInUse", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		p := NewProfile("Used")
		require.NoError(t, s.CreateProfile(ctx, p))
		m := NewMailbox(p.ID, "alice@example.com")
		require.NoError(t, s.CreateMailbox(ctx, m))

		require.ErrorIs(t, s.DeleteProfile(ctx, p.ID), serversync.ErrProfileInUse)
		got, err := s.GetProfile(ctx, p.ID)
		require.NoError(t, err, "a profile in use stays")
		assertSameRecord(t, p, got)

		require.NoError(t, s.DeleteMailbox(ctx, m.ID))
		require.NoError(t, s.DeleteProfile(ctx, p.ID))
		_, err = s.GetProfile(ctx, p.ID)
		require.ErrorIs(t, err, serversync.ErrNotFound)
	})

	h.run(t, "DeleteAfterMailboxMoved", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		from, to := NewProfile("From"), NewProfile("To")
		require.NoError(t, s.CreateProfile(ctx, from))
		require.NoError(t, s.CreateProfile(ctx, to))
		m := NewMailbox(from.ID, "alice@example.com")
		require.NoError(t, s.CreateMailbox(ctx, m))
		require.ErrorIs(t, s.DeleteProfile(ctx, from.ID), serversync.ErrProfileInUse)
		_, err := s.UpdateMailbox(ctx, m.ID, func(m *serversync.Mailbox) error {
			m.ProfileID = to.ID
			return nil
		})
		require.NoError(t, err)
		require.NoError(t, s.DeleteProfile(ctx, from.ID))
		require.ErrorIs(t, s.DeleteProfile(ctx, to.ID), serversync.ErrProfileInUse)
	})

	h.run(t, "ListOrderedByName", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		names := []string{"Delta", "Alpha", "Echo", "Charlie", "Bravo"}
		want := map[string]*serversync.Profile{}
		for _, n := range names {
			p := FullProfile(n)
			want[n] = p
			require.NoError(t, s.CreateProfile(ctx, p))
		}
		got := Collect(t, s.ListProfiles(ctx))
		var gotNames []string
		for _, p := range got {
			gotNames = append(gotNames, p.Name)
			assertSameRecord(t, want[p.Name], p)
		}
		sorted := slices.Clone(names)
		slices.Sort(sorted)
		assert.Equal(t, sorted, gotNames)
	})

	h.run(t, "ListEmpty", func(t *testing.T, s serversync.Store) {
		assert.Empty(t, Collect(t, s.ListProfiles(t.Context())))
	})

	h.run(t, "ListStopsWhenLoopBreaks", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		for _, n := range []string{"A1", "A2", "A3", "A4", "A5"} {
			require.NoError(t, s.CreateProfile(ctx, NewProfile(n)))
		}
		var seen []string
		for p, err := range s.ListProfiles(ctx) {
			require.NoError(t, err)
			seen = append(seen, p.Name)
			if len(seen) == 2 {
				break
			}
		}
		assert.Equal(t, []string{"A1", "A2"}, seen)
		// The store still works after an abandoned stream.
		assert.Len(t, Collect(t, s.ListProfiles(ctx)), 5)
	})

	h.run(t, "ConcurrentUpdatesLoseNothing", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		p := NewProfile("Counter")
		require.NoError(t, s.CreateProfile(ctx, p))
		const workers, perWorker = 10, 20
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for range perWorker {
					_, err := s.UpdateProfile(ctx, p.ID, func(p *serversync.Profile) error {
						p.MaxConcurrentConnections++
						p.Description += "x"
						return nil
					})
					assert.NoError(t, err)
				}
			})
		}
		wg.Wait()
		got, err := s.GetProfile(ctx, p.ID)
		require.NoError(t, err)
		assert.Equal(t, p.MaxConcurrentConnections+workers*perWorker, got.MaxConcurrentConnections)
		assert.Equal(t, strings.Repeat("x", workers*perWorker), got.Description)
	})

	h.run(t, "ConcurrentCreatesSameName", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		const workers = 8
		var wg sync.WaitGroup
		errs := make([]error, workers)
		for i := range workers {
			wg.Go(func() {
				errs[i] = s.CreateProfile(ctx, NewProfile([]string{"Race", "RACE", "race"}[i%3]))
			})
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			if err == nil {
				ok++
				continue
			}
			requireDuplicate(t, err, "Profile", "Name")
		}
		assert.Equal(t, 1, ok, "exactly one of the racing creates wins")
		assert.Len(t, Collect(t, s.ListProfiles(ctx)), 1)
	})

	h.run(t, "DeleteRacesMailboxCreate", func(t *testing.T, s serversync.Store) {
		// The in-use check is atomic with the delete: whichever wins, no mailbox is
		// left referencing a deleted profile.
		ctx := t.Context()
		for i := range 30 {
			p := createProfile(t, s, fmt.Sprint("Race ", i))
			m := NewMailbox(p.ID, fmt.Sprintf("race%d@example.com", i))
			var createErr, deleteErr error
			var wg sync.WaitGroup
			wg.Go(func() { createErr = s.CreateMailbox(ctx, m) })
			wg.Go(func() { deleteErr = s.DeleteProfile(ctx, p.ID) })
			wg.Wait()
			if deleteErr == nil {
				require.ErrorIs(t, createErr, serversync.ErrNotFound, "round %d: the mailbox was created for a deleted profile", i)
				_, err := s.GetMailbox(ctx, m.ID)
				require.ErrorIs(t, err, serversync.ErrNotFound)
			} else {
				require.ErrorIs(t, deleteErr, serversync.ErrProfileInUse, "round %d", i)
				require.NoError(t, createErr)
				mustGetMailbox(t, s, m.ID)
			}
		}
	})
}
