package storekit

import (
	"time"

	"github.com/serversync/serversync"
)

// Required is the error for a record stored without a field the Store needs.
func Required(entity, field string) error {
	return &serversync.ValidationError{Entity: entity, Field: field, Reason: "must be set"}
}

// Unchangeable is the error for an update that changed a field fixed at creation.
func Unchangeable(entity, field string) error {
	return &serversync.ValidationError{Entity: entity, Field: field, Reason: "cannot be changed once stored"}
}

// CheckActivityUpdate returns the error for an UpdateActivity callback that changed
// what identifies the activity (ID, MailboxID, MessageKey), or nil.
func CheckActivityUpdate(stored, updated *serversync.EmailActivity) error {
	switch {
	case updated.ID != stored.ID:
		return Unchangeable("EmailActivity", "ID")
	case updated.MailboxID != stored.MailboxID:
		return Unchangeable("EmailActivity", "MailboxID")
	case updated.MessageKey != stored.MessageKey:
		return Unchangeable("EmailActivity", "MessageKey")
	}
	return nil
}

// Claimable reports whether ClaimOutgoing may claim a at now, as its contract says:
// PendingSend with NextAttemptAt <= now, or Sending with a claim that expired (its
// sender died). since is when a became claimable; claiming the longest-waiting
// first (by since) keeps a backlog fair.
func Claimable(a *serversync.EmailActivity, now time.Time) (since time.Time, ok bool) {
	switch a.Status {
	case serversync.StatusPendingSend:
		return a.NextAttemptAt, !a.NextAttemptAt.After(now)
	case serversync.StatusSending:
		return a.ClaimExpiresAt, !a.ClaimExpiresAt.After(now)
	}
	return time.Time{}, false
}

// Claim marks a as claimed by req.Host, as ClaimOutgoing's contract says: Sending,
// claimed until Now+TTL, and one more attempt. Apply it to each activity
// ClaimOutgoing returns, before storing it. The Syncer tells claims apart by
// Attempts, so every store must count it the same way.
func Claim(a *serversync.EmailActivity, req serversync.ClaimRequest) {
	a.Status, a.ClaimedBy, a.ClaimExpiresAt = serversync.StatusSending, req.Host, req.Now.Add(req.TTL)
	a.Attempts++
}
