package ews_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector/acttest"
	"github.com/serversync/serversync/connector/ews"
)

func TestACTConformance(t *testing.T) {
	f := newFixture(t, nil)
	target := f.target(alice, password("alice", "alice-pw"))
	acttest.Run(t, acttest.Harness{Open: func(ctx context.Context) (serversync.ACTSession, error) { return f.conn.OpenACT(ctx, target) }})
}

// Impersonation, small GetItem batches and paged SyncFolderItems.
func TestACTConformanceImpersonatedSmallPages(t *testing.T) {
	f := newFixture(t, &ews.Options{MaxChanges: 2, BatchSize: 1})
	f.srv.AllowImpersonation(svc, carol)
	target := f.target(carol, impersonation(carol))
	acttest.Run(t, acttest.Harness{Open: func(ctx context.Context) (serversync.ACTSession, error) { return f.conn.OpenACT(ctx, target) }})
	for _, r := range f.srv.Requests() {
		if r.Op == "CreateItem" || r.Op == "UpdateItem" {
			assert.Equal(t, carol, r.Impersonated)
			assert.Equal(t, carol, r.Mailbox)
		}
	}
}

func TestACTDelegation(t *testing.T) {
	f := newFixture(t, nil)
	f.srv.AllowDelegate(svc, carol)
	ctx := context.Background()
	s, err := f.conn.OpenACT(ctx, f.target(carol, delegation(carol)))
	require.NoError(t, err)
	a := appointmentAt(time.Date(2026, 5, 12, 14, 0, 0, 0, berlin))
	require.NoError(t, s.Put(ctx, a, ""))
	assert.Len(t, f.srv.Items(carol, "calendar"), 1)
	assert.Empty(t, f.srv.Items(alice, "calendar"))
}

var berlin = mustLoad("Europe/Berlin")

func mustLoad(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

func appointmentAt(start time.Time) *serversync.Appointment {
	return &serversync.Appointment{ACTHeader: serversync.ACTHeader{UID: "uid-" + serversync.NewID()}, Subject: "Meeting",
		Start: serversync.DateTime{Time: start, TZID: start.Location().String()},
		End:   serversync.DateTime{Time: start.Add(time.Hour), TZID: start.Location().String()}}
}

func openACT(t *testing.T, f *fixture) serversync.ACTSession {
	t.Helper()
	s, err := f.conn.OpenACT(context.Background(), f.target(alice, password("alice", "alice-pw")))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// Another client changes the item: the stale ChangeKey is refused with
// ErrorIrresolvableConflict, surfaced as *ACTConflictError, and nothing is overwritten.
func TestACTConflictOnStaleChangeKey(t *testing.T) {
	f := newFixture(t, nil)
	s, ctx := openACT(t, f), context.Background()
	task := &serversync.Task{Subject: "Call back"}
	require.NoError(t, s.Put(ctx, task, ""))
	require.NotEmpty(t, task.UID, "the connector fills in a UID")
	require.True(t, f.srv.Touch(alice, task.ServerID, "Changed elsewhere"))

	stale := task.ChangeKey
	task.Subject = "Mine"
	err := s.Put(ctx, task, stale)
	var ce *serversync.ACTConflictError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, task.ServerID, ce.ServerID)
	var re *ews.ResponseError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "ErrorIrresolvableConflict", re.Code)
	assert.Equal(t, "Changed elsewhere", f.srv.Items(alice, "tasks")[task.ServerID])

	require.ErrorIs(t, s.Delete(ctx, serversync.KindTask, task.ServerID, stale), serversync.ErrACTConflict)
	assert.Len(t, f.srv.Items(alice, "tasks"), 1, "a stale delete removes nothing")
}

// Exchange forgot the SyncState: Changes starts over and reports Reset.
func TestACTInvalidSyncStateResets(t *testing.T) {
	f := newFixture(t, nil)
	s, ctx := openACT(t, f), context.Background()
	c := &serversync.Contact{DisplayName: "Erika", GivenName: "Erika"}
	require.NoError(t, s.Put(ctx, c, ""))
	first, err := s.Changes(ctx, serversync.KindContact, nil)
	require.NoError(t, err)
	require.Len(t, first.Changes, 1)

	f.srv.InvalidateSyncStates(alice)
	res, err := s.Changes(ctx, serversync.KindContact, first.Cursor)
	require.NoError(t, err)
	assert.True(t, res.Reset)
	require.Len(t, res.Changes, 1)
	assert.Equal(t, c.ServerID, res.Changes[0].ServerID)
	assert.Equal(t, "Erika", res.Changes[0].Item.(*serversync.Contact).DisplayName)

	// A cursor of another kind is not taken for this one's.
	res, err = s.Changes(ctx, serversync.KindTask, first.Cursor)
	require.NoError(t, err)
	assert.True(t, res.Reset)
}

// ErrorServerBusy is waited out as BackOffMilliseconds says, then the write goes through once.
func TestACTBusyObeyed(t *testing.T) {
	f := newFixture(t, nil)
	s, ctx := openACT(t, f), context.Background()
	f.srv.InjectBusy("CreateItem", 2, 20*time.Millisecond)
	a := appointmentAt(time.Date(2026, 5, 12, 14, 0, 0, 0, berlin))
	require.NoError(t, s.Put(ctx, a, ""))
	assert.Equal(t, int64(2), f.conn.Stats().Busy)
	assert.GreaterOrEqual(t, f.conn.Stats().RetryWait, 40*time.Millisecond)
	assert.Len(t, f.srv.Items(alice, "calendar"), 1)

	f.srv.InjectBusy("SyncFolderItems", 1, 10*time.Millisecond)
	res, err := s.Changes(ctx, serversync.KindAppointment, nil)
	require.NoError(t, err)
	require.Len(t, res.Changes, 1)

	// Past MaxBusyRetries the failure is transient and throttled.
	f.srv.InjectBusy("UpdateItem", ews.MaxBusyRetriesDefault+1, time.Millisecond)
	err = s.Put(ctx, a, a.ChangeKey)
	var ce *serversync.ConnectorError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, serversync.CodeThrottled, ce.Code)
	assert.Equal(t, serversync.ErrorTransient, ce.Kind)
}

// A create retried after a crash (its reply lost) finds the UID and names the
// item to adopt instead of creating a second one.
func TestACTRetriedCreateAdopts(t *testing.T) {
	f := newFixture(t, nil)
	s, ctx := openACT(t, f), context.Background()
	for _, kind := range serversync.ACTKinds {
		var first, retry serversync.ACTItem
		switch kind {
		case serversync.KindAppointment:
			first, retry = appointmentAt(time.Date(2026, 5, 12, 14, 0, 0, 0, berlin)), appointmentAt(time.Date(2026, 5, 12, 14, 0, 0, 0, berlin))
		case serversync.KindContact:
			first, retry = &serversync.Contact{DisplayName: "A"}, &serversync.Contact{DisplayName: "A"}
		default:
			first, retry = &serversync.Task{Subject: "A"}, &serversync.Task{Subject: "A"}
		}
		first.Header().UID = "fixed-" + string(kind)
		retry.Header().UID = first.Header().UID
		require.NoError(t, s.Put(ctx, first, ""))
		err := s.Put(ctx, retry, "")
		var ce *serversync.ACTConflictError
		require.ErrorAs(t, err, &ce, string(kind))
		assert.Equal(t, first.Header().ServerID, ce.ServerID, string(kind))
		assert.True(t, errors.Is(err, serversync.ErrACTConflict))
		assert.Len(t, f.srv.Items(alice, map[serversync.ACTKind]string{serversync.KindAppointment: "calendar",
			serversync.KindContact: "contacts", serversync.KindTask: "tasks"}[kind]), 1, string(kind))
	}
	assert.Equal(t, 3, f.srv.Count("CreateItem"))
}

// A weekly series across the end of DST, written in New York time: Exchange
// holds it with the Windows zone "Eastern Standard Time", and it reads back in
// America/New_York, its 10:00 kept on both sides of the change, with the
// occurrence removed after the change found by its New York start.
func TestACTRecurringAcrossDSTWindowsZone(t *testing.T) {
	f := newFixture(t, nil)
	s, ctx := openACT(t, f), context.Background()
	ny := mustLoad("America/New_York")
	start := time.Date(2026, 10, 26, 10, 0, 0, 0, ny) // a Monday; DST ends on 1 November
	ex := time.Date(2026, 11, 9, 10, 0, 0, 0, ny)
	a := appointmentAt(start)
	a.Recurrence = &serversync.Recurrence{Rule: "FREQ=WEEKLY;COUNT=4;BYDAY=MO", Exceptions: []time.Time{ex}}
	require.NoError(t, s.Put(ctx, a, ""))

	res, err := s.Changes(ctx, serversync.KindAppointment, nil)
	require.NoError(t, err)
	require.Len(t, res.Changes, 1)
	got := res.Changes[0].Item.(*serversync.Appointment)
	assert.Equal(t, "America/New_York", got.Start.TZID)
	assert.True(t, got.Start.Time.Equal(start), "%v", got.Start.Time)
	require.NotNil(t, got.Recurrence)
	assert.Equal(t, "FREQ=WEEKLY;COUNT=4;BYDAY=MO", got.Recurrence.Rule)
	require.Len(t, got.Recurrence.Exceptions, 1)
	assert.True(t, got.Recurrence.Exceptions[0].Equal(ex), "%v", got.Recurrence.Exceptions[0])
	assert.Equal(t, 10, got.Recurrence.Exceptions[0].Hour(), "10:00 New York time after the change")
	assert.Equal(t, a.ChangeKey, got.ChangeKey, "Put returns the master's ChangeKey after its exceptions")
}

// A rule Exchange has no pattern for is refused for the item, before any write.
func TestACTUnsupportedRuleRefused(t *testing.T) {
	f := newFixture(t, nil)
	s, ctx := openACT(t, f), context.Background()
	a := appointmentAt(time.Date(2026, 5, 12, 14, 0, 0, 0, berlin))
	a.Recurrence = &serversync.Recurrence{Rule: "FREQ=MONTHLY;BYDAY=-1FR;BYSETPOS=1"}
	err := s.Put(ctx, a, "")
	var ce *serversync.ConnectorError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, serversync.ErrorPermanent, ce.Kind)
	assert.Equal(t, serversync.ScopeItem, ce.Scope)
	assert.Zero(t, f.srv.Count("CreateItem"))
	assert.Empty(t, a.ServerID)
}

// A service account without the impersonation right is told so, for the mailbox.
func TestACTImpersonationDenied(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	s, err := f.conn.OpenACT(ctx, f.target(carol, impersonation(carol)))
	require.NoError(t, err)
	_, err = s.Changes(ctx, serversync.KindAppointment, nil)
	var ce *serversync.ConnectorError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, serversync.CodeNoPermission, ce.Code)
	assert.Equal(t, serversync.ScopeMailbox, ce.Scope)
}
