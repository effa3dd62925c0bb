package serversync

import "context"

// filter applies the mailbox's incoming filter (DESIGN §4.4) and reports whether
// the message is tracked.
func (s *Syncer) filter(ctx context.Context, a *EmailActivity, m *Mailbox) (bool, error) {
	switch m.IncomingFilter {
	case FilterNone:
		return false, nil
	case FilterResponsesToCRM:
		return a.CorrelatedTo != "", nil
	case FilterLeadsContactsAccounts, FilterEmailEnabledRecords:
		if a.CorrelatedTo != "" {
			return true, nil
		}
		if s.cfg.Resolver == nil || a.From.Email == "" {
			return false, nil
		}
		var party Party
		err := callHook("ResolveAddress", func() (err error) {
			party, err = s.cfg.Resolver.ResolveAddress(ctx, a.From.Email)
			return err
		})
		if err != nil {
			return false, err
		}
		if party.Kind != PartyUnknown && a.Regarding.IsZero() {
			a.Regarding = party.Ref
		}
		switch party.Kind {
		case PartyLead, PartyContact, PartyAccount:
			return true, nil
		case PartyUnknown:
			return false, nil
		}
		return m.IncomingFilter == FilterEmailEnabledRecords, nil
	}
	return true, nil // FilterAll and unset
}
