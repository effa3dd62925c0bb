package ews

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/serversync/serversync"
)

// recurrenceXML is EWS's Recurrence of a CalendarItem or a Task: one pattern
// and one range. Only the patterns an RRULE maps onto without loss are written
// (daily, weekly with days, absolute monthly, absolute yearly); the relative
// ones ("the second Tuesday") are read.
type recurrenceXML struct {
	Daily *struct {
		Interval int `xml:"Interval"`
	} `xml:"DailyRecurrence"`
	Weekly *struct {
		Interval   int    `xml:"Interval"`
		DaysOfWeek string `xml:"DaysOfWeek"`
	} `xml:"WeeklyRecurrence"`
	AbsoluteMonthly *struct {
		Interval   int `xml:"Interval"`
		DayOfMonth int `xml:"DayOfMonth"`
	} `xml:"AbsoluteMonthlyRecurrence"`
	RelativeMonthly *struct {
		Interval       int    `xml:"Interval"`
		DaysOfWeek     string `xml:"DaysOfWeek"`
		DayOfWeekIndex string `xml:"DayOfWeekIndex"`
	} `xml:"RelativeMonthlyRecurrence"`
	AbsoluteYearly *struct {
		DayOfMonth int    `xml:"DayOfMonth"`
		Month      string `xml:"Month"`
	} `xml:"AbsoluteYearlyRecurrence"`
	NoEnd *struct {
		StartDate string `xml:"StartDate"`
	} `xml:"NoEndRecurrence"`
	EndDate *struct {
		StartDate string `xml:"StartDate"`
		EndDate   string `xml:"EndDate"`
	} `xml:"EndDateRecurrence"`
	Numbered *struct {
		StartDate string `xml:"StartDate"`
		Count     int    `xml:"NumberOfOccurrences"`
	} `xml:"NumberedRecurrence"`
}

var weekdays = []struct{ ical, ews string }{
	{"MO", "Monday"}, {"TU", "Tuesday"}, {"WE", "Wednesday"}, {"TH", "Thursday"}, {"FR", "Friday"}, {"SA", "Saturday"}, {"SU", "Sunday"},
}

var dayIndexes = map[string]int{"First": 1, "Second": 2, "Third": 3, "Fourth": 4, "Last": -1}

// recurrenceXMLFor writes rec as EWS's Recurrence content for a series starting
// at start. A rule EWS cannot hold exactly (BYSETPOS, several BYMONTHDAY,
// FREQ=HOURLY, BYDAY with ordinals…) is refused rather than changed.
func recurrenceXMLFor(rec *serversync.Recurrence, start serversync.DateTime, allDay bool) (string, error) {
	if rec == nil || strings.TrimSpace(rec.Rule) == "" {
		return "", nil
	}
	parts := map[string]string{}
	for _, p := range strings.Split(strings.TrimPrefix(strings.TrimSpace(rec.Rule), "RRULE:"), ";") {
		if p == "" {
			continue
		}
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			return "", fmt.Errorf("ews: the RRULE part %q is not NAME=VALUE", p)
		}
		parts[strings.ToUpper(k)] = strings.ToUpper(v)
	}
	interval := 1
	if v, ok := parts["INTERVAL"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return "", fmt.Errorf("ews: RRULE INTERVAL %q", v)
		}
		interval = n
	}
	for k := range parts {
		switch k {
		case "FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY", "BYMONTH", "WKST":
		default:
			return "", fmt.Errorf("ews: Exchange cannot hold the RRULE part %s", k)
		}
	}
	s := start.Time
	var b strings.Builder
	switch parts["FREQ"] {
	case "DAILY":
		if parts["BYDAY"] != "" || parts["BYMONTHDAY"] != "" || parts["BYMONTH"] != "" {
			return "", fmt.Errorf("ews: Exchange cannot hold the daily rule %q", rec.Rule)
		}
		fmt.Fprintf(&b, `<t:DailyRecurrence><t:Interval>%d</t:Interval></t:DailyRecurrence>`, interval)
	case "WEEKLY":
		days := []string{}
		for _, d := range strings.Split(parts["BYDAY"], ",") {
			if d == "" {
				continue
			}
			name := ""
			for _, w := range weekdays {
				if w.ical == d {
					name = w.ews
				}
			}
			if name == "" {
				return "", fmt.Errorf("ews: RRULE BYDAY %q", d)
			}
			days = append(days, name)
		}
		if len(days) == 0 {
			days = append(days, s.Weekday().String())
		}
		fmt.Fprintf(&b, `<t:WeeklyRecurrence><t:Interval>%d</t:Interval><t:DaysOfWeek>%s</t:DaysOfWeek></t:WeeklyRecurrence>`, interval, strings.Join(days, " "))
	case "MONTHLY":
		day := s.Day()
		if v := parts["BYMONTHDAY"]; v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 31 {
				return "", fmt.Errorf("ews: Exchange cannot hold RRULE BYMONTHDAY %q", v)
			}
			day = n
		}
		if parts["BYDAY"] != "" || parts["BYMONTH"] != "" {
			return "", fmt.Errorf("ews: Exchange cannot hold the monthly rule %q", rec.Rule)
		}
		fmt.Fprintf(&b, `<t:AbsoluteMonthlyRecurrence><t:Interval>%d</t:Interval><t:DayOfMonth>%d</t:DayOfMonth></t:AbsoluteMonthlyRecurrence>`, interval, day)
	case "YEARLY":
		day, month := s.Day(), s.Month()
		if v := parts["BYMONTHDAY"]; v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 31 {
				return "", fmt.Errorf("ews: Exchange cannot hold RRULE BYMONTHDAY %q", v)
			}
			day = n
		}
		if v := parts["BYMONTH"]; v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 12 {
				return "", fmt.Errorf("ews: Exchange cannot hold RRULE BYMONTH %q", v)
			}
			month = time.Month(n)
		}
		if interval != 1 || parts["BYDAY"] != "" {
			return "", fmt.Errorf("ews: Exchange cannot hold the yearly rule %q", rec.Rule)
		}
		fmt.Fprintf(&b, `<t:AbsoluteYearlyRecurrence><t:DayOfMonth>%d</t:DayOfMonth><t:Month>%s</t:Month></t:AbsoluteYearlyRecurrence>`, day, month)
	default:
		return "", fmt.Errorf("ews: Exchange cannot hold RRULE FREQ %q", parts["FREQ"])
	}
	startDate := s.Format("2006-01-02")
	switch {
	case parts["COUNT"] != "":
		n, err := strconv.Atoi(parts["COUNT"])
		if err != nil || n < 1 {
			return "", fmt.Errorf("ews: RRULE COUNT %q", parts["COUNT"])
		}
		fmt.Fprintf(&b, `<t:NumberedRecurrence><t:StartDate>%s</t:StartDate><t:NumberOfOccurrences>%d</t:NumberOfOccurrences></t:NumberedRecurrence>`, startDate, n)
	case parts["UNTIL"] != "":
		until, err := parseUntil(parts["UNTIL"], s.Location())
		if err != nil {
			return "", err
		}
		// EWS's EndDate is a date of the series' zone: UNTIL's time of day is lost.
		fmt.Fprintf(&b, `<t:EndDateRecurrence><t:StartDate>%s</t:StartDate><t:EndDate>%s</t:EndDate></t:EndDateRecurrence>`, startDate, until.Format("2006-01-02"))
	default:
		fmt.Fprintf(&b, `<t:NoEndRecurrence><t:StartDate>%s</t:StartDate></t:NoEndRecurrence>`, startDate)
	}
	_ = allDay
	return b.String(), nil
}

func parseUntil(v string, loc *time.Location) (time.Time, error) {
	for _, layout := range []string{"20060102T150405Z", "20060102T150405", "20060102"} {
		if t, err := time.Parse(layout, v); err == nil {
			if layout == "20060102T150405Z" {
				return t.In(loc), nil
			}
			return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), 0, loc), nil
		}
	}
	return time.Time{}, fmt.Errorf("ews: RRULE UNTIL %q", v)
}

// rrule writes the recurrence as an RRULE in the order FREQ, COUNT or UNTIL,
// INTERVAL, BYDAY, BYMONTHDAY, BYMONTH, leaving out what the series' start
// implies (a monthly day of month, a yearly month and day that are the
// start's). EWS's EndDate is a date: UNTIL is that date for an all-day series
// and the end of that day in loc, in UTC, for a timed one. "" when the pattern
// is one this connector does not know.
func (r *recurrenceXML) rrule(loc *time.Location, allDay bool) string {
	var b strings.Builder
	var startDate string
	var tail string
	switch {
	case r.Daily != nil:
		b.WriteString("FREQ=DAILY")
		tail = intervalPart(r.Daily.Interval)
	case r.Weekly != nil:
		b.WriteString("FREQ=WEEKLY")
		tail = intervalPart(r.Weekly.Interval) + bydayPart(r.Weekly.DaysOfWeek, "")
	case r.AbsoluteMonthly != nil:
		b.WriteString("FREQ=MONTHLY")
		tail = intervalPart(r.AbsoluteMonthly.Interval)
		startDate = "monthday:" + strconv.Itoa(r.AbsoluteMonthly.DayOfMonth)
	case r.RelativeMonthly != nil:
		b.WriteString("FREQ=MONTHLY")
		idx, ok := dayIndexes[strings.TrimSpace(r.RelativeMonthly.DayOfWeekIndex)]
		if !ok {
			return ""
		}
		tail = intervalPart(r.RelativeMonthly.Interval) + bydayPart(r.RelativeMonthly.DaysOfWeek, strconv.Itoa(idx))
	case r.AbsoluteYearly != nil:
		b.WriteString("FREQ=YEARLY")
		startDate = "yearly:" + strconv.Itoa(r.AbsoluteYearly.DayOfMonth) + ":" + strings.TrimSpace(r.AbsoluteYearly.Month)
	default:
		return ""
	}
	var first time.Time
	switch {
	case r.Numbered != nil:
		first, _ = time.ParseInLocation("2006-01-02", trimDate(r.Numbered.StartDate), loc)
		b.WriteString(";COUNT=" + strconv.Itoa(r.Numbered.Count))
	case r.EndDate != nil:
		first, _ = time.ParseInLocation("2006-01-02", trimDate(r.EndDate.StartDate), loc)
		if end, err := time.ParseInLocation("2006-01-02", trimDate(r.EndDate.EndDate), loc); err == nil {
			if allDay {
				b.WriteString(";UNTIL=" + end.Format("20060102"))
			} else {
				b.WriteString(";UNTIL=" + end.AddDate(0, 0, 1).Add(-time.Second).UTC().Format("20060102T150405Z"))
			}
		}
	case r.NoEnd != nil:
		first, _ = time.ParseInLocation("2006-01-02", trimDate(r.NoEnd.StartDate), loc)
	}
	b.WriteString(tail)
	switch kind, rest, _ := strings.Cut(startDate, ":"); kind {
	case "monthday":
		if first.IsZero() || rest != strconv.Itoa(first.Day()) {
			b.WriteString(";BYMONTHDAY=" + rest)
		}
	case "yearly":
		day, month, _ := strings.Cut(rest, ":")
		if first.IsZero() || day != strconv.Itoa(first.Day()) || month != first.Month().String() {
			b.WriteString(";BYMONTHDAY=" + day)
			for m := time.January; m <= time.December; m++ {
				if m.String() == month {
					b.WriteString(";BYMONTH=" + strconv.Itoa(int(m)))
				}
			}
		}
	}
	return b.String()
}

// trimDate drops the offset EWS may add to an xs:date ("2026-09-07Z", "2026-09-07+02:00").
func trimDate(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 10 {
		s = s[:10]
	}
	return s
}

func intervalPart(n int) string {
	if n > 1 {
		return ";INTERVAL=" + strconv.Itoa(n)
	}
	return ""
}

func bydayPart(days, ordinal string) string {
	var out []string
	for _, d := range strings.Fields(days) {
		for _, w := range weekdays {
			if strings.EqualFold(w.ews, d) {
				out = append(out, ordinal+w.ical)
			}
		}
	}
	if len(out) == 0 {
		return ""
	}
	return ";BYDAY=" + strings.Join(out, ",")
}
