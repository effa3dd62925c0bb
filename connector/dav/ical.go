package dav

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-ical"

	"github.com/serversync/serversync"
)

// ErrBadData is matched by the error for iCalendar or vCard data the model cannot
// hold (no VEVENT, an unparsable date…).
var ErrBadData = errors.New("dav: unusable calendar or contact data")

func badData(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadData, fmt.Sprintf(format, args...))
}

const prodID = "-//serversync//serversync ACT//EN"

// vtimezoneYears is how many years of transitions a VTIMEZONE written for an item
// spans from the item's first year. Beyond it, clients (DAVx⁵, Thunderbird,
// Apple's) use the IANA zone the TZID names, as this connector does when reading.
const vtimezoneYears = 5

// encodeAppointment writes an appointment and its overrides as one VCALENDAR.
func encodeAppointment(a *serversync.Appointment) ([]byte, error) {
	if a.Start.IsZero() {
		return nil, badData("the appointment has no start")
	}
	cal := newCalendar()
	zones := map[string]time.Time{}
	main, err := eventComponent(a, a.UID, zones)
	if err != nil {
		return nil, err
	}
	cal.Children = append(cal.Children, main)
	for i := range a.Overrides {
		o := &a.Overrides[i]
		if o.RecurrenceID.IsZero() {
			return nil, badData("override %d has no RecurrenceID", i)
		}
		c, err := eventComponent(o, a.UID, zones)
		if err != nil {
			return nil, err
		}
		cal.Children = append(cal.Children, c)
	}
	return encodeCalendar(cal, zones)
}

func newCalendar() *ical.Calendar {
	cal := ical.NewCalendar()
	cal.Props.SetText(ical.PropVersion, "2.0")
	cal.Props.SetText(ical.PropProductID, prodID)
	return cal
}

func encodeCalendar(cal *ical.Calendar, zones map[string]time.Time) ([]byte, error) {
	var tzs []*ical.Component
	for tzid, from := range zones {
		tz, err := vtimezone(tzid, from)
		if err != nil {
			return nil, err
		}
		tzs = append(tzs, tz)
	}
	cal.Children = append(tzs, cal.Children...)
	var buf bytes.Buffer
	if err := ical.NewEncoder(&buf).Encode(cal); err != nil {
		return nil, badData("%v", err)
	}
	return buf.Bytes(), nil
}

func eventComponent(a *serversync.Appointment, uid string, zones map[string]time.Time) (*ical.Component, error) {
	ev := ical.NewComponent(ical.CompEvent)
	p := ev.Props
	p.SetText(ical.PropUID, uid)
	p.SetDateTime(ical.PropDateTimeStamp, time.Now().UTC())
	if a.Subject != "" {
		p.SetText(ical.PropSummary, a.Subject)
	}
	if a.Body != "" {
		p.SetText(ical.PropDescription, a.Body)
	}
	if a.Location != "" {
		p.SetText(ical.PropLocation, a.Location)
	}
	if err := setTime(p, ical.PropDateTimeStart, a.Start, a.AllDay, zones); err != nil {
		return nil, err
	}
	if !a.End.IsZero() {
		if err := setTime(p, ical.PropDateTimeEnd, a.End, a.AllDay, zones); err != nil {
			return nil, err
		}
	}
	if !a.RecurrenceID.IsZero() {
		if err := setTime(p, ical.PropRecurrenceID, serversync.DateTime{Time: a.RecurrenceID, TZID: a.Start.TZID}, a.AllDay, zones); err != nil {
			return nil, err
		}
	}
	if a.Organizer != nil {
		p.Add(attendeeProp(ical.PropOrganizer, *a.Organizer))
	}
	for _, at := range a.Attendees {
		p.Add(attendeeProp(ical.PropAttendee, at))
	}
	if err := setRecurrence(p, a.Recurrence, a.Start, a.AllDay, zones); err != nil {
		return nil, err
	}
	if len(a.Categories) > 0 {
		cat := ical.NewProp(ical.PropCategories)
		cat.SetTextList(a.Categories)
		p.Set(cat)
	}
	switch a.Sensitivity {
	case serversync.SensitivityPrivate:
		p.SetText(ical.PropClass, "PRIVATE")
	case serversync.SensitivityConfidential:
		p.SetText(ical.PropClass, "CONFIDENTIAL")
	}
	if a.Reminder > 0 {
		alarm := ical.NewComponent(ical.CompAlarm)
		alarm.Props.SetText(ical.PropAction, "DISPLAY")
		alarm.Props.SetText(ical.PropDescription, "Reminder")
		trig := ical.NewProp(ical.PropTrigger)
		trig.SetDuration(-a.Reminder)
		alarm.Props.Set(trig)
		ev.Children = append(ev.Children, alarm)
	}
	return ev, nil
}

func attendeeProp(name string, at serversync.Attendee) *ical.Prop {
	prop := ical.NewProp(name)
	prop.Value = "mailto:" + at.Email
	if at.Name != "" {
		prop.Params.Set(ical.ParamCommonName, at.Name)
	}
	if name == ical.PropAttendee {
		role := "REQ-PARTICIPANT"
		if at.Optional {
			role = "OPT-PARTICIPANT"
		}
		prop.Params.Set(ical.ParamRole, role)
		partstat := map[serversync.AttendeeResponse]string{
			serversync.ResponseNone: "NEEDS-ACTION", serversync.ResponseAccepted: "ACCEPTED",
			serversync.ResponseDeclined: "DECLINED", serversync.ResponseTentative: "TENTATIVE",
			serversync.ResponseDelegated: "DELEGATED",
		}[at.Response]
		if partstat == "" {
			partstat = "NEEDS-ACTION"
		}
		prop.Params.Set(ical.ParamParticipationStatus, partstat)
	}
	return prop
}

// setTime writes a DATE (all day), a UTC DATE-TIME or a DATE-TIME with a TZID
// whose VTIMEZONE is added to the calendar.
func setTime(p ical.Props, name string, d serversync.DateTime, allDay bool, zones map[string]time.Time) error {
	prop := ical.NewProp(name)
	switch {
	case allDay:
		prop.SetDate(d.Time)
	case d.TZID == "" || d.TZID == "UTC":
		prop.SetDateTime(d.Time.UTC())
	default:
		loc, err := time.LoadLocation(d.TZID)
		if err != nil {
			return badData("unknown time zone %q", d.TZID)
		}
		t := d.Time.In(loc)
		prop.SetValueType(ical.ValueDateTime)
		prop.Value = t.Format("20060102T150405")
		prop.Params.Set(ical.PropTimezoneID, d.TZID)
		if from, ok := zones[d.TZID]; !ok || t.Before(from) {
			zones[d.TZID] = t
		}
	}
	p.Set(prop)
	return nil
}

func setRecurrence(p ical.Props, r *serversync.Recurrence, start serversync.DateTime, allDay bool, zones map[string]time.Time) error {
	if r == nil || r.Rule == "" {
		return nil
	}
	if strings.ContainsAny(r.Rule, "\r\n") {
		return badData("the recurrence rule holds a line break")
	}
	rr := ical.NewProp(ical.PropRecurrenceRule)
	rr.SetValueType(ical.ValueRecurrence)
	rr.Value = strings.TrimPrefix(r.Rule, "RRULE:")
	p.Set(rr)
	for _, ex := range r.Exceptions {
		prop := ical.NewProp(ical.PropExceptionDates)
		tmp := ical.Props{}
		if err := setTime(tmp, ical.PropExceptionDates, serversync.DateTime{Time: ex, TZID: start.TZID}, allDay, zones); err != nil {
			return err
		}
		prop = tmp.Get(ical.PropExceptionDates)
		p.Add(prop)
	}
	return nil
}

// vtimezone describes zone tzid from the year of from for vtimezoneYears years,
// one STANDARD or DAYLIGHT component per transition (no RRULE to get wrong).
func vtimezone(tzid string, from time.Time) (*ical.Component, error) {
	loc, err := time.LoadLocation(tzid)
	if err != nil {
		return nil, badData("unknown time zone %q", tzid)
	}
	tz := ical.NewComponent(ical.CompTimezone)
	tz.Props.SetText(ical.PropTimezoneID, tzid)
	start := time.Date(from.Year()-1, 1, 1, 0, 0, 0, 0, loc)
	end := time.Date(from.Year()+vtimezoneYears, 1, 1, 0, 0, 0, 0, loc)
	_, offset := start.Zone()
	add := func(at time.Time, fromOff, toOff int, isDST bool) {
		name := ical.CompTimezoneStandard
		if isDST {
			name = ical.CompTimezoneDaylight
		}
		c := ical.NewComponent(name)
		// DTSTART is the local time before the transition, in the old offset.
		local := at.In(time.FixedZone("", fromOff))
		dt := ical.NewProp(ical.PropDateTimeStart)
		dt.SetValueType(ical.ValueDateTime)
		dt.Value = local.Format("20060102T150405")
		c.Props.Set(dt)
		for name, off := range map[string]int{ical.PropTimezoneOffsetFrom: fromOff, ical.PropTimezoneOffsetTo: toOff} {
			prop := ical.NewProp(name) // UTC-OFFSET is the default type: no VALUE parameter
			prop.Value = utcOffset(off)
			c.Props.Set(prop)
		}
		if abbr, _ := at.In(loc).Zone(); abbr != "" {
			c.Props.SetText(ical.PropTimezoneName, abbr)
		}
		tz.Children = append(tz.Children, c)
	}
	// The offset in force at the start, so a zone without transitions is described too.
	add(start, offset, offset, start.IsDST())
	for t := start; t.Before(end); {
		_, ze := t.ZoneBounds()
		if ze.IsZero() || !ze.Before(end) {
			break
		}
		if !ze.After(t) {
			t = t.Add(time.Minute) // at a transition: look past it
			continue
		}
		_, before := ze.Add(-time.Second).Zone()
		_, after := ze.Zone()
		if before != after {
			add(ze, before, after, ze.IsDST())
		}
		t = ze.Add(time.Second)
	}
	return tz, nil
}

func utcOffset(seconds int) string {
	sign := "+"
	if seconds < 0 {
		sign, seconds = "-", -seconds
	}
	s := fmt.Sprintf("%s%02d%02d", sign, seconds/3600, seconds/60%60)
	if seconds%60 != 0 {
		s += fmt.Sprintf("%02d", seconds%60)
	}
	return s
}

// decodeCalendar parses iCalendar data.
// go-ical's decoder panics on some malformed lines (found by FuzzDecodeCalendar):
// a server's bad data must not take the process down.
func decodeCalendar(data []byte) (cal *ical.Calendar, err error) {
	defer func() {
		if r := recover(); r != nil {
			cal, err = nil, badData("the iCalendar parser failed: %v", r)
		}
	}()
	cal, err = ical.NewDecoder(bytes.NewReader(data)).Decode()
	if err != nil {
		return nil, badData("%v", err)
	}
	return cal, nil
}

// decodeAppointment reads the VEVENTs of one calendar object: the master (no
// RECURRENCE-ID) and its overrides. An object holding only overrides (an
// invitation to one occurrence) takes the first as the appointment.
func decodeAppointment(data []byte) (*serversync.Appointment, error) {
	cal, err := decodeCalendar(data)
	if err != nil {
		return nil, err
	}
	zones := calendarZones(cal)
	var master *serversync.Appointment
	var overrides []serversync.Appointment
	for _, c := range cal.Children {
		if c.Name != ical.CompEvent {
			continue
		}
		a, err := readEvent(c, zones)
		if err != nil {
			return nil, err
		}
		if a.RecurrenceID.IsZero() && master == nil {
			master = a
		} else {
			overrides = append(overrides, *a)
		}
	}
	if master == nil {
		if len(overrides) == 0 {
			return nil, badData("no VEVENT")
		}
		master, overrides = &overrides[0], overrides[1:]
	}
	master.Overrides = overrides
	return master, nil
}

func readEvent(c *ical.Component, zones map[string]*time.Location) (*serversync.Appointment, error) {
	a := &serversync.Appointment{}
	p := c.Props
	a.UID = text(p, ical.PropUID)
	a.Subject = text(p, ical.PropSummary)
	a.Body = text(p, ical.PropDescription)
	a.Location = text(p, ical.PropLocation)
	start, allDay, err := readTime(p.Get(ical.PropDateTimeStart), zones)
	if err != nil {
		return nil, fmt.Errorf("DTSTART: %w", err)
	}
	if start.IsZero() {
		return nil, badData("VEVENT without DTSTART")
	}
	a.Start, a.AllDay = start, allDay
	if end, _, err := readTime(p.Get(ical.PropDateTimeEnd), zones); err != nil {
		return nil, fmt.Errorf("DTEND: %w", err)
	} else if !end.IsZero() {
		a.End = end
	} else if dur := p.Get(ical.PropDuration); dur != nil {
		d, err := dur.Duration()
		if err != nil {
			return nil, badData("DURATION: %v", err)
		}
		a.End = serversync.DateTime{Time: start.Time.Add(d), TZID: start.TZID}
	} else if allDay {
		a.End = serversync.DateTime{Time: start.Time.AddDate(0, 0, 1)}
	}
	if rid, _, err := readTime(p.Get(ical.PropRecurrenceID), zones); err != nil {
		return nil, fmt.Errorf("RECURRENCE-ID: %w", err)
	} else {
		a.RecurrenceID = rid.Time
	}
	if org := p.Get(ical.PropOrganizer); org != nil {
		at := readAttendee(org)
		a.Organizer = &at
	}
	for _, at := range p.Values(ical.PropAttendee) {
		a.Attendees = append(a.Attendees, readAttendee(&at))
	}
	if a.Recurrence, err = readRecurrence(p, zones); err != nil {
		return nil, err
	}
	for _, cat := range p.Values(ical.PropCategories) {
		l, err := cat.TextList()
		if err != nil {
			return nil, badData("CATEGORIES: %v", err)
		}
		a.Categories = append(a.Categories, l...)
	}
	switch strings.ToUpper(text(p, ical.PropClass)) {
	case "PRIVATE":
		a.Sensitivity = serversync.SensitivityPrivate
	case "CONFIDENTIAL":
		a.Sensitivity = serversync.SensitivityConfidential
	}
	for _, alarm := range c.Children {
		if alarm.Name != ical.CompAlarm {
			continue
		}
		trig := alarm.Props.Get(ical.PropTrigger)
		if trig == nil || trig.Params.Get(ical.ParamValue) == "DATE-TIME" {
			continue
		}
		if rel := trig.Params.Get(ical.ParamRelated); rel != "" && rel != "START" {
			continue
		}
		if d, err := trig.Duration(); err == nil && d <= 0 {
			a.Reminder = -d
			if a.Reminder == 0 {
				a.Reminder = time.Nanosecond // "at the start" is still a reminder
			}
			break
		}
	}
	a.Modified = modified(p)
	return a, nil
}

func modified(p ical.Props) time.Time {
	if lm := p.Get(ical.PropLastModified); lm != nil {
		if t, err := lm.DateTime(time.UTC); err == nil {
			return t
		}
	}
	return time.Time{}
}

func text(p ical.Props, name string) string {
	prop := p.Get(name)
	if prop == nil {
		return ""
	}
	s, err := prop.Text()
	if err != nil {
		return prop.Value
	}
	return s
}

func readAttendee(prop *ical.Prop) serversync.Attendee {
	at := serversync.Attendee{Name: prop.Params.Get(ical.ParamCommonName)}
	v := prop.Value
	if len(v) >= 7 && strings.EqualFold(v[:7], "mailto:") {
		v = v[7:]
	}
	at.Email = v
	at.Optional = strings.EqualFold(prop.Params.Get(ical.ParamRole), "OPT-PARTICIPANT") ||
		strings.EqualFold(prop.Params.Get(ical.ParamRole), "NON-PARTICIPANT")
	at.Response = map[string]serversync.AttendeeResponse{
		"ACCEPTED": serversync.ResponseAccepted, "DECLINED": serversync.ResponseDeclined,
		"TENTATIVE": serversync.ResponseTentative, "DELEGATED": serversync.ResponseDelegated,
	}[strings.ToUpper(prop.Params.Get(ical.ParamParticipationStatus))]
	return at
}

func readRecurrence(p ical.Props, zones map[string]*time.Location) (*serversync.Recurrence, error) {
	rr := p.Get(ical.PropRecurrenceRule)
	if rr == nil {
		return nil, nil
	}
	r := &serversync.Recurrence{Rule: rr.Value}
	for _, ex := range p.Values(ical.PropExceptionDates) {
		// One EXDATE may list several times.
		for _, v := range strings.Split(ex.Value, ",") {
			one := ex
			one.Value = v
			d, _, err := readTime(&one, zones)
			if err != nil {
				return nil, fmt.Errorf("EXDATE: %w", err)
			}
			r.Exceptions = append(r.Exceptions, d.Time)
		}
	}
	return r, nil
}

// calendarZones maps each TZID whose VTIMEZONE the calendar carries and that is no
// IANA name (Outlook's "W. Europe Standard Time") to a fixed zone of its standard
// offset: the best a Go program can do without a Windows→IANA table.
func calendarZones(cal *ical.Calendar) map[string]*time.Location {
	zones := map[string]*time.Location{}
	for _, c := range cal.Children {
		if c.Name != ical.CompTimezone {
			continue
		}
		tzid := text(c.Props, ical.PropTimezoneID)
		if _, err := time.LoadLocation(tzid); err == nil || tzid == "" {
			continue
		}
		for _, sub := range c.Children {
			if sub.Name != ical.CompTimezoneStandard && len(zones) > 0 {
				continue
			}
			if off, ok := parseOffset(text(sub.Props, ical.PropTimezoneOffsetTo)); ok {
				zones[tzid] = time.FixedZone(tzid, off)
			}
		}
	}
	return zones
}

func parseOffset(s string) (int, bool) {
	if len(s) != 5 && len(s) != 7 || (s[0] != '+' && s[0] != '-') {
		return 0, false
	}
	h, err1 := strconv.Atoi(s[1:3])
	m, err2 := strconv.Atoi(s[3:5])
	sec := 0
	var err3 error
	if len(s) == 7 {
		sec, err3 = strconv.Atoi(s[5:7])
	}
	if err1 != nil || err2 != nil || err3 != nil || h > 23 || m > 59 || sec > 59 {
		return 0, false
	}
	off := h*3600 + m*60 + sec
	if s[0] == '-' {
		off = -off
	}
	return off, true
}

// readTime reads a DATE or DATE-TIME property; a nil prop gives the zero DateTime.
func readTime(prop *ical.Prop, zones map[string]*time.Location) (serversync.DateTime, bool, error) {
	if prop == nil {
		return serversync.DateTime{}, false, nil
	}
	v := strings.TrimSpace(prop.Value)
	isDate := prop.Params.Get(ical.ParamValue) == "DATE" || len(v) == 8
	if isDate {
		t, err := time.ParseInLocation("20060102", v, time.UTC)
		if err != nil {
			return serversync.DateTime{}, false, badData("date %q", v)
		}
		return serversync.DateTime{Time: t}, true, nil
	}
	if strings.HasSuffix(v, "Z") {
		t, err := time.ParseInLocation("20060102T150405Z", v, time.UTC)
		if err != nil {
			return serversync.DateTime{}, false, badData("time %q", v)
		}
		return serversync.DateTime{Time: t}, false, nil
	}
	tzid := prop.Params.Get(ical.PropTimezoneID)
	loc := time.UTC // a floating time is taken as UTC
	if tzid != "" {
		if l, err := time.LoadLocation(tzid); err == nil {
			loc = l
		} else if l, ok := zones[tzid]; ok {
			loc, tzid = l, ""
		} else {
			return serversync.DateTime{}, false, badData("unknown time zone %q", tzid)
		}
	}
	t, err := time.ParseInLocation("20060102T150405", v, loc)
	if err != nil {
		return serversync.DateTime{}, false, badData("time %q", v)
	}
	if tzid == "UTC" {
		tzid = ""
	}
	return serversync.DateTime{Time: t, TZID: tzid}, false, nil
}

// encodeTask writes a task as a VCALENDAR with one VTODO.
func encodeTask(t *serversync.Task) ([]byte, error) {
	cal := newCalendar()
	zones := map[string]time.Time{}
	td := ical.NewComponent(ical.CompToDo)
	p := td.Props
	p.SetText(ical.PropUID, t.UID)
	p.SetDateTime(ical.PropDateTimeStamp, time.Now().UTC())
	if t.Subject != "" {
		p.SetText(ical.PropSummary, t.Subject)
	}
	if t.Body != "" {
		p.SetText(ical.PropDescription, t.Body)
	}
	if !t.Start.IsZero() {
		if err := setTime(p, ical.PropDateTimeStart, t.Start, false, zones); err != nil {
			return nil, err
		}
	}
	if !t.Due.IsZero() {
		if err := setTime(p, ical.PropDue, t.Due, false, zones); err != nil {
			return nil, err
		}
	}
	status := map[serversync.TaskStatus]string{
		serversync.TaskNotStarted: "NEEDS-ACTION", serversync.TaskInProgress: "IN-PROCESS",
		serversync.TaskCompleted: "COMPLETED", serversync.TaskCancelled: "CANCELLED",
	}[t.Status]
	if status == "" {
		return nil, badData("unknown task status %q", t.Status)
	}
	p.SetText(ical.PropStatus, status)
	if t.PercentComplete < 0 || t.PercentComplete > 100 {
		return nil, badData("percent complete %d is not within 0–100", t.PercentComplete)
	}
	if t.PercentComplete > 0 {
		p.SetText(ical.PropPercentComplete, strconv.Itoa(t.PercentComplete))
	}
	if t.Status == serversync.TaskCompleted {
		done := t.Completed
		if done.IsZero() {
			done = time.Now()
		}
		p.SetDateTime(ical.PropCompleted, done.UTC())
	}
	if t.Priority < 0 || t.Priority > 9 {
		return nil, badData("priority %d is not within 0–9", t.Priority)
	}
	if t.Priority > 0 {
		p.SetText(ical.PropPriority, strconv.Itoa(t.Priority))
	}
	anchor := t.Start
	if anchor.IsZero() {
		anchor = t.Due
	}
	if t.Recurrence != nil && anchor.IsZero() {
		return nil, badData("a recurring task needs a start or a due date")
	}
	if err := setRecurrence(p, t.Recurrence, anchor, false, zones); err != nil {
		return nil, err
	}
	cal.Children = append(cal.Children, td)
	return encodeCalendar(cal, zones)
}

func decodeTask(data []byte) (*serversync.Task, error) {
	cal, err := decodeCalendar(data)
	if err != nil {
		return nil, err
	}
	zones := calendarZones(cal)
	for _, c := range cal.Children {
		if c.Name != ical.CompToDo {
			continue
		}
		p := c.Props
		if p.Get(ical.PropRecurrenceID) != nil {
			continue // overrides of a recurring task are not modelled
		}
		t := &serversync.Task{}
		t.UID = text(p, ical.PropUID)
		t.Subject = text(p, ical.PropSummary)
		t.Body = text(p, ical.PropDescription)
		if t.Start, _, err = readTime(p.Get(ical.PropDateTimeStart), zones); err != nil {
			return nil, fmt.Errorf("DTSTART: %w", err)
		}
		if t.Due, _, err = readTime(p.Get(ical.PropDue), zones); err != nil {
			return nil, fmt.Errorf("DUE: %w", err)
		}
		switch strings.ToUpper(text(p, ical.PropStatus)) {
		case "IN-PROCESS":
			t.Status = serversync.TaskInProgress
		case "COMPLETED":
			t.Status = serversync.TaskCompleted
		case "CANCELLED":
			t.Status = serversync.TaskCancelled
		}
		if v := text(p, ical.PropPercentComplete); v != "" {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || n < 0 || n > 100 {
				return nil, badData("PERCENT-COMPLETE %q", v)
			}
			t.PercentComplete = n
		}
		if c := p.Get(ical.PropCompleted); c != nil {
			d, _, err := readTime(c, zones)
			if err != nil {
				return nil, fmt.Errorf("COMPLETED: %w", err)
			}
			t.Completed = d.Time
			if t.Status == serversync.TaskNotStarted {
				t.Status = serversync.TaskCompleted // clients that set only COMPLETED
			}
		}
		if v := text(p, ical.PropPriority); v != "" {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || n < 0 || n > 9 {
				return nil, badData("PRIORITY %q", v)
			}
			t.Priority = n
		}
		if t.Recurrence, err = readRecurrence(p, zones); err != nil {
			return nil, err
		}
		t.Modified = modified(p)
		return t, nil
	}
	return nil, badData("no VTODO")
}
