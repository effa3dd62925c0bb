package dav_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector/dav"
)

var berlin, _ = time.LoadLocation("Europe/Berlin")

func TestAppointmentWritesVTIMEZONEWithBerlinTransitions(t *testing.T) {
	start := time.Date(2026, 3, 29, 1, 30, 0, 0, berlin)
	data, err := dav.EncodeAppointment(&serversync.Appointment{ACTHeader: serversync.ACTHeader{UID: "u1"}, Subject: "x",
		Start: serversync.DateTime{Time: start, TZID: "Europe/Berlin"},
		End:   serversync.DateTime{Time: start.Add(time.Hour), TZID: "Europe/Berlin"}})
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(data), "\r\n", "\n")
	for _, want := range []string{
		"BEGIN:VTIMEZONE\nTZID:Europe/Berlin",
		"DTSTART;TZID=Europe/Berlin:20260329T013000", "DTEND;TZID=Europe/Berlin:20260329T033000",
		// 29 March 2026, 02:00 CET → 03:00 CEST; 25 October 2026, 03:00 CEST → 02:00 CET.
		"BEGIN:DAYLIGHT\nDTSTART:20260329T020000", "BEGIN:STANDARD\nDTSTART:20261025T030000",
		"TZOFFSETFROM:+0100\nTZOFFSETTO:+0200",
	} {
		if !strings.Contains(s, want) && !containsProps(s, want) {
			t.Errorf("missing %q in\n%s", want, s)
		}
	}
	if strings.Contains(s, "VALUE=TEXT") {
		t.Errorf("UTC offsets written as TEXT:\n%s", s)
	}
}

// containsProps checks lines of want appear in one component, in any order.
func containsProps(s, want string) bool {
	lines := strings.Split(want, "\n")
	for _, comp := range strings.Split(s, "BEGIN:") {
		if !strings.HasPrefix(comp, strings.TrimPrefix(lines[0], "BEGIN:")) && strings.HasPrefix(lines[0], "BEGIN:") {
			continue
		}
		ok := true
		for _, l := range lines[1:] {
			ok = ok && strings.Contains(comp, l+"\n")
		}
		if ok {
			return true
		}
	}
	return false
}

func TestAppointmentRoundTrip(t *testing.T) {
	start := time.Date(2026, 10, 20, 9, 0, 0, 0, berlin)
	a := &serversync.Appointment{ACTHeader: serversync.ACTHeader{UID: "u2"}, Subject: "Review; part 1, draft", Body: "Line 1\nLine 2",
		Location: "Room 4", Start: serversync.DateTime{Time: start, TZID: "Europe/Berlin"},
		End:        serversync.DateTime{Time: start.Add(90 * time.Minute), TZID: "Europe/Berlin"},
		Organizer:  &serversync.Attendee{Name: "Olga", Email: "olga@example.test"},
		Attendees:  []serversync.Attendee{{Name: "Anna", Email: "anna@example.test", Response: serversync.ResponseAccepted}, {Email: "bo@example.test", Optional: true}},
		Recurrence: &serversync.Recurrence{Rule: "FREQ=WEEKLY;COUNT=4", Exceptions: []time.Time{start.AddDate(0, 0, 7), start.AddDate(0, 0, 14)}},
		Overrides: []serversync.Appointment{{Subject: "Moved", RecurrenceID: start.AddDate(0, 0, 21),
			Start: serversync.DateTime{Time: start.AddDate(0, 0, 22), TZID: "Europe/Berlin"},
			End:   serversync.DateTime{Time: start.AddDate(0, 0, 22).Add(time.Hour), TZID: "Europe/Berlin"}}},
		Reminder: 15 * time.Minute, Categories: []string{"A", "B"}, Sensitivity: serversync.SensitivityConfidential}
	data, err := dav.EncodeAppointment(a)
	if err != nil {
		t.Fatal(err)
	}
	got, err := dav.DecodeAppointment(data)
	if err != nil {
		t.Fatal(err)
	}
	if got.UID != "u2" || got.Subject != a.Subject || got.Body != a.Body || got.Location != a.Location ||
		!got.Start.Time.Equal(a.Start.Time) || got.Start.TZID != "Europe/Berlin" || !got.End.Time.Equal(a.End.Time) ||
		*got.Organizer != *a.Organizer || !slices.Equal(got.Attendees, a.Attendees) || got.Recurrence.Rule != a.Recurrence.Rule ||
		!slices.EqualFunc(got.Recurrence.Exceptions, a.Recurrence.Exceptions, time.Time.Equal) || got.Reminder != a.Reminder ||
		!slices.Equal(got.Categories, a.Categories) || got.Sensitivity != a.Sensitivity || len(got.Overrides) != 1 ||
		got.Overrides[0].Subject != "Moved" || !got.Overrides[0].RecurrenceID.Equal(a.Overrides[0].RecurrenceID) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, a)
	}
}

func TestDecodeForeignCalendars(t *testing.T) {
	// Outlook's Windows zone name with its VTIMEZONE, an EXDATE list, a DURATION and
	// an all-day event without DTEND.
	outlook := "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VTIMEZONE\r\nTZID:W. Europe Standard Time\r\n" +
		"BEGIN:STANDARD\r\nDTSTART:16010101T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\n" +
		"BEGIN:DAYLIGHT\r\nDTSTART:16010101T020000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n" +
		"BEGIN:VEVENT\r\nUID:o1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;TZID=W. Europe Standard Time:20260105T100000\r\n" +
		"DURATION:PT45M\r\nRRULE:FREQ=DAILY;COUNT=5\r\nEXDATE;TZID=W. Europe Standard Time:20260106T100000,20260107T100000\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
	a, err := dav.DecodeAppointment([]byte(outlook))
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC); !a.Start.Time.Equal(want) || a.End.Time.Sub(a.Start.Time) != 45*time.Minute {
		t.Errorf("start %v end %v", a.Start.Time, a.End.Time)
	}
	if len(a.Recurrence.Exceptions) != 2 {
		t.Errorf("exceptions %v", a.Recurrence.Exceptions)
	}
	allDay := "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:d1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;VALUE=DATE:20261224\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
	d, err := dav.DecodeAppointment([]byte(allDay))
	if err != nil {
		t.Fatal(err)
	}
	if !d.AllDay || !d.End.Time.Equal(time.Date(2026, 12, 25, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("all day %v end %v", d.AllDay, d.End.Time)
	}
	for _, bad := range []string{"", "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n",
		"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:b\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;TZID=Nowhere/Else:20260105T100000\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"} {
		if _, err := dav.DecodeAppointment([]byte(bad)); !errors.Is(err, dav.ErrBadData) {
			t.Errorf("%q: %v, want ErrBadData", bad, err)
		}
	}
}

func TestTaskRoundTripAndValidation(t *testing.T) {
	done := time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)
	task := &serversync.Task{ACTHeader: serversync.ACTHeader{UID: "t1"}, Subject: "Do", Status: serversync.TaskCompleted,
		PercentComplete: 100, Completed: done, Priority: 5, Due: serversync.DateTime{Time: time.Date(2026, 2, 4, 12, 0, 0, 0, berlin), TZID: "Europe/Berlin"}}
	data, err := dav.EncodeTask(task)
	if err != nil {
		t.Fatal(err)
	}
	got, err := dav.DecodeTask(data)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != serversync.TaskCompleted || got.PercentComplete != 100 || !got.Completed.Equal(done) || got.Priority != 5 || !got.Due.Time.Equal(task.Due.Time) {
		t.Fatalf("round trip %+v", got)
	}
	for _, bad := range []*serversync.Task{{PercentComplete: 101}, {Priority: 10}, {Status: "nonsense"},
		{Recurrence: &serversync.Recurrence{Rule: "FREQ=DAILY"}}} {
		if _, err := dav.EncodeTask(bad); !errors.Is(err, dav.ErrBadData) {
			t.Errorf("%+v: %v, want ErrBadData", bad, err)
		}
	}
}

func TestContactReadsVCard3(t *testing.T) {
	v3 := "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c3\r\nFN:Max Muster\r\nN:Muster;Max;;;\r\nEMAIL;TYPE=INTERNET,WORK:max@example.test\r\n" +
		"TEL;TYPE=CELL,VOICE:+49 1\r\nADR;TYPE=HOME:;;Weg 1;Ort;;12345;DE\r\nORG:Firma;Abteilung\r\nTITLE:Chef\r\nBDAY:1970-01-02\r\nNOTE:a\\, b\\; c\r\nEND:VCARD\r\n"
	c, err := dav.DecodeContact([]byte(v3))
	if err != nil {
		t.Fatal(err)
	}
	want := serversync.Contact{ACTHeader: serversync.ACTHeader{UID: "c3"}, DisplayName: "Max Muster", GivenName: "Max", FamilyName: "Muster",
		Emails: []serversync.ContactValue{{Type: "work", Value: "max@example.test"}}, Phones: []serversync.ContactValue{{Type: "cell", Value: "+49 1"}},
		Addresses: []serversync.PostalAddress{{Type: "home", Street: "Weg 1", City: "Ort", PostalCode: "12345", Country: "DE"}},
		Company:   "Firma", Department: "Abteilung", JobTitle: "Chef", Birthday: time.Date(1970, 1, 2, 0, 0, 0, 0, time.UTC), Notes: "a, b; c"}
	if c.UID != want.UID || c.DisplayName != want.DisplayName || c.GivenName != want.GivenName || c.FamilyName != want.FamilyName ||
		!slices.Equal(c.Emails, want.Emails) || !slices.Equal(c.Phones, want.Phones) || !slices.Equal(c.Addresses, want.Addresses) ||
		c.Company != want.Company || c.Department != want.Department || c.JobTitle != want.JobTitle || !c.Birthday.Equal(want.Birthday) || c.Notes != want.Notes {
		t.Fatalf("vCard 3:\n got %+v\nwant %+v", c, want)
	}
	if _, err := dav.EncodeContact(&serversync.Contact{}); !errors.Is(err, dav.ErrBadData) {
		t.Fatalf("a contact without any name: %v", err)
	}
}
