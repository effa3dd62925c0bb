package graph

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// RRULEs Graph can hold come back as they went, in the canonical order.
func TestRecurrenceRoundTrip(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	start := time.Date(2026, 9, 7, 9, 0, 0, 0, berlin) // Monday the 7th
	cases := []struct{ rule, pattern, want string }{
		{"FREQ=DAILY;COUNT=5", "daily", ""},
		{"FREQ=DAILY;INTERVAL=2;UNTIL=20261231", "daily", "FREQ=DAILY;UNTIL=20261231T225959Z;INTERVAL=2"},
		{"FREQ=WEEKLY;COUNT=6;BYDAY=MO", "weekly", ""},
		{"FREQ=WEEKLY", "weekly", "FREQ=WEEKLY;BYDAY=MO"},
		{"FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE,FR;WKST=SU", "weekly", ""},
		{"FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR", "weekly", "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"},
		{"FREQ=MONTHLY;COUNT=3", "absoluteMonthly", ""},
		{"FREQ=MONTHLY;BYMONTHDAY=15", "absoluteMonthly", ""},
		{"FREQ=MONTHLY;BYDAY=2TU", "relativeMonthly", ""},
		{"FREQ=MONTHLY;BYDAY=-1FR", "relativeMonthly", ""},
		{"FREQ=MONTHLY;BYDAY=SA,SU;BYSETPOS=1", "relativeMonthly", ""},
		{"FREQ=YEARLY", "absoluteYearly", ""},
		{"FREQ=YEARLY;BYMONTHDAY=1;BYMONTH=5", "absoluteYearly", ""},
		{"FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3", "relativeYearly", ""},
		{"FREQ=WEEKLY;UNTIL=20261231T225959Z;BYDAY=MO", "weekly", ""},
		{"FREQ=WEEKLY;UNTIL=20261231T120000Z;BYDAY=MO", "weekly", "FREQ=WEEKLY;UNTIL=20261231T225959Z;BYDAY=MO"},
	}
	for _, c := range cases {
		p, err := toPattern(c.rule, start, "W. Europe Standard Time")
		require.NoError(t, err, c.rule)
		assert.Equal(t, c.pattern, p.Pattern.Type, c.rule)
		assert.Equal(t, "2026-09-07", p.Range.StartDate)
		want := c.want
		if want == "" {
			want = c.rule
		}
		assert.Equal(t, want, toRRule(p, berlin, false), c.rule)
	}
}

// What Graph cannot hold is refused, not changed.
func TestRecurrenceRefused(t *testing.T) {
	start := time.Date(2026, 9, 7, 9, 0, 0, 0, time.UTC)
	for _, rule := range []string{
		"FREQ=HOURLY", "FREQ=MINUTELY;COUNT=3", "FREQ=DAILY;BYHOUR=9,17", "FREQ=MONTHLY;BYMONTHDAY=1,15",
		"FREQ=MONTHLY;BYDAY=1MO,3MO", "FREQ=MONTHLY;BYDAY=5TU", "FREQ=WEEKLY;BYDAY=2MO", "FREQ=WEEKLY;COUNT=x", "garbage",
	} {
		_, err := toPattern(rule, start, "UTC")
		assert.Error(t, err, rule)
	}
}

// Expansion keeps the wall time across DST.
func TestExpandAcrossDST(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	start := time.Date(2026, 3, 27, 9, 0, 0, 0, berlin)
	got := expand("FREQ=DAILY;COUNT=5", start, start.AddDate(-1, 0, 0), start.AddDate(1, 0, 0))
	require.Len(t, got, 5)
	for i, t0 := range got {
		assert.Equal(t, 9, t0.Hour(), "occurrence %d", i)
	}
	assert.Equal(t, 8, got[0].UTC().Hour())
	assert.Equal(t, 7, got[4].UTC().Hour())
}

// An all-day series' UNTIL is a date, as its start is.
func TestRecurrenceAllDayUntil(t *testing.T) {
	start := time.Date(2026, 9, 7, 0, 0, 0, 0, time.UTC)
	p, err := toPattern("FREQ=DAILY;UNTIL=20260920", start, "UTC")
	require.NoError(t, err)
	assert.Equal(t, "2026-09-20", p.Range.EndDate)
	assert.Equal(t, "FREQ=DAILY;UNTIL=20260920", toRRule(p, time.UTC, true))
}
