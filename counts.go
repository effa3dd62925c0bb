package serversync

import (
	"cmp"
	"context"
	"slices"
)

// ActivityCountFilter selects the activities CountActivities counts; zero fields
// match everything.
type ActivityCountFilter struct {
	MailboxID string
	Direction Direction
	Status    ActivityStatus
}

// ActivityCount is how many activities one mailbox holds in one direction and status.
type ActivityCount struct {
	MailboxID string
	Direction Direction
	Status    ActivityStatus
	Count     int64
}

// ActivityCountStore is implemented by stores that count activities without
// reading them (a GROUP BY on the columns they index); store/memory, store/sqlite
// and store/postgres do, and store/storetest checks it when a store implements it.
// A monitoring view calls it through [CountActivities].
type ActivityCountStore interface {
	// CountActivities returns one ActivityCount per (mailbox, direction, status)
	// with at least one matching activity, ordered by mailbox, direction, status.
	CountActivities(ctx context.Context, filter ActivityCountFilter) ([]ActivityCount, error)
}

// CountActivities counts a store's activities by mailbox, direction and status. A
// store that implements [ActivityCountStore] answers with one query; any other is
// read through ListActivities (which streams every matching activity: fine for
// tests, slow for a large store).
func CountActivities(ctx context.Context, store ActivityStore, filter ActivityCountFilter) ([]ActivityCount, error) {
	if c, ok := store.(ActivityCountStore); ok {
		return c.CountActivities(ctx, filter)
	}
	type key struct {
		mailbox string
		dir     Direction
		status  ActivityStatus
	}
	counts := make(map[key]int64)
	for a, err := range store.ListActivities(ctx, ActivityFilter{MailboxID: filter.MailboxID, Direction: filter.Direction, Status: filter.Status}) {
		if err != nil {
			return nil, err
		}
		counts[key{a.MailboxID, a.Direction, a.Status}]++
	}
	out := make([]ActivityCount, 0, len(counts))
	for k, n := range counts {
		out = append(out, ActivityCount{MailboxID: k.mailbox, Direction: k.dir, Status: k.status, Count: n})
	}
	SortActivityCounts(out)
	return out, nil
}

// SortActivityCounts orders counts by mailbox, direction and status, the order
// ActivityCountStore returns them in.
func SortActivityCounts(counts []ActivityCount) {
	slices.SortFunc(counts, func(a, b ActivityCount) int {
		return cmp.Or(cmp.Compare(a.MailboxID, b.MailboxID), cmp.Compare(a.Direction, b.Direction), cmp.Compare(a.Status, b.Status))
	})
}

// ActivityTotals adds counts up by direction and status, across mailboxes.
type ActivityTotals map[Direction]map[ActivityStatus]int64

// Totals sums counts by direction and status.
func Totals(counts []ActivityCount) ActivityTotals {
	t := make(ActivityTotals)
	for _, c := range counts {
		if t[c.Direction] == nil {
			t[c.Direction] = make(map[ActivityStatus]int64)
		}
		t[c.Direction][c.Status] += c.Count
	}
	return t
}

// RecentActivityStore is implemented by stores that read a mailbox's newest
// activities without going through the older ones; store/memory, store/sqlite and
// store/postgres do. A monitoring view calls it through [RecentActivities].
type RecentActivityStore interface {
	// RecentActivities returns up to limit (at least 1) activities of the mailbox,
	// the most recently stored first.
	RecentActivities(ctx context.Context, mailboxID string, limit int) ([]*EmailActivity, error)
}

// RecentActivities returns a mailbox's limit most recently stored activities,
// newest first. A store without [RecentActivityStore] is read through
// ListActivities, keeping only the last limit.
func RecentActivities(ctx context.Context, store ActivityStore, mailboxID string, limit int) ([]*EmailActivity, error) {
	limit = max(limit, 1)
	if r, ok := store.(RecentActivityStore); ok {
		return r.RecentActivities(ctx, mailboxID, limit)
	}
	var ring []*EmailActivity
	for a, err := range store.ListActivities(ctx, ActivityFilter{MailboxID: mailboxID}) {
		if err != nil {
			return nil, err
		}
		if len(ring) == limit {
			ring = ring[1:]
		}
		ring = append(ring, a)
	}
	slices.Reverse(ring)
	return ring, nil
}
