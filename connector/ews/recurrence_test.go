package ews

import (
	"encoding/xml"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
)

// Every pattern written reads back as the same RRULE, and the XML is EWS's.
func TestRecurrenceRoundTrip(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	start := serversync.DateTime{Time: time.Date(2026, 9, 7, 9, 0, 0, 0, berlin), TZID: "Europe/Berlin"} // a Monday
	for _, tc := range []struct{ rule, xmlHas string }{
		{"FREQ=DAILY;COUNT=5", `<t:DailyRecurrence><t:Interval>1</t:Interval></t:DailyRecurrence><t:NumberedRecurrence><t:StartDate>2026-09-07</t:StartDate><t:NumberOfOccurrences>5</t:NumberOfOccurrences>`},
		{"FREQ=DAILY;INTERVAL=3", `<t:NoEndRecurrence><t:StartDate>2026-09-07</t:StartDate></t:NoEndRecurrence>`},
		{"FREQ=WEEKLY;COUNT=6;BYDAY=MO", `<t:DaysOfWeek>Monday</t:DaysOfWeek>`},
		{"FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE,FR", `<t:Interval>2</t:Interval><t:DaysOfWeek>Monday Wednesday Friday</t:DaysOfWeek>`},
		{"FREQ=MONTHLY;COUNT=3", `<t:AbsoluteMonthlyRecurrence><t:Interval>1</t:Interval><t:DayOfMonth>7</t:DayOfMonth>`},
		{"FREQ=MONTHLY;BYMONTHDAY=15", `<t:DayOfMonth>15</t:DayOfMonth>`},
		{"FREQ=YEARLY;COUNT=2", `<t:AbsoluteYearlyRecurrence><t:DayOfMonth>7</t:DayOfMonth><t:Month>September</t:Month>`},
		{"FREQ=YEARLY;BYMONTHDAY=1;BYMONTH=3", `<t:DayOfMonth>1</t:DayOfMonth><t:Month>March</t:Month>`},
		// UNTIL keeps its date: the end of that day in the series' zone, in UTC.
		{"FREQ=WEEKLY;UNTIL=20261130T225959Z;BYDAY=MO", `<t:EndDateRecurrence><t:StartDate>2026-09-07</t:StartDate><t:EndDate>2026-11-30</t:EndDate>`},
	} {
		x, err := recurrenceXMLFor(&serversync.Recurrence{Rule: tc.rule}, start, false)
		require.NoError(t, err, tc.rule)
		assert.Contains(t, x, tc.xmlHas, tc.rule)
		var r recurrenceXML
		require.NoError(t, xml.Unmarshal([]byte(`<Recurrence xmlns:t="`+nsTypes+`">`+x+`</Recurrence>`), &r), tc.rule)
		assert.Equal(t, tc.rule, r.rrule(berlin, false), tc.rule)
	}
	// A relative monthly pattern made in Outlook reads back.
	var r recurrenceXML
	require.NoError(t, xml.Unmarshal([]byte(`<Recurrence><RelativeMonthlyRecurrence><Interval>1</Interval><DaysOfWeek>Tuesday</DaysOfWeek>`+
		`<DayOfWeekIndex>Second</DayOfWeekIndex></RelativeMonthlyRecurrence><NumberedRecurrence><StartDate>2026-09-08+02:00</StartDate>`+
		`<NumberOfOccurrences>4</NumberOfOccurrences></NumberedRecurrence></Recurrence>`), &r))
	assert.Equal(t, "FREQ=MONTHLY;COUNT=4;BYDAY=2TU", r.rrule(berlin, false))
}

// Rules EWS cannot hold are refused rather than changed.
func TestRecurrenceRefused(t *testing.T) {
	start := serversync.DateTime{Time: time.Date(2026, 9, 7, 9, 0, 0, 0, time.UTC)}
	for _, rule := range []string{"FREQ=HOURLY", "FREQ=MONTHLY;BYDAY=2TU", "FREQ=MONTHLY;BYMONTHDAY=1,15", "FREQ=WEEKLY;BYSETPOS=1;BYDAY=MO",
		"FREQ=YEARLY;INTERVAL=2", "FREQ=DAILY;BYHOUR=9", "FREQ=WEEKLY;BYDAY=XX"} {
		_, err := recurrenceXMLFor(&serversync.Recurrence{Rule: rule}, start, false)
		assert.Error(t, err, rule)
	}
}
