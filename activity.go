package serversync

import "time"

// Direction says whether an activity was received or sent. It also names the
// workloads (LastError.Workload) and the connections ResolveTarget resolves: ACT
// is the appointments, contacts and tasks workload, never an activity's.
type Direction string

// Directions.
const (
	Incoming Direction = "Incoming"
	Outgoing Direction = "Outgoing"
	ACT      Direction = "ACT"
)

// ActivityStatus is where an email activity is in its life.
type ActivityStatus string

// Incoming activities are Tracked (or Failed when the host's tracking hook refused
// them); outgoing ones go PendingSend → Sending → Sent or Failed.
const (
	StatusTracked     ActivityStatus = "Tracked"
	StatusPendingSend ActivityStatus = "PendingSend"
	StatusSending     ActivityStatus = "Sending"
	StatusSent        ActivityStatus = "Sent"
	StatusFailed      ActivityStatus = "Failed"
)

// Address is one mailbox address of a message.
type Address struct {
	Name  string
	Email string
}

// RecordRef points at a host record (an account, a case, a contact…): the "regarding"
// link correlation sets.
type RecordRef struct {
	Type string
	ID   string
}

// IsZero reports whether the reference is empty.
func (r RecordRef) IsZero() bool { return r.Type == "" && r.ID == "" }

// Attachment is one attachment of a message. Attachments over the org's size cap are
// recorded with Omitted set and no Content.
type Attachment struct {
	Filename    string
	ContentType string
	ContentID   string
	Size        int64
	Content     []byte
	Omitted     bool
}

// EmailActivity is the record of one tracked or sent email.
//
// MessageKey identifies the message within its mailbox; a Store keeps at most one
// activity per (MailboxID, MessageKey), which is what makes tracking exactly-once.
// An EmailActivity is a plain value, not safe for concurrent mutation.
type EmailActivity struct {
	ID         string
	MailboxID  string // the mailbox the activity belongs to
	ViaMailbox string // the forward mailbox it arrived through, if any
	MessageKey string
	Direction  Direction
	Status     ActivityStatus

	Regarding         RecordRef // set by correlation or by the host
	CorrelatedTo      string    // ID of the activity this one replies to, if correlated
	CorrelationMethod string    // "headers", "tracking-token", "smart-matching" or ""

	From     Address
	To       []Address
	Cc       []Address
	Bcc      []Address
	ReplyTo  []Address
	Subject  string
	TextBody string
	HTMLBody string

	MessageID        string   // without angle brackets
	InReplyTo        []string // message IDs, without angle brackets
	References       []string
	TrackingToken    string
	ConversationHash string // subject + recipients hash for smart matching

	Attachments []Attachment
	Size        int64
	ReceivedAt  time.Time
	SentAt      time.Time

	// Raw keeps the original message when part of it could not be read or was read
	// by a guess (an unknown charset…), so nothing is lost.
	Raw []byte
	// ParseError says why the message is broken: part of it could not be read (not
	// MIME, a multipart cut short, bad base64…) or it was cut at MaxMessageSize.
	// Find truly broken mail with ParseError != "".
	ParseError string
	// ParseWarnings list what was odd in a message that was still read whole, as
	// mail clients read it: no Date or Message-ID, an unknown charset, a bad encoded
	// word, an address list that is not RFC 5322… Ordinary mail often has some.
	ParseWarnings []string

	// Where the message sits on the server, for moving or deleting it later.
	ServerFolder string
	ServerRef    string // IMAP UID or POP3 UIDL

	// Outgoing delivery state.
	Attempts       int
	NextAttemptAt  time.Time
	ClaimedBy      string
	ClaimExpiresAt time.Time
	// SendStartedAt is recorded just before the message is handed to the server and
	// cleared when the server refused it. A claimed email that still has it set was
	// being sent when its sender died: whether the server accepted it is unknown.
	SendStartedAt time.Time
	LastError     string

	CreatedAt time.Time
	UpdatedAt time.Time
}

// Clone returns a deep copy.
func (a *EmailActivity) Clone() *EmailActivity {
	c := *a
	c.To = append([]Address(nil), a.To...)
	c.Cc = append([]Address(nil), a.Cc...)
	c.Bcc = append([]Address(nil), a.Bcc...)
	c.ReplyTo = append([]Address(nil), a.ReplyTo...)
	c.InReplyTo = append([]string(nil), a.InReplyTo...)
	c.References = append([]string(nil), a.References...)
	c.ParseWarnings = append([]string(nil), a.ParseWarnings...)
	c.Attachments = append([]Attachment(nil), a.Attachments...)
	return &c
}

// Cursor is how far a mailbox's folder has been synchronized. Data is defined by the
// connector (e.g. UIDVALIDITY + last UID for IMAP) and opaque to the Store.
type Cursor struct {
	MailboxID string
	Folder    string
	Data      []byte
	UpdatedAt time.Time
}
