package storetest

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
)

// call is one use of each Store method, set up so that it would succeed on a live
// store with a live context.
type call struct {
	name string
	do   func(ctx context.Context) error
}

// population holds the records every call of allCalls works on.
type population struct {
	profile  *serversync.Profile
	mailbox  *serversync.Mailbox
	activity *serversync.EmailActivity
	lease    serversync.Lease
}

func populate(t *testing.T, s serversync.Store) population {
	t.Helper()
	var p population
	p.profile = createProfile(t, s, "P")
	m := NewMailbox(p.profile.ID, "alice@example.com")
	m.NextSyncAt = BaseTime
	p.mailbox = createMailbox(t, s, m)
	scheduled(t, s, "due@example.com", BaseTime) // left for AcquireLeases
	p.activity = NewActivity(m.ID, "uid-1")
	saveTracked(t, s, NewCursor(m.ID, "INBOX", "1"), p.activity)
	queue(t, s, NewOutgoing(m.ID, "out-1"))
	leases := acquire(t, s, "host-a", BaseTime, time.Hour, 1)
	require.Len(t, leases, 1)
	p.lease = leases[0]
	require.NoError(t, s.AddAlert(t.Context(), NewAlert("user-1")))
	return p
}

// allCalls returns one call per Store method (List methods are read to their first
// result), each of which succeeds on the populated store.
func allCalls(s serversync.Store, p population) []call {
	return []call{
		{"CreateProfile", func(ctx context.Context) error { return s.CreateProfile(ctx, NewProfile("New")) }},
		{"GetProfile", func(ctx context.Context) error { _, err := s.GetProfile(ctx, p.profile.ID); return err }},
		{"UpdateProfile", func(ctx context.Context) error {
			_, err := s.UpdateProfile(ctx, p.profile.ID, func(*serversync.Profile) error { return nil })
			return err
		}},
		{"DeleteProfile", func(ctx context.Context) error {
			np := NewProfile("Unused")
			if err := s.CreateProfile(context.Background(), np); err != nil {
				return err
			}
			return s.DeleteProfile(ctx, np.ID)
		}},
		{"ListProfiles", func(ctx context.Context) error { return firstErr(s.ListProfiles(ctx)) }},
		{"CreateMailbox", func(ctx context.Context) error {
			return s.CreateMailbox(ctx, NewMailbox(p.profile.ID, "new@example.com"))
		}},
		{"GetMailbox", func(ctx context.Context) error { _, err := s.GetMailbox(ctx, p.mailbox.ID); return err }},
		{"UpdateMailbox", func(ctx context.Context) error {
			_, err := s.UpdateMailbox(ctx, p.mailbox.ID, func(*serversync.Mailbox) error { return nil })
			return err
		}},
		{"DeleteMailbox", func(ctx context.Context) error {
			nm := NewMailbox("", "unused@example.com")
			if err := s.CreateMailbox(context.Background(), nm); err != nil {
				return err
			}
			return s.DeleteMailbox(ctx, nm.ID)
		}},
		{"ListMailboxes", func(ctx context.Context) error { return firstErr(s.ListMailboxes(ctx, serversync.MailboxFilter{})) }},
		{"GetOrgSettings", func(ctx context.Context) error { _, err := s.GetOrgSettings(ctx); return err }},
		{"UpdateOrgSettings", func(ctx context.Context) error {
			_, err := s.UpdateOrgSettings(ctx, func(*serversync.OrgSettings) error { return nil })
			return err
		}},
		{"SaveTracked", func(ctx context.Context) error {
			_, err := s.SaveTracked(ctx, NewCursor(p.mailbox.ID, "INBOX", "2"), []*serversync.EmailActivity{NewActivity(p.mailbox.ID, "uid-2")})
			return err
		}},
		{"GetCursor", func(ctx context.Context) error { _, err := s.GetCursor(ctx, p.mailbox.ID, "INBOX"); return err }},
		{"GetActivity", func(ctx context.Context) error { _, err := s.GetActivity(ctx, p.activity.ID); return err }},
		{"UpdateActivity", func(ctx context.Context) error {
			_, err := s.UpdateActivity(ctx, p.activity.ID, func(*serversync.EmailActivity) error { return nil })
			return err
		}},
		{"ListActivities", func(ctx context.Context) error { return firstErr(s.ListActivities(ctx, serversync.ActivityFilter{})) }},
		{"KnownMessageKeys", func(ctx context.Context) error {
			_, err := s.KnownMessageKeys(ctx, p.mailbox.ID, []string{p.activity.MessageKey, "mid:unknown"})
			return err
		}},
		{"QueueOutgoing", func(ctx context.Context) error { return s.QueueOutgoing(ctx, NewOutgoing(p.mailbox.ID, "out-2")) }},
		{"ClaimOutgoing", func(ctx context.Context) error {
			_, err := s.ClaimOutgoing(ctx, serversync.ClaimRequest{Host: "host-a", Now: BaseTime, TTL: time.Minute, Limit: 1})
			return err
		}},
		{"AddAlert", func(ctx context.Context) error { return s.AddAlert(ctx, NewAlert("user-2")) }},
		{"ListAlerts", func(ctx context.Context) error { return firstErr(s.ListAlerts(ctx, serversync.AlertFilter{})) }},
		{"AcquireLeases", func(ctx context.Context) error {
			_, err := s.AcquireLeases(ctx, serversync.LeaseRequest{Host: "host-b", Now: BaseTime, TTL: time.Minute, Limit: 1})
			return err
		}},
		{"RenewLease", func(ctx context.Context) error {
			_, err := s.RenewLease(ctx, p.lease, BaseTime, time.Hour)
			return err
		}},
		{"ReleaseLease", func(ctx context.Context) error { return s.ReleaseLease(ctx, p.lease, BaseTime.Add(time.Hour)) }},
	}
}

func testLifecycle(t *testing.T, h harness) {
	// The reference run: every call succeeds on a live store, so the failures below
	// come from Close and from the context.
	h.run(t, "CallsSucceedWhenLive", func(t *testing.T, s serversync.Store) {
		p := populate(t, s)
		var names []string
		for _, c := range allCalls(s, p) {
			assert.NoError(t, c.do(t.Context()), c.name)
			names = append(names, c.name)
		}
		// Every method but Close is exercised by the Close and context tests.
		var methods []string
		store := reflect.TypeFor[serversync.Store]()
		for i := range store.NumMethod() {
			if name := store.Method(i).Name; name != "Close" {
				methods = append(methods, name)
			}
		}
		assert.ElementsMatch(t, methods, names, "allCalls must call every Store method")
	})

	for _, c := range allCalls(nil, population{}) {
		t.Run("CallAfterCloseFails/"+c.name, func(t *testing.T) {
			t.Parallel()
			s := h.openUnmanaged(t)
			closed := false
			t.Cleanup(func() {
				if !closed {
					_ = s.Close()
				}
			})
			p := populate(t, s)
			closed = true
			require.NoError(t, s.Close())
			var err error
			require.NotPanics(t, func() { err = callNamed(s, p, c.name)(t.Context()) })
			require.ErrorIs(t, err, serversync.ErrClosed, "%s after Close", c.name)
		})
	}

	for _, c := range allCalls(nil, population{}) {
		h.run(t, "CancelledContext/"+c.name, func(t *testing.T, s serversync.Store) {
			p := populate(t, s)
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			err := callNamed(s, p, c.name)(ctx)
			require.ErrorIs(t, err, context.Canceled, "%s with a cancelled context", c.name)
		})
	}

	h.run(t, "CancelledContextStoresNothing", func(t *testing.T, s serversync.Store) {
		p := populate(t, s)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		np := NewProfile("Never")
		require.ErrorIs(t, s.CreateProfile(ctx, np), context.Canceled)
		_, err := s.GetProfile(t.Context(), np.ID)
		require.ErrorIs(t, err, serversync.ErrNotFound)

		called := false
		_, err = s.UpdateMailbox(ctx, p.mailbox.ID, func(m *serversync.Mailbox) error {
			called = true
			m.Name = "never"
			return nil
		})
		require.ErrorIs(t, err, context.Canceled)
		assert.False(t, called, "update is not called with a cancelled context")
		assert.Equal(t, p.mailbox.Name, mustGetMailbox(t, s, p.mailbox.ID).Name)

		a := NewActivity(p.mailbox.ID, "uid-9")
		_, err = s.SaveTracked(ctx, NewCursor(p.mailbox.ID, "INBOX", "9"), []*serversync.EmailActivity{a})
		require.ErrorIs(t, err, context.Canceled)
		_, err = s.GetActivity(t.Context(), a.ID)
		require.ErrorIs(t, err, serversync.ErrNotFound)
		requireCursor(t, s, NewCursor(p.mailbox.ID, "INBOX", "1"))

		require.ErrorIs(t, s.ReleaseLease(ctx, p.lease, time.Time{}), context.Canceled)
		_, err = s.RenewLease(t.Context(), p.lease, BaseTime, time.Hour)
		require.NoError(t, err, "the lease is still held")
	})
}

// callNamed returns the call of allCalls with that name.
func callNamed(s serversync.Store, p population, name string) func(context.Context) error {
	for _, c := range allCalls(s, p) {
		if c.name == name {
			return c.do
		}
	}
	panic("storetest: no call " + name)
}
