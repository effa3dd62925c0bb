package serversync

import "time"

// AlertLevel is the severity of an alert; each level can be switched off in OrgSettings.
type AlertLevel string

// Alert levels.
const (
	AlertError       AlertLevel = "Error"
	AlertWarning     AlertLevel = "Warning"
	AlertInformation AlertLevel = "Information"
)

// AlertScope says what an alert is about.
type AlertScope string

// Alert scopes: a whole profile, one mailbox, or one item (a message or an email).
const (
	ScopeProfile AlertScope = "Profile"
	ScopeMailbox AlertScope = "Mailbox"
	ScopeItem    AlertScope = "Item"
)

// Alert is a message to a person (a mailbox owner or a profile owner).
type Alert struct {
	ID         string
	Level      AlertLevel
	Scope      AlertScope
	Recipient  string // principal ID
	ProfileID  string
	MailboxID  string
	ActivityID string
	Code       string // stable, machine-readable: one of the Code… constants
	Message    string // what a person can act on; never contains secrets
	CreatedAt  time.Time
}
