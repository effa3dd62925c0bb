package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
)

func testAlerts(t *testing.T, h harness) {
	h.run(t, "AddListRoundTrip", func(t *testing.T, s serversync.Store) {
		a := NewAlert("user-1")
		a.Level = serversync.AlertWarning
		a.Scope = serversync.ScopeItem
		a.ActivityID = serversync.NewID()
		a.CreatedAt = BaseTime.In(otherZone)
		require.NoError(t, s.AddAlert(t.Context(), a))
		got := Collect(t, s.ListAlerts(t.Context(), serversync.AlertFilter{}))
		require.Len(t, got, 1)
		assertSameRecord(t, a, got[0])
	})

	h.run(t, "DuplicateID", func(t *testing.T, s serversync.Store) {
		a := NewAlert("user-1")
		require.NoError(t, s.AddAlert(t.Context(), a))
		b := NewAlert("user-2")
		b.ID = a.ID
		requireDuplicate(t, s.AddAlert(t.Context(), b), "Alert", "ID")
		got := Collect(t, s.ListAlerts(t.Context(), serversync.AlertFilter{}))
		require.Len(t, got, 1)
		assertSameRecord(t, a, got[0])
	})

	h.run(t, "EmptyIDFails", func(t *testing.T, s serversync.Store) {
		a := NewAlert("user-1")
		a.ID = ""
		require.Error(t, s.AddAlert(t.Context(), a))
		assert.Empty(t, Collect(t, s.ListAlerts(t.Context(), serversync.AlertFilter{})))
	})

	h.run(t, "CopiesInAndOut", func(t *testing.T, s serversync.Store) {
		a := NewAlert("user-1")
		want := *a
		require.NoError(t, s.AddAlert(t.Context(), a))
		a.Message = "changed after add"
		got := Collect(t, s.ListAlerts(t.Context(), serversync.AlertFilter{}))
		require.Len(t, got, 1)
		got[0].Message = "changed by List caller"
		got = Collect(t, s.ListAlerts(t.Context(), serversync.AlertFilter{}))
		require.Len(t, got, 1)
		assertSameRecord(t, &want, got[0])
	})

	// Alerts are stored in this order, each a minute after the previous one.
	setup := func(t *testing.T, s serversync.Store) []*serversync.Alert {
		t.Helper()
		specs := []struct {
			recipient, mailbox, profile string
			level                       serversync.AlertLevel
		}{
			{"user-1", "mb-1", "p-1", serversync.AlertError},
			{"user-2", "mb-2", "p-1", serversync.AlertWarning},
			{"user-1", "mb-1", "p-1", serversync.AlertInformation},
			{"owner-p2", "", "p-2", serversync.AlertError},
			{"user-2", "mb-2", "p-1", serversync.AlertError},
			{"user-1", "mb-3", "p-2", serversync.AlertWarning},
		}
		var all []*serversync.Alert
		for i, sp := range specs {
			a := NewAlert(sp.recipient)
			a.MailboxID, a.ProfileID, a.Level = sp.mailbox, sp.profile, sp.level
			if sp.mailbox == "" {
				a.Scope = serversync.ScopeProfile
			}
			a.CreatedAt = BaseTime.Add(time.Duration(i) * time.Minute)
			require.NoError(t, s.AddAlert(t.Context(), a))
			all = append(all, a)
		}
		return all
	}

	for _, tc := range []struct {
		name   string
		filter serversync.AlertFilter
		want   []int // indexes in storing order; the list is newest first
	}{
		{"All", serversync.AlertFilter{}, []int{5, 4, 3, 2, 1, 0}},
		{"Recipient", serversync.AlertFilter{Recipient: "user-1"}, []int{5, 2, 0}},
		{"MailboxID", serversync.AlertFilter{MailboxID: "mb-2"}, []int{4, 1}},
		{"ProfileID", serversync.AlertFilter{ProfileID: "p-2"}, []int{5, 3}},
		{"Level", serversync.AlertFilter{Level: serversync.AlertError}, []int{4, 3, 0}},
		{"SinceInclusive", serversync.AlertFilter{Since: BaseTime.Add(3 * time.Minute)}, []int{5, 4, 3}},
		{"SinceOtherZone", serversync.AlertFilter{Since: BaseTime.Add(4 * time.Minute).In(otherZone)}, []int{5, 4}},
		{"SinceAfterAll", serversync.AlertFilter{Since: BaseTime.Add(time.Hour)}, nil},
		{"Limit", serversync.AlertFilter{Limit: 2}, []int{5, 4}},
		{"Combined", serversync.AlertFilter{Recipient: "user-2", Level: serversync.AlertError, ProfileID: "p-1"}, []int{4}},
		{"CombinedWithLimit", serversync.AlertFilter{ProfileID: "p-1", Since: BaseTime.Add(time.Minute), Limit: 2}, []int{4, 2}},
	} {
		h.run(t, "List/"+tc.name, func(t *testing.T, s serversync.Store) {
			all := setup(t, s)
			got := Collect(t, s.ListAlerts(t.Context(), tc.filter))
			var idx []int
			for _, a := range got {
				i := slices.IndexFunc(all, func(w *serversync.Alert) bool { return w.ID == a.ID })
				require.GreaterOrEqual(t, i, 0, "unknown alert %s", a.ID)
				idx = append(idx, i)
				assertSameRecord(t, all[i], a)
			}
			assert.Equal(t, tc.want, idx)
		})
	}

	h.run(t, "List/StopsWhenLoopBreaks", func(t *testing.T, s serversync.Store) {
		all := setup(t, s)
		var seen []string
		for a, err := range s.ListAlerts(t.Context(), serversync.AlertFilter{}) {
			require.NoError(t, err)
			seen = append(seen, a.ID)
			if len(seen) == 2 {
				break
			}
		}
		assert.Equal(t, []string{all[5].ID, all[4].ID}, seen)
	})
}
