package serversync

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"
)

// TrackFunc is the host's tracking hook. The Syncer calls it for each incoming
// message that passed the mailbox's filter, after correlation, before the activity
// is stored: the host may set a.Regarding or other fields. Returning an error makes
// the message an item failure: it is stored with StatusFailed (and moved to
// Undeliverable when the profile says so) and never offered to the hook again.
//
// After a crash between the hook and the store the hook can see a message again;
// a.MessageKey is stable per mailbox, so a host that must act once can key on it.
type TrackFunc func(ctx context.Context, a *EmailActivity, m *Mailbox) error

// PartyKind is what a host record behind an email address is.
type PartyKind string

// Party kinds, for the incoming filters of DESIGN §4.
const (
	PartyUnknown PartyKind = ""
	PartyLead    PartyKind = "Lead"
	PartyContact PartyKind = "Contact"
	PartyAccount PartyKind = "Account"
	PartyUser    PartyKind = "User"
	PartyQueue   PartyKind = "Queue"
	// PartyOther is any other email-enabled record.
	PartyOther PartyKind = "Other"
)

// Party is a host record an email address belongs to.
type Party struct {
	Kind PartyKind
	Ref  RecordRef
}

// AddressResolver answers "who is this address" for the incoming filters. Return a
// zero Party for an address the host does not know.
type AddressResolver interface {
	ResolveAddress(ctx context.Context, email string) (Party, error)
}

// EventKind names what happened.
type EventKind string

// Events the host can subscribe to with Config.OnEvent.
const (
	EventMailTracked     EventKind = "MailTracked"     // an incoming message was stored (Tracked)
	EventItemFailed      EventKind = "ItemFailed"      // an incoming message was stored as Failed
	EventEmailSent       EventKind = "EmailSent"       // an outgoing email was accepted by the server
	EventEmailFailed     EventKind = "EmailFailed"     // an outgoing email failed for good
	EventMailboxDisabled EventKind = "MailboxDisabled" // a workload was disabled after errors
	EventMailboxTested   EventKind = "MailboxTested"   // Test & Enable finished for a mailbox
	EventAlertRaised     EventKind = "AlertRaised"     // an alert was stored
	EventSyncFinished    EventKind = "SyncFinished"    // one incoming sync of a mailbox ended (Err set on failure)
	EventSyncProgress    EventKind = "SyncProgress"    // an initial sync (or resync from the start) moved on: see Progress
	EventACTSynced       EventKind = "ACTSynced"       // one ACT sync of a mailbox ended (Err set on failure; Items: changes both ways)
)

// Event is one notification to the host. Handlers run on the Syncer's goroutines:
// keep them quick. A panic in a handler is recovered and logged.
type Event struct {
	Kind       EventKind
	Time       time.Time
	MailboxID  string
	ProfileID  string
	ActivityID string
	Alert      *Alert // EventAlertRaised
	Items      int    // EventSyncFinished: messages tracked or failed
	// Progress is set on EventSyncProgress, and on the EventSyncFinished that ends
	// an initial sync or a resync from the start.
	Progress *SyncProgress
	Err      error // the error behind a failure; never holds secrets
}

// HookPanicError is what a host hook's panic becomes: the Syncer goes on.
type HookPanicError struct {
	Hook  string
	Value any
	Stack []byte
}

func (e *HookPanicError) Error() string {
	return fmt.Sprintf("serversync: the host's %s hook panicked: %v", e.Hook, e.Value)
}

// callHook runs a host hook, turning a panic into a *HookPanicError.
func callHook(name string, fn func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &HookPanicError{Hook: name, Value: v, Stack: debug.Stack()}
		}
	}()
	return fn()
}
