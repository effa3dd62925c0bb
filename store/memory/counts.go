package memory

import (
	"context"

	"github.com/serversync/serversync"
)

// CountActivities implements serversync.ActivityCountStore.
func (s *Store) CountActivities(ctx context.Context, f serversync.ActivityCountFilter) ([]serversync.ActivityCount, error) {
	if err := s.rlock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	type key struct {
		mailbox string
		dir     serversync.Direction
		status  serversync.ActivityStatus
	}
	counts := make(map[key]int64)
	for _, a := range s.activityOrder {
		if (f.MailboxID != "" && a.MailboxID != f.MailboxID) || (f.Direction != "" && a.Direction != f.Direction) ||
			(f.Status != "" && a.Status != f.Status) {
			continue
		}
		counts[key{a.MailboxID, a.Direction, a.Status}]++
	}
	out := make([]serversync.ActivityCount, 0, len(counts))
	for k, n := range counts {
		out = append(out, serversync.ActivityCount{MailboxID: k.mailbox, Direction: k.dir, Status: k.status, Count: n})
	}
	serversync.SortActivityCounts(out)
	return out, nil
}

// RecentActivities implements serversync.RecentActivityStore.
func (s *Store) RecentActivities(ctx context.Context, mailboxID string, limit int) ([]*serversync.EmailActivity, error) {
	if err := s.rlock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	var out []*serversync.EmailActivity
	for i := len(s.activityOrder) - 1; i >= 0 && len(out) < max(limit, 1); i-- {
		if a := s.activityOrder[i]; a.MailboxID == mailboxID {
			out = append(out, cloneActivity(a))
		}
	}
	return out, nil
}
