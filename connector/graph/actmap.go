package graph

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/serversync/serversync"
)

// This file maps the ACT model to Graph's event, contact and todoTask
// resources and back. What Graph cannot hold is listed in the package
// documentation ("Appointments, contacts and tasks").

type dateTimeTimeZone struct {
	DateTime string `json:"dateTime"`
	TimeZone string `json:"timeZone"`
}

type itemBody struct {
	ContentType string `json:"contentType"`
	Content     string `json:"content"`
}

type emailAddress struct {
	Name    string `json:"name,omitempty"`
	Address string `json:"address"`
}

type recipient struct {
	EmailAddress emailAddress `json:"emailAddress"`
}

type responseStatus struct {
	Response string `json:"response"`
}

type graphAttendee struct {
	Type         string          `json:"type"`
	EmailAddress emailAddress    `json:"emailAddress"`
	Status       *responseStatus `json:"status,omitempty"`
}

type extendedProperty struct {
	ID    string `json:"id"`
	Value string `json:"value"`
}

func propertyValue(list []extendedProperty, id string) string {
	for _, p := range list {
		if strings.EqualFold(p.ID, id) {
			return p.Value
		}
	}
	return ""
}

type location struct {
	DisplayName string `json:"displayName"`
}

// graphEvent is the part of Graph's event this connector reads
// (https://learn.microsoft.com/graph/api/resources/event).
type graphEvent struct {
	ID                         string               `json:"id"`
	ETag                       string               `json:"@odata.etag"`
	ICalUID                    string               `json:"iCalUId"`
	Type                       string               `json:"type"`
	SeriesMasterID             string               `json:"seriesMasterId"`
	OriginalStart              string               `json:"originalStart"`
	Subject                    string               `json:"subject"`
	Body                       *itemBody            `json:"body"`
	Location                   *location            `json:"location"`
	Start                      *dateTimeTimeZone    `json:"start"`
	End                        *dateTimeTimeZone    `json:"end"`
	OriginalStartTimeZone      string               `json:"originalStartTimeZone"`
	OriginalEndTimeZone        string               `json:"originalEndTimeZone"`
	IsAllDay                   bool                 `json:"isAllDay"`
	Organizer                  *recipient           `json:"organizer"`
	Attendees                  []graphAttendee      `json:"attendees"`
	Recurrence                 *patternedRecurrence `json:"recurrence"`
	IsReminderOn               bool                 `json:"isReminderOn"`
	ReminderMinutesBeforeStart int                  `json:"reminderMinutesBeforeStart"`
	Categories                 []string             `json:"categories"`
	Sensitivity                string               `json:"sensitivity"`
	LastModifiedDateTime       string               `json:"lastModifiedDateTime"`
	Ext                        []extendedProperty   `json:"singleValueExtendedProperties"`
}

var responses = []struct {
	model serversync.AttendeeResponse
	graph string
}{
	{serversync.ResponseAccepted, "accepted"}, {serversync.ResponseDeclined, "declined"},
	{serversync.ResponseTentative, "tentativelyAccepted"}, {serversync.ResponseNone, "none"},
}

func readResponse(s *responseStatus) serversync.AttendeeResponse {
	if s == nil {
		return serversync.ResponseNone
	}
	for _, r := range responses {
		if strings.EqualFold(r.graph, s.Response) {
			return r.model
		}
	}
	return serversync.ResponseNone // notResponded, organizer
}

func writeResponse(r serversync.AttendeeResponse) string {
	for _, x := range responses {
		if x.model == r {
			return x.graph
		}
	}
	return "none" // delegated: Graph has no such answer
}

func modifiedTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

func bodyText(b *itemBody) string {
	if b == nil {
		return ""
	}
	// Asked for as text (Prefer: outlook.body-content-type="text"); Exchange
	// writes line breaks as CRLF.
	return strings.ReplaceAll(b.Content, "\r\n", "\n")
}

// readEvent maps an event (a series master without its instances).
func readEvent(ev *graphEvent) *serversync.Appointment {
	a := &serversync.Appointment{
		ACTHeader: serversync.ACTHeader{ServerID: ev.ID, ChangeKey: ev.ETag,
			UID: cmpOr(propertyValue(ev.Ext, uidProperty), ev.ICalUID)},
		Subject: ev.Subject, Body: bodyText(ev.Body), AllDay: ev.IsAllDay,
		Categories: ev.Categories, Modified: modifiedTime(ev.LastModifiedDateTime),
	}
	if ev.Location != nil {
		a.Location = ev.Location.DisplayName
	}
	a.Start = readTime(ev.Start, ev.OriginalStartTimeZone, ev.IsAllDay)
	a.End = readTime(ev.End, cmpOr(ev.OriginalEndTimeZone, ev.OriginalStartTimeZone), ev.IsAllDay)
	switch strings.ToLower(ev.Sensitivity) {
	case "private":
		a.Sensitivity = serversync.SensitivityPrivate
	case "confidential":
		a.Sensitivity = serversync.SensitivityConfidential
	}
	if ev.IsReminderOn {
		a.Reminder = time.Duration(ev.ReminderMinutesBeforeStart) * time.Minute
	}
	if ev.Organizer != nil && ev.Organizer.EmailAddress.Address != "" {
		a.Organizer = &serversync.Attendee{Name: nameOf(ev.Organizer.EmailAddress), Email: ev.Organizer.EmailAddress.Address}
	}
	for _, at := range ev.Attendees {
		a.Attendees = append(a.Attendees, serversync.Attendee{Name: nameOf(at.EmailAddress), Email: at.EmailAddress.Address,
			Optional: strings.EqualFold(at.Type, "optional"), Response: readResponse(at.Status)})
	}
	if ev.Recurrence != nil {
		loc := a.Start.Time.Location()
		if a.Start.IsZero() {
			loc = time.UTC
		}
		if rule := toRRule(ev.Recurrence, loc, ev.IsAllDay); rule != "" {
			a.Recurrence = &serversync.Recurrence{Rule: rule}
		}
	}
	return a
}

// nameOf is an address's display name; Exchange fills the address in where
// none was given.
func nameOf(e emailAddress) string {
	if strings.EqualFold(e.Name, e.Address) {
		return ""
	}
	return e.Name
}

// eventBody is what this connector writes of an event. Fields without
// omitempty are always sent, so an update clears what the caller cleared.
type eventBody struct {
	Subject                    string             `json:"subject"`
	Body                       itemBody           `json:"body"`
	Location                   location           `json:"location"`
	Start                      *dateTimeTimeZone  `json:"start"`
	End                        *dateTimeTimeZone  `json:"end"`
	IsAllDay                   bool               `json:"isAllDay"`
	Organizer                  *recipient         `json:"organizer,omitempty"`
	Attendees                  *[]graphAttendee   `json:"attendees,omitempty"`  // nil for an override: the series' stay
	Recurrence                 json.RawMessage    `json:"recurrence,omitempty"` // null clears it; none for an override
	IsReminderOn               bool               `json:"isReminderOn"`
	ReminderMinutesBeforeStart int                `json:"reminderMinutesBeforeStart"`
	Categories                 []string           `json:"categories"`
	Sensitivity                string             `json:"sensitivity"`
	Ext                        []extendedProperty `json:"singleValueExtendedProperties,omitempty"`
}

// writeEvent maps an appointment; whole is false for an override (an
// occurrence's own fields only).
func writeEvent(a *serversync.Appointment, whole bool) (*eventBody, error) {
	start, err := writeTime(a.Start, a.AllDay)
	if err != nil {
		return nil, err
	}
	end, err := writeTime(a.End, a.AllDay)
	if err != nil {
		return nil, err
	}
	if start == nil || end == nil {
		return nil, fmt.Errorf("graph: an appointment needs a start and an end")
	}
	b := &eventBody{Subject: a.Subject, Body: itemBody{ContentType: "text", Content: a.Body}, Location: location{DisplayName: a.Location},
		Start: start, End: end, IsAllDay: a.AllDay, IsReminderOn: a.Reminder > 0, ReminderMinutesBeforeStart: int(a.Reminder / time.Minute),
		Categories: nonNil(a.Categories), Sensitivity: "normal"}
	switch a.Sensitivity {
	case serversync.SensitivityPrivate:
		b.Sensitivity = "private"
	case serversync.SensitivityConfidential:
		b.Sensitivity = "confidential"
	}
	if !whole {
		return b, nil
	}
	if a.Organizer != nil {
		b.Organizer = &recipient{EmailAddress: emailAddress{Name: a.Organizer.Name, Address: a.Organizer.Email}}
	}
	attendees := []graphAttendee{}
	for _, at := range a.Attendees {
		typ := "required"
		if at.Optional {
			typ = "optional"
		}
		attendees = append(attendees, graphAttendee{Type: typ, EmailAddress: emailAddress{Name: at.Name, Address: at.Email},
			Status: &responseStatus{Response: writeResponse(at.Response)}})
	}
	b.Attendees = &attendees
	b.Recurrence = json.RawMessage("null")
	if a.Recurrence != nil {
		loc := a.Start.Time.Location()
		if a.AllDay {
			loc = time.UTC
		}
		r, err := toPattern(a.Recurrence.Rule, a.Start.Time.In(loc), start.TimeZone)
		if err != nil {
			return nil, err
		}
		if b.Recurrence, err = json.Marshal(r); err != nil {
			return nil, err
		}
	}
	b.Ext = []extendedProperty{{ID: uidProperty, Value: a.UID}}
	return b, nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

type physicalAddress struct {
	Street          string `json:"street"`
	City            string `json:"city"`
	State           string `json:"state"`
	PostalCode      string `json:"postalCode"`
	CountryOrRegion string `json:"countryOrRegion"`
}

func (p *physicalAddress) empty() bool { return p == nil || *p == physicalAddress{} }

// graphContact is Graph's contact (https://learn.microsoft.com/graph/api/resources/contact).
type graphContact struct {
	ID             string             `json:"id,omitempty"`
	ETag           string             `json:"@odata.etag,omitempty"`
	DisplayName    string             `json:"displayName"`
	GivenName      string             `json:"givenName"`
	Surname        string             `json:"surname"`
	MiddleName     string             `json:"middleName"`
	Title          string             `json:"title"`
	Generation     string             `json:"generation"`
	NickName       string             `json:"nickName"`
	EmailAddresses []emailAddress     `json:"emailAddresses"`
	BusinessPhones []string           `json:"businessPhones"`
	HomePhones     []string           `json:"homePhones"`
	MobilePhone    string             `json:"mobilePhone"`
	BusinessAddr   *physicalAddress   `json:"businessAddress"`
	HomeAddr       *physicalAddress   `json:"homeAddress"`
	OtherAddr      *physicalAddress   `json:"otherAddress"`
	CompanyName    string             `json:"companyName"`
	Department     string             `json:"department"`
	JobTitle       string             `json:"jobTitle"`
	Birthday       *string            `json:"birthday"`
	PersonalNotes  string             `json:"personalNotes"`
	LastModified   string             `json:"lastModifiedDateTime,omitempty"`
	Ext            []extendedProperty `json:"singleValueExtendedProperties,omitempty"`
}

// contactLayout is what layoutProperty holds: the labels of the emails, phones
// and addresses in the caller's order. Graph keeps emails without labels and
// phones and addresses in fixed slots; the layout restores them as long as it
// still fits what is on the server (edited in Outlook, it is ignored).
type contactLayout struct {
	Emails    []string `json:"e,omitempty"`
	Phones    []string `json:"p,omitempty"`
	Addresses []string `json:"a,omitempty"`
}

// phoneSlot is where Graph keeps a phone of a type.
func phoneSlot(typ string) string {
	switch strings.ToLower(typ) {
	case "cell", "mobile":
		return "mobile"
	case "home":
		return "home"
	}
	return "business"
}

func addressSlot(typ string) string {
	switch strings.ToLower(typ) {
	case "home":
		return "home"
	case "work", "":
		return "business"
	}
	return "other"
}

func writeContact(c *serversync.Contact) *graphContact {
	g := &graphContact{DisplayName: c.DisplayName, GivenName: c.GivenName, Surname: c.FamilyName, MiddleName: c.MiddleName,
		Title: c.Prefix, Generation: c.Suffix, NickName: c.Nickname, CompanyName: c.Company, Department: c.Department,
		JobTitle: c.JobTitle, PersonalNotes: c.Notes, EmailAddresses: []emailAddress{}, BusinessPhones: []string{}, HomePhones: []string{}}
	var layout contactLayout
	for i, e := range c.Emails {
		if i == 3 { // Graph keeps three
			break
		}
		g.EmailAddresses = append(g.EmailAddresses, emailAddress{Address: e.Value, Name: e.Value})
		layout.Emails = append(layout.Emails, e.Type)
	}
	for _, p := range c.Phones {
		switch phoneSlot(p.Type) {
		case "mobile":
			if g.MobilePhone != "" {
				continue // one mobile number
			}
			g.MobilePhone = p.Value
		case "home":
			g.HomePhones = append(g.HomePhones, p.Value)
		default:
			g.BusinessPhones = append(g.BusinessPhones, p.Value)
		}
		layout.Phones = append(layout.Phones, p.Type)
	}
	for _, a := range c.Addresses {
		pa := &physicalAddress{Street: a.Street, City: a.City, State: a.Region, PostalCode: a.PostalCode, CountryOrRegion: a.Country}
		slot := map[string]**physicalAddress{"business": &g.BusinessAddr, "home": &g.HomeAddr, "other": &g.OtherAddr}[addressSlot(a.Type)]
		if *slot != nil {
			continue // one address per slot
		}
		*slot = pa
		layout.Addresses = append(layout.Addresses, a.Type)
	}
	if !c.Birthday.IsZero() {
		b := time.Date(c.Birthday.Year(), c.Birthday.Month(), c.Birthday.Day(), 0, 0, 0, 0, time.UTC).Format(time.RFC3339)
		g.Birthday = &b
	}
	raw, _ := json.Marshal(layout)
	g.Ext = []extendedProperty{{ID: uidProperty, Value: c.UID}, {ID: layoutProperty, Value: string(raw)}}
	return g
}

func readContact(g *graphContact, layoutJSON string) *serversync.Contact {
	c := &serversync.Contact{
		ACTHeader:   serversync.ACTHeader{ServerID: g.ID, ChangeKey: g.ETag, UID: cmpOr(propertyValue(g.Ext, uidProperty), g.ID)},
		DisplayName: g.DisplayName, GivenName: g.GivenName, FamilyName: g.Surname, MiddleName: g.MiddleName, Prefix: g.Title,
		Suffix: g.Generation, Nickname: g.NickName, Company: g.CompanyName, Department: g.Department, JobTitle: g.JobTitle,
		Notes: strings.ReplaceAll(g.PersonalNotes, "\r\n", "\n"), Modified: modifiedTime(g.LastModified),
	}
	var layout contactLayout
	_ = json.Unmarshal([]byte(layoutJSON), &layout)
	for i, e := range g.EmailAddresses {
		typ := ""
		if len(layout.Emails) == len(g.EmailAddresses) {
			typ = layout.Emails[i]
		}
		c.Emails = append(c.Emails, serversync.ContactValue{Type: typ, Value: e.Address})
	}
	// Phones: in the layout's order while it fits the slots, else slot by slot.
	slots := map[string][]string{"business": slices.Clone(g.BusinessPhones), "home": slices.Clone(g.HomePhones)}
	if g.MobilePhone != "" {
		slots["mobile"] = []string{g.MobilePhone}
	}
	total := len(slots["business"]) + len(slots["home"]) + len(slots["mobile"])
	fits := len(layout.Phones) == total
	for _, typ := range layout.Phones {
		if len(slots[phoneSlot(typ)]) == 0 {
			fits = false
		}
	}
	if fits {
		for _, typ := range layout.Phones {
			slot := phoneSlot(typ)
			c.Phones = append(c.Phones, serversync.ContactValue{Type: typ, Value: slots[slot][0]})
			slots[slot] = slots[slot][1:]
		}
	} else {
		for _, s := range []struct{ slot, typ string }{{"business", "work"}, {"home", "home"}, {"mobile", "cell"}} {
			for _, v := range slots[s.slot] {
				c.Phones = append(c.Phones, serversync.ContactValue{Type: s.typ, Value: v})
			}
		}
	}
	addrs := map[string]*physicalAddress{"business": g.BusinessAddr, "home": g.HomeAddr, "other": g.OtherAddr}
	add := func(typ string, p *physicalAddress) {
		c.Addresses = append(c.Addresses, serversync.PostalAddress{Type: typ, Street: p.Street, City: p.City, Region: p.State,
			PostalCode: p.PostalCode, Country: p.CountryOrRegion})
	}
	used := map[string]bool{}
	for _, typ := range layout.Addresses {
		slot := addressSlot(typ)
		if p := addrs[slot]; !p.empty() && !used[slot] {
			add(typ, p)
			used[slot] = true
		}
	}
	for _, s := range []struct{ slot, typ string }{{"business", "work"}, {"home", "home"}, {"other", "other"}} {
		if p := addrs[s.slot]; !p.empty() && !used[s.slot] {
			add(s.typ, p)
		}
	}
	if g.Birthday != nil {
		if t, err := time.Parse(time.RFC3339, *g.Birthday); err == nil {
			c.Birthday = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
		}
	}
	return c
}

// graphTask is Graph's todoTask (https://learn.microsoft.com/graph/api/resources/todotask).
type graphTask struct {
	ID                   string               `json:"id,omitempty"`
	ETag                 string               `json:"@odata.etag,omitempty"`
	Title                string               `json:"title"`
	Body                 *itemBody            `json:"body"`
	Status               string               `json:"status"`
	Importance           string               `json:"importance"`
	StartDateTime        *dateTimeTimeZone    `json:"startDateTime"`
	DueDateTime          *dateTimeTimeZone    `json:"dueDateTime"`
	CompletedDateTime    *dateTimeTimeZone    `json:"completedDateTime"`
	Recurrence           *patternedRecurrence `json:"recurrence"`
	LastModifiedDateTime string               `json:"lastModifiedDateTime,omitempty"`
	Extensions           []json.RawMessage    `json:"extensions,omitempty"`
}

// taskExt is the task's open extension.
type taskExt struct {
	ODataType       string `json:"@odata.type,omitempty"`
	ExtensionName   string `json:"extensionName"`
	UID             string `json:"uid"`
	PercentComplete int    `json:"percentComplete"`
	Priority        int    `json:"priority"`
	StartZone       string `json:"startZone,omitempty"`
	DueZone         string `json:"dueZone,omitempty"`
}

func (t *graphTask) extension() *taskExt {
	for _, raw := range t.Extensions {
		var e taskExt
		if json.Unmarshal(raw, &e) == nil && strings.EqualFold(e.ExtensionName, taskExtension) {
			return &e
		}
	}
	return nil
}

func taskExtensionOf(t *serversync.Task) *taskExt {
	return &taskExt{ODataType: "microsoft.graph.openTypeExtension", ExtensionName: taskExtension, UID: t.UID,
		PercentComplete: t.PercentComplete, Priority: t.Priority, StartZone: t.Start.TZID, DueZone: t.Due.TZID}
}

var taskStatuses = []struct {
	model serversync.TaskStatus
	graph string
}{
	{serversync.TaskNotStarted, "notStarted"}, {serversync.TaskInProgress, "inProgress"},
	{serversync.TaskCompleted, "completed"}, {serversync.TaskCancelled, "deferred"},
	{serversync.TaskInProgress, "waitingOnOthers"},
}

// importance is To Do's three levels for iCalendar's priority.
func importance(priority int) string {
	switch {
	case priority >= 1 && priority <= 4:
		return "high"
	case priority >= 6:
		return "low"
	}
	return "normal"
}

// writeTask maps a task; create adds the open extension to the new task
// (an update writes it apart).
func writeTask(t *serversync.Task, create bool) (*graphTask, error) {
	g := &graphTask{Title: t.Subject, Body: &itemBody{ContentType: "text", Content: t.Body}, Importance: importance(t.Priority), Status: "notStarted"}
	for _, s := range taskStatuses {
		if s.model == t.Status {
			g.Status = s.graph
			break
		}
	}
	var err error
	if g.StartDateTime, err = writeTime(t.Start, false); err != nil {
		return nil, err
	}
	if g.DueDateTime, err = writeTime(t.Due, false); err != nil {
		return nil, err
	}
	if !t.Completed.IsZero() {
		g.CompletedDateTime = &dateTimeTimeZone{DateTime: t.Completed.UTC().Format("2006-01-02T15:04:05"), TimeZone: "UTC"}
	}
	if t.Recurrence != nil {
		anchor := t.Due
		if anchor.IsZero() {
			anchor = t.Start
		}
		if anchor.IsZero() {
			return nil, fmt.Errorf("graph: a recurring To Do task needs a due date")
		}
		dz, _ := writeTime(anchor, false)
		if g.Recurrence, err = toPattern(t.Recurrence.Rule, anchor.Time, dz.TimeZone); err != nil {
			return nil, err
		}
	}
	if create {
		raw, _ := json.Marshal(taskExtensionOf(t))
		g.Extensions = []json.RawMessage{raw}
	}
	return g, nil
}

func readTask(g *graphTask) *serversync.Task {
	ext := g.extension()
	if ext == nil {
		ext = &taskExt{}
	}
	t := &serversync.Task{
		ACTHeader: serversync.ACTHeader{ServerID: g.ID, ChangeKey: g.ETag, UID: cmpOr(ext.UID, g.ID)},
		Subject:   g.Title, Body: bodyText(g.Body), Modified: modifiedTime(g.LastModifiedDateTime),
		Start: readTime(g.StartDateTime, ext.StartZone, false), Due: readTime(g.DueDateTime, ext.DueZone, false),
	}
	for _, s := range taskStatuses {
		if strings.EqualFold(s.graph, g.Status) {
			t.Status = s.model
			break
		}
	}
	// The exact priority and percentage while they agree with what To Do shows.
	t.Priority = map[string]int{"high": 1, "low": 9}[strings.ToLower(g.Importance)]
	if importance(ext.Priority) == strings.ToLower(cmpOr(g.Importance, "normal")) {
		t.Priority = ext.Priority
	}
	t.PercentComplete = ext.PercentComplete
	switch t.Status {
	case serversync.TaskCompleted:
		t.PercentComplete = 100
	case serversync.TaskNotStarted:
		t.PercentComplete = 0
	}
	if g.CompletedDateTime != nil && t.Status == serversync.TaskCompleted {
		t.Completed = readTime(g.CompletedDateTime, "UTC", false).Time.UTC()
	}
	if g.Recurrence != nil {
		anchor := t.Due
		if anchor.IsZero() {
			anchor = t.Start
		}
		loc := time.UTC
		if !anchor.IsZero() {
			loc = anchor.Time.Location()
		}
		if rule := toRRule(g.Recurrence, loc, false); rule != "" {
			t.Recurrence = &serversync.Recurrence{Rule: rule}
		}
	}
	return t
}
