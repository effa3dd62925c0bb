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
