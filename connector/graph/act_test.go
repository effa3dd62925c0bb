package graph_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector/acttest"
	"github.com/serversync/serversync/connector/graph"
	"github.com/serversync/serversync/connector/graph/graphtest"
)

// actToken is an app-only token with the permissions ACT needs.
var actToken = jwt(`{"roles":["Calendars.ReadWrite","Contacts.ReadWrite","Tasks.ReadWrite.All"],"tid":"tenant-1","appid":"app-act"}`)

// newACTEnv is a fake Graph with alice's mailbox and a token for her ACT items.
func newACTEnv(t *testing.T, opts *graphtest.Options) *env {
	t.Helper()
	e := newEnv(t, opts)
	e.srv.AddToken(actToken, graphtest.Principal{AppOnly: true, TenantID: tenant, AppID: "app-act",
		Permissions: []string{"Calendars.ReadWrite", "Contacts.ReadWrite", "Tasks.ReadWrite.All"}})
	e.target = fakeTarget(e.srv, alice, actToken)
	return e
}

func (e *env) openACT(t *testing.T, c *graph.Connector) serversync.ACTSession {
	t.Helper()
	s, err := c.OpenACT(context.Background(), e.target)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestACTConformance(t *testing.T) {
	e := newACTEnv(t, nil)
	c := graph.New(nil)
	acttest.Run(t, acttest.Harness{Open: func(ctx context.Context) (serversync.ACTSession, error) { return c.OpenACT(ctx, e.target) }})
}

// Small pages make every round span several delta pages.
func TestACTConformanceSmallPages(t *testing.T) {
	e := newACTEnv(t, nil)
	c := graph.New(&graph.Options{PageSize: 2})
	acttest.Run(t, acttest.Harness{Open: func(ctx context.Context) (serversync.ACTSession, error) { return c.OpenACT(ctx, e.target) }})
}

var berlin = mustLoad("Europe/Berlin")

func mustLoad(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

// graphCall sends a request to the fake as another client (Outlook, a user)
// would, and decodes its JSON reply into out (when not nil).
func (e *env) graphCall(t *testing.T, method, path string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.srv.URL()+"/v1.0/users/"+alice+path, rd)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+actToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	if out != nil {
		require.NoError(t, json.NewDecoder(resp.Body).Decode(out))
	}
	return resp.StatusCode
}

func changesOf(t *testing.T, s serversync.ACTSession, kind serversync.ACTKind, cur []byte) serversync.ACTChanges {
	t.Helper()
	res, err := s.Changes(context.Background(), kind, cur)
	require.NoError(t, err)
	return res
}

func listed(res serversync.ACTChanges, id string) (serversync.ACTChange, bool) {
	for _, ch := range res.Changes {
		if ch.ServerID == id {
			return ch, true
		}
	}
	return serversync.ACTChange{}, false
}

func sampleItems() []serversync.ACTItem {
	start := time.Date(2026, 12, 10, 10, 0, 0, 0, berlin)
	return []serversync.ACTItem{
		&serversync.Appointment{Subject: "Review", Start: serversync.DateTime{Time: start, TZID: "Europe/Berlin"},
			End: serversync.DateTime{Time: start.Add(time.Hour), TZID: "Europe/Berlin"}},
		&serversync.Contact{DisplayName: "Carla Contact", GivenName: "Carla"},
		&serversync.Task{Subject: "File the report"},
	}
}

// An expired delta token (410 SyncStateNotFound), a resyncRequired answer or
// a collection gone from under its link (404) starts a fresh round, reported as
// a reset listing every item.
func TestACTExpiredDeltaResets(t *testing.T) {
	for _, failure := range []struct {
		status int
		code   string
	}{{http.StatusGone, "SyncStateNotFound"}, {http.StatusBadRequest, "resyncRequired"}, {http.StatusNotFound, "ErrorItemNotFound"}} {
		t.Run(failure.code, func(t *testing.T) {
			e := newACTEnv(t, nil)
			s := e.openACT(t, graph.New(nil))
			ctx := context.Background()
			for _, it := range sampleItems() {
				require.NoError(t, s.Put(ctx, it, ""))
				first := changesOf(t, s, it.ACTKind(), nil)
				require.False(t, first.Reset)
				e.srv.InvalidateSyncState(alice, failure.status, failure.code)
				res := changesOf(t, s, it.ACTKind(), first.Cursor)
				assert.True(t, res.Reset, "%s: a lost sync state is a reset", it.ACTKind())
				ch, ok := listed(res, it.Header().ServerID)
				assert.True(t, ok && !ch.Deleted, "%s: the reset lists the item", it.ACTKind())
				again := changesOf(t, s, it.ACTKind(), res.Cursor)
				assert.False(t, again.Reset, "%s: the fresh cursor works", it.ACTKind())
				assert.Empty(t, again.Changes)
			}
		})
	}
}

// 429 with Retry-After is waited out and the request sent again, on writes as
// on reads.
func TestACTThrottlingObeyed(t *testing.T) {
	e := newACTEnv(t, nil)
	c := graph.New(nil)
	s := e.openACT(t, c)
	it := sampleItems()[1]
	e.srv.Throttle(alice, 2, time.Second)
	require.NoError(t, s.Put(context.Background(), it, ""))
	assert.Equal(t, 2, e.srv.Throttled())
	st := c.Stats()
	assert.GreaterOrEqual(t, st.Throttled, int64(2))
	assert.GreaterOrEqual(t, st.RetryWait, 2*time.Second)

	// Past MaxRetryWait the call fails as throttled, classified.
	c2 := graph.New(&graph.Options{MaxRetryWait: 1500 * time.Millisecond})
	s2 := e.openACT(t, c2)
	e.srv.Throttle(alice, 5, time.Second)
	_, err := s2.Changes(context.Background(), serversync.KindContact, nil)
	var ce *serversync.ConnectorError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, serversync.CodeThrottled, ce.Code)
}

// A write with a version the server no longer holds gets 412 from Graph: an
// *ACTConflictError naming the item, with the 412 behind it.
func TestACTConflict412(t *testing.T) {
	e := newACTEnv(t, nil)
	s := e.openACT(t, graph.New(nil))
	ctx := context.Background()
	for _, it := range sampleItems() {
		require.NoError(t, s.Put(ctx, it, ""))
		v1 := it.Header().ChangeKey
		require.NoError(t, s.Put(ctx, it, v1))
		require.NotEqual(t, v1, it.Header().ChangeKey)
		err := s.Put(ctx, it, v1)
		var conflict *serversync.ACTConflictError
		require.ErrorAs(t, err, &conflict, "%s", it.ACTKind())
		assert.Equal(t, it.Header().ServerID, conflict.ServerID)
		assert.Equal(t, v1, conflict.IfMatch)
		assert.Contains(t, conflict.Err.Error(), "412")
		err = s.Delete(ctx, it.ACTKind(), it.Header().ServerID, v1)
		require.ErrorIs(t, err, serversync.ErrACTConflict)
	}
}

// A create retried with the same UID (after a crash, in a new session) finds
// the item the first attempt made, for every kind.
func TestACTCreateRetriedAdopts(t *testing.T) {
	e := newACTEnv(t, nil)
	c := graph.New(nil)
	ctx := context.Background()
	for i, it := range sampleItems() {
		it.Header().UID = fmt.Sprintf("retried-%d", i)
		require.NoError(t, e.openACT(t, c).Put(ctx, it, ""))
		retry := sampleItems()[i]
		retry.Header().UID = it.Header().UID
		err := e.openACT(t, c).Put(ctx, retry, "")
		var conflict *serversync.ACTConflictError
		require.ErrorAs(t, err, &conflict, "%s", it.ACTKind())
		assert.Equal(t, it.Header().ServerID, conflict.ServerID, "%s: the conflict names the item made first", it.ACTKind())
		assert.Empty(t, retry.Header().ServerID)

		// Another UID is created.
		other := sampleItems()[i]
		other.Header().UID = fmt.Sprintf("other-%d", i)
		require.NoError(t, e.openACT(t, c).Put(ctx, other, ""))
		assert.NotEqual(t, it.Header().ServerID, other.Header().ServerID)
	}
}

// The ownership marker lives on the mailbox's default calendar.
func TestACTOwnerMarker(t *testing.T) {
	e := newACTEnv(t, nil)
	c := graph.New(nil)
	ctx := context.Background()
	marker := e.openACT(t, c).(serversync.ACTOwnerMarker)
	owner, err := marker.ACTOwner(ctx)
	require.NoError(t, err)
	assert.Empty(t, owner)
	require.NoError(t, marker.SetACTOwner(ctx, "org-a"))
	owner, err = e.openACT(t, c).(serversync.ACTOwnerMarker).ACTOwner(ctx)
	require.NoError(t, err)
	assert.Equal(t, "org-a", owner)
	require.NoError(t, marker.SetACTOwner(ctx, "org-b"))
	owner, err = marker.ACTOwner(ctx)
	require.NoError(t, err)
	assert.Equal(t, "org-b", owner)
}

// A weekly series across Berlin's DST change: Graph keeps it under the
// Windows zone name and answers in UTC; read back, it is Europe/Berlin again,
// every occurrence at 09:00 local time, 07:00 or 08:00 UTC.
func TestACTRecurringAcrossDSTWindowsZone(t *testing.T) {
	e := newACTEnv(t, nil)
	s := e.openACT(t, graph.New(nil))
	ctx := context.Background()
	start := time.Date(2027, 3, 22, 9, 0, 0, 0, berlin) // Monday before the change on 28 March 2027
	a := &serversync.Appointment{Subject: "Standup", Start: serversync.DateTime{Time: start, TZID: "Europe/Berlin"},
		End:        serversync.DateTime{Time: start.Add(15 * time.Minute), TZID: "Europe/Berlin"},
		Recurrence: &serversync.Recurrence{Rule: "FREQ=WEEKLY;COUNT=4;BYDAY=MO"}}
	require.NoError(t, s.Put(ctx, a, ""))

	var raw struct {
		Start                 map[string]string `json:"start"`
		OriginalStartTimeZone string            `json:"originalStartTimeZone"`
		Recurrence            struct {
			Range map[string]any `json:"range"`
		} `json:"recurrence"`
	}
	require.Equal(t, http.StatusOK, e.graphCall(t, http.MethodGet, "/events/"+a.ServerID, nil, &raw))
	assert.Equal(t, "W. Europe Standard Time", raw.OriginalStartTimeZone, "sent under its Windows name")
	assert.Equal(t, "UTC", raw.Start["timeZone"])
	assert.Equal(t, "W. Europe Standard Time", raw.Recurrence.Range["recurrenceTimeZone"])

	var insts struct {
		Value []struct {
			Start map[string]string `json:"start"`
		} `json:"value"`
	}
	e.graphCall(t, http.MethodGet, "/events/"+a.ServerID+"/instances?startDateTime=2027-03-01T00:00:00Z&endDateTime=2027-05-01T00:00:00Z", nil, &insts)
	var utc []string
	for _, in := range insts.Value {
		utc = append(utc, in.Start["dateTime"][11:16])
	}
	assert.Equal(t, []string{"08:00", "07:00", "07:00", "07:00"}, utc, "the series keeps 09:00 Berlin time across the change")

	got, ok := listed(changesOf(t, s, serversync.KindAppointment, nil), a.ServerID)
	require.True(t, ok)
	ga := got.Item.(*serversync.Appointment)
	assert.Equal(t, "Europe/Berlin", ga.Start.TZID)
	assert.True(t, ga.Start.Time.Equal(start))
	assert.Equal(t, "FREQ=WEEKLY;COUNT=4;BYDAY=MO", ga.Recurrence.Rule)
	assert.Empty(t, ga.Recurrence.Exceptions)

	// An event Outlook made in New York's Windows zone reads back as America/New_York.
	var made struct {
		ID string `json:"id"`
	}
	require.Equal(t, http.StatusCreated, e.graphCall(t, http.MethodPost, "/events", map[string]any{
		"subject": "From Outlook",
		"start":   map[string]string{"dateTime": "2027-03-15T10:00:00", "timeZone": "Eastern Standard Time"},
		"end":     map[string]string{"dateTime": "2027-03-15T11:00:00", "timeZone": "Eastern Standard Time"},
	}, &made))
	got, ok = listed(changesOf(t, s, serversync.KindAppointment, nil), made.ID)
	require.True(t, ok)
	ga = got.Item.(*serversync.Appointment)
	assert.Equal(t, "America/New_York", ga.Start.TZID)
	assert.Equal(t, "2027-03-15 10:00 EDT", ga.Start.Time.Format("2006-01-02 15:04 MST"))
	assert.NotEmpty(t, ga.UID, "an event without the UID property takes its iCalUId")
}

// An occurrence deleted and one changed in Outlook come back as the series'
// exceptions and overrides, on the next incremental round.
func TestACTOccurrenceChangedInOutlook(t *testing.T) {
	e := newACTEnv(t, nil)
	s := e.openACT(t, graph.New(nil))
	ctx := context.Background()
	start := time.Date(2027, 1, 4, 9, 0, 0, 0, berlin)
	a := &serversync.Appointment{Subject: "Weekly", Start: serversync.DateTime{Time: start, TZID: "Europe/Berlin"},
		End:        serversync.DateTime{Time: start.Add(time.Hour), TZID: "Europe/Berlin"},
		Recurrence: &serversync.Recurrence{Rule: "FREQ=WEEKLY;COUNT=5;BYDAY=MO"}}
	require.NoError(t, s.Put(ctx, a, ""))
	first := changesOf(t, s, serversync.KindAppointment, nil)

	var insts struct {
		Value []struct {
			ID string `json:"id"`
		} `json:"value"`
	}
	e.graphCall(t, http.MethodGet, "/events/"+a.ServerID+"/instances?startDateTime=2027-01-01T00:00:00Z&endDateTime=2027-03-01T00:00:00Z", nil, &insts)
	require.Len(t, insts.Value, 5)
	require.Equal(t, http.StatusNoContent, e.graphCall(t, http.MethodDelete, "/events/"+insts.Value[1].ID, nil, nil))
	require.Equal(t, http.StatusOK, e.graphCall(t, http.MethodPatch, "/events/"+insts.Value[3].ID, map[string]any{"subject": "Weekly (special)"}, nil))

	next := changesOf(t, s, serversync.KindAppointment, first.Cursor)
	ch, ok := listed(next, a.ServerID)
	require.True(t, ok, "the series is reported changed")
	got := ch.Item.(*serversync.Appointment)
	require.Len(t, got.Recurrence.Exceptions, 1)
	assert.True(t, got.Recurrence.Exceptions[0].Equal(start.AddDate(0, 0, 7)))
	require.Len(t, got.Overrides, 1)
	assert.Equal(t, "Weekly (special)", got.Overrides[0].Subject)
	assert.True(t, got.Overrides[0].RecurrenceID.Equal(start.AddDate(0, 0, 21)))
	assert.NotEqual(t, a.ChangeKey, got.ChangeKey)
}

// An all-day event Outlook made in a zone west of UTC: Graph answers its
// midnight in UTC (08:00); read back it is still the same dates.
func TestACTAllDayFromOutlook(t *testing.T) {
	e := newACTEnv(t, nil)
	s := e.openACT(t, graph.New(nil))
	var made struct {
		ID string `json:"id"`
	}
	require.Equal(t, http.StatusCreated, e.graphCall(t, http.MethodPost, "/events", map[string]any{
		"subject": "Offsite", "isAllDay": true,
		"start": map[string]string{"dateTime": "2027-02-01T00:00:00", "timeZone": "Pacific Standard Time"},
		"end":   map[string]string{"dateTime": "2027-02-03T00:00:00", "timeZone": "Pacific Standard Time"},
	}, &made))
	ch, ok := listed(changesOf(t, s, serversync.KindAppointment, nil), made.ID)
	require.True(t, ok)
	a := ch.Item.(*serversync.Appointment)
	assert.True(t, a.AllDay)
	assert.Equal(t, time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC), a.Start.Time)
	assert.Equal(t, time.Date(2027, 2, 3, 0, 0, 0, 0, time.UTC), a.End.Time)
	assert.Empty(t, a.Start.TZID)
}

// A delta page replayed in the middle of a round (its items again, in front
// of the next page's) does not report an item twice.
func TestACTReplayedPage(t *testing.T) {
	var e *env
	var deltas atomic.Int32
	e = newACTEnv(t, &graphtest.Options{OnRequest: func(_ context.Context, _, _, path string) {
		if strings.HasSuffix(path, "/contacts/delta") && deltas.Add(1) == 2 {
			e.srv.ReplayNextPage(alice)
		}
	}})
	s := e.openACT(t, graph.New(&graph.Options{PageSize: 2}))
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		require.NoError(t, s.Put(ctx, &serversync.Contact{DisplayName: fmt.Sprintf("Contact %d", i)}, ""))
	}
	res := changesOf(t, s, serversync.KindContact, nil)
	require.GreaterOrEqual(t, deltas.Load(), int32(3), "the round spans pages")
	seen := map[string]bool{}
	for _, ch := range res.Changes {
		assert.False(t, seen[ch.ServerID], "%s listed twice", ch.ServerID)
		seen[ch.ServerID] = true
	}
	assert.Len(t, seen, 5)
}

// A token without the ACT permissions: the refusal is classified, with advice
// naming the permissions.
func TestACTNoPermission(t *testing.T) {
	e := newEnv(t, nil) // Mail.ReadWrite and Mail.Send only
	s, err := graph.New(nil).OpenACT(context.Background(), e.target)
	require.NoError(t, err)
	defer s.Close()
	_, err = s.Changes(context.Background(), serversync.KindTask, nil)
	var ce *serversync.ConnectorError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, serversync.CodeNoPermission, ce.Code)
	assert.Contains(t, err.Error(), "Tasks.ReadWrite.All")
}

// calendarView delta reports a series deleted in Outlook only as its
// occurrences' removals: the series itself is reported deleted all the same.
func TestACTSeriesDeletedInOutlook(t *testing.T) {
	e := newACTEnv(t, nil)
	s := e.openACT(t, graph.New(nil))
	ctx := context.Background()
	start := time.Date(2027, 2, 1, 9, 0, 0, 0, berlin)
	series := &serversync.Appointment{Subject: "Series", Start: serversync.DateTime{Time: start, TZID: "Europe/Berlin"},
		End:        serversync.DateTime{Time: start.Add(time.Hour), TZID: "Europe/Berlin"},
		Recurrence: &serversync.Recurrence{Rule: "FREQ=DAILY;COUNT=3"}}
	single := sampleItems()[0]
	require.NoError(t, s.Put(ctx, series, ""))
	require.NoError(t, s.Put(ctx, single, ""))
	first := changesOf(t, s, serversync.KindAppointment, nil)
	_, ok := listed(first, series.ServerID)
	require.True(t, ok)

	require.Equal(t, http.StatusNoContent, e.graphCall(t, http.MethodDelete, "/events/"+series.ServerID, nil, nil))
	next := changesOf(t, s, serversync.KindAppointment, first.Cursor)
	ch, ok := listed(next, series.ServerID)
	assert.True(t, ok && ch.Deleted, "the series is reported deleted: %+v", next.Changes)
	_, ok = listed(next, single.Header().ServerID)
	assert.False(t, ok, "the single event did not change")

	after := changesOf(t, s, serversync.KindAppointment, next.Cursor)
	assert.Empty(t, after.Changes)
}

// An item the delta lists but that is deleted before it is read is reported
// deleted.
func TestACTDeletedWhileRead(t *testing.T) {
	var e *env
	var target atomic.Value
	var once sync.Once
	e = newACTEnv(t, &graphtest.Options{OnRequest: func(_ context.Context, _, method, path string) {
		if id, _ := target.Load().(string); id != "" && method == http.MethodGet && path == "/contacts/"+id {
			once.Do(func() { require.NoError(t, e.srv.RemoveACTItem(alice, id)) })
		}
	}})
	s := e.openACT(t, graph.New(nil))
	c := &serversync.Contact{DisplayName: "Short-lived"}
	require.NoError(t, s.Put(context.Background(), c, ""))
	target.Store(c.ServerID)
	res := changesOf(t, s, serversync.KindContact, nil)
	ch, ok := listed(res, c.ServerID)
	assert.True(t, ok && ch.Deleted, "%+v", res.Changes)
}

// An update sends every field, so what the caller cleared is cleared on the
// server: attendees, location, a recurrence.
func TestACTUpdateClears(t *testing.T) {
	e := newACTEnv(t, nil)
	s := e.openACT(t, graph.New(nil))
	ctx := context.Background()
	start := time.Date(2027, 5, 3, 9, 0, 0, 0, berlin)
	a := &serversync.Appointment{Subject: "Planning", Location: "Room 1", Start: serversync.DateTime{Time: start, TZID: "Europe/Berlin"},
		End:        serversync.DateTime{Time: start.Add(time.Hour), TZID: "Europe/Berlin"},
		Attendees:  []serversync.Attendee{{Email: "anna@example.test"}},
		Recurrence: &serversync.Recurrence{Rule: "FREQ=WEEKLY;COUNT=3;BYDAY=MO"}}
	require.NoError(t, s.Put(ctx, a, ""))
	a.Attendees, a.Location, a.Recurrence = nil, "", nil
	require.NoError(t, s.Put(ctx, a, a.ChangeKey))
	ch, ok := listed(changesOf(t, s, serversync.KindAppointment, nil), a.ServerID)
	require.True(t, ok)
	got := ch.Item.(*serversync.Appointment)
	assert.Empty(t, got.Attendees)
	assert.Empty(t, got.Location)
	assert.Nil(t, got.Recurrence)
	assert.Equal(t, "Planning", got.Subject)
}

// Once the session's window reaches well past the cursor's, a round over the
// wider window starts (a reset): appointments that were beyond the old window
// appear, and those of the old window are still listed, so the reset deletes
// nothing.
func TestACTWindowRolls(t *testing.T) {
	e := newACTEnv(t, nil)
	ctx := context.Background()
	now := time.Now()
	at := func(subject string, start time.Time) *serversync.Appointment {
		start = start.UTC().Truncate(time.Hour)
		return &serversync.Appointment{Subject: subject, Start: serversync.DateTime{Time: start}, End: serversync.DateTime{Time: start.Add(time.Hour)}}
	}
	past, soon, later := at("past", now.AddDate(0, 0, -20)), at("soon", now.AddDate(0, 0, 10)), at("later", now.AddDate(0, 0, 200))
	narrow := graph.New(&graph.Options{CalendarPast: 30 * 24 * time.Hour, CalendarFuture: 60 * 24 * time.Hour})
	s := e.openACT(t, narrow)
	for _, a := range []*serversync.Appointment{past, soon, later} {
		require.NoError(t, s.Put(ctx, a, ""))
	}
	first := changesOf(t, s, serversync.KindAppointment, nil)
	_, ok := listed(first, later.ServerID)
	require.False(t, ok, "beyond the narrow window")

	// The same window: incremental.
	same := changesOf(t, e.openACT(t, narrow), serversync.KindAppointment, first.Cursor)
	assert.False(t, same.Reset)

	wide := graph.New(&graph.Options{CalendarPast: 7 * 24 * time.Hour, CalendarFuture: 365 * 24 * time.Hour})
	res := changesOf(t, e.openACT(t, wide), serversync.KindAppointment, first.Cursor)
	assert.True(t, res.Reset, "a round over the wider window")
	for _, a := range []*serversync.Appointment{past, soon, later} {
		ch, ok := listed(res, a.ServerID)
		assert.True(t, ok && !ch.Deleted, "%s listed", a.Subject)
	}
	again := changesOf(t, e.openACT(t, wide), serversync.KindAppointment, res.Cursor)
	assert.False(t, again.Reset)
	assert.Empty(t, again.Changes)
}

// calendarView delta reports an event that left the window like a deleted
// one: an event moved out of it comes back changed, with its new time, one
// written outside it is not reported deleted, and a deleted one still is. A
// reset says which window it listed.
func TestACTLeavingTheWindowIsNoDelete(t *testing.T) {
	e := newACTEnv(t, nil)
	ctx := context.Background()
	s := e.openACT(t, graph.New(nil))
	start := time.Now().UTC().Truncate(time.Hour).AddDate(0, 0, 7)
	at := func(subject string, start time.Time) *serversync.Appointment {
		return &serversync.Appointment{Subject: subject, Start: serversync.DateTime{Time: start}, End: serversync.DateTime{Time: start.Add(time.Hour)}}
	}
	moved, deleted := at("moved", start), at("deleted", start)
	require.NoError(t, s.Put(ctx, moved, ""))
	require.NoError(t, s.Put(ctx, deleted, ""))
	first := changesOf(t, s, serversync.KindAppointment, nil)
	assert.Len(t, first.Changes, 2)
	require.False(t, first.Window.IsZero(), "appointments are listed in a window")
	assert.True(t, first.Window.From.Before(start) && first.Window.Until.After(start))

	longAgo := start.AddDate(-3, 0, 0)
	moved.Start, moved.End = serversync.DateTime{Time: longAgo}, serversync.DateTime{Time: longAgo.Add(time.Hour)}
	require.NoError(t, s.Put(ctx, moved, moved.ChangeKey))
	outside := at("written outside", longAgo)
	require.NoError(t, s.Put(ctx, outside, ""))
	require.NoError(t, s.Delete(ctx, serversync.KindAppointment, deleted.ServerID, ""))
	res := changesOf(t, s, serversync.KindAppointment, first.Cursor)
	assert.False(t, res.Reset)
	ch, ok := listed(res, moved.ServerID)
	require.True(t, ok)
	require.False(t, ch.Deleted, "moved out of the window, not deleted")
	assert.True(t, ch.Item.(*serversync.Appointment).Start.Time.Equal(longAgo), "with its new time")
	if ch, ok := listed(res, outside.ServerID); ok {
		assert.False(t, ch.Deleted, "written outside the window, not deleted")
	}
	ch, ok = listed(res, deleted.ServerID)
	assert.True(t, ok && ch.Deleted, "the deleted one")

	e.srv.ExpireSyncState(alice)
	reset := changesOf(t, s, serversync.KindAppointment, res.Cursor)
	require.True(t, reset.Reset)
	assert.Equal(t, first.Window, reset.Window, "the window of the listing")
	_, ok = listed(reset, moved.ServerID)
	assert.False(t, ok, "outside the window, not listed")
	contacts := changesOf(t, s, serversync.KindContact, nil)
	assert.True(t, contacts.Window.IsZero(), "contacts are listed whole")
}

var testStart = time.Date(2027, 1, 1, 9, 0, 0, 0, time.UTC)

// Changed items are read several at once, never more than the mailbox's
// budget: the fake holds the reads until four overlap, and would throttle a
// fifth.
func TestACTReadsOverlapWithinBudget(t *testing.T) {
	var e *env
	var reads atomic.Int32
	four := make(chan struct{})
	var release sync.Once
	e = newACTEnv(t, &graphtest.Options{OnRequest: func(ctx context.Context, _, method, path string) {
		if method != http.MethodGet || !strings.HasPrefix(path, "/contacts/") || strings.HasSuffix(path, "/delta") {
			return
		}
		if reads.Add(1) >= graph.MaxInFlightDefault {
			release.Do(func() { close(four) })
		}
		select {
		case <-four:
		case <-ctx.Done():
		}
	}})
	s := e.openACT(t, graph.New(nil))
	for i := 0; i < 12; i++ {
		require.NoError(t, s.Put(context.Background(), &serversync.Contact{DisplayName: fmt.Sprintf("Contact %d", i)}, ""))
	}
	res := changesOf(t, s, serversync.KindContact, nil)
	assert.Len(t, res.Changes, 12)
	assert.Equal(t, graph.MaxInFlightDefault, e.srv.MaxConcurrent(alice))
	assert.Zero(t, e.srv.Throttled())
}
