package sqlite

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/store/storekit"
)

// AcquireLeases implements serversync.LeaseStore. Mailboxes due at the same time
// are taken in ID order; a Limit of 0 or less takes every due mailbox.
func (s *Store) AcquireLeases(ctx context.Context, req serversync.LeaseRequest) ([]serversync.Lease, error) {
	var leases []serversync.Lease
	err := s.write(ctx, func(tx *txn) error {
		leases = nil
		now := micros(req.Now)
		rows, err := tx.QueryContext(ctx, `SELECT id, lease_host FROM mailboxes
			WHERE next_sync_at <> 0 AND next_sync_at <= ? AND (lease_host = '' OR lease_expires_at <= ?)
			ORDER BY next_sync_at, id LIMIT ?`, now, now, limit(req.Limit))
		if err != nil {
			return err
		}
		type due struct{ id, previousHost string }
		var candidates []due
		for rows.Next() {
			var d due
			if err := rows.Scan(&d.id, &d.previousHost); err != nil {
				rows.Close()
				return err
			}
			candidates = append(candidates, d)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
		expires := req.Now.Add(req.TTL)
		for _, d := range candidates {
			takenOver := d.previousHost != "" // its holder stopped renewing and never released
			var token int64
			err := tx.QueryRowContext(ctx, `UPDATE mailboxes SET lease_host = ?, lease_expires_at = ?,
				lease_token = lease_token + 1, forced_unlocks = forced_unlocks + ? WHERE id = ? RETURNING lease_token`,
				req.Host, micros(expires), boolInt(takenOver), d.id).Scan(&token)
			if err != nil {
				return err
			}
			leases = append(leases, serversync.Lease{MailboxID: d.id, Host: req.Host, ExpiresAt: expires, Token: token, TakenOver: takenOver})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return leases, nil
}

// leaseHeld is the condition under which a lease is still its holder's: neither
// released nor taken over. A lease past its expiry that nobody took is still held.
const leaseHeld = "id = ? AND lease_host = ? AND lease_host <> '' AND lease_token = ?"

func lost(lease serversync.Lease) error {
	return fmt.Errorf("sqlite: lease on mailbox %q (token %d): %w", lease.MailboxID, lease.Token, serversync.ErrLeaseLost)
}

// RenewLease implements serversync.LeaseStore.
func (s *Store) RenewLease(ctx context.Context, lease serversync.Lease, now time.Time, ttl time.Duration) (serversync.Lease, error) {
	expires := now.Add(ttl)
	err := s.write(ctx, func(tx *txn) error {
		r, err := tx.ExecContext(ctx, "UPDATE mailboxes SET lease_expires_at = ? WHERE "+leaseHeld,
			micros(expires), lease.MailboxID, lease.Host, lease.Token)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return lost(lease)
		}
		return nil
	})
	if err != nil {
		return serversync.Lease{}, err
	}
	lease.ExpiresAt, lease.TakenOver = expires, false
	return lease, nil
}

// ReleaseLease implements serversync.LeaseStore.
func (s *Store) ReleaseLease(ctx context.Context, lease serversync.Lease, nextSync time.Time) error {
	return s.write(ctx, func(tx *txn) error {
		r, err := tx.ExecContext(ctx, "UPDATE mailboxes SET lease_host = '', lease_expires_at = 0, next_sync_at = ? WHERE "+leaseHeld,
			micros(nextSync), lease.MailboxID, lease.Host, lease.Token)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return lost(lease)
		}
		return nil
	})
}

// rotateBatch bounds how long RotateSecrets holds the write lock at a time.
const rotateBatch = 200

// RotateSecrets implements serversync.SecretRotator: every sealed value not under
// the key provider's current key is re-encrypted under it. It returns how many
// values it rewrote; running it again finds none.
func (s *Store) RotateSecrets(ctx context.Context) (int, error) {
	total := 0
	tables := []struct{ name, kind string }{{"profiles", "profile"}, {"mailboxes", "mailbox"}, {"app_tokens", storekit.AppTokenKind}}
	for _, table := range tables {
		after := ""
		for {
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
	err = s.write(ctx, func(tx *txn) error {
		resealed, last = 0, ""
		rows, err := tx.QueryContext(ctx, "SELECT id, data FROM "+table+" WHERE id > ? ORDER BY id LIMIT ?", after, rotateBatch)
		if err != nil {
			return err
		}
		type row struct {
			id   string
			data []byte
		}
		var batch []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.id, &r.data); err != nil {
				rows.Close()
				return err
			}
			batch = append(batch, r)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
		for _, r := range batch {
			out, n, err := storekit.ResealRecord(ctx, s.sealer, kind, r.id, r.data)
			if err != nil {
				return fmt.Errorf("sqlite: rotate %s %s: %w", kind, r.id, err)
			}
			if n == 0 {
				continue
			}
			if _, err := tx.ExecContext(ctx, "UPDATE "+table+" SET data = ? WHERE id = ?", out, r.id); err != nil {
				return err
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
