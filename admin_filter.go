package serversync

import (
	"context"
	"fmt"
)

// ChangeIncomingFilter sets a mailbox's IncomingFilter and, when the mailbox has
// synced before, makes its next sync read the inbox from the start (from
// ProcessEmailFrom) right away, so the mail the old filter left out is read
// again under the new one. Filtered mail was never stored, and what was tracked
// is recognised by its message key and not tracked twice; no cursor is written
// by hand. It is what the CodeAllMailFiltered alert suggests. Setting the filter
// it already has changes nothing.
func (a *Admin) ChangeIncomingFilter(ctx context.Context, id string, filter IncomingFilter) (*Mailbox, error) {
	if !filter.valid() {
		return nil, &ValidationError{Entity: "Mailbox", Field: "IncomingFilter",
			Reason: fmt.Sprintf("%q is not a filter: use one of %s, %s, %s, %s, %s", filter,
				FilterAll, FilterResponsesToCRM, FilterLeadsContactsAccounts, FilterEmailEnabledRecords, FilterNone)}
	}
	var reread bool
	m, err := a.UpdateMailbox(ctx, id, func(m *Mailbox) {
		reread = false
		if m.IncomingFilter == filter {
			return
		}
		m.IncomingFilter = filter
		if m.Stats.LastSyncSucceededAt.IsZero() {
			return // nothing was read yet: the first sync reads everything anyway
		}
		reread = true
		now := a.now()
		m.IncomingResyncRequestedAt = now
		if m.NextSyncAt.After(now) {
			m.NextSyncAt = now // due at once, not at the next poll hours away
		}
	})
	if err != nil {
		return nil, err
	}
	if reread {
		a.log.Info("serversync: incoming filter changed: the next sync reads the inbox from the start",
			"mailbox", m.ID, "filter", filter)
	}
	return m, nil
}
