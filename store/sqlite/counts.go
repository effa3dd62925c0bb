package sqlite

import (
	"context"
	"fmt"

	"github.com/serversync/serversync"
)

// CountActivities implements serversync.ActivityCountStore with one GROUP BY:
// no activity is decoded.
func (s *Store) CountActivities(ctx context.Context, f serversync.ActivityCountFilter) ([]serversync.ActivityCount, error) {
	var w where
	for _, c := range []struct{ column, value string }{
		{"mailbox_id", f.MailboxID}, {"direction", string(f.Direction)}, {"status", string(f.Status)},
	} {
		if c.value != "" {
			w.add(c.column+" = ?", c.value)
		}
	}
	rows, err := s.query(ctx, "SELECT mailbox_id, direction, status, count(*) FROM activities"+w.String()+
		" GROUP BY mailbox_id, direction, status ORDER BY mailbox_id, direction, status", w.args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: count activities: %w", err)
	}
	defer rows.Close()
	var out []serversync.ActivityCount
	for rows.Next() {
		var c serversync.ActivityCount
		if err := rows.Scan(&c.MailboxID, &c.Direction, &c.Status, &c.Count); err != nil {
			return nil, fmt.Errorf("sqlite: count activities: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: count activities: %w", err)
	}
	return out, nil
}

// RecentActivities implements serversync.RecentActivityStore.
func (s *Store) RecentActivities(ctx context.Context, mailboxID string, limit int) ([]*serversync.EmailActivity, error) {
	rows, err := s.query(ctx, "SELECT "+activityColumns+" FROM activities WHERE mailbox_id = ? ORDER BY seq DESC LIMIT ?", mailboxID, max(limit, 1))
	if err != nil {
		return nil, fmt.Errorf("sqlite: recent activities: %w", err)
	}
	defer rows.Close()
	var out []*serversync.EmailActivity
	for rows.Next() {
		a, err := scanActivity(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: recent activities: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: recent activities: %w", err)
	}
	return out, nil
}
