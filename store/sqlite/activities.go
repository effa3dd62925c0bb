package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"iter"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/store/storekit"
)

const insertActivitySQL = `INSERT INTO activities (id, mailbox_id, message_key, direction, status, message_id,
	tracking_token, conversation_hash, next_attempt_at, claim_expires_at, data, body)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (mailbox_id, message_key) DO NOTHING`

// activityArgs are the column values of an activity, ready for insertActivitySQL:
// its bodies go to the body column, as bytes and compressed, the rest to data as
// JSON (see storekit.EncodeActivity).
func activityArgs(a *serversync.EmailActivity) ([]any, error) {
	args, _, err := activityArgsTo(nil, a)
	return args, err
}

// activityArgsTo is activityArgs with the body written over buf's storage (see
// storekit.EncodeActivityTo); it returns the body too, whose storage the next
// call may reuse once the row is written.
func activityArgsTo(buf []byte, a *serversync.EmailActivity) ([]any, []byte, error) {
	data, body, err := storekit.EncodeActivityTo(buf, a)
	if err != nil {
		return nil, nil, fmt.Errorf("sqlite: %w", err)
	}
	return []any{a.ID, a.MailboxID, a.MessageKey, string(a.Direction), string(a.Status), a.MessageID,
		a.TrackingToken, a.ConversationHash, micros(a.NextAttemptAt), micros(a.ClaimExpiresAt), data, body}, body, nil
}

// activityColumns are what an activity is read back from, for scanActivity.
const activityColumns = "data, body"

// scanActivity reads a row of activityColumns. Rows stored before bodies had a
// column of their own have a NULL body and everything in data.
func scanActivity(row interface{ Scan(...any) error }) (*serversync.EmailActivity, error) {
	var data, body []byte
	if err := row.Scan(&data, &body); err != nil {
		return nil, err
	}
	a, err := storekit.DecodeActivity(data, body)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	return a, nil
}

// readActivity reads the activity id through q.
func readActivity(ctx context.Context, q rowQuerier, id string) (*serversync.EmailActivity, error) {
	a, err := scanActivity(q.QueryRowContext(ctx, "SELECT "+activityColumns+" FROM activities WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("activity", id)
	} else if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	return a, nil
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

// maxKeptBodyBuffer is the largest buffer SaveTracked keeps between batches for
// encoding bodies: a message of a few MB should not pin its size for good.
const maxKeptBodyBuffer = 1 << 20

// SaveTracked implements serversync.ActivityStore: one transaction for the batch and
// the cursor, duplicates skipped by the (mailbox_id, message_key) unique key.
func (s *Store) SaveTracked(ctx context.Context, cursor *serversync.Cursor, activities []*serversync.EmailActivity) (serversync.SaveResult, error) {
	for _, a := range activities {
		if err := checkActivityKeys(a); err != nil {
			return serversync.SaveResult{}, err
		}
	}
	var res serversync.SaveResult
	err := s.write(ctx, func(tx *txn) error {
		res = serversync.SaveResult{}
		insert, err := tx.stmt(ctx, insertActivitySQL)
		if err != nil {
			return err
		}
		// Each row is encoded as it is inserted, into one buffer: the driver copies
		// what it binds, and S2 takes ~10 µs a message, so the write lock is held
		// little longer than encoding all rows before taking it, which allocated a
		// body per row (README, "Measured"). The buffer is kept for the next batch.
		var body []byte
		if kept := s.bodyBuffer.Swap(nil); kept != nil {
			body = *kept
		}
		defer func() {
			if cap(body) <= maxKeptBodyBuffer {
				s.bodyBuffer.Store(&body)
			}
		}()
		for i, a := range activities {
			var args []any
			if args, body, err = activityArgsTo(body, a); err != nil {
				return err
			}
			r, err := insert.ExecContext(ctx, args...)
			if isUnique(err, "activities.id") {
				return serversync.DuplicateError("EmailActivity", "ID")
			} else if err != nil {
				return err
			}
			if n, _ := r.RowsAffected(); n == 0 {
				res.Duplicates = append(res.Duplicates, i)
			} else {
				res.Inserted++
			}
		}
		if cursor == nil {
			return nil
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO cursors (mailbox_id, folder, data, updated_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (mailbox_id, folder) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at`,
			cursor.MailboxID, cursor.Folder, cursor.Data, micros(cursor.UpdatedAt))
		return err
	})
	if err != nil {
		return serversync.SaveResult{}, err
	}
	return res, nil
}

// knownKeysSQL finds which of a JSON array of keys a mailbox holds: one statement
// whatever the number of keys (no bound on SQL variables), each key a search of
// the (mailbox_id, message_key) unique index.
const knownKeysSQL = `SELECT message_key FROM activities
	WHERE mailbox_id = ? AND message_key IN (SELECT value FROM json_each(?))`

// KnownMessageKeys implements serversync.ActivityStore.
func (s *Store) KnownMessageKeys(ctx context.Context, mailboxID string, keys []string) (map[string]bool, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	known := make(map[string]bool)
	if len(keys) == 0 {
		return known, ctx.Err()
	}
	list, err := json.Marshal(keys)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	rows, err := s.query(ctx, knownKeysSQL, mailboxID, string(list))
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var key string
		if err := rows.Scan(&key); err != nil {
			return nil, fmt.Errorf("sqlite: %w", err)
		}
		known[key] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	return known, nil
}

// GetCursor implements serversync.ActivityStore.
func (s *Store) GetCursor(ctx context.Context, mailboxID, folder string) (*serversync.Cursor, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	c := serversync.Cursor{MailboxID: mailboxID, Folder: folder}
	var updated int64
	err := s.queryRow(ctx, "SELECT data, updated_at FROM cursors WHERE mailbox_id = ? AND folder = ?", mailboxID, folder).Scan(&c.Data, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("cursor", mailboxID+"/"+folder)
	} else if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	c.UpdatedAt = fromMicros(updated)
	return &c, nil
}

// GetActivity implements serversync.ActivityStore.
func (s *Store) GetActivity(ctx context.Context, id string) (*serversync.EmailActivity, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	return readActivity(ctx, &s.reads, id)
}

// UpdateActivity implements serversync.ActivityStore. Changing ID, MailboxID or
// MessageKey fails with a *serversync.ValidationError naming the field.
func (s *Store) UpdateActivity(ctx context.Context, id string, update func(*serversync.EmailActivity) error) (*serversync.EmailActivity, error) {
	var out *serversync.EmailActivity
	err := s.write(ctx, func(tx *txn) error {
		a, err := readActivity(ctx, tx, id)
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
		if err := s.rewriteActivity(ctx, tx, a); err != nil {
			return err
		}
		out = a
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// rewriteActivity stores a over its row, keeping the derived columns in step.
func (s *Store) rewriteActivity(ctx context.Context, tx *txn, a *serversync.EmailActivity) error {
	args, err := activityArgs(a)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `UPDATE activities SET direction = ?, status = ?, message_id = ?, tracking_token = ?,
		conversation_hash = ?, next_attempt_at = ?, claim_expires_at = ?, data = ?, body = ? WHERE id = ?`,
		append(args[3:], a.ID)...)
	return err
}

// partiallyIndexed are the activity columns whose indexes leave out empty values.
var partiallyIndexed = map[string]bool{"message_id": true, "tracking_token": true, "conversation_hash": true}

// activitiesQuery is the query of ListActivities and its arguments.
func activitiesQuery(f serversync.ActivityFilter) (string, []any) {
	var w where
	for _, c := range []struct{ column, value string }{
		{"mailbox_id", f.MailboxID}, {"direction", string(f.Direction)}, {"status", string(f.Status)},
		{"message_key", f.MessageKey}, {"message_id", f.MessageID}, {"tracking_token", f.TrackingToken},
		{"conversation_hash", f.ConversationHash},
	} {
		switch {
		case c.value == "":
		case partiallyIndexed[c.column]:
			// The index covers non-empty values only; SQLite uses it only when the
			// query says so itself, as it cannot see that the bound value is not empty.
			w.add(c.column+" = ? AND "+c.column+" <> ''", c.value)
		default:
			w.add(c.column+" = ?", c.value)
		}
	}
	query := "SELECT " + activityColumns + " FROM activities" + w.String() + " ORDER BY seq LIMIT ?"
	return query, append(w.args, limit(f.Limit))
}

// ListActivities implements serversync.ActivityStore.
func (s *Store) ListActivities(ctx context.Context, f serversync.ActivityFilter) iter.Seq2[*serversync.EmailActivity, error] {
	query, args := activitiesQuery(f)
	return rowsSeq(ctx, s, query, args, func(rows *sql.Rows) (*serversync.EmailActivity, error) {
		return scanActivity(rows)
	})
}

// ---- Outbox ------------------------------------------------------------------

// QueueOutgoing implements serversync.OutboxStore.
func (s *Store) QueueOutgoing(ctx context.Context, a *serversync.EmailActivity) error {
	if err := checkActivityKeys(a); err != nil {
		return err
	}
	queued := a.Clone()
	queued.Status = serversync.StatusPendingSend
	args, err := activityArgs(queued)
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx *txn) error {
		r, err := tx.ExecContext(ctx, insertActivitySQL, args...)
		if isUnique(err, "activities.id") {
			return serversync.DuplicateError("EmailActivity", "ID")
		} else if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return serversync.DuplicateError("EmailActivity", "MessageKey")
		}
		return nil
	})
}

// ClaimOutgoing implements serversync.OutboxStore. The longest-waiting activities
// are claimed first; a Limit of 0 or less claims every claimable one.
func (s *Store) ClaimOutgoing(ctx context.Context, req serversync.ClaimRequest) ([]*serversync.EmailActivity, error) {
	var claimed []*serversync.EmailActivity
	err := s.write(ctx, func(tx *txn) error {
		claimed = nil
		now := micros(req.Now)
		rows, err := tx.QueryContext(ctx, `SELECT `+activityColumns+` FROM activities
			WHERE (status = 'PendingSend' AND next_attempt_at <= ?) OR (status = 'Sending' AND claim_expires_at <= ?)
			ORDER BY CASE status WHEN 'PendingSend' THEN next_attempt_at ELSE claim_expires_at END, seq
			LIMIT ?`, now, now, limit(req.Limit))
		if err != nil {
			return err
		}
		for rows.Next() {
			a, err := scanActivity(rows)
			if err != nil {
				rows.Close()
				return err
			}
			claimed = append(claimed, a)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
		for _, a := range claimed {
			storekit.Claim(a, req)
			if err := s.rewriteActivity(ctx, tx, a); err != nil {
				return err
			}
		}
		return nil
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
	data, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("sqlite: encode alert: %w", err)
	}
	return s.write(ctx, func(tx *txn) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO alerts (id, recipient, mailbox_id, profile_id, level, created_at, data)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, a.ID, a.Recipient, a.MailboxID, a.ProfileID, string(a.Level), micros(a.CreatedAt), data)
		if isUnique(err, "alerts.id") {
			return serversync.DuplicateError("Alert", "ID")
		}
		return err
	})
}

// ListAlerts implements serversync.AlertStore.
func (s *Store) ListAlerts(ctx context.Context, f serversync.AlertFilter) iter.Seq2[*serversync.Alert, error] {
	var w where
	for _, c := range []struct{ column, value string }{
		{"recipient", f.Recipient}, {"mailbox_id", f.MailboxID}, {"profile_id", f.ProfileID}, {"level", string(f.Level)},
	} {
		if c.value != "" {
			w.add(c.column+" = ?", c.value)
		}
	}
	if !f.Since.IsZero() {
		w.add("created_at >= ?", micros(f.Since))
	}
	query := "SELECT data FROM alerts" + w.String() + " ORDER BY seq DESC LIMIT ?"
	return rowsSeq(ctx, s, query, append(w.args, limit(f.Limit)), func(rows *sql.Rows) (*serversync.Alert, error) {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			return nil, fmt.Errorf("sqlite: %w", err)
		}
		var a serversync.Alert
		if err := json.Unmarshal(data, &a); err != nil {
			return nil, fmt.Errorf("sqlite: decode alert: %w", err)
		}
		return &a, nil
	})
}
