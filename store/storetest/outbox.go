package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
)

// claim calls ClaimOutgoing and fails the test on error.
func claim(t *testing.T, s serversync.Store, host string, now time.Time, ttl time.Duration, limit int) []*serversync.EmailActivity {
	t.Helper()
	got, err := s.ClaimOutgoing(t.Context(), serversync.ClaimRequest{Host: host, Now: now, TTL: ttl, Limit: limit})
	require.NoError(t, err)
	return got
}

func queue(t *testing.T, s serversync.Store, a *serversync.EmailActivity) *serversync.EmailActivity {
	t.Helper()
	require.NoError(t, s.QueueOutgoing(t.Context(), a))
	return a
}

func ids(activities []*serversync.EmailActivity) []string {
	var out []string
	for _, a := range activities {
		out = append(out, a.ID)
	}
	return out
}

func testOutbox(t *testing.T, h harness) {
	h.run(t, "QueueStoresPendingSend", func(t *testing.T, s serversync.Store) {
		for _, status := range []serversync.ActivityStatus{"", serversync.StatusPendingSend, serversync.StatusSent, serversync.StatusSending, serversync.StatusTracked} {
			a := FullActivity("mb-1", "out-"+string(status))
			a.Direction = serversync.Outgoing
			a.Status = status
			want := deepCopyActivity(a)
			want.Status = serversync.StatusPendingSend
			queue(t, s, a)
			assertSameRecord(t, want, mustGetActivity(t, s, a.ID), "queued with status %q", status)
		}
	})

	h.run(t, "QueueDuplicateID", func(t *testing.T, s serversync.Store) {
		a := queue(t, s, NewOutgoing("mb-1", "out-1"))
		b := NewOutgoing("mb-1", "out-2")
		b.ID = a.ID
		requireDuplicate(t, s.QueueOutgoing(t.Context(), b), "EmailActivity", "ID")
		assertSameRecord(t, a, mustGetActivity(t, s, a.ID))
	})

	h.run(t, "QueueDuplicateMessageKey", func(t *testing.T, s serversync.Store) {
		a := queue(t, s, NewOutgoing("mb-1", "out-1"))
		tracked := NewActivity("mb-1", "uid-1")
		saveTracked(t, s, nil, tracked)
		for _, key := range []string{a.MessageKey, tracked.MessageKey} {
			dup := NewOutgoing("mb-1", key)
			err := s.QueueOutgoing(t.Context(), dup)
			require.ErrorIs(t, err, serversync.ErrAlreadyExists, "(MailboxID, MessageKey) is unique across all activities")
			_, err = s.GetActivity(t.Context(), dup.ID)
			require.ErrorIs(t, err, serversync.ErrNotFound)
		}
		queue(t, s, NewOutgoing("mb-2", a.MessageKey)) // same key, other mailbox
		// SaveTracked of a queued key is a duplicate too.
		res := saveTracked(t, s, nil, NewActivity("mb-1", a.MessageKey))
		assert.Equal(t, []int{0}, res.Duplicates)
	})

	for _, tc := range []struct {
		name  string
		clear func(*serversync.EmailActivity)
	}{
		{"EmptyID", func(a *serversync.EmailActivity) { a.ID = "" }},
		{"EmptyMessageKey", func(a *serversync.EmailActivity) { a.MessageKey = "" }},
	} {
		h.run(t, "Queue"+tc.name+"Fails", func(t *testing.T, s serversync.Store) {
			a := NewOutgoing("mb-1", "out-1")
			tc.clear(a)
			require.Error(t, s.QueueOutgoing(t.Context(), a))
			assert.Empty(t, Collect(t, s.ListActivities(t.Context(), serversync.ActivityFilter{})))
		})
	}

	h.run(t, "ClaimRespectsNextAttemptAt", func(t *testing.T, s serversync.Store) {
		now := BaseTime
		sendNow := queue(t, s, NewOutgoing("mb-1", "zero"))
		past := NewOutgoing("mb-1", "past")
		past.NextAttemptAt = now.Add(-time.Minute)
		queue(t, s, past)
		exact := NewOutgoing("mb-1", "exact")
		exact.NextAttemptAt = now
		queue(t, s, exact)
		future := NewOutgoing("mb-1", "future")
		future.NextAttemptAt = now.Add(time.Minute)
		queue(t, s, future)

		got := claim(t, s, "host-a", now, 5*time.Minute, 10)
		assert.ElementsMatch(t, []string{sendNow.ID, past.ID, exact.ID}, ids(got))

		assert.Empty(t, claim(t, s, "host-a", now.Add(59*time.Second), 5*time.Minute, 10))
		got = claim(t, s, "host-b", now.Add(time.Minute), 5*time.Minute, 10)
		assert.Equal(t, []string{future.ID}, ids(got))
	})

	h.run(t, "ClaimSetsSendingState", func(t *testing.T, s serversync.Store) {
		a := NewOutgoing("mb-1", "out-1")
		a.Attempts = 3
		queue(t, s, a)
		now, ttl := BaseTime.Add(time.Hour).In(otherZone), 90*time.Second
		got := claim(t, s, "host-a", now, ttl, 1)
		require.Len(t, got, 1)
		want := deepCopyActivity(a)
		want.Status = serversync.StatusSending
		want.ClaimedBy = "host-a"
		want.ClaimExpiresAt = now.Add(ttl)
		want.Attempts = 4
		assertSameRecord(t, want, got[0], "ClaimOutgoing returns the activity as stored after the claim")
		assertSameRecord(t, want, mustGetActivity(t, s, a.ID), "the attempt is recorded")
	})

	h.run(t, "ClaimLimit", func(t *testing.T, s serversync.Store) {
		var queued []string
		for i := range 5 {
			queued = append(queued, queue(t, s, NewOutgoing("mb-1", fmt.Sprint("out-", i))).ID)
		}
		var claimed []string
		for _, want := range []int{2, 2, 1, 0} {
			got := claim(t, s, "host-a", BaseTime, time.Hour, 2)
			assert.Len(t, got, want)
			claimed = append(claimed, ids(got)...)
		}
		assert.ElementsMatch(t, queued, claimed)
	})

	h.run(t, "ClaimEmpty", func(t *testing.T, s serversync.Store) {
		assert.Empty(t, claim(t, s, "host-a", BaseTime, time.Minute, 10))
	})

	h.run(t, "LiveClaimNotClaimedAgain", func(t *testing.T, s serversync.Store) {
		a := queue(t, s, NewOutgoing("mb-1", "out-1"))
		require.Len(t, claim(t, s, "host-a", BaseTime, time.Minute, 10), 1)
		assert.Empty(t, claim(t, s, "host-b", BaseTime, time.Minute, 10))
		assert.Empty(t, claim(t, s, "host-a", BaseTime.Add(59*time.Second), time.Minute, 10))
		got := mustGetActivity(t, s, a.ID)
		assert.Equal(t, 1, got.Attempts)
		assert.Equal(t, "host-a", got.ClaimedBy)
	})

	h.run(t, "ExpiredClaimTakenByAnotherHost", func(t *testing.T, s serversync.Store) {
		a := queue(t, s, NewOutgoing("mb-1", "out-1"))
		require.Len(t, claim(t, s, "host-a", BaseTime, time.Minute, 10), 1)

		later := BaseTime.Add(time.Minute + time.Second)
		got := claim(t, s, "host-b", later, 2*time.Minute, 10)
		require.Len(t, got, 1, "a Sending activity whose claim expired is claimable: its sender died")
		assert.Equal(t, a.ID, got[0].ID)
		assert.Equal(t, serversync.StatusSending, got[0].Status)
		assert.Equal(t, "host-b", got[0].ClaimedBy)
		assert.True(t, later.Add(2*time.Minute).Equal(got[0].ClaimExpiresAt))
		assert.Equal(t, 2, got[0].Attempts, "every claim records an attempt")
		assertSameRecord(t, got[0], mustGetActivity(t, s, a.ID))
	})

	for _, status := range []serversync.ActivityStatus{serversync.StatusSent, serversync.StatusFailed, serversync.StatusTracked} {
		h.run(t, "NeverClaimed/"+string(status), func(t *testing.T, s serversync.Store) {
			a := queue(t, s, NewOutgoing("mb-1", "out-1"))
			got := claim(t, s, "host-a", BaseTime, time.Minute, 10)
			require.Len(t, got, 1)
			_, err := s.UpdateActivity(t.Context(), a.ID, func(a *serversync.EmailActivity) error {
				a.Status = status // finish the send
				return nil
			})
			require.NoError(t, err)
			tracked := NewActivity("mb-1", "uid-1")
			tracked.Status = status
			saveTracked(t, s, nil, tracked)
			for _, at := range []time.Time{BaseTime, BaseTime.Add(time.Hour), BaseTime.Add(365 * 24 * time.Hour)} {
				assert.Empty(t, claim(t, s, "host-b", at, time.Minute, 10), "%s activities are never claimed", status)
			}
		})
	}

	h.run(t, "RetryAfterTransientFailure", func(t *testing.T, s serversync.Store) {
		a := queue(t, s, NewOutgoing("mb-1", "out-1"))
		require.Len(t, claim(t, s, "host-a", BaseTime, time.Minute, 10), 1)
		retryAt := BaseTime.Add(5 * time.Minute)
		_, err := s.UpdateActivity(t.Context(), a.ID, func(a *serversync.EmailActivity) error {
			a.Status = serversync.StatusPendingSend
			a.NextAttemptAt = retryAt
			a.ClaimedBy = ""
			a.ClaimExpiresAt = time.Time{}
			a.LastError = "421 busy"
			return nil
		})
		require.NoError(t, err)
		assert.Empty(t, claim(t, s, "host-a", retryAt.Add(-time.Second), time.Minute, 10))
		got := claim(t, s, "host-b", retryAt, time.Minute, 10)
		require.Len(t, got, 1)
		assert.Equal(t, 2, got[0].Attempts)
		assert.Equal(t, "421 busy", got[0].LastError)
	})

	h.run(t, "ClaimedValuesAreCopies", func(t *testing.T, s serversync.Store) {
		a := FullActivity("mb-1", "out-1")
		a.NextAttemptAt = time.Time{}
		queue(t, s, a)
		got := claim(t, s, "host-a", BaseTime, time.Minute, 10)
		require.Len(t, got, 1)
		want := deepCopyActivity(got[0])
		got[0].Status = serversync.StatusSent
		got[0].Attachments[0].Content[0] = 'X'
		got[0].To[0].Email = "changed@example.com"
		assertSameRecord(t, want, mustGetActivity(t, s, a.ID))
	})

	h.run(t, "ConcurrentClaimersNeverShare", func(t *testing.T, s serversync.Store) {
		const total, workers = 200, 8
		for i := range total {
			queue(t, s, NewOutgoing(fmt.Sprint("mb-", i%7), fmt.Sprint("out-", i)))
		}
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			claimed = map[string]string{}
		)
		for w := range workers {
			host := fmt.Sprint("host-", w)
			wg.Go(func() {
				for {
					got, err := s.ClaimOutgoing(t.Context(), serversync.ClaimRequest{Host: host, Now: BaseTime, TTL: time.Hour, Limit: 3})
					if !assert.NoError(t, err) || len(got) == 0 {
						return
					}
					mu.Lock()
					for _, a := range got {
						if prev, dup := claimed[a.ID]; dup {
							t.Errorf("activity %s claimed by %s and %s", a.ID, prev, host)
						}
						claimed[a.ID] = host
						assert.Equal(t, host, a.ClaimedBy)
						assert.Equal(t, 1, a.Attempts)
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		assert.Len(t, claimed, total, "together the claimers claim every queued email")
	})
}
