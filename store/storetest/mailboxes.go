package storetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
)

// createProfile stores a fresh profile and returns it.
func createProfile(t *testing.T, s serversync.Store, name string) *serversync.Profile {
	t.Helper()
	p := NewProfile(name)
	require.NoError(t, s.CreateProfile(t.Context(), p))
	return p
}

// createMailbox stores m and returns it.
func createMailbox(t *testing.T, s serversync.Store, m *serversync.Mailbox) *serversync.Mailbox {
	t.Helper()
	require.NoError(t, s.CreateMailbox(t.Context(), m))
	return m
}

func testMailboxes(t *testing.T, h harness) {
	h.run(t, "CreateGetRoundTrip", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		p := createProfile(t, s, "P")
		want := FullMailbox(p.ID, "queue@example.com")
		require.NoError(t, s.CreateMailbox(ctx, want))
		got, err := s.GetMailbox(ctx, want.ID)
		require.NoError(t, err)
		assertSameRecord(t, want, got)
		assert.True(t, want.OAuthToken.Expiry.Equal(got.OAuthToken.Expiry))
		assert.Equal(t, want.Stats.LastSyncDuration, got.Stats.LastSyncDuration)
	})

	h.run(t, "WithoutProfile", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		m := NewMailbox("", "alice@example.com")
		require.NoError(t, s.CreateMailbox(ctx, m), "an empty ProfileID is allowed")
		got, err := s.GetMailbox(ctx, m.ID)
		require.NoError(t, err)
		assertSameRecord(t, m, got)
	})

	h.run(t, "SecretsRoundTripRevealed", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		p := createProfile(t, s, "P")
		m := NewMailbox(p.ID, "alice@example.com")
		m.Password = auth.NewSecret("mailbox pässword")
		m.OAuthToken = serversync.OAuthToken{
			AccessToken:  auth.NewSecret("at-123"),
			RefreshToken: auth.NewSecret("rt-456"),
			TokenType:    "Bearer",
			Expiry:       BaseTime.Add(time.Hour),
		}
		createMailbox(t, s, m)
		got, err := s.GetMailbox(ctx, m.ID)
		require.NoError(t, err)
		assertSecret(t, "mailbox pässword", got.Password, "Password")
		assertSecret(t, "at-123", got.OAuthToken.AccessToken, "OAuthToken.AccessToken")
		assertSecret(t, "rt-456", got.OAuthToken.RefreshToken, "OAuthToken.RefreshToken")

		bare := createMailbox(t, s, NewMailbox(p.ID, "bob@example.com"))
		got, err = s.GetMailbox(ctx, bare.ID)
		require.NoError(t, err)
		assertSecret(t, "", got.Password, "Password")
		assertSecret(t, "", got.OAuthToken.AccessToken, "OAuthToken.AccessToken")
		assertSecret(t, "", got.OAuthToken.RefreshToken, "OAuthToken.RefreshToken")
		assert.True(t, got.OAuthToken.Expiry.IsZero())
		assert.True(t, got.NextSyncAt.IsZero())
		assert.True(t, got.Stats.LastSyncStartedAt.IsZero())
	})

	h.run(t, "GetMissing", func(t *testing.T, s serversync.Store) {
		_, err := s.GetMailbox(t.Context(), serversync.NewID())
		require.ErrorIs(t, err, serversync.ErrNotFound)
	})

	h.run(t, "CreateEmptyIDFails", func(t *testing.T, s serversync.Store) {
		m := NewMailbox("", "alice@example.com")
		m.ID = ""
		require.Error(t, s.CreateMailbox(t.Context(), m))
		assert.Empty(t, Collect(t, s.ListMailboxes(t.Context(), serversync.MailboxFilter{})))
	})

	h.run(t, "CreateDuplicateID", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		first := createMailbox(t, s, NewMailbox("", "first@example.com"))
		second := NewMailbox("", "second@example.com")
		second.ID = first.ID
		requireDuplicate(t, s.CreateMailbox(ctx, second), "Mailbox", "ID")
		got, err := s.GetMailbox(ctx, first.ID)
		require.NoError(t, err)
		assertSameRecord(t, first, got)
	})

	for _, tc := range []struct{ name, existing, duplicate string }{
		{"SameCase", "alice@example.com", "alice@example.com"},
		{"Upper", "alice@example.com", "ALICE@EXAMPLE.COM"},
		{"Mixed", "Alice@Example.com", "aLICE@eXAMPLE.COM"},
	} {
		h.run(t, "CreateDuplicateEmail/"+tc.name, func(t *testing.T, s serversync.Store) {
			ctx := t.Context()
			first := createMailbox(t, s, NewMailbox("", tc.existing))
			dup := NewMailbox("", tc.duplicate)
			requireDuplicate(t, s.CreateMailbox(ctx, dup), "Mailbox", "EmailAddress")
			_, err := s.GetMailbox(ctx, dup.ID)
			require.ErrorIs(t, err, serversync.ErrNotFound, "nothing stored")
			all := Collect(t, s.ListMailboxes(ctx, serversync.MailboxFilter{}))
			require.Len(t, all, 1)
			assertSameRecord(t, first, all[0])
		})
	}

	for _, tc := range []struct {
		name      string
		duplicate serversync.Regarding
	}{
		{"SameUser", serversync.Regarding{Type: serversync.RegardingUser, ID: "user-1"}},
		{"SameIDOtherType", serversync.Regarding{Type: serversync.RegardingQueue, ID: "user-1"}},
	} {
		h.run(t, "CreateDuplicateRegarding/"+tc.name, func(t *testing.T, s serversync.Store) {
			ctx := t.Context()
			first := NewMailbox("", "first@example.com")
			first.Regarding = serversync.Regarding{Type: serversync.RegardingUser, ID: "user-1"}
			createMailbox(t, s, first)
			dup := NewMailbox("", "second@example.com")
			dup.Regarding = tc.duplicate
			requireDuplicate(t, s.CreateMailbox(ctx, dup), "Mailbox", "Regarding")
			_, err := s.GetMailbox(ctx, dup.ID)
			require.ErrorIs(t, err, serversync.ErrNotFound, "nothing stored")
		})
	}

	h.run(t, "EmptyRegardingNotUnique", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		for _, email := range []string{"fwd1@example.com", "fwd2@example.com", "fwd3@example.com"} {
			m := NewMailbox("", email)
			m.Regarding = serversync.Regarding{}
			m.IsForwardMailbox = true
			require.NoError(t, s.CreateMailbox(ctx, m), "forward mailboxes have no regarding; several may exist")
		}
		assert.Len(t, Collect(t, s.ListMailboxes(ctx, serversync.MailboxFilter{})), 3)
	})

	h.run(t, "CreateWithMissingProfile", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		m := NewMailbox(serversync.NewID(), "alice@example.com")
		require.ErrorIs(t, s.CreateMailbox(ctx, m), serversync.ErrNotFound)
		_, err := s.GetMailbox(ctx, m.ID)
		require.ErrorIs(t, err, serversync.ErrNotFound, "nothing stored")
	})

	h.run(t, "UpdateToMissingProfile", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		p := createProfile(t, s, "P")
		m := createMailbox(t, s, NewMailbox(p.ID, "alice@example.com"))
		_, err := s.UpdateMailbox(ctx, m.ID, func(m *serversync.Mailbox) error {
			m.ProfileID = serversync.NewID()
			return nil
		})
		require.ErrorIs(t, err, serversync.ErrNotFound)
		got, err := s.GetMailbox(ctx, m.ID)
		require.NoError(t, err)
		assertSameRecord(t, m, got)
	})

	h.run(t, "Update", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		p1, p2 := createProfile(t, s, "P1"), createProfile(t, s, "P2")
		m := createMailbox(t, s, NewMailbox(p1.ID, "alice@example.com"))
		want := FullMailbox(p2.ID, "alice.new@example.com")
		want.ID = m.ID
		updated, err := s.UpdateMailbox(ctx, m.ID, func(cur *serversync.Mailbox) error {
			assertSameRecord(t, m, cur, "update gets the stored mailbox")
			*cur = *want.Clone()
			return nil
		})
		require.NoError(t, err)
		assertSameRecord(t, want, updated, "UpdateMailbox returns the stored result")
		got, err := s.GetMailbox(ctx, m.ID)
		require.NoError(t, err)
		assertSameRecord(t, want, got)

		// The old address is free, the new one taken.
		createMailbox(t, s, NewMailbox("", "ALICE@example.com"))
		requireDuplicate(t, s.CreateMailbox(ctx, NewMailbox("", "Alice.New@example.com")), "Mailbox", "EmailAddress")
	})

	h.run(t, "UpdateCallbackErrorStoresNothing", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		p := createProfile(t, s, "P")
		m := createMailbox(t, s, FullMailbox(p.ID, "alice@example.com"))
		boom := errors.New("callback refused")
		updated, err := s.UpdateMailbox(ctx, m.ID, func(cur *serversync.Mailbox) error {
			cur.EmailAddress = "half@example.com"
			cur.Stats.TransientFailureCount = 99
			return boom
		})
		assert.Same(t, boom, err, "the callback's error is returned as is")
		assert.Nil(t, updated)
		got, err := s.GetMailbox(ctx, m.ID)
		require.NoError(t, err)
		assertSameRecord(t, m, got)
	})

	h.run(t, "UpdateMissing", func(t *testing.T, s serversync.Store) {
		called := false
		_, err := s.UpdateMailbox(t.Context(), serversync.NewID(), func(*serversync.Mailbox) error {
			called = true
			return nil
		})
		require.ErrorIs(t, err, serversync.ErrNotFound)
		assert.False(t, called, "update must not be called for a missing mailbox")
	})

	h.run(t, "UpdateToTakenEmail", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		createMailbox(t, s, NewMailbox("", "alice@example.com"))
		bob := createMailbox(t, s, NewMailbox("", "bob@example.com"))
		_, err := s.UpdateMailbox(ctx, bob.ID, func(m *serversync.Mailbox) error {
			m.EmailAddress = "Alice@Example.COM"
			m.Name = "must not be stored"
			return nil
		})
		requireDuplicate(t, err, "Mailbox", "EmailAddress")
		got, err := s.GetMailbox(ctx, bob.ID)
		require.NoError(t, err)
		assertSameRecord(t, bob, got)

		_, err = s.UpdateMailbox(ctx, bob.ID, func(m *serversync.Mailbox) error {
			m.EmailAddress = "Bob@Example.com"
			return nil
		})
		require.NoError(t, err, "a mailbox may change the case of its own address")
	})

	h.run(t, "UpdateToTakenRegarding", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		alice := createMailbox(t, s, NewMailbox("", "alice@example.com"))
		bob := createMailbox(t, s, NewMailbox("", "bob@example.com"))
		_, err := s.UpdateMailbox(ctx, bob.ID, func(m *serversync.Mailbox) error {
			m.Regarding = alice.Regarding
			return nil
		})
		requireDuplicate(t, err, "Mailbox", "Regarding")
		got, err := s.GetMailbox(ctx, bob.ID)
		require.NoError(t, err)
		assertSameRecord(t, bob, got)

		// Clearing the regarding (turning it into a forward mailbox) frees it.
		_, err = s.UpdateMailbox(ctx, alice.ID, func(m *serversync.Mailbox) error {
			m.Regarding = serversync.Regarding{}
			return nil
		})
		require.NoError(t, err)
		_, err = s.UpdateMailbox(ctx, bob.ID, func(m *serversync.Mailbox) error {
			m.Regarding = alice.Regarding
			return nil
		})
		require.NoError(t, err)
	})

	h.run(t, "UpdateIgnoresLeaseFieldsKeepsNextSyncAt", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		p := createProfile(t, s, "P")
		m := NewMailbox(p.ID, "alice@example.com")
		m.NextSyncAt = BaseTime
		createMailbox(t, s, m)
		leases, err := s.AcquireLeases(ctx, serversync.LeaseRequest{Host: "host-a", Now: BaseTime, TTL: time.Minute, Limit: 1})
		require.NoError(t, err)
		require.Len(t, leases, 1)
		leased, err := s.GetMailbox(ctx, m.ID)
		require.NoError(t, err)

		next := BaseTime.Add(42 * time.Minute)
		updated, err := s.UpdateMailbox(ctx, m.ID, func(m *serversync.Mailbox) error {
			m.LeaseHost = "intruder"
			m.LeaseExpiresAt = BaseTime.Add(24 * time.Hour)
			m.ForcedUnlockCount = 99
			m.NextSyncAt = next
			m.Name = "renamed"
			return nil
		})
		require.NoError(t, err)
		for _, got := range []*serversync.Mailbox{updated, mustGetMailbox(t, s, m.ID)} {
			assert.Equal(t, "host-a", got.LeaseHost)
			assert.True(t, leased.LeaseExpiresAt.Equal(got.LeaseExpiresAt), "LeaseExpiresAt %v, want %v", got.LeaseExpiresAt, leased.LeaseExpiresAt)
			assert.Equal(t, 0, got.ForcedUnlockCount)
			assert.True(t, next.Equal(got.NextSyncAt), "NextSyncAt is stored as update leaves it")
			assert.Equal(t, "renamed", got.Name)
		}
		// The lease is still held and works.
		_, err = s.RenewLease(ctx, leases[0], BaseTime, time.Minute)
		require.NoError(t, err)
		require.NoError(t, s.ReleaseLease(ctx, leases[0], time.Time{}))

		// An unleased mailbox stays unleased.
		updated, err = s.UpdateMailbox(ctx, m.ID, func(m *serversync.Mailbox) error {
			m.LeaseHost = "intruder"
			m.LeaseExpiresAt = BaseTime.Add(24 * time.Hour)
			m.NextSyncAt = BaseTime
			return nil
		})
		require.NoError(t, err)
		assert.Empty(t, updated.LeaseHost)
		assert.True(t, updated.LeaseExpiresAt.IsZero())
		got := acquireAll(t, s, "host-b", BaseTime)
		assert.Len(t, got, 1, "the mailbox is not leased by the ignored fields")
	})

	h.run(t, "UpdateClearsNextSyncAt", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		m := NewMailbox("", "alice@example.com")
		m.NextSyncAt = BaseTime
		createMailbox(t, s, m)
		updated, err := s.UpdateMailbox(ctx, m.ID, func(m *serversync.Mailbox) error {
			m.NextSyncAt = time.Time{}
			return nil
		})
		require.NoError(t, err)
		assert.True(t, updated.NextSyncAt.IsZero())
		assert.Empty(t, acquireAll(t, s, "host-a", BaseTime.Add(time.Hour)))
	})

	h.run(t, "CopiesIn", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		m := FullMailbox("", "alice@example.com")
		m.IncomingMethod, m.OutgoingMethod, m.ACTMethod = serversync.IncomingNone, serversync.OutgoingNone, serversync.OutgoingNone
		want := m.Clone()
		require.NoError(t, s.CreateMailbox(ctx, m))
		m.EmailAddress = "changed@example.com"
		m.Stats.TransientFailureCount = 1000
		m.Password = auth.NewSecret("changed")
		m.OAuthToken.AccessToken = auth.NewSecret("changed")
		got := mustGetMailbox(t, s, want.ID)
		assertSameRecord(t, want, got)
	})

	h.run(t, "CopiesOut", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		p := createProfile(t, s, "P")
		want := createMailbox(t, s, FullMailbox(p.ID, "alice@example.com")).Clone()

		got := mustGetMailbox(t, s, want.ID)
		got.EmailAddress = "get@example.com"
		got.Stats.LastError.Message = "changed by Get caller"

		listed := Collect(t, s.ListMailboxes(ctx, serversync.MailboxFilter{}))
		require.Len(t, listed, 1)
		listed[0].Name = "changed by List caller"

		var kept *serversync.Mailbox
		updated, err := s.UpdateMailbox(ctx, want.ID, func(m *serversync.Mailbox) error {
			kept = m
			return nil
		})
		require.NoError(t, err)
		updated.Name = "changed by Update caller"
		kept.Name = "changed through the callback's pointer"

		assertSameRecord(t, want, mustGetMailbox(t, s, want.ID))
	})

	h.run(t, "Delete", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		p := createProfile(t, s, "P")
		m := NewMailbox(p.ID, "alice@example.com")
		m.NextSyncAt = BaseTime
		createMailbox(t, s, m)
		other := createMailbox(t, s, NewMailbox(p.ID, "bob@example.com"))

		a := NewActivity(m.ID, "uid-1")
		_, err := s.SaveTracked(ctx, NewCursor(m.ID, "INBOX", "1"), []*serversync.EmailActivity{a})
		require.NoError(t, err)
		_, err = s.SaveTracked(ctx, NewCursor(m.ID, "Sent", "9"), nil)
		require.NoError(t, err)
		_, err = s.SaveTracked(ctx, NewCursor(other.ID, "INBOX", "5"), nil)
		require.NoError(t, err)
		leases := acquireAll(t, s, "host-a", BaseTime)
		require.Len(t, leases, 1)

		require.NoError(t, s.DeleteMailbox(ctx, m.ID))
		_, err = s.GetMailbox(ctx, m.ID)
		require.ErrorIs(t, err, serversync.ErrNotFound)
		require.ErrorIs(t, s.DeleteMailbox(ctx, m.ID), serversync.ErrNotFound)

		for _, folder := range []string{"INBOX", "Sent"} {
			_, err = s.GetCursor(ctx, m.ID, folder)
			require.ErrorIs(t, err, serversync.ErrNotFound, "cursor %s is deleted with its mailbox", folder)
		}
		_, err = s.GetCursor(ctx, other.ID, "INBOX")
		require.NoError(t, err, "other mailboxes' cursors stay")

		require.ErrorIs(t, s.ReleaseLease(ctx, leases[0], BaseTime), serversync.ErrLeaseLost, "the lease is deleted with its mailbox")
		_, err = s.RenewLease(ctx, leases[0], BaseTime, time.Minute)
		require.ErrorIs(t, err, serversync.ErrLeaseLost)

		got, err := s.GetActivity(ctx, a.ID)
		require.NoError(t, err, "activities stay")
		assertSameRecord(t, a, got)
		assert.Len(t, Collect(t, s.ListActivities(ctx, serversync.ActivityFilter{MailboxID: m.ID})), 1)

		// The address and regarding are free again.
		again := NewMailbox(p.ID, "ALICE@example.com")
		again.Regarding = m.Regarding
		require.NoError(t, s.CreateMailbox(ctx, again))
		_, err = s.GetCursor(ctx, again.ID, "INBOX")
		require.ErrorIs(t, err, serversync.ErrNotFound)
	})

	testMailboxList(t, h)

	h.run(t, "ConcurrentUpdatesLoseNothing", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		m := createMailbox(t, s, NewMailbox("", "alice@example.com"))
		const workers, perWorker = 10, 20
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for range perWorker {
					_, err := s.UpdateMailbox(ctx, m.ID, func(m *serversync.Mailbox) error {
						m.Stats.TransientFailureCount++
						return nil
					})
					assert.NoError(t, err)
				}
			})
		}
		wg.Wait()
		assert.Equal(t, workers*perWorker, mustGetMailbox(t, s, m.ID).Stats.TransientFailureCount)
	})

	h.run(t, "ConcurrentCreatesSameEmail", func(t *testing.T, s serversync.Store) {
		ctx := t.Context()
		const workers = 8
		var wg sync.WaitGroup
		errs := make([]error, workers)
		for i := range workers {
			wg.Go(func() {
				errs[i] = s.CreateMailbox(ctx, NewMailbox("", []string{"race@example.com", "RACE@example.com"}[i%2]))
			})
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			if err == nil {
				ok++
				continue
			}
			requireDuplicate(t, err, "Mailbox", "EmailAddress")
		}
		assert.Equal(t, 1, ok, "exactly one of the racing creates wins")
	})
}

func testMailboxList(t *testing.T, h harness) {
	// The fixture set every filter case runs against. Emails differ in their first
	// letter so any collation orders them the same way.
	type spec struct {
		email    string
		profile  int // index into profiles; -1 for none
		approval serversync.ApprovalStatus
		status   serversync.TestStatus
		in, out  bool
		act      bool
		pending  bool
		next     time.Time
	}
	specs := []spec{
		{email: "echo@example.com", profile: 0, approval: serversync.ApprovalApproved, status: serversync.TestSuccess, in: true, next: BaseTime},
		{email: "alpha@example.com", profile: 0, approval: serversync.ApprovalPending, status: serversync.TestNotRun, pending: true},
		{email: "delta@example.com", profile: 1, approval: serversync.ApprovalApproved, status: serversync.TestFailure, out: true},
		{email: "charlie@example.com", profile: 1, approval: serversync.ApprovalRejected, status: serversync.TestFailure, pending: true},
		{email: "bravo@example.com", profile: -1, approval: serversync.ApprovalEmpty, status: serversync.TestNotRun},
		{email: "foxtrot@example.com", profile: 0, approval: serversync.ApprovalApproved, status: serversync.TestSuccess, act: true, next: BaseTime.Add(time.Hour)},
	}
	setup := func(t *testing.T, s serversync.Store) (profiles []*serversync.Profile, byEmail map[string]*serversync.Mailbox) {
		t.Helper()
		profiles = []*serversync.Profile{createProfile(t, s, "P0"), createProfile(t, s, "P1")}
		byEmail = map[string]*serversync.Mailbox{}
		for _, sp := range specs {
			pid := ""
			if sp.profile >= 0 {
				pid = profiles[sp.profile].ID
			}
			m := NewMailbox(pid, sp.email)
			m.Approval = sp.approval
			m.Status = sp.status
			m.IncomingEnabled, m.OutgoingEnabled, m.ACTEnabled = sp.in, sp.out, sp.act
			m.TestAndEnablePending = sp.pending
			m.NextSyncAt = sp.next
			byEmail[sp.email] = createMailbox(t, s, m)
		}
		return profiles, byEmail
	}
	yes, no := true, false

	for _, tc := range []struct {
		name   string
		filter func(profiles []*serversync.Profile, byEmail map[string]*serversync.Mailbox) serversync.MailboxFilter
		want   []string // local parts, in order
	}{
		{"All", func([]*serversync.Profile, map[string]*serversync.Mailbox) serversync.MailboxFilter {
			return serversync.MailboxFilter{}
		}, []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot"}},
		{"ProfileID", func(p []*serversync.Profile, _ map[string]*serversync.Mailbox) serversync.MailboxFilter {
			return serversync.MailboxFilter{ProfileID: p[0].ID}
		}, []string{"alpha", "echo", "foxtrot"}},
		{"ProfileIDUnknown", func([]*serversync.Profile, map[string]*serversync.Mailbox) serversync.MailboxFilter {
			return serversync.MailboxFilter{ProfileID: serversync.NewID()}
		}, nil},
		{"EmailAddressExact", func([]*serversync.Profile, map[string]*serversync.Mailbox) serversync.MailboxFilter {
			return serversync.MailboxFilter{EmailAddress: "delta@example.com"}
		}, []string{"delta"}},
		{"EmailAddressCaseInsensitive", func([]*serversync.Profile, map[string]*serversync.Mailbox) serversync.MailboxFilter {
			return serversync.MailboxFilter{EmailAddress: "DELTA@Example.Com"}
		}, []string{"delta"}},
		{"EmailAddressNotAPrefix", func([]*serversync.Profile, map[string]*serversync.Mailbox) serversync.MailboxFilter {
			return serversync.MailboxFilter{EmailAddress: "delta"}
		}, nil},
		{"RegardingID", func(_ []*serversync.Profile, b map[string]*serversync.Mailbox) serversync.MailboxFilter {
			return serversync.MailboxFilter{RegardingID: b["charlie@example.com"].Regarding.ID}
		}, []string{"charlie"}},
		{"Approval", func([]*serversync.Profile, map[string]*serversync.Mailbox) serversync.MailboxFilter {
			return serversync.MailboxFilter{Approval: serversync.ApprovalApproved}
		}, []string{"delta", "echo", "foxtrot"}},
		{"Status", func([]*serversync.Profile, map[string]*serversync.Mailbox) serversync.MailboxFilter {
			return serversync.MailboxFilter{Status: serversync.TestFailure}
		}, []string{"charlie", "delta"}},
		{"EnabledTrue", func([]*serversync.Profile, map[string]*serversync.Mailbox) serversync.MailboxFilter {
			return serversync.MailboxFilter{Enabled: &yes}
		}, []string{"delta", "echo", "foxtrot"}},
		{"EnabledFalse", func([]*serversync.Profile, map[string]*serversync.Mailbox) serversync.MailboxFilter {
			return serversync.MailboxFilter{Enabled: &no}
		}, []string{"alpha", "bravo", "charlie"}},
		{"TestAndEnablePendingTrue", func([]*serversync.Profile, map[string]*serversync.Mailbox) serversync.MailboxFilter {
			return serversync.MailboxFilter{TestAndEnablePending: &yes}
		}, []string{"alpha", "charlie"}},
		{"TestAndEnablePendingFalse", func([]*serversync.Profile, map[string]*serversync.Mailbox) serversync.MailboxFilter {
			return serversync.MailboxFilter{TestAndEnablePending: &no}
		}, []string{"bravo", "delta", "echo", "foxtrot"}},
		{"ScheduledTrue", func([]*serversync.Profile, map[string]*serversync.Mailbox) serversync.MailboxFilter {
			return serversync.MailboxFilter{Scheduled: &yes}
		}, []string{"echo", "foxtrot"}},
		{"ScheduledFalse", func([]*serversync.Profile, map[string]*serversync.Mailbox) serversync.MailboxFilter {
			return serversync.MailboxFilter{Scheduled: &no, Enabled: &yes}
		}, []string{"delta"}},
		{"Limit", func([]*serversync.Profile, map[string]*serversync.Mailbox) serversync.MailboxFilter {
			return serversync.MailboxFilter{Limit: 2}
		}, []string{"alpha", "bravo"}},
		{"LimitAboveMatches", func([]*serversync.Profile, map[string]*serversync.Mailbox) serversync.MailboxFilter {
			return serversync.MailboxFilter{Approval: serversync.ApprovalApproved, Limit: 10}
		}, []string{"delta", "echo", "foxtrot"}},
		{"Combined", func(p []*serversync.Profile, _ map[string]*serversync.Mailbox) serversync.MailboxFilter {
			return serversync.MailboxFilter{ProfileID: p[0].ID, Approval: serversync.ApprovalApproved, Enabled: &yes, Status: serversync.TestSuccess, Limit: 1}
		}, []string{"echo"}},
	} {
		h.run(t, "List/"+tc.name, func(t *testing.T, s serversync.Store) {
			profiles, byEmail := setup(t, s)
			got := Collect(t, s.ListMailboxes(t.Context(), tc.filter(profiles, byEmail)))
			var names []string
			for _, m := range got {
				names = append(names, m.EmailAddress[:len(m.EmailAddress)-len("@example.com")])
				assertSameRecord(t, byEmail[m.EmailAddress], m)
			}
			assert.Equal(t, tc.want, names)
		})
	}

	h.run(t, "List/StopsWhenLoopBreaks", func(t *testing.T, s serversync.Store) {
		setup(t, s)
		var seen []string
		for m, err := range s.ListMailboxes(t.Context(), serversync.MailboxFilter{}) {
			require.NoError(t, err)
			seen = append(seen, m.EmailAddress)
			if len(seen) == 2 {
				break
			}
		}
		assert.Equal(t, []string{"alpha@example.com", "bravo@example.com"}, seen)
		assert.Len(t, Collect(t, s.ListMailboxes(t.Context(), serversync.MailboxFilter{})), len(specs))
	})

	h.run(t, "List/Empty", func(t *testing.T, s serversync.Store) {
		assert.Empty(t, Collect(t, s.ListMailboxes(t.Context(), serversync.MailboxFilter{})))
	})
}

func mustGetMailbox(t *testing.T, s serversync.Store, id string) *serversync.Mailbox {
	t.Helper()
	m, err := s.GetMailbox(t.Context(), id)
	require.NoError(t, err)
	return m
}
