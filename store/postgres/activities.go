package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/store/storekit"
)

const insertActivitySQL = `INSERT INTO activities (id, mailbox_id, message_key, direction, status, message_id,
	tracking_token, conversation_hash, outbox_due_at, data, body) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`

// activityArgs are the column values of an activity, ready for insertActivitySQL:
// its bodies go to the body column, as bytes and compressed, the rest to data as
// JSON (see storekit.EncodeActivity).
func activityArgs(a *serversync.EmailActivity) ([]any, error) {
	data, body, err := storekit.EncodeActivity(a)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return []any{a.ID, a.MailboxID, a.MessageKey, string(a.Direction), string(a.Status), a.MessageID,
		a.TrackingToken, a.ConversationHash, outboxDueAt(a), data, body}, nil
}

// activityColumns are what an activity is read back from, for scanActivity.
const activityColumns = "data, body"

// scanActivity reads a row whose last columns are activityColumns, after the
// values of before. Rows stored before bodies had a column of their own have a
// NULL body and everything in data.
func scanActivity(row pgx.Row, before ...any) (*serversync.EmailActivity, error) {
	var data, body []byte
	if err := row.Scan(append(before, &data, &body)...); err != nil {
		return nil, err
	}
	return storekit.DecodeActivity(data, body) // callers add "postgres:" with dbError
}

// readActivity reads the activity id through q, with lock (or "") after the query.
func readActivity(ctx context.Context, q querier, id, lock string) (*serversync.EmailActivity, error) {
	a, err := scanActivity(q.QueryRow(ctx, "SELECT "+activityColumns+" FROM activities WHERE id = $1 "+lock, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("activity", id)
	} else if err != nil {
		return nil, dbError(err)
	}
	return a, nil
}

// outboxDueAt is when ClaimOutgoing may claim a: NextAttemptAt while it waits to be
// sent, ClaimExpiresAt while a host sends it, never (NULL) otherwise. A zero time
// means "at once" and is stored as -infinity, so it sorts first.
func outboxDueAt(a *serversync.EmailActivity) pgtype.Timestamptz {
	var due time.Time
	switch a.Status {
	case serversync.StatusPendingSend:
		due = a.NextAttemptAt
	case serversync.StatusSending:
		due = a.ClaimExpiresAt
	default:
		return pgtype.Timestamptz{}
	}
	if due.IsZero() {
		return pgtype.Timestamptz{InfinityModifier: pgtype.NegativeInfinity, Valid: true}
	}
	return pgtype.Timestamptz{Time: due, Valid: true}
}

func checkActivityKeys(a *serversync.EmailActivity) error {
	if a.ID == "" {
		return storekit.Required("EmailActivity", "ID")
	}
	if a.MessageKey == "" {
		return storekit.Required("EmailActivity", "MessageKey")
	}
	return nil
}

// lockClassMailbox is the first key of the advisory locks SaveTracked takes per
// mailbox (the second is a hash of the mailbox ID); two-key advisory locks are a
// key space of their own, apart from the migration lock.
const lockClassMailbox = 0x73796e63 // "sync"

// SaveTracked implements serversync.ActivityStore: one transaction for the batch and
// the cursor, duplicates skipped by the (mailbox_id, message_key) unique key, every
// statement sent in one round trip.
//
// Two batches inserting the same keys in different orders would each hold a key
// the other waits for: a deadlock, which PostgreSQL breaks only after
// deadlock_timeout. The keys can't be inserted sorted (the batch order is the
// storing order ListActivities keeps), so the transaction first takes an advisory
// lock per mailbox, in ID order: saves to one mailbox run one at a time, and saves
// to different mailboxes never share a key.
func (s *Store) SaveTracked(ctx context.Context, cursor *serversync.Cursor, activities []*serversync.EmailActivity) (serversync.SaveResult, error) {
	rows := make([][]any, len(activities))
	var mailboxes []string
	for i, a := range activities { // encode before opening the transaction
		if err := checkActivityKeys(a); err != nil {
			return serversync.SaveResult{}, err
		}
		args, err := activityArgs(a)
		if err != nil {
			return serversync.SaveResult{}, err
		}
		rows[i] = args
		mailboxes = append(mailboxes, a.MailboxID)
	}
	if cursor != nil {
		mailboxes = append(mailboxes, cursor.MailboxID)
	}
	slices.Sort(mailboxes)
	mailboxes = slices.Compact(mailboxes)

	var res serversync.SaveResult
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		res = serversync.SaveResult{}
		var batch pgx.Batch
		for _, id := range mailboxes {
			batch.Queue("SELECT pg_advisory_xact_lock($1, hashtext($2))", lockClassMailbox, id)
		}
		for _, args := range rows {
			batch.Queue(insertActivitySQL+" ON CONFLICT (mailbox_id, message_key) DO NOTHING", args...)
		}
		if cursor != nil {
			batch.Queue(`INSERT INTO cursors (mailbox_id, folder, data, updated_at) VALUES ($1, $2, $3, $4)
				ON CONFLICT (mailbox_id, folder) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at`,
				cursor.MailboxID, cursor.Folder, cursor.Data, cursor.UpdatedAt)
		}
		results := tx.SendBatch(ctx, &batch)
		defer results.Close()
		for range mailboxes {
			if _, err := results.Exec(); err != nil {
				return dbError(err)
			}
		}
		for i := range rows {
			tag, err := results.Exec()
			if err != nil {
				return dbError(err) // an ID already used: DuplicateError
			}
			if tag.RowsAffected() == 0 {
				res.Duplicates = append(res.Duplicates, i)
			} else {
				res.Inserted++
			}
		}
		if cursor != nil {
			if _, err := results.Exec(); err != nil {
				return dbError(err)
			}
		}
		return dbError(results.Close())
	})
	if err != nil {
		return serversync.SaveResult{}, err
	}
	return res, nil
}

// KnownMessageKeys implements serversync.ActivityStore: one query, each key a
// search of the (mailbox_id, message_key) unique index.
func (s *Store) KnownMessageKeys(ctx context.Context, mailboxID string, keys []string) (map[string]bool, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	known := make(map[string]bool)
	if len(keys) == 0 {
		return known, nil
	}
	rows, err := s.pool.Query(ctx, "SELECT message_key FROM activities WHERE mailbox_id = $1 AND message_key = ANY($2)",
		mailboxID, keys)
	if err != nil {
		return nil, dbError(err)
	}
	defer rows.Close()
	for rows.Next() {
		var key string
		if err := rows.Scan(&key); err != nil {
			return nil, dbError(err)
		}
		known[key] = true
	}
	if err := rows.Err(); err != nil {
		return nil, dbError(err)
	}
	return known, nil
}

// GetCursor implements serversync.ActivityStore.
func (s *Store) GetCursor(ctx context.Context, mailboxID, folder string) (*serversync.Cursor, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	c := serversync.Cursor{MailboxID: mailboxID, Folder: folder}
	err := s.pool.QueryRow(ctx, "SELECT data, updated_at FROM cursors WHERE mailbox_id = $1 AND folder = $2",
		mailboxID, folder).Scan(&c.Data, &c.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("cursor", mailboxID+"/"+folder)
	} else if err != nil {
		return nil, dbError(err)
	}
	c.UpdatedAt = c.UpdatedAt.UTC()
	return &c, nil
}

// GetActivity implements serversync.ActivityStore.
func (s *Store) GetActivity(ctx context.Context, id string) (*serversync.EmailActivity, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	return readActivity(ctx, s.pool, id, "")
}

// UpdateActivity implements serversync.ActivityStore. Changing ID, MailboxID or
// MessageKey fails with a *serversync.ValidationError naming the field.
func (s *Store) UpdateActivity(ctx context.Context, id string, update func(*serversync.EmailActivity) error) (*serversync.EmailActivity, error) {
	var out *serversync.EmailActivity
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		a, err := readActivity(ctx, tx, id, lockForUpdate)
		if err != nil {
			return err
		}
		stored := *a
		if err := update(a); err != nil {
			return err
		}
		if err := storekit.CheckActivityUpdate(&stored, a); err != nil {
			return err
		}
		args, err := activityArgs(a)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, rewriteActivitySQL, rewriteArgs(args)...); err != nil {
			return dbError(err)
		}
		out = a
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// rewriteActivitySQL stores an activity over its row, keeping the derived columns
// in step; its arguments are rewriteArgs of activityArgs.
const rewriteActivitySQL = `UPDATE activities SET direction = $1, status = $2, message_id = $3, tracking_token = $4,
	conversation_hash = $5, outbox_due_at = $6, data = $7, body = $8 WHERE id = $9`

func rewriteArgs(args []any) []any { return append(slices.Clone(args[3:]), args[0]) }

// ListActivities implements serversync.ActivityStore.
func (s *Store) ListActivities(ctx context.Context, f serversync.ActivityFilter) iter.Seq2[*serversync.EmailActivity, error] {
	var w where
	for _, c := range []struct{ column, value string }{
		{"mailbox_id", f.MailboxID}, {"direction", string(f.Direction)}, {"status", string(f.Status)},
		{"message_key", f.MessageKey}, {"message_id", f.MessageID}, {"tracking_token", f.TrackingToken},
		{"conversation_hash", f.ConversationHash},
	} {
		if c.value != "" {
			w.add(c.column+" =", c.value)
		}
	}
	return stream(ctx, s, list[*serversync.EmailActivity]{
		selectFrom: "SELECT seq, " + activityColumns + " FROM activities",
		filter:     w,
		key:        "seq",
		limit:      f.Limit,
		scan: func(rows pgx.Rows) (*serversync.EmailActivity, any, error) {
			var seq int64
			a, err := scanActivity(rows, &seq)
			if err != nil {
				return nil, nil, dbError(err)
			}
			return a, seq, nil
		},
	})
}

// ---- Outbox ------------------------------------------------------------------

// QueueOutgoing implements serversync.OutboxStore.
func (s *Store) QueueOutgoing(ctx context.Context, a *serversync.EmailActivity) error {
	if err := checkActivityKeys(a); err != nil {
		return err
	}
	if err := s.check(ctx); err != nil {
		return err
	}
	queued := a.Clone()
	queued.Status = serversync.StatusPendingSend
	args, err := activityArgs(queued)
	if err != nil {
		return err
	}
	_, err = s.pool.Exec(ctx, insertActivitySQL, args...)
	return dbError(err) // a taken ID or (MailboxID, MessageKey): DuplicateError
}

// ClaimOutgoing implements serversync.OutboxStore. The longest-waiting activities
// are claimed first; a Limit of 0 or less claims every claimable one. Rows another
// host is claiming at the same moment are locked, and SKIP LOCKED passes over them
// instead of waiting, so concurrent claimers split the queue between them.
func (s *Store) ClaimOutgoing(ctx context.Context, req serversync.ClaimRequest) ([]*serversync.EmailActivity, error) {
	var claimed []*serversync.EmailActivity
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		claimed = nil
		rows, err := tx.Query(ctx, `SELECT `+activityColumns+` FROM activities WHERE outbox_due_at <= $1
			ORDER BY outbox_due_at, seq LIMIT $2 FOR UPDATE SKIP LOCKED`, req.Now, limitArg(req.Limit))
		if err != nil {
			return dbError(err)
		}
		claimed, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (*serversync.EmailActivity, error) {
			a, err := scanActivity(row)
			return a, dbError(err)
		})
		if err != nil {
			return err
		}
		var batch pgx.Batch
		for _, a := range claimed {
			storekit.Claim(a, req)
			args, err := activityArgs(a)
			if err != nil {
				return err
			}
			batch.Queue(rewriteActivitySQL, rewriteArgs(args)...)
		}
		return dbError(tx.SendBatch(ctx, &batch).Close())
	})
	if err != nil {
		return nil, err
	}
	return claimed, nil
}

// ---- Alerts ------------------------------------------------------------------

// AddAlert implements serversync.AlertStore.
func (s *Store) AddAlert(ctx context.Context, a *serversync.Alert) error {
	if a.ID == "" {
		return storekit.Required("Alert", "ID")
	}
	if err := s.check(ctx); err != nil {
		return err
	}
	data, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("postgres: encode alert: %w", err)
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO alerts (id, recipient, mailbox_id, profile_id, level, created_at, data)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, a.ID, a.Recipient, a.MailboxID, a.ProfileID, string(a.Level), a.CreatedAt, data)
	return dbError(err)
}

// ListAlerts implements serversync.AlertStore.
func (s *Store) ListAlerts(ctx context.Context, f serversync.AlertFilter) iter.Seq2[*serversync.Alert, error] {
	var w where
	for _, c := range []struct{ column, value string }{
		{"recipient", f.Recipient}, {"mailbox_id", f.MailboxID}, {"profile_id", f.ProfileID}, {"level", string(f.Level)},
	} {
		if c.value != "" {
			w.add(c.column+" =", c.value)
		}
	}
	if !f.Since.IsZero() {
		w.add("created_at >=", f.Since)
	}
	return stream(ctx, s, list[*serversync.Alert]{
		selectFrom: "SELECT seq, data FROM alerts",
		filter:     w,
		key:        "seq",
		descending: true, // most recently stored first
		limit:      f.Limit,
		scan: func(rows pgx.Rows) (*serversync.Alert, any, error) {
			var seq int64
			var data []byte
			if err := rows.Scan(&seq, &data); err != nil {
				return nil, nil, dbError(err)
			}
			var a serversync.Alert
			if err := json.Unmarshal(data, &a); err != nil {
				return nil, nil, fmt.Errorf("postgres: decode alert: %w", err)
			}
			return &a, seq, nil
		},
	})
}
