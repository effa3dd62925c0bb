package serversync

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// This file holds the foundation of the ACT workload (appointments, contacts and
// tasks, DESIGN §12): the model the host and the connectors exchange, and the
// contract an ACT connector implements.

// ACTKind names one kind of ACT item.
type ACTKind string

// The ACT kinds.
const (
	KindAppointment ACTKind = "appointment"
	KindContact     ACTKind = "contact"
	KindTask        ACTKind = "task"
)

// ACTKinds lists every kind, in the order sessions are usually synced.
var ACTKinds = []ACTKind{KindAppointment, KindContact, KindTask}

// ACTItem is an *Appointment, a *Contact or a *Task.
type ACTItem interface {
	ACTKind() ACTKind
	// Header returns the fields every kind shares, for reading and writing.
	Header() *ACTHeader
}

// ACTHeader is what every ACT item carries besides its content.
type ACTHeader struct {
	// MailboxID is the mailbox whose owner the item belongs to.
	MailboxID string
	// Regarding links the item to the host's record (an account, an opportunity…).
	Regarding RecordRef
	// ServerID is the server's handle for the item (a DAV resource path, a Graph
	// item ID); "" for an item not yet on the server.
	ServerID string
	// UID is the item's stable identity inside its format (iCalendar UID, vCard
	// UID); a connector fills it in when it is empty.
	UID string
	// ChangeKey is the server's version of the item (an ETag, a Graph change key):
	// pass it back as ifMatch so a write cannot overwrite a change it did not see.
	ChangeKey string
}

// DateTime is a point in time as a calendar shows it: a wall-clock time in an IANA
// time zone ("Europe/Berlin"), or UTC when TZID is "". For an all-day value only
// the date of Time counts and TZID is "".
type DateTime struct {
	Time time.Time // in the TZID location
	TZID string
}

// IsZero reports whether no time is set.
func (d DateTime) IsZero() bool { return d.Time.IsZero() }

// Sensitivity is the privacy class of an appointment (iCalendar CLASS).
type Sensitivity string

// Sensitivities.
const (
	SensitivityNormal       Sensitivity = ""
	SensitivityPrivate      Sensitivity = "private"
	SensitivityConfidential Sensitivity = "confidential"
)

// AttendeeResponse is an attendee's answer to an invitation (iCalendar PARTSTAT).
type AttendeeResponse string

// Attendee responses.
const (
	ResponseNone      AttendeeResponse = "" // needs action
	ResponseAccepted  AttendeeResponse = "accepted"
	ResponseDeclined  AttendeeResponse = "declined"
	ResponseTentative AttendeeResponse = "tentative"
	ResponseDelegated AttendeeResponse = "delegated"
)

// Attendee is one person invited to an appointment.
type Attendee struct {
	Name     string
	Email    string
	Optional bool
	Response AttendeeResponse
}

// Recurrence repeats an appointment or a task.
type Recurrence struct {
	// Rule is an RFC 5545 RRULE value, e.g. "FREQ=WEEKLY;BYDAY=MO;COUNT=10".
	Rule string
	// Exceptions are the original start times of the occurrences removed (EXDATE).
	Exceptions []time.Time
}

// Appointment is a calendar event. A recurring appointment carries its overridden
// occurrences in Overrides: each has RecurrenceID set and no Recurrence.
type Appointment struct {
	ACTHeader
	Subject    string
	Body       string
	Location   string
	Start      DateTime
	End        DateTime
	AllDay     bool // Start and End are dates; End is exclusive, as in iCalendar
	Organizer  *Attendee
	Attendees  []Attendee
	Recurrence *Recurrence
	Overrides  []Appointment
	// RecurrenceID is, for an override, the original start of the occurrence it replaces.
	RecurrenceID time.Time
	// Reminder is how long before the start to alert; 0 means no reminder.
	Reminder    time.Duration
	Categories  []string
	Sensitivity Sensitivity
	Modified    time.Time // set by the server (LAST-MODIFIED) when known
}

// ACTKind implements ACTItem.
func (*Appointment) ACTKind() ACTKind { return KindAppointment }

// Header implements ACTItem.
func (a *Appointment) Header() *ACTHeader { return &a.ACTHeader }

// ContactValue is a typed value of a contact: an email address or a phone number
// with its kind ("work", "home", "cell"…).
type ContactValue struct {
	Type  string
	Value string
}

// PostalAddress is a contact's address.
type PostalAddress struct {
	Type       string // "work", "home"…
	Street     string
	City       string
	Region     string
	PostalCode string
	Country    string
}

// Contact is an address book entry.
type Contact struct {
	ACTHeader
	DisplayName string
	GivenName   string
	FamilyName  string
	MiddleName  string
	Prefix      string
	Suffix      string
	Nickname    string
	Emails      []ContactValue
	Phones      []ContactValue
	Addresses   []PostalAddress
	Company     string
	Department  string
	JobTitle    string
	// Birthday is a date (its time of day is meaningless); zero when unknown.
	Birthday time.Time
	Notes    string
	Modified time.Time
}

// ACTKind implements ACTItem.
func (*Contact) ACTKind() ACTKind { return KindContact }

// Header implements ACTItem.
func (c *Contact) Header() *ACTHeader { return &c.ACTHeader }

// TaskStatus is how far a task is (iCalendar VTODO STATUS).
type TaskStatus string

// Task statuses.
const (
	TaskNotStarted TaskStatus = "" // NEEDS-ACTION
	TaskInProgress TaskStatus = "in-process"
	TaskCompleted  TaskStatus = "completed"
	TaskCancelled  TaskStatus = "cancelled"
)

// Task is a to-do item.
type Task struct {
	ACTHeader
	Subject         string
	Body            string
	Start           DateTime
	Due             DateTime
	Status          TaskStatus
	PercentComplete int       // 0–100
	Completed       time.Time // when Status became TaskCompleted, if known
	// Priority is 0 (undefined) or 1 (highest) to 9 (lowest), as in iCalendar.
	Priority   int
	Recurrence *Recurrence
	Modified   time.Time
}

// ACTKind implements ACTItem.
func (*Task) ACTKind() ACTKind { return KindTask }

// Header implements ACTItem.
func (t *Task) Header() *ACTHeader { return &t.ACTHeader }

// ACTConnector opens ACT sessions (CalDAV/CardDAV, Microsoft Graph, …).
// Implementations must be safe for concurrent use; sessions need not be.
type ACTConnector interface {
	OpenACT(ctx context.Context, target *Target) (ACTSession, error)
}

// ACTChange is one change reported by ACTSession.Changes: the item as it is now on
// the server, or, when Deleted, only its ServerID. A deletion may name an ID
// the caller never held (Graph reports a removed occurrence of a series by the
// occurrence's own ID): the caller ignores it.
type ACTChange struct {
	ServerID string
	Deleted  bool
	Item     ACTItem // nil when Deleted
}

// ACTChanges is what ACTSession.Changes returns.
type ACTChanges struct {
	Changes []ACTChange
	// Cursor is the opaque position after these changes: pass it to the next call.
	Cursor []byte
	// Reset reports that the server no longer knew the cursor passed (an expired
	// sync token, a collection replaced): Changes then lists every item on the
	// server as new, and the caller matches them by ServerID or UID against what it
	// holds, like FetchResult.Reset. Items the caller holds that are not listed
	// were deleted (within Window, when it is set).
	Reset bool
	// Window is set by a connector whose listing of appointments covers only a
	// time window (Graph's calendarView): when set on a Reset, only items
	// overlapping it were listed, so held appointments wholly outside it are
	// kept, not taken as deleted. A recurring appointment is kept unless its
	// first occurrence lies in the window. Zero: everything was listed.
	Window ACTWindow
}

// ACTWindow is a span of time [From, Until).
type ACTWindow struct {
	From, Until time.Time
}

// IsZero reports whether no window is set.
func (w ACTWindow) IsZero() bool { return w.From.IsZero() && w.Until.IsZero() }

// ACTSession is an open connection to one mailbox's calendar, address book and
// task list. It is not safe for concurrent use.
type ACTSession interface {
	// Changes returns the items of kind changed since cursor (nil: every item, as
	// new). The cursor is opaque and connector-defined (a sync-collection token, a
	// ctag with the ETags seen, a delta link).
	Changes(ctx context.Context, kind ACTKind, cursor []byte) (ACTChanges, error)
	// Put creates the item (ServerID "") or replaces it. ifMatch is the ChangeKey
	// the caller last saw: a server holding another version refuses the write with
	// an error matching ErrACTConflict. ifMatch "" on an update overwrites
	// unconditionally; a create never replaces an existing item. On success the
	// item's ServerID, UID and ChangeKey are updated.
	//
	// A create whose UID the server already holds (a retry after a crash, say) is
	// refused with an *ACTConflictError whose ServerID names the item holding that
	// UID: the caller adopts it instead of creating a second one. This is what makes
	// pushing the host's items exactly-once: the caller fixes the UID before the
	// first attempt.
	Put(ctx context.Context, item ACTItem, ifMatch string) error
	// Delete removes an item. ifMatch works as in Put; deleting an item already
	// gone is not an error.
	Delete(ctx context.Context, kind ACTKind, serverID, ifMatch string) error
	Close() error
}

// ACTOwnerMarker is implemented by ACT sessions that can mark the mailbox on the
// server with the deployment that owns its ACT sync (the seed's "Sync items with
// Exchange from this org only"): a DAV property on the collections, a Graph
// extended property. Two deployments syncing one mailbox would each push the
// other's items back; the marker lets the second one notice and stay out.
type ACTOwnerMarker interface {
	// ACTOwner returns the marker's value, "" when the mailbox carries none.
	ACTOwner(ctx context.Context) (string, error)
	// SetACTOwner writes the marker, replacing any other deployment's.
	SetACTOwner(ctx context.Context, owner string) error
}

// ErrACTConflict is matched (errors.Is) by the error a session returns when the
// server holds another version of the item than the caller's ifMatch.
var ErrACTConflict = errors.New("serversync: the item changed on the server")

// ACTConflictError is the error behind ErrACTConflict.
type ACTConflictError struct {
	Kind     ACTKind
	ServerID string
	IfMatch  string
	Err      error // the protocol's error (HTTP 412), if any
}

func (e *ACTConflictError) Error() string {
	return fmt.Sprintf("serversync: %s %s changed on the server (expected version %s): %v", e.Kind, e.ServerID, e.IfMatch, e.Err)
}

// Is makes errors.Is(err, ErrACTConflict) true.
func (e *ACTConflictError) Is(target error) bool { return target == ErrACTConflict }

func (e *ACTConflictError) Unwrap() error { return e.Err }
