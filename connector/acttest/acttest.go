// Package acttest is the conformance suite every ACT connector
// (serversync.ACTConnector) passes: create, read, update and delete of each kind,
// changes since a cursor, optimistic concurrency, recurrence with exceptions, time
// zones across a DST change, all-day events, a contact with every field, a
// completed task and an invalid cursor.
//
// The suite shares the server with whatever else is on it: it tells its own items
// by their UIDs and ignores the others.
package acttest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/serversync/serversync"
)

// Harness is what Run needs from a connector's test.
type Harness struct {
	// Open opens a session on the test account; Run closes it.
	Open func(ctx context.Context) (serversync.ACTSession, error)
}

// Run runs the suite.
func Run(t *testing.T, h Harness) {
	t.Run("AppointmentCRUDAndConflict", func(t *testing.T) { testCRUD(t, h, serversync.KindAppointment) })
	t.Run("ContactCRUDAndConflict", func(t *testing.T) { testCRUD(t, h, serversync.KindContact) })
	t.Run("TaskCRUDAndConflict", func(t *testing.T) { testCRUD(t, h, serversync.KindTask) })
	t.Run("ChangesSinceCursor", func(t *testing.T) {
		for _, kind := range serversync.ACTKinds {
			t.Run(string(kind), func(t *testing.T) { testChanges(t, h, kind) })
		}
	})
	t.Run("RecurrenceWithException", func(t *testing.T) { testRecurrence(t, h) })
	t.Run("AcrossDSTInBerlin", func(t *testing.T) { testDST(t, h) })
	t.Run("AllDay", func(t *testing.T) { testAllDay(t, h) })
	t.Run("ContactWithEveryField", func(t *testing.T) { testContactFields(t, h) })
	t.Run("TaskCompleted", func(t *testing.T) { testTaskCompleted(t, h) })
	t.Run("InvalidCursorResets", func(t *testing.T) { testInvalidCursor(t, h) })
}

func open(t *testing.T, h Harness) (context.Context, serversync.ACTSession) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	s, err := h.Open(ctx)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return ctx, s
}

var berlin = mustLoad("Europe/Berlin")

func mustLoad(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

// sample returns a fresh item of kind with a unique UID.
func sample(kind serversync.ACTKind, subject string) serversync.ACTItem {
	uid := "acttest-" + serversync.NewID()
	switch kind {
	case serversync.KindAppointment:
		start := time.Date(2026, 5, 12, 14, 0, 0, 0, berlin)
		return &serversync.Appointment{ACTHeader: serversync.ACTHeader{UID: uid}, Subject: subject,
			Start: serversync.DateTime{Time: start, TZID: "Europe/Berlin"},
			End:   serversync.DateTime{Time: start.Add(time.Hour), TZID: "Europe/Berlin"}}
	case serversync.KindContact:
		return &serversync.Contact{ACTHeader: serversync.ACTHeader{UID: uid}, DisplayName: subject, GivenName: subject, FamilyName: "Tester"}
	default:
		return &serversync.Task{ACTHeader: serversync.ACTHeader{UID: uid}, Subject: subject,
			Due: serversync.DateTime{Time: time.Date(2026, 6, 1, 17, 0, 0, 0, berlin), TZID: "Europe/Berlin"}}
	}
}

func subjectOf(it serversync.ACTItem) string {
	switch v := it.(type) {
	case *serversync.Appointment:
		return v.Subject
	case *serversync.Contact:
		return v.DisplayName
	case *serversync.Task:
		return v.Subject
	}
	return ""
}

func setSubject(it serversync.ACTItem, s string) {
	switch v := it.(type) {
	case *serversync.Appointment:
		v.Subject = s
	case *serversync.Contact:
		v.DisplayName, v.GivenName = s, s
	case *serversync.Task:
		v.Subject = s
	}
}

// readBack finds the item with serverID among every item of kind.
func readBack(t *testing.T, ctx context.Context, s serversync.ACTSession, kind serversync.ACTKind, serverID string) serversync.ACTItem {
	t.Helper()
	res, err := s.Changes(ctx, kind, nil)
	if err != nil {
		t.Fatalf("changes: %v", err)
	}
	for _, ch := range res.Changes {
		if ch.ServerID == serverID && !ch.Deleted {
			return ch.Item
		}
	}
	t.Fatalf("%s %s not listed by Changes(nil)", kind, serverID)
	return nil
}

func put(t *testing.T, ctx context.Context, s serversync.ACTSession, it serversync.ACTItem) {
	t.Helper()
	if err := s.Put(ctx, it, it.Header().ChangeKey); err != nil {
		t.Fatalf("put %s: %v", it.ACTKind(), err)
	}
	if it.Header().ServerID == "" || it.Header().ChangeKey == "" {
		t.Fatalf("put %s left ServerID %q, ChangeKey %q", it.ACTKind(), it.Header().ServerID, it.Header().ChangeKey)
	}
}

func testCRUD(t *testing.T, h Harness, kind serversync.ACTKind) {
	ctx, s := open(t, h)
	it := sample(kind, "Created")
	put(t, ctx, s, it)
	id, v1 := it.Header().ServerID, it.Header().ChangeKey
	got := readBack(t, ctx, s, kind, id)
	if subjectOf(got) != "Created" || got.Header().UID != it.Header().UID || got.Header().ChangeKey != v1 {
		t.Fatalf("read back %q uid %q version %q, want %q uid %q version %q",
			subjectOf(got), got.Header().UID, got.Header().ChangeKey, "Created", it.Header().UID, v1)
	}
	// Creating the same item again must not replace it.
	dup := sample(kind, "Duplicate")
	dup.Header().UID = it.Header().UID
	if err := s.Put(ctx, dup, ""); !errors.Is(err, serversync.ErrACTConflict) {
		t.Fatalf("second create with the same UID: %v, want ErrACTConflict", err)
	}

	setSubject(got, "Updated")
	put(t, ctx, s, got)
	if got.Header().ChangeKey == v1 {
		t.Fatalf("update kept the version %q", v1)
	}
	if again := readBack(t, ctx, s, kind, id); subjectOf(again) != "Updated" {
		t.Fatalf("after update read %q", subjectOf(again))
	}
	// A writer that still holds v1 must not overwrite the update.
	stale := sample(kind, "Stale")
	*stale.Header() = *got.Header()
	setSubject(stale, "Stale")
	err := s.Put(ctx, stale, v1)
	if !errors.Is(err, serversync.ErrACTConflict) {
		t.Fatalf("update with a stale version: %v, want ErrACTConflict", err)
	}
	if again := readBack(t, ctx, s, kind, id); subjectOf(again) != "Updated" {
		t.Fatalf("the stale update overwrote the item: %q", subjectOf(again))
	}
	if err := s.Delete(ctx, kind, id, v1); !errors.Is(err, serversync.ErrACTConflict) {
		t.Fatalf("delete with a stale version: %v, want ErrACTConflict", err)
	}
	if err := s.Delete(ctx, kind, id, got.Header().ChangeKey); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if err := s.Delete(ctx, kind, id, ""); err != nil {
		t.Fatalf("deleting an item already gone: %v", err)
	}
	res, err := s.Changes(ctx, kind, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range res.Changes {
		if ch.ServerID == id && !ch.Deleted {
			t.Fatalf("deleted item %s still listed", id)
		}
	}
}

func testChanges(t *testing.T, h Harness, kind serversync.ACTKind) {
	ctx, s := open(t, h)
	keep := sample(kind, "Keep")
	put(t, ctx, s, keep)
	gone := sample(kind, "Gone")
	put(t, ctx, s, gone)
	first, err := s.Changes(ctx, kind, nil)
	if err != nil {
		t.Fatal(err)
	}
	if first.Reset {
		t.Fatal("a first sync reports a reset")
	}
	same, err := s.Changes(ctx, kind, first.Cursor)
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range same.Changes {
		if ch.ServerID == keep.Header().ServerID || ch.ServerID == gone.Header().ServerID {
			t.Fatalf("nothing changed, yet %s is reported (deleted %v)", ch.ServerID, ch.Deleted)
		}
	}

	added := sample(kind, "Added")
	put(t, ctx, s, added)
	setSubject(keep, "Changed")
	put(t, ctx, s, keep)
	if err := s.Delete(ctx, kind, gone.Header().ServerID, gone.Header().ChangeKey); err != nil {
		t.Fatal(err)
	}
	next, err := s.Changes(ctx, kind, same.Cursor)
	if err != nil {
		t.Fatal(err)
	}
	if next.Reset {
		t.Fatal("an incremental sync reports a reset")
	}
	seen := map[string]serversync.ACTChange{}
	for _, ch := range next.Changes {
		seen[ch.ServerID] = ch
	}
	if ch, ok := seen[added.Header().ServerID]; !ok || ch.Deleted || subjectOf(ch.Item) != "Added" {
		t.Errorf("new item: %+v (listed %v)", ch, ok)
	}
	if ch, ok := seen[keep.Header().ServerID]; !ok || ch.Deleted || subjectOf(ch.Item) != "Changed" || ch.Item.Header().ChangeKey != keep.Header().ChangeKey {
		t.Errorf("changed item: %+v (listed %v), want version %s", ch, ok, keep.Header().ChangeKey)
	}
	if ch, ok := seen[gone.Header().ServerID]; !ok || !ch.Deleted || ch.Item != nil {
		t.Errorf("deleted item: %+v (listed %v)", ch, ok)
	}
	after, err := s.Changes(ctx, kind, next.Cursor)
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range after.Changes {
		if _, ours := seen[ch.ServerID]; ours {
			t.Errorf("%s reported twice", ch.ServerID)
		}
	}
}

func testInvalidCursor(t *testing.T, h Harness) {
	ctx, s := open(t, h)
	for _, kind := range serversync.ACTKinds {
		it := sample(kind, "Reset")
		put(t, ctx, s, it)
		res, err := s.Changes(ctx, kind, []byte("not a cursor this connector ever made"))
		if err != nil {
			t.Fatalf("%s: an invalid cursor: %v, want a reset", kind, err)
		}
		if !res.Reset {
			t.Fatalf("%s: an invalid cursor did not report a reset", kind)
		}
		if !slices.ContainsFunc(res.Changes, func(ch serversync.ACTChange) bool { return ch.ServerID == it.Header().ServerID && !ch.Deleted }) {
			t.Fatalf("%s: the reset did not list every item", kind)
		}
	}
}

func testRecurrence(t *testing.T, h Harness) {
	ctx, s := open(t, h)
	start := time.Date(2026, 9, 7, 9, 0, 0, 0, berlin) // a Monday
	ex := start.AddDate(0, 0, 7)
	moved := start.AddDate(0, 0, 14)
	a := &serversync.Appointment{ACTHeader: serversync.ACTHeader{UID: "acttest-" + serversync.NewID()},
		Subject: "Weekly", Start: serversync.DateTime{Time: start, TZID: "Europe/Berlin"},
		End:        serversync.DateTime{Time: start.Add(30 * time.Minute), TZID: "Europe/Berlin"},
		Recurrence: &serversync.Recurrence{Rule: "FREQ=WEEKLY;COUNT=6;BYDAY=MO", Exceptions: []time.Time{ex}},
		Overrides: []serversync.Appointment{{Subject: "Weekly (moved)", RecurrenceID: moved,
			Start: serversync.DateTime{Time: moved.Add(2 * time.Hour), TZID: "Europe/Berlin"},
			End:   serversync.DateTime{Time: moved.Add(3 * time.Hour), TZID: "Europe/Berlin"}}},
	}
	put(t, ctx, s, a)
	got := readBack(t, ctx, s, serversync.KindAppointment, a.ServerID).(*serversync.Appointment)
	if got.Recurrence == nil || got.Recurrence.Rule != a.Recurrence.Rule {
		t.Fatalf("recurrence %+v, want rule %q", got.Recurrence, a.Recurrence.Rule)
	}
	if len(got.Recurrence.Exceptions) != 1 || !got.Recurrence.Exceptions[0].Equal(ex) {
		t.Fatalf("exceptions %v, want [%v]", got.Recurrence.Exceptions, ex)
	}
	if len(got.Overrides) != 1 {
		t.Fatalf("%d overrides, want 1", len(got.Overrides))
	}
	o := got.Overrides[0]
	if !o.RecurrenceID.Equal(moved) || o.Subject != "Weekly (moved)" || !o.Start.Time.Equal(moved.Add(2*time.Hour)) || !o.End.Time.Equal(moved.Add(3*time.Hour)) {
		t.Fatalf("override %+v", o)
	}
}

func testDST(t *testing.T, h Harness) {
	ctx, s := open(t, h)
	// Berlin springs forward at 02:00 on 29 March 2026: 01:30–03:30 is one hour.
	start := time.Date(2026, 3, 29, 1, 30, 0, 0, berlin)
	end := time.Date(2026, 3, 29, 3, 30, 0, 0, berlin)
	// A daily series from before the change keeps 09:00 local time after it.
	daily := time.Date(2026, 3, 27, 9, 0, 0, 0, berlin)
	for _, a := range []*serversync.Appointment{
		{Subject: "Across DST", Start: serversync.DateTime{Time: start, TZID: "Europe/Berlin"}, End: serversync.DateTime{Time: end, TZID: "Europe/Berlin"}},
		{Subject: "Daily across DST", Start: serversync.DateTime{Time: daily, TZID: "Europe/Berlin"},
			End:        serversync.DateTime{Time: daily.Add(time.Hour), TZID: "Europe/Berlin"},
			Recurrence: &serversync.Recurrence{Rule: "FREQ=DAILY;COUNT=5", Exceptions: []time.Time{time.Date(2026, 3, 30, 9, 0, 0, 0, berlin)}}},
	} {
		a.UID = "acttest-" + serversync.NewID()
		put(t, ctx, s, a)
		got := readBack(t, ctx, s, serversync.KindAppointment, a.ServerID).(*serversync.Appointment)
		if got.Start.TZID != "Europe/Berlin" || got.End.TZID != "Europe/Berlin" {
			t.Fatalf("%s: time zones %q/%q, want Europe/Berlin", a.Subject, got.Start.TZID, got.End.TZID)
		}
		if !got.Start.Time.Equal(a.Start.Time) || !got.End.Time.Equal(a.End.Time) {
			t.Fatalf("%s: %v–%v, want %v–%v", a.Subject, got.Start.Time, got.End.Time, a.Start.Time, a.End.Time)
		}
		if a.Recurrence != nil {
			ex := got.Recurrence.Exceptions
			if len(ex) != 1 || !ex[0].Equal(a.Recurrence.Exceptions[0]) {
				t.Fatalf("%s: exception %v (after the change, 07:00 UTC), want %v", a.Subject, ex, a.Recurrence.Exceptions[0])
			}
		}
	}
	if d := end.Sub(start); d != time.Hour {
		t.Fatalf("test premise: %v", d)
	}
}

func testAllDay(t *testing.T, h Harness) {
	ctx, s := open(t, h)
	day := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	a := &serversync.Appointment{ACTHeader: serversync.ACTHeader{UID: "acttest-" + serversync.NewID()}, Subject: "Holiday", AllDay: true,
		Start: serversync.DateTime{Time: day}, End: serversync.DateTime{Time: day.AddDate(0, 0, 2)},
		Categories: []string{"Holiday", "Team"}, Sensitivity: serversync.SensitivityPrivate, Reminder: 18 * time.Hour,
		Location: "Everywhere", Body: "Two days off.\nSecond line; with punctuation, too.",
		Organizer: &serversync.Attendee{Name: "Olga Organizer", Email: "olga@example.test"},
		Attendees: []serversync.Attendee{
			{Name: "Anna Accepted", Email: "anna@example.test", Response: serversync.ResponseAccepted},
			{Name: "Otto Optional", Email: "otto@example.test", Optional: true, Response: serversync.ResponseTentative},
			{Email: "dora@example.test", Response: serversync.ResponseDeclined},
			{Email: "nina@example.test"},
		}}
	put(t, ctx, s, a)
	got := readBack(t, ctx, s, serversync.KindAppointment, a.ServerID).(*serversync.Appointment)
	if !got.AllDay || !got.Start.Time.Equal(day) || !got.End.Time.Equal(day.AddDate(0, 0, 2)) {
		t.Fatalf("all-day: %v %v–%v", got.AllDay, got.Start.Time, got.End.Time)
	}
	if got.Location != a.Location || got.Body != a.Body || got.Sensitivity != a.Sensitivity || got.Reminder != a.Reminder ||
		!slices.Equal(got.Categories, a.Categories) {
		t.Fatalf("fields: %+v", got)
	}
	if got.Organizer == nil || *got.Organizer != *a.Organizer || !slices.Equal(got.Attendees, a.Attendees) {
		t.Fatalf("organizer %+v attendees %+v, want %+v %+v", got.Organizer, got.Attendees, a.Organizer, a.Attendees)
	}
}

func testContactFields(t *testing.T, h Harness) {
	ctx, s := open(t, h)
	c := &serversync.Contact{ACTHeader: serversync.ACTHeader{UID: "acttest-" + serversync.NewID()},
		DisplayName: "Dr. Erika M. Mustermann Jr.", GivenName: "Erika", FamilyName: "Mustermann", MiddleName: "M.",
		Prefix: "Dr.", Suffix: "Jr.", Nickname: "Riki",
		Emails: []serversync.ContactValue{{Type: "work", Value: "erika@example.test"}, {Type: "home", Value: "erika@home.example"}},
		Phones: []serversync.ContactValue{{Type: "cell", Value: "+49 170 1234567"}, {Type: "work", Value: "+49 30 987654"}},
		Addresses: []serversync.PostalAddress{{Type: "work", Street: "Heidestraße 17", City: "Köln", Region: "NRW",
			PostalCode: "51147", Country: "Germany"}},
		Company: "Example GmbH", Department: "Sales", JobTitle: "Head of Sales",
		Birthday: time.Date(1964, 8, 12, 0, 0, 0, 0, time.UTC),
		Notes:    "Met at the fair, likes tea.\nCall after 10; not on Fridays.",
	}
	put(t, ctx, s, c)
	got := readBack(t, ctx, s, serversync.KindContact, c.ServerID).(*serversync.Contact)
	want := *c
	want.Modified, got.Modified = time.Time{}, time.Time{}
	if !sameContact(&want, got) {
		t.Fatalf("contact round trip:\n got %+v\nwant %+v", got, &want)
	}
}

func sameContact(a, b *serversync.Contact) bool {
	return a.UID == b.UID && a.DisplayName == b.DisplayName && a.GivenName == b.GivenName && a.FamilyName == b.FamilyName &&
		a.MiddleName == b.MiddleName && a.Prefix == b.Prefix && a.Suffix == b.Suffix && a.Nickname == b.Nickname &&
		slices.Equal(a.Emails, b.Emails) && slices.Equal(a.Phones, b.Phones) && slices.Equal(a.Addresses, b.Addresses) &&
		a.Company == b.Company && a.Department == b.Department && a.JobTitle == b.JobTitle && a.Birthday.Equal(b.Birthday) &&
		a.Notes == b.Notes
}

func testTaskCompleted(t *testing.T, h Harness) {
	ctx, s := open(t, h)
	task := sample(serversync.KindTask, "Send the offer").(*serversync.Task)
	task.Start = serversync.DateTime{Time: time.Date(2026, 5, 30, 8, 0, 0, 0, berlin), TZID: "Europe/Berlin"}
	task.Priority, task.Body, task.Status, task.PercentComplete = 1, "Before the deadline.", serversync.TaskInProgress, 40
	task.Recurrence = &serversync.Recurrence{Rule: "FREQ=MONTHLY;COUNT=3"}
	put(t, ctx, s, task)
	got := readBack(t, ctx, s, serversync.KindTask, task.ServerID).(*serversync.Task)
	if got.Status != serversync.TaskInProgress || got.PercentComplete != 40 || got.Priority != 1 || got.Body != task.Body ||
		!got.Start.Time.Equal(task.Start.Time) || !got.Due.Time.Equal(task.Due.Time) || got.Due.TZID != "Europe/Berlin" ||
		got.Recurrence == nil || got.Recurrence.Rule != task.Recurrence.Rule {
		t.Fatalf("task round trip: %+v", got)
	}
	done := time.Date(2026, 5, 31, 16, 12, 0, 0, time.UTC)
	got.Status, got.PercentComplete, got.Completed = serversync.TaskCompleted, 100, done
	put(t, ctx, s, got)
	again := readBack(t, ctx, s, serversync.KindTask, task.ServerID).(*serversync.Task)
	if again.Status != serversync.TaskCompleted || again.PercentComplete != 100 || !again.Completed.Equal(done) {
		t.Fatalf("completed task read back as %s %d%% at %v", again.Status, again.PercentComplete, again.Completed)
	}
}
