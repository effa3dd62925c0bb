package postgres

import (
	"context"

	"github.com/serversync/serversync"
)

// CountActivities implements serversync.ActivityCountStore with one GROUP BY:
// no activity is decoded.
func (s *Store) CountActivities(ctx context.Context, f serversync.ActivityCountFilter) ([]serversync.ActivityCount, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	var w where
	for _, c := range []struct{ column, value string }{
		{"mailbox_id", f.MailboxID}, {"direction", string(f.Direction)}, {"status", string(f.Status)},
	} {
		if c.value != "" {
			w.add(c.column+" =", c.value)
		}
	}
	rows, err := s.pool.Query(ctx, "SELECT mailbox_id, direction, status, count(*) FROM activities"+w.String()+
		" GROUP BY mailbox_id, direction, status ORDER BY mailbox_id COLLATE \"C\", direction COLLATE \"C\", status COLLATE \"C\"", w.args...)
	if err != nil {
		return nil, dbError(err)
	}
	defer rows.Close()
	var out []serversync.ActivityCount
	for rows.Next() {
		var c serversync.ActivityCount
		var dir, status string
		if err := rows.Scan(&c.MailboxID, &dir, &status, &c.Count); err != nil {
			return nil, dbError(err)
		}
		c.Direction, c.Status = serversync.Direction(dir), serversync.ActivityStatus(status)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, dbError(err)
	}
	return out, nil
}

// RecentActivities implements serversync.RecentActivityStore.
func (s *Store) RecentActivities(ctx context.Context, mailboxID string, limit int) ([]*serversync.EmailActivity, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, "SELECT "+activityColumns+" FROM activities WHERE mailbox_id = $1 ORDER BY seq DESC LIMIT $2", mailboxID, max(limit, 1))
	if err != nil {
		return nil, dbError(err)
	}
	defer rows.Close()
	var out []*serversync.EmailActivity
	for rows.Next() {
		a, err := scanActivity(rows)
		if err != nil {
			return nil, dbError(err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, dbError(err)
	}
	return out, nil
}
