package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/store/storekit"
)

// acquireSQL leases due mailboxes in one statement. The inner SELECT locks the rows
// it picks, and SKIP LOCKED passes over rows another host is leasing at the same
// moment instead of waiting for them, so concurrent hosts split the due mailboxes
// between them. A row another host leased and committed since this statement began
// is re-checked against the WHERE clause on its new version (READ COMMITTED's
// re-evaluation of locked rows), finds a live lease and is left out. taken_over is
// read from the locked version: a lease that was held, not released, and expired.
const acquireSQL = `WITH due AS (
	SELECT id, lease_host <> '' AS taken_over FROM mailboxes
	WHERE next_sync_at <= $1 AND (lease_host = '' OR lease_expires_at <= $1)
	ORDER BY next_sync_at, id
	LIMIT $2
	FOR UPDATE SKIP LOCKED
)
UPDATE mailboxes m SET lease_host = $3, lease_expires_at = $4, lease_token = m.lease_token + 1,
	forced_unlocks = m.forced_unlocks + due.taken_over::integer
FROM due WHERE m.id = due.id
RETURNING m.id, m.lease_token, due.taken_over, m.next_sync_at`

// AcquireLeases implements serversync.LeaseStore. Mailboxes due at the same time
// are taken in ID order; a Limit of 0 or less takes every due mailbox.
func (s *Store) AcquireLeases(ctx context.Context, req serversync.LeaseRequest) ([]serversync.Lease, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	expires := req.Now.Add(req.TTL)
	rows, err := s.pool.Query(ctx, acquireSQL, req.Now, limitArg(req.Limit), req.Host, expires)
	if err != nil {
		return nil, dbError(err)
	}
	type acquired struct {
		lease serversync.Lease
		due   time.Time
	}
	got, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (acquired, error) {
		a := acquired{lease: serversync.Lease{Host: req.Host, ExpiresAt: expires}}
		err := row.Scan(&a.lease.MailboxID, &a.lease.Token, &a.lease.TakenOver, &a.due)
		return a, err
	})
	if err != nil {
		return nil, dbError(err)
	}
	// UPDATE … RETURNING comes back in no particular order.
	slices.SortFunc(got, func(a, b acquired) int {
		return cmp.Or(a.due.Compare(b.due), cmp.Compare(a.lease.MailboxID, b.lease.MailboxID))
	})
	leases := make([]serversync.Lease, len(got))
	for i, a := range got {
		leases[i] = a.lease
	}
	return leases, nil
}

// leaseHeld is the condition under which a lease is still its holder's: neither
// released nor taken over. A lease past its expiry that nobody took is still held.
const leaseHeld = "id = $2 AND lease_host = $3 AND lease_host <> '' AND lease_token = $4"

func lost(lease serversync.Lease) error {
	return fmt.Errorf("postgres: lease on mailbox %q (token %d): %w", lease.MailboxID, lease.Token, serversync.ErrLeaseLost)
}

// RenewLease implements serversync.LeaseStore.
func (s *Store) RenewLease(ctx context.Context, lease serversync.Lease, now time.Time, ttl time.Duration) (serversync.Lease, error) {
	if err := s.check(ctx); err != nil {
		return serversync.Lease{}, err
	}
	expires := now.Add(ttl)
	tag, err := s.pool.Exec(ctx, "UPDATE mailboxes SET lease_expires_at = $1 WHERE "+leaseHeld,
		expires, lease.MailboxID, lease.Host, lease.Token)
	if err != nil {
		return serversync.Lease{}, dbError(err)
	}
	if tag.RowsAffected() == 0 {
		return serversync.Lease{}, lost(lease)
	}
	lease.ExpiresAt, lease.TakenOver = expires, false
	return lease, nil
}

// releaseSQL ends a held lease and sets when the mailbox is next due.
//
// It commits with synchronous_commit off: the commit doesn't wait for its log record
// to reach disk, which is most of what a one-row commit costs. That is safe for a
// release, and only for it. A crash of the database server within a fraction of a
// second can lose it, which leaves the lease held: it expires and is taken over
// (ForcedUnlockCount counts it), so no mailbox is ever held twice. And nothing can
// build on a release that is not yet durable: the acquisition that follows it
// commits synchronously, and the log is flushed in order, the release first.
//
// set_config(…, true) lasts until the end of the statement's own transaction, and
// the commit reads the setting before it is undone. Joining it in as a one-row
// subquery makes the release one prepared statement in one round trip, where
// BEGIN, SET LOCAL, UPDATE and COMMIT were four statements for the server to parse.
const releaseSQL = `UPDATE mailboxes SET lease_host = '', lease_expires_at = NULL, next_sync_at = $1
FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit
WHERE ` + leaseHeld

// ReleaseLease implements serversync.LeaseStore.
func (s *Store) ReleaseLease(ctx context.Context, lease serversync.Lease, nextSync time.Time) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, releaseSQL, nullTime(nextSync), lease.MailboxID, lease.Host, lease.Token)
	if err != nil {
		return dbError(err)
	}
	if tag.RowsAffected() == 0 {
		return lost(lease)
	}
	return nil
}

// rotateBatch bounds how many rows one RotateSecrets transaction locks.
const rotateBatch = 200

// RotateSecrets implements serversync.SecretRotator: every sealed value not under
// the key provider's current key is re-encrypted under it. It returns how many
// values it rewrote; running it again finds none. Several processes may run it at
// once: each row is read and rewritten under its lock.
func (s *Store) RotateSecrets(ctx context.Context) (int, error) {
	total := 0
	tables := []struct{ name, kind string }{{"profiles", "profile"}, {"mailboxes", "mailbox"}, {"app_tokens", storekit.AppTokenKind}}
	for _, table := range tables {
		for after := ""; ; {
			n, last, err := s.rotateSome(ctx, table.name, table.kind, after)
			total += n
			if err != nil {
				return total, err
			}
			if last == "" {
				break
			}
			after = last
		}
	}
	return total, nil
}

// rotateSome reseals one batch of rows with IDs after after and returns the last ID
// it saw ("" when the table is done).
func (s *Store) rotateSome(ctx context.Context, table, kind, after string) (resealed int, last string, err error) {
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		resealed, last = 0, ""
		rows, err := tx.Query(ctx, "SELECT id, data FROM "+table+" WHERE id > $1 ORDER BY id LIMIT $2 "+lockForUpdate, after, rotateBatch)
		if err != nil {
			return dbError(err)
		}
		type row struct {
			id   string
			data []byte
		}
		batch, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
			var v row
			err := r.Scan(&v.id, &v.data)
			return v, err
		})
		if err != nil {
			return dbError(err)
		}
		for _, r := range batch {
			out, n, err := storekit.ResealRecord(ctx, s.sealer, kind, r.id, r.data)
			if err != nil {
				return fmt.Errorf("postgres: rotate %s %s: %w", kind, r.id, err)
			}
			if n == 0 {
				continue
			}
			if _, err := tx.Exec(ctx, "UPDATE "+table+" SET data = $1 WHERE id = $2", out, r.id); err != nil {
				return dbError(err)
			}
			resealed += n
		}
		if len(batch) == rotateBatch {
			last = batch[len(batch)-1].id
		}
		return nil
	})
	return resealed, last, err
}
