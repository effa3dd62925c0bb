package graph

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/teambition/rrule-go"
)

// patternedRecurrence is Graph's recurrence of an event or a To Do task
// (https://learn.microsoft.com/graph/api/resources/patternedrecurrence).
type patternedRecurrence struct {
	Pattern recurrencePattern `json:"pattern"`
	Range   recurrenceRange   `json:"range"`
}

type recurrencePattern struct {
	Type           string   `json:"type"`
	Interval       int      `json:"interval"`
	Month          int      `json:"month,omitempty"`
	DayOfMonth     int      `json:"dayOfMonth,omitempty"`
	DaysOfWeek     []string `json:"daysOfWeek,omitempty"`
	FirstDayOfWeek string   `json:"firstDayOfWeek,omitempty"`
	Index          string   `json:"index,omitempty"`
}

type recurrenceRange struct {
	Type                string `json:"type"`
	StartDate           string `json:"startDate"`
	EndDate             string `json:"endDate,omitempty"`
	RecurrenceTimeZone  string `json:"recurrenceTimeZone,omitempty"`
	NumberOfOccurrences int    `json:"numberOfOccurrences,omitempty"`
}

var rruleDays = []struct{ ical, graph string }{
	{"MO", "monday"}, {"TU", "tuesday"}, {"WE", "wednesday"}, {"TH", "thursday"}, {"FR", "friday"}, {"SA", "saturday"}, {"SU", "sunday"},
}

func graphDay(ical string) (string, bool) {
	for _, d := range rruleDays {
		if d.ical == ical {
			return d.graph, true
		}
	}
	return "", false
}

func icalDay(graph string) string {
	for _, d := range rruleDays {
		if strings.EqualFold(d.graph, graph) {
			return d.ical
		}
	}
	return ""
}

func weekdayName(t time.Time) string { return strings.ToLower(t.Weekday().String()) }

var graphIndexes = map[int]string{1: "first", 2: "second", 3: "third", 4: "fourth", -1: "last"}

// toPattern turns an RRULE into Graph's pattern and range for a series
// starting at start (wall time in its zone, named zone). Rules Graph cannot
// hold (BYHOUR, several BYMONTHDAY, FREQ=HOURLY, a BYSETPOS Graph has no index
// for…) are refused rather than changed.
func toPattern(rule string, start time.Time, zone string) (*patternedRecurrence, error) {
	parts := map[string]string{}
	for _, p := range strings.Split(strings.TrimPrefix(strings.TrimSpace(rule), "RRULE:"), ";") {
		if p == "" {
			continue
		}
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			return nil, fmt.Errorf("graph: the RRULE part %q is not NAME=VALUE", p)
		}
		parts[strings.ToUpper(k)] = strings.ToUpper(v)
	}
	r := &patternedRecurrence{Pattern: recurrencePattern{Interval: 1, FirstDayOfWeek: "monday"},
		Range: recurrenceRange{Type: "noEnd", StartDate: start.Format("2006-01-02"), RecurrenceTimeZone: zone}}
	for k, v := range parts {
		switch k {
		case "FREQ", "BYDAY", "BYMONTHDAY", "BYMONTH", "BYSETPOS":
		case "INTERVAL":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return nil, fmt.Errorf("graph: RRULE INTERVAL %q", v)
			}
			r.Pattern.Interval = n
		case "COUNT":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return nil, fmt.Errorf("graph: RRULE COUNT %q", v)
			}
			r.Range.Type, r.Range.NumberOfOccurrences = "numbered", n
		case "UNTIL":
			if len(v) < 8 {
				return nil, fmt.Errorf("graph: RRULE UNTIL %q", v)
			}
			until, err := time.Parse("20060102", v[:8])
			if err != nil {
				return nil, fmt.Errorf("graph: RRULE UNTIL %q", v)
			}
			if strings.HasSuffix(v, "Z") && len(v) == 16 {
				if t, err := time.Parse("20060102T150405Z", v); err == nil {
					until = t.In(start.Location())
				}
			}
			// Graph's endDate is a date: UNTIL's time of day is lost.
			r.Range.Type, r.Range.EndDate = "endDate", until.Format("2006-01-02")
		case "WKST":
			day, ok := graphDay(v)
			if !ok {
				return nil, fmt.Errorf("graph: RRULE WKST %q", v)
			}
			r.Pattern.FirstDayOfWeek = day
		default:
			return nil, fmt.Errorf("graph: Graph's recurrence cannot hold the RRULE part %s", k)
		}
	}
	// BYDAY: plain days, or one ordinal for all of them ("2TU", "-1FR").
	var days []string
	ordinal := 0
	if v := parts["BYDAY"]; v != "" {
		for _, d := range strings.Split(v, ",") {
			i := strings.IndexFunc(d, func(r rune) bool { return r >= 'A' && r <= 'Z' })
			if i < 0 {
				return nil, fmt.Errorf("graph: RRULE BYDAY %q", v)
			}
			name, ok := graphDay(d[i:])
			if !ok {
				return nil, fmt.Errorf("graph: RRULE BYDAY %q", v)
			}
			if i > 0 {
				n, err := strconv.Atoi(d[:i])
				if err != nil || (ordinal != 0 && n != ordinal) {
					return nil, fmt.Errorf("graph: Graph's recurrence cannot hold BYDAY %q", v)
				}
				ordinal = n
			}
			days = append(days, name)
		}
	}
	if v := parts["BYSETPOS"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || ordinal != 0 {
			return nil, fmt.Errorf("graph: Graph's recurrence cannot hold BYSETPOS %q", v)
		}
		ordinal = n
	}
	single := func(name string) (int, error) {
		v := parts[name]
		if v == "" {
			return 0, nil
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return 0, fmt.Errorf("graph: Graph's recurrence holds one %s, not %q", name, v)
		}
		return n, nil
	}
	monthDay, err := single("BYMONTHDAY")
	if err != nil {
		return nil, err
	}
	month, err := single("BYMONTH")
	if err != nil {
		return nil, err
	}
	index := ""
	if ordinal != 0 {
		var ok bool
		if index, ok = graphIndexes[ordinal]; !ok {
			return nil, fmt.Errorf("graph: Graph's recurrence has no occurrence %d of a month", ordinal)
		}
	}
	p := &r.Pattern
	switch parts["FREQ"] {
	case "DAILY":
		p.Type = "daily"
		if len(days) > 0 { // "every weekday": Outlook's weekly pattern
			p.Type, p.DaysOfWeek = "weekly", days
		}
	case "WEEKLY":
		p.Type, p.DaysOfWeek = "weekly", days
		if len(days) == 0 {
			p.DaysOfWeek = []string{weekdayName(start)}
		}
	case "MONTHLY":
		if index != "" || len(days) > 0 {
			p.Type, p.DaysOfWeek, p.Index = "relativeMonthly", days, cmpOr(index, "first")
		} else {
			p.Type, p.DayOfMonth = "absoluteMonthly", cmpOrInt(monthDay, start.Day())
		}
	case "YEARLY":
		p.Month = cmpOrInt(month, int(start.Month()))
		if index != "" || len(days) > 0 {
			p.Type, p.DaysOfWeek, p.Index = "relativeYearly", days, cmpOr(index, "first")
		} else {
			p.Type, p.DayOfMonth = "absoluteYearly", cmpOrInt(monthDay, start.Day())
		}
	default:
		return nil, fmt.Errorf("graph: Graph's recurrence cannot hold FREQ=%s", parts["FREQ"])
	}
	if index != "" && p.Type != "relativeMonthly" && p.Type != "relativeYearly" {
		return nil, fmt.Errorf("graph: Graph's recurrence cannot hold an ordinal with FREQ=%s", parts["FREQ"])
	}
	return r, nil
}

func cmpOrInt(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

// toRRule writes Graph's recurrence as an RRULE in one canonical order
// (FREQ, COUNT or UNTIL, INTERVAL, BYDAY, BYMONTHDAY, BYMONTH, BYSETPOS,
// WKST), leaving out what the series' start implies (a monthly day of month
// that is the start's, a yearly month that is the start's). Graph's endDate is
// a date: UNTIL is that date for an all-day series and the end of that day in
// the series' zone loc, in UTC, for a timed one (RFC 5545 wants UNTIL of the
// start's value type).
func toRRule(r *patternedRecurrence, loc *time.Location, allDay bool) string {
	p, rg := r.Pattern, r.Range
	start, _ := time.Parse("2006-01-02", rg.StartDate)
	var b strings.Builder
	freq := map[string]string{"daily": "DAILY", "weekly": "WEEKLY", "absoluteMonthly": "MONTHLY", "relativeMonthly": "MONTHLY",
		"absoluteYearly": "YEARLY", "relativeYearly": "YEARLY"}[p.Type]
	if freq == "" {
		return ""
	}
	b.WriteString("FREQ=" + freq)
	switch rg.Type {
	case "numbered":
		b.WriteString(";COUNT=" + strconv.Itoa(rg.NumberOfOccurrences))
	case "endDate":
		if end, err := time.ParseInLocation("2006-01-02", rg.EndDate, loc); err == nil {
			if allDay {
				b.WriteString(";UNTIL=" + end.Format("20060102"))
			} else {
				b.WriteString(";UNTIL=" + end.AddDate(0, 0, 1).Add(-time.Second).UTC().Format("20060102T150405Z"))
			}
		}
	}
	if p.Interval > 1 {
		b.WriteString(";INTERVAL=" + strconv.Itoa(p.Interval))
	}
	var days []string
	for _, d := range p.DaysOfWeek {
		if s := icalDay(d); s != "" {
			days = append(days, s)
		}
	}
	relative := p.Type == "relativeMonthly" || p.Type == "relativeYearly"
	if len(days) > 0 && (p.Type == "weekly" || relative) {
		if relative && len(days) == 1 {
			days[0] = strconv.Itoa(ordinalOf(p.Index)) + days[0]
		}
		b.WriteString(";BYDAY=" + strings.Join(days, ","))
	}
	if (p.Type == "absoluteMonthly" || p.Type == "absoluteYearly") && p.DayOfMonth != 0 && p.DayOfMonth != start.Day() {
		b.WriteString(";BYMONTHDAY=" + strconv.Itoa(p.DayOfMonth))
	}
	if (p.Type == "absoluteYearly" || p.Type == "relativeYearly") && p.Month != 0 && p.Month != int(start.Month()) {
		b.WriteString(";BYMONTH=" + strconv.Itoa(p.Month))
	}
	if relative && len(days) > 1 {
		b.WriteString(";BYSETPOS=" + strconv.Itoa(ordinalOf(p.Index)))
	}
	if p.Type == "weekly" && p.FirstDayOfWeek != "" && !strings.EqualFold(p.FirstDayOfWeek, "monday") {
		b.WriteString(";WKST=" + icalDay(p.FirstDayOfWeek))
	}
	return b.String()
}

func ordinalOf(index string) int {
	for n, name := range graphIndexes {
		if strings.EqualFold(name, index) {
			return n
		}
	}
	return 1
}

// expand lists the original starts of a series' occurrences in [from, to): the
// rule applied from start (in its zone, so that occurrences keep their wall time
// across DST changes).
func expand(rule string, start, from, to time.Time) []time.Time {
	opt, err := rrule.StrToROptionInLocation(rule, start.Location())
	if err != nil {
		return nil
	}
	opt.Dtstart = start
	r, err := rrule.NewRRule(*opt)
	if err != nil {
		return nil
	}
	out := r.Between(from, to, true)
	return slices.Clip(out[:min(len(out), 5000)])
}
