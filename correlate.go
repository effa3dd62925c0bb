package serversync

import (
	"context"
	"slices"
	"strings"
)

// Correlation methods recorded in EmailActivity.CorrelationMethod.
const (
	CorrelatedByHeaders       = "headers"
	CorrelatedByTrackingToken = "tracking-token"
	CorrelatedBySmartMatching = "smart-matching"
)

// correlate links an incoming activity to the activity it answers, in the order of
// DESIGN §4.5: In-Reply-To/References, the tracking token in the subject, then
// smart matching. The match's regarding link is copied. pending finds a message of
// the batch not stored yet by Message-ID (a reply fetched with its original).
func (s *Syncer) correlate(ctx context.Context, a *EmailActivity, settings *OrgSettings, pending func(messageID string) *EmailActivity) error {
	a.ConversationHash = conversationHash(a.Subject, participants(a))
	if a.TrackingToken == "" && settings.TrackingToken.Prefix != "" {
		a.TrackingToken, _ = findTrackingToken(settings.TrackingToken, a.Subject)
	}
	if settings.CorrelateByHeaders {
		// The most recent reference first: In-Reply-To, then References from the end.
		ids := slices.Clone(a.InReplyTo)
		for i := len(a.References) - 1; i >= 0; i-- {
			ids = append(ids, a.References[i])
		}
		for _, id := range ids {
			if found := pending(id); found != nil {
				link(a, found, CorrelatedByHeaders)
				return nil
			}
			// Prefer the email this deployment sent over another mailbox's tracked
			// copy of it: the original carries the regarding link the host set.
			for _, direction := range []Direction{Outgoing, ""} {
				found, err := s.findActivity(ctx, ActivityFilter{MessageID: id, Direction: direction, Limit: 1})
				if err != nil || found != nil {
					if found != nil {
						link(a, found, CorrelatedByHeaders)
					}
					return err
				}
			}
		}
	}
	if settings.CorrelateByTrackingToken && a.TrackingToken != "" {
		found, err := s.findActivity(ctx, ActivityFilter{TrackingToken: a.TrackingToken, Direction: Outgoing, Limit: 1})
		if err != nil || found != nil {
			if found != nil {
				link(a, found, CorrelatedByTrackingToken)
			}
			return err
		}
	}
	if settings.SmartMatching && a.ConversationHash != "" {
		found, err := s.findActivity(ctx, ActivityFilter{ConversationHash: a.ConversationHash, Limit: 1})
		if err != nil || found != nil {
			if found != nil {
				link(a, found, CorrelatedBySmartMatching)
			}
			return err
		}
	}
	return nil
}

func link(a, to *EmailActivity, method string) {
	a.CorrelatedTo, a.CorrelationMethod = to.ID, method
	if a.Regarding.IsZero() {
		a.Regarding = to.Regarding
	}
}

func (s *Syncer) findActivity(ctx context.Context, f ActivityFilter) (*EmailActivity, error) {
	for a, err := range s.store.ListActivities(ctx, f) {
		return a, err
	}
	return nil, nil
}

// participants are the addresses smart matching hashes with the subject.
func participants(a *EmailActivity) []string {
	var out []string
	for _, list := range [][]Address{{a.From}, a.To, a.Cc} {
		for _, ad := range list {
			if ad.Email != "" {
				out = append(out, strings.ToLower(ad.Email))
			}
		}
	}
	return out
}
