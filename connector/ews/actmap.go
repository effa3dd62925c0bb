package ews

import (
	"fmt"
	"net/mail"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/internal/tzwin"
)

// This file maps serversync's ACT items to EWS's CalendarItem, Contact and Task
// elements and back.

// propertySetID is the named-property set (MAPI PS_PUBLIC_STRINGS style GUID of
// serversync's own) holding the properties EWS has no element for.
const propertySetID = "3f2b5c8e-7d1a-4e9b-a6c4-51d0e2f8b917"

// Named properties of propertySetID.
const (
	propUID       = "ServersyncUID"       // the item's UID, for every kind
	propOrganizer = "ServersyncOrganizer" // "Name <email>": Organizer is read-only in EWS
	// propAttendeeOrder lists the attendees' addresses in the item's order:
	// EWS splits them into required and optional.
	propAttendeeOrder = "ServersyncAttendeeOrder"
	propTaskZone      = "ServersyncTaskZone" // the IANA zone of a task's start and due times
)

// prefixTag is PidTagDisplayNamePrefix, a contact's title ("Dr."), which EWS
// exposes only read-only inside CompleteName.
const prefixTag = "0x3A45"

func namedURI(name string) string {
	return `<t:ExtendedFieldURI PropertySetId="` + propertySetID + `" PropertyName="` + name + `" PropertyType="String"/>`
}

func taggedURI(tag string) string {
	return `<t:ExtendedFieldURI PropertyTag="` + tag + `" PropertyType="String"/>`
}

// extendedProperties are the extended properties GetItem asks for besides AllProperties.
var extendedProperties = namedURI(propUID) + namedURI(propOrganizer) + namedURI(propAttendeeOrder) + namedURI(propTaskZone) + taggedURI(prefixTag)

// actFields are the elements of a CalendarItem, Contact or Task the connector
// reads (a Message leaves them empty).
type actFields struct {
	Subject          string             `xml:"Subject"`
	Sensitivity      string             `xml:"Sensitivity"`
	Body             string             `xml:"Body"`
	Categories       []string           `xml:"Categories>String"`
	Importance       string             `xml:"Importance"`
	ReminderIsSet    string             `xml:"ReminderIsSet"`
	ReminderMinutes  string             `xml:"ReminderMinutesBeforeStart"`
	Extended         []extendedProperty `xml:"ExtendedProperty"`
	LastModifiedTime string             `xml:"LastModifiedTime"`

	Start, End, OriginalStart string
	IsAllDayEvent             string
	Location                  string
	Organizer                 *mailboxXML        `xml:"Organizer>Mailbox"`
	Required                  []attendeeXML      `xml:"RequiredAttendees>Attendee"`
	Optional                  []attendeeXML      `xml:"OptionalAttendees>Attendee"`
	Recurrence                *recurrenceXML     `xml:"Recurrence"`
	ModifiedOccurrences       []occurrenceXML    `xml:"ModifiedOccurrences>Occurrence"`
	DeletedOccurrences        []occurrenceXML    `xml:"DeletedOccurrences>DeletedOccurrence"`
	StartTimeZone             timeZoneDefinition `xml:"StartTimeZone"`
	EndTimeZone               timeZoneDefinition `xml:"EndTimeZone"`

	DisplayName, GivenName, MiddleName, Nickname, CompanyName, Surname string
	Department, JobTitle, Generation, Birthday                         string
	EmailAddresses                                                     []entryXML   `xml:"EmailAddresses>Entry"`
	PhoneNumbers                                                       []entryXML   `xml:"PhoneNumbers>Entry"`
	PhysicalAddresses                                                  []addressXML `xml:"PhysicalAddresses>Entry"`

	DueDate, StartDate, CompleteDate, Status, PercentComplete string
}

type extendedProperty struct {
	URI struct {
		PropertySetID string `xml:"PropertySetId,attr"`
		PropertyName  string `xml:"PropertyName,attr"`
		PropertyTag   string `xml:"PropertyTag,attr"`
	} `xml:"ExtendedFieldURI"`
	Value string `xml:"Value"`
}

type mailboxXML struct {
	Name  string `xml:"Name"`
	Email string `xml:"EmailAddress"`
}

type attendeeXML struct {
	Mailbox  mailboxXML `xml:"Mailbox"`
	Response string     `xml:"ResponseType"`
}

type occurrenceXML struct {
	ItemID        itemID `xml:"ItemId"`
	Start         string `xml:"Start"`
	End           string `xml:"End"`
	OriginalStart string `xml:"OriginalStart"`
}

type timeZoneDefinition struct {
	ID string `xml:"Id,attr"`
}

type entryXML struct {
	Key   string `xml:"Key,attr"`
	Value string `xml:",chardata"`
}

type addressXML struct {
	Key        string `xml:"Key,attr"`
	Street     string `xml:"Street"`
	City       string `xml:"City"`
	State      string `xml:"State"`
	Country    string `xml:"CountryOrRegion"`
	PostalCode string `xml:"PostalCode"`
}

func (f *actFields) extended(setName, tag string) string {
	for _, p := range f.Extended {
		if (setName != "" && strings.EqualFold(p.URI.PropertySetID, propertySetID) && p.URI.PropertyName == setName) ||
			(tag != "" && strings.EqualFold(p.URI.PropertyTag, tag)) {
			return p.Value
		}
	}
	return ""
}

// field is one property of an item being written: its URI for UpdateItem and
// its element(s) inside the item. An empty xml means "not set": a create leaves
// it out, an update deletes it.
type field struct {
	uri string // <t:FieldURI …/>, <t:IndexedFieldURI …/> or <t:ExtendedFieldURI …/>
	xml string
	// An indexed field's collection, entry key and entry content: CreateItem
	// holds each collection once, so a create merges them (createXML).
	coll, key, inner string
}

// createXML is the content of a CreateItem's item: the fields' elements, an
// indexed collection's entries gathered into one element where it first
// appears, one Entry per key.
func createXML(fields []field) string {
	var b strings.Builder
	done := map[string]bool{}
	for i, f := range fields {
		if f.coll == "" {
			b.WriteString(f.xml)
			continue
		}
		if done[f.coll] {
			continue
		}
		done[f.coll] = true
		var keys []string
		inner := map[string]string{}
		for _, g := range fields[i:] {
			if g.coll != f.coll || g.xml == "" {
				continue
			}
			if _, seen := inner[g.key]; !seen {
				keys = append(keys, g.key)
			}
			inner[g.key] += g.inner
		}
		if len(keys) == 0 {
			continue
		}
		b.WriteString(`<t:` + f.coll + `>`)
		for _, k := range keys {
			b.WriteString(`<t:Entry Key="` + k + `">` + inner[k] + `</t:Entry>`)
		}
		b.WriteString(`</t:` + f.coll + `>`)
	}
	return b.String()
}

func plainField(uri, elem, value string) field {
	if value == "" {
		return field{uri: `<t:FieldURI FieldURI="` + uri + `"/>`}
	}
	return field{uri: `<t:FieldURI FieldURI="` + uri + `"/>`, xml: `<t:` + elem + `>` + esc(value) + `</t:` + elem + `>`}
}

func rawField(uri, elem, inner string) field {
	if inner == "" {
		return field{uri: `<t:FieldURI FieldURI="` + uri + `"/>`}
	}
	return field{uri: `<t:FieldURI FieldURI="` + uri + `"/>`, xml: `<t:` + elem + `>` + inner + `</t:` + elem + `>`}
}

// bodyField always sets the body (empty when there is none): Exchange may
// refuse to delete it.
func bodyField(text string) field {
	return field{uri: `<t:FieldURI FieldURI="item:Body"/>`, xml: `<t:Body BodyType="Text">` + esc(text) + `</t:Body>`}
}

func extendedField(uri, value string) field {
	if value == "" {
		return field{uri: uri}
	}
	return field{uri: uri, xml: `<t:ExtendedProperty>` + uri + `<t:Value>` + esc(value) + `</t:Value></t:ExtendedProperty>`}
}

// indexedField is one entry of EmailAddresses or PhoneNumbers.
func indexedField(uri, collection, key, value string) field {
	f := field{uri: `<t:IndexedFieldURI FieldURI="` + uri + `" FieldIndex="` + key + `"/>`, coll: collection, key: key}
	if value != "" {
		f.inner = esc(value)
		f.xml = `<t:` + collection + `><t:Entry Key="` + key + `">` + f.inner + `</t:Entry></t:` + collection + `>`
	}
	return f
}

const utcFormat = "2006-01-02T15:04:05Z"

func formatUTC(t time.Time) string { return t.UTC().Format(utcFormat) }

func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(s))
	if err != nil {
		return time.Time{}
	}
	return t
}

// windowsZone returns the Windows name of an IANA zone ("" and UTC: "UTC") and
// whether it has one.
func windowsZone(tzid string) (string, bool) {
	if tzid == "" || tzid == "UTC" || tzid == "Etc/UTC" {
		return "UTC", true
	}
	return tzwin.Windows(tzid)
}

// inZone turns an EWS UTC instant into a DateTime in the zone named (Windows or IANA).
func inZone(s, zone string) serversync.DateTime {
	t := parseTime(s)
	if t.IsZero() {
		return serversync.DateTime{}
	}
	loc, iana, ok := tzwin.Location(zone)
	if !ok {
		return serversync.DateTime{Time: t.UTC()}
	}
	return serversync.DateTime{Time: t.In(loc), TZID: iana}
}

// zoneOf is the Windows zone an appointment is written in: its start's, or UTC
// when the start's IANA zone has no Windows name (the wall times then travel as
// UTC instants: lossy, see the package doc).
func zoneOf(d serversync.DateTime) string {
	if win, ok := windowsZone(d.TZID); ok {
		return win
	}
	return "UTC"
}

var sensitivities = map[serversync.Sensitivity]string{
	serversync.SensitivityNormal: "Normal", serversync.SensitivityPrivate: "Private", serversync.SensitivityConfidential: "Confidential",
}

func sensitivityOf(s string) serversync.Sensitivity {
	switch strings.TrimSpace(s) {
	case "Private", "Personal":
		return serversync.SensitivityPrivate
	case "Confidential":
		return serversync.SensitivityConfidential
	}
	return serversync.SensitivityNormal
}

var responses = map[serversync.AttendeeResponse]string{
	serversync.ResponseNone: "NoResponseReceived", serversync.ResponseAccepted: "Accept", serversync.ResponseDeclined: "Decline",
	serversync.ResponseTentative: "Tentative", serversync.ResponseDelegated: "NoResponseReceived",
}

func responseOf(s string) serversync.AttendeeResponse {
	switch strings.TrimSpace(s) {
	case "Accept", "Organizer":
		return serversync.ResponseAccepted
	case "Decline":
		return serversync.ResponseDeclined
	case "Tentative":
		return serversync.ResponseTentative
	}
	return serversync.ResponseNone
}

func attendeesXML(list []serversync.Attendee, optional bool) string {
	var b strings.Builder
	for _, a := range list {
		if a.Optional != optional {
			continue
		}
		b.WriteString(`<t:Attendee><t:Mailbox>`)
		if a.Name != "" {
			b.WriteString(`<t:Name>` + esc(a.Name) + `</t:Name>`)
		}
		b.WriteString(`<t:EmailAddress>` + esc(a.Email) + `</t:EmailAddress></t:Mailbox><t:ResponseType>` + responses[a.Response] + `</t:ResponseType></t:Attendee>`)
	}
	return b.String()
}

// appointmentFields are the fields of a CalendarItem in schema order (ItemType's
// elements, then CalendarItemType's). Recurrence is written by the caller:
// see recurrenceFields.
func appointmentFields(a *serversync.Appointment) ([]field, error) {
	zone := zoneOf(a.Start)
	endZone := zoneOf(a.End)
	if a.End.IsZero() {
		endZone = zone
	}
	start, end := a.Start.Time, a.End.Time
	if a.AllDay {
		// An all-day event spans whole days of its zone: UTC here.
		zone, endZone = "UTC", "UTC"
		start = time.Date(start.Year(), start.Month(), start.Day(), 0, 0, 0, 0, time.UTC)
		if end.IsZero() {
			end = start.AddDate(0, 0, 1)
		}
		end = time.Date(end.Year(), end.Month(), end.Day(), 0, 0, 0, 0, time.UTC)
	}
	if end.IsZero() {
		end = start
	}
	var cats strings.Builder
	for _, c := range a.Categories {
		cats.WriteString(`<t:String>` + esc(c) + `</t:String>`)
	}
	reminderSet, minutes := "false", "0" // set, never deleted: Exchange keeps a reminder time on every item
	if a.Reminder > 0 {
		reminderSet, minutes = "true", strconv.Itoa(int(a.Reminder/time.Minute))
	}
	organizer := ""
	if a.Organizer != nil {
		organizer = (&mail.Address{Name: a.Organizer.Name, Address: a.Organizer.Email}).String()
	}
	var order []string
	for _, at := range a.Attendees {
		order = append(order, strings.ToLower(at.Email))
	}
	rec, err := recurrenceXMLFor(a.Recurrence, a.Start, a.AllDay)
	if err != nil {
		return nil, err
	}
	return []field{
		plainField("item:Subject", "Subject", a.Subject),
		plainField("item:Sensitivity", "Sensitivity", sensitivities[a.Sensitivity]),
		bodyField(a.Body),
		rawField("item:Categories", "Categories", cats.String()),
		plainField("item:ReminderIsSet", "ReminderIsSet", reminderSet),
		plainField("item:ReminderMinutesBeforeStart", "ReminderMinutesBeforeStart", minutes),
		extendedField(namedURI(propUID), a.UID),
		extendedField(namedURI(propOrganizer), organizer),
		extendedField(namedURI(propAttendeeOrder), strings.Join(order, " ")),
		plainField("calendar:Start", "Start", formatUTC(start)),
		plainField("calendar:End", "End", formatUTC(end)),
		plainField("calendar:IsAllDayEvent", "IsAllDayEvent", strconv.FormatBool(a.AllDay)),
		plainField("calendar:Location", "Location", a.Location),
		rawField("calendar:RequiredAttendees", "RequiredAttendees", attendeesXML(a.Attendees, false)),
		rawField("calendar:OptionalAttendees", "OptionalAttendees", attendeesXML(a.Attendees, true)),
		rawField("calendar:Recurrence", "Recurrence", rec),
		{uri: `<t:FieldURI FieldURI="calendar:StartTimeZone"/>`, xml: `<t:StartTimeZone Id="` + esc(zone) + `"/>`},
		{uri: `<t:FieldURI FieldURI="calendar:EndTimeZone"/>`, xml: `<t:EndTimeZone Id="` + esc(endZone) + `"/>`},
	}, nil
}

func (f *actFields) header(it *item) serversync.ACTHeader {
	return serversync.ACTHeader{ServerID: it.ItemID.ID, ChangeKey: it.ItemID.ChangeKey, UID: f.extended(propUID, "")}
}

// appointment reads a CalendarItem; occurrences are its modified occurrences as
// GetItem returned them.
func appointment(it *item, occurrences map[string]*item) *serversync.Appointment {
	f := &it.actFields
	a := &serversync.Appointment{ACTHeader: f.header(it), Subject: f.Subject, Body: f.Body, Location: f.Location,
		Sensitivity: sensitivityOf(f.Sensitivity), Categories: f.Categories, Modified: parseTime(f.LastModifiedTime)}
	endZone := f.EndTimeZone.ID
	if endZone == "" {
		endZone = f.StartTimeZone.ID
	}
	a.Start, a.End = inZone(f.Start, f.StartTimeZone.ID), inZone(f.End, endZone)
	if isTrue(f.IsAllDayEvent) {
		a.AllDay = true
		a.Start, a.End = dateOf(a.Start), dateOf(a.End)
	}
	if isTrue(f.ReminderIsSet) {
		if n, err := strconv.Atoi(strings.TrimSpace(f.ReminderMinutes)); err == nil && n > 0 {
			a.Reminder = time.Duration(n) * time.Minute
		}
	}
	if org, err := mail.ParseAddress(f.extended(propOrganizer, "")); err == nil {
		a.Organizer = &serversync.Attendee{Name: org.Name, Email: org.Address}
	} else if f.Organizer != nil && f.Organizer.Email != "" {
		a.Organizer = &serversync.Attendee{Name: f.Organizer.Name, Email: f.Organizer.Email}
	}
	for _, list := range []struct {
		l   []attendeeXML
		opt bool
	}{{f.Required, false}, {f.Optional, true}} {
		for _, at := range list.l {
			a.Attendees = append(a.Attendees, serversync.Attendee{Name: at.Mailbox.Name, Email: at.Mailbox.Email, Optional: list.opt, Response: responseOf(at.Response)})
		}
	}
	if order := strings.Fields(f.extended(propAttendeeOrder, "")); len(order) > 0 {
		// EWS keeps required and optional attendees apart: the order they were
		// written in comes back from serversync's property; others go last.
		rank := func(at serversync.Attendee) int {
			if i := slices.Index(order, strings.ToLower(at.Email)); i >= 0 {
				return i
			}
			return len(order)
		}
		slices.SortStableFunc(a.Attendees, func(x, y serversync.Attendee) int { return rank(x) - rank(y) })
	}
	if f.Recurrence != nil {
		loc := a.Start.Time.Location()
		if rule := f.Recurrence.rrule(loc, a.AllDay); rule != "" {
			a.Recurrence = &serversync.Recurrence{Rule: rule}
			for _, d := range f.DeletedOccurrences {
				if t := parseTime(d.Start); !t.IsZero() {
					a.Recurrence.Exceptions = append(a.Recurrence.Exceptions, t.In(loc))
				}
			}
			for _, o := range f.ModifiedOccurrences {
				occ := occurrences[o.ItemID.ID]
				if occ == nil {
					continue
				}
				ov := appointment(occ, nil)
				ov.ACTHeader = serversync.ACTHeader{}
				ov.Recurrence, ov.Overrides = nil, nil
				ov.RecurrenceID = parseTime(firstNonEmpty(occ.OriginalStart, o.OriginalStart)).In(loc)
				a.Overrides = append(a.Overrides, *ov)
			}
		}
	}
	return a
}

func dateOf(d serversync.DateTime) serversync.DateTime {
	if d.IsZero() {
		return d
	}
	t := d.Time
	return serversync.DateTime{Time: time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)}
}

func isTrue(s string) bool {
	s = strings.TrimSpace(s)
	return strings.EqualFold(s, "true") || s == "1"
}

// Contact slots: EWS has three unnamed email slots and fixed phone and address keys.
var (
	emailSlots   = []struct{ key, typ string }{{"EmailAddress1", "work"}, {"EmailAddress2", "home"}, {"EmailAddress3", "other"}}
	phoneKeys    = map[string]string{"work": "BusinessPhone", "home": "HomePhone", "cell": "MobilePhone", "mobile": "MobilePhone", "fax": "BusinessFax", "pager": "Pager", "other": "OtherTelephone"}
	phoneTypes   = map[string]string{"BusinessPhone": "work", "HomePhone": "home", "MobilePhone": "cell", "BusinessFax": "fax", "Pager": "pager", "OtherTelephone": "other"}
	addressKeys  = map[string]string{"work": "Business", "home": "Home", "other": "Other"}
	addressTypes = map[string]string{"Business": "work", "Home": "home", "Other": "other"}
	addressParts = []string{"Street", "City", "State", "CountryOrRegion", "PostalCode"}
)

// emailKeys assigns a contact's emails to EmailAddress1..3: a "work" address to
// the first, "home" to the second, the others to what is free. Past three
// emails the rest are dropped (lossy).
func emailKeys(emails []serversync.ContactValue) map[string]string {
	out := map[string]string{}
	var rest []string
	for _, e := range emails {
		placed := false
		for _, s := range emailSlots {
			if strings.EqualFold(e.Type, s.typ) && out[s.key] == "" {
				out[s.key], placed = e.Value, true
				break
			}
		}
		if !placed {
			rest = append(rest, e.Value)
		}
	}
	for _, s := range emailSlots {
		if out[s.key] == "" && len(rest) > 0 {
			out[s.key], rest = rest[0], rest[1:]
		}
	}
	return out
}

func contactFields(c *serversync.Contact) []field {
	birthday := ""
	if !c.Birthday.IsZero() {
		b := c.Birthday
		birthday = formatUTC(time.Date(b.Year(), b.Month(), b.Day(), 0, 0, 0, 0, time.UTC))
	}
	fields := []field{
		bodyField(c.Notes),
		extendedField(namedURI(propUID), c.UID),
		extendedField(taggedURI(prefixTag), c.Prefix),
		plainField("contacts:DisplayName", "DisplayName", c.DisplayName),
		plainField("contacts:GivenName", "GivenName", c.GivenName),
		plainField("contacts:MiddleName", "MiddleName", c.MiddleName),
		plainField("contacts:Nickname", "Nickname", c.Nickname),
		plainField("contacts:CompanyName", "CompanyName", c.Company),
	}
	emails := emailKeys(c.Emails)
	for _, s := range emailSlots {
		fields = append(fields, indexedField("contacts:EmailAddress", "EmailAddresses", s.key, emails[s.key]))
	}
	addresses := map[string]serversync.PostalAddress{}
	for _, a := range c.Addresses {
		key := addressKeys[strings.ToLower(a.Type)]
		if key == "" {
			key = "Other"
		}
		if _, taken := addresses[key]; !taken {
			addresses[key] = a
		}
	}
	for _, key := range []string{"Business", "Home", "Other"} {
		a := addresses[key]
		for i, v := range []string{a.Street, a.City, a.Region, a.Country, a.PostalCode} {
			part := addressParts[i]
			f := field{uri: `<t:IndexedFieldURI FieldURI="contacts:PhysicalAddress:` + part + `" FieldIndex="` + key + `"/>`,
				coll: "PhysicalAddresses", key: key}
			if v != "" {
				f.inner = `<t:` + part + `>` + esc(v) + `</t:` + part + `>`
				f.xml = `<t:PhysicalAddresses><t:Entry Key="` + key + `">` + f.inner + `</t:Entry></t:PhysicalAddresses>`
			}
			fields = append(fields, f)
		}
	}
	phones := map[string]string{}
	var order []string
	for _, p := range c.Phones {
		key := phoneKeys[strings.ToLower(p.Type)]
		if key == "" {
			key = "OtherTelephone"
		}
		if phones[key] == "" {
			phones[key] = p.Value
			order = append(order, key)
		}
	}
	for _, key := range []string{"BusinessPhone", "HomePhone", "MobilePhone", "BusinessFax", "Pager", "OtherTelephone"} {
		if phones[key] == "" {
			fields = append(fields, indexedField("contacts:PhoneNumber", "PhoneNumbers", key, ""))
		}
	}
	for _, key := range order { // in the contact's order, which a server may keep
		fields = append(fields, indexedField("contacts:PhoneNumber", "PhoneNumbers", key, phones[key]))
	}
	return append(fields,
		plainField("contacts:Birthday", "Birthday", birthday),
		plainField("contacts:Department", "Department", c.Department),
		plainField("contacts:Generation", "Generation", c.Suffix),
		plainField("contacts:JobTitle", "JobTitle", c.JobTitle),
		plainField("contacts:Surname", "Surname", c.FamilyName),
	)
}

func contact(it *item) *serversync.Contact {
	f := &it.actFields
	c := &serversync.Contact{ACTHeader: f.header(it), DisplayName: f.DisplayName, GivenName: f.GivenName, FamilyName: f.Surname,
		MiddleName: f.MiddleName, Prefix: f.extended("", prefixTag), Suffix: f.Generation, Nickname: f.Nickname, Company: f.CompanyName,
		Department: f.Department, JobTitle: f.JobTitle, Notes: f.Body, Modified: parseTime(f.LastModifiedTime)}
	for _, s := range emailSlots {
		for _, e := range f.EmailAddresses {
			if e.Key == s.key && strings.TrimSpace(e.Value) != "" {
				c.Emails = append(c.Emails, serversync.ContactValue{Type: s.typ, Value: strings.TrimPrefix(strings.TrimSpace(e.Value), "SMTP:")})
			}
		}
	}
	for _, p := range f.PhoneNumbers {
		if strings.TrimSpace(p.Value) == "" {
			continue
		}
		typ := phoneTypes[p.Key]
		if typ == "" {
			typ = "other"
		}
		c.Phones = append(c.Phones, serversync.ContactValue{Type: typ, Value: strings.TrimSpace(p.Value)})
	}
	for _, a := range f.PhysicalAddresses {
		typ := addressTypes[a.Key]
		if typ == "" {
			typ = "other"
		}
		c.Addresses = append(c.Addresses, serversync.PostalAddress{Type: typ, Street: a.Street, City: a.City, Region: a.State,
			PostalCode: a.PostalCode, Country: a.Country})
	}
	if b := parseTime(f.Birthday); !b.IsZero() {
		// Exchange keeps a birthday as an instant: noon or midnight of the day in
		// some zone. The day is what counts, rounded to the nearest.
		b = b.UTC().Add(12 * time.Hour)
		c.Birthday = time.Date(b.Year(), b.Month(), b.Day(), 0, 0, 0, 0, time.UTC)
	}
	return c
}

func importanceOf(priority int) string {
	switch {
	case priority >= 1 && priority <= 4:
		return "High"
	case priority >= 6:
		return "Low"
	}
	return "Normal"
}

func priorityOf(importance string) int {
	switch strings.TrimSpace(importance) {
	case "High":
		return 1
	case "Low":
		return 9
	}
	return 0
}

var taskStatuses = map[serversync.TaskStatus]string{
	serversync.TaskNotStarted: "NotStarted", serversync.TaskInProgress: "InProgress", serversync.TaskCompleted: "Completed",
	serversync.TaskCancelled: "Deferred",
}

func taskStatusOf(s string) serversync.TaskStatus {
	switch strings.TrimSpace(s) {
	case "InProgress", "WaitingOnOthers":
		return serversync.TaskInProgress
	case "Completed":
		return serversync.TaskCompleted
	case "Deferred":
		return serversync.TaskCancelled
	}
	return serversync.TaskNotStarted
}

func taskFields(t *serversync.Task) ([]field, error) {
	zone := t.Due.TZID
	if zone == "" {
		zone = t.Start.TZID
	}
	ts := func(d serversync.DateTime) string {
		if d.IsZero() {
			return ""
		}
		return formatUTC(d.Time)
	}
	completed := ""
	if t.Status == serversync.TaskCompleted && !t.Completed.IsZero() {
		completed = formatUTC(t.Completed)
	}
	start := t.Start
	if start.IsZero() {
		start = t.Due
	}
	rec, err := recurrenceXMLFor(t.Recurrence, start, false)
	if err != nil {
		return nil, err
	}
	return []field{
		plainField("item:Subject", "Subject", t.Subject),
		bodyField(t.Body),
		plainField("item:Importance", "Importance", importanceOf(t.Priority)),
		extendedField(namedURI(propUID), t.UID),
		extendedField(namedURI(propTaskZone), zone),
		plainField("task:CompleteDate", "CompleteDate", completed),
		plainField("task:DueDate", "DueDate", ts(t.Due)),
		plainField("task:PercentComplete", "PercentComplete", strconv.Itoa(min(max(t.PercentComplete, 0), 100))),
		rawField("task:Recurrence", "Recurrence", rec),
		plainField("task:StartDate", "StartDate", ts(t.Start)),
		plainField("task:Status", "Status", taskStatuses[t.Status]),
	}, nil
}

func task(it *item) *serversync.Task {
	f := &it.actFields
	zone := f.extended(propTaskZone, "")
	t := &serversync.Task{ACTHeader: f.header(it), Subject: f.Subject, Body: f.Body, Status: taskStatusOf(f.Status),
		Priority: priorityOf(f.Importance), Start: inZone(f.StartDate, zone), Due: inZone(f.DueDate, zone), Modified: parseTime(f.LastModifiedTime)}
	if n, err := strconv.ParseFloat(strings.TrimSpace(f.PercentComplete), 64); err == nil {
		t.PercentComplete = int(n)
	}
	if c := parseTime(f.CompleteDate); !c.IsZero() && t.Status == serversync.TaskCompleted {
		t.Completed = c.UTC()
	}
	if f.Recurrence != nil {
		loc := t.Start.Time.Location()
		if t.Start.IsZero() {
			loc = t.Due.Time.Location()
		}
		if rule := f.Recurrence.rrule(loc, false); rule != "" {
			t.Recurrence = &serversync.Recurrence{Rule: rule}
		}
	}
	return t
}

// itemElement is the element name of a kind's items.
func itemElement(kind serversync.ACTKind) string {
	switch kind {
	case serversync.KindAppointment:
		return "CalendarItem"
	case serversync.KindContact:
		return "Contact"
	}
	return "Task"
}

// folderOf is the distinguished folder of a kind.
func folderOf(kind serversync.ACTKind) string {
	switch kind {
	case serversync.KindAppointment:
		return "calendar"
	case serversync.KindContact:
		return "contacts"
	}
	return "tasks"
}

func fieldsOf(it serversync.ACTItem) ([]field, error) {
	switch v := it.(type) {
	case *serversync.Appointment:
		return appointmentFields(v)
	case *serversync.Contact:
		return contactFields(v), nil
	case *serversync.Task:
		return taskFields(v)
	}
	return nil, fmt.Errorf("ews: unknown ACT item %T", it)
}
