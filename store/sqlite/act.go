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

var _ serversync.ACTStore = (*Store)(nil)

func decodeACTRecord(data []byte) (*serversync.ACTRecord, error) {
	var r serversync.ACTRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("sqlite: decode ACT record: %w", err)
	}
	return &r, nil
}

// actRecord reads a record in tx; nil when there is none.
func actRecord(ctx context.Context, tx *txn, id string) (*serversync.ACTRecord, error) {
	var data []byte
	err := tx.QueryRowContext(ctx, "SELECT data FROM act_records WHERE id = ?", id).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	return decodeACTRecord(data)
}

// putACTRecord writes r over its row, or inserts it.
func putACTRecord(ctx context.Context, tx *txn, r *serversync.ACTRecord) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO act_records (id, mailbox_id, kind, server_id, uid, pending, version, data)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET mailbox_id = excluded.mailbox_id, kind = excluded.kind, server_id = excluded.server_id,
			uid = excluded.uid, pending = excluded.pending, version = excluded.version, data = excluded.data`,
		r.ID, r.MailboxID, string(r.Kind), r.ServerID, r.UID, r.Pending, r.Version, data)
	return err
}

// SaveACTRecord implements serversync.ACTStore.
func (s *Store) SaveACTRecord(ctx context.Context, r *serversync.ACTRecord) (*serversync.ACTRecord, error) {
	var out *serversync.ACTRecord
	err := s.write(ctx, func(tx *txn) error {
		var stored *serversync.ACTRecord
		if r != nil && r.ID != "" {
			var err error
			if stored, err = actRecord(ctx, tx, r.ID); err != nil {
				return err
			}
		}
		rec, err := storekit.ACTHostSave(stored, r)
		if err != nil {
			return err
		}
		if stored == nil && !exists(ctx, tx, "SELECT 1 FROM mailboxes WHERE id = ?", rec.MailboxID) {
			return notFound("mailbox", rec.MailboxID)
		}
		out = rec
		return putACTRecord(ctx, tx, rec)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ApplyACTChanges implements serversync.ACTStore: one transaction.
func (s *Store) ApplyACTChanges(ctx context.Context, a serversync.ACTApply) ([]*serversync.ACTRecord, error) {
	conflicts := make([][]byte, len(a.Conflicts))
	for i, c := range a.Conflicts {
		if c == nil || c.ID == "" {
			return nil, storekit.Required("ACTConflict", "ID")
		}
		data, err := json.Marshal(c)
		if err != nil {
			return nil, err
		}
		conflicts[i] = data
	}
	var out []*serversync.ACTRecord
	err := s.write(ctx, func(tx *txn) error {
		out = nil
		if !exists(ctx, tx, "SELECT 1 FROM mailboxes WHERE id = ?", a.MailboxID) {
			return notFound("mailbox", a.MailboxID)
		}
		for _, w := range a.Writes {
			var stored *serversync.ACTRecord
			if w.Record != nil && w.Record.ID != "" {
				var err error
				if stored, err = actRecord(ctx, tx, w.Record.ID); err != nil {
					return err
				}
			}
			rec, err := storekit.ACTApplyWrite(stored, w, a.MailboxID)
			if err != nil {
				return err
			}
			switch {
			case w.Remove && rec != nil:
				if _, err := tx.ExecContext(ctx, "DELETE FROM act_records WHERE id = ?", rec.ID); err != nil {
					return err
				}
			case !w.Remove:
				if err := putACTRecord(ctx, tx, rec); err != nil {
					return err
				}
			}
			if rec != nil {
				out = append(out, rec)
			}
		}
		for i, c := range a.Conflicts {
			if _, err := tx.ExecContext(ctx, "INSERT INTO act_conflicts (id, mailbox_id, data) VALUES (?, ?, ?)", c.ID, c.MailboxID, conflicts[i]); err != nil {
				if isUnique(err, "act_conflicts.id") {
					return serversync.DuplicateError("ACTConflict", "ID")
				}
				return err
			}
		}
		if c := a.Cursor; c != nil {
			_, err := tx.ExecContext(ctx, `INSERT INTO cursors (mailbox_id, folder, data, updated_at) VALUES (?, ?, ?, ?)
				ON CONFLICT (mailbox_id, folder) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at`,
				c.MailboxID, c.Folder, c.Data, micros(c.UpdatedAt))
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// MarkACTPushed implements serversync.ACTStore.
func (s *Store) MarkACTPushed(ctx context.Context, id string, version int64, serverID, changeKey string) (*serversync.ACTRecord, error) {
	var out *serversync.ACTRecord
	err := s.write(ctx, func(tx *txn) error {
		stored, err := actRecord(ctx, tx, id)
		if err != nil {
			return err
		}
		if stored == nil {
			return notFound("ACT record", id)
		}
		rec, remove := storekit.ACTPushed(stored, version, serverID, changeKey)
		if remove {
			out = nil
			_, err := tx.ExecContext(ctx, "DELETE FROM act_records WHERE id = ?", id)
			return err
		}
		out = rec
		return putACTRecord(ctx, tx, rec)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// GetACTRecord implements serversync.ACTStore.
func (s *Store) GetACTRecord(ctx context.Context, id string) (*serversync.ACTRecord, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	data, err := readData(ctx, &s.reads, "act_records", "ACT record", id)
	if err != nil {
		return nil, err
	}
	return decodeACTRecord(data)
}

// ListACTRecords implements serversync.ACTStore.
func (s *Store) ListACTRecords(ctx context.Context, f serversync.ACTRecordFilter) iter.Seq2[*serversync.ACTRecord, error] {
	var w where
	w.add("mailbox_id = ?", f.MailboxID)
	if f.Kind != "" {
		w.add("kind = ?", string(f.Kind))
	}
	if f.Pending != nil {
		w.add("pending = ?", *f.Pending)
	}
	if f.ServerID != "" {
		w.add("server_id = ? AND server_id <> ''", f.ServerID) // the second term lets SQLite use the partial index
	}
	if f.UID != "" {
		w.add("uid = ?", f.UID)
	}
	query := "SELECT data FROM act_records" + w.String() + " ORDER BY id LIMIT ?"
	return rowsSeq(ctx, s, query, append(w.args, limit(f.Limit)), func(rows *sql.Rows) (*serversync.ACTRecord, error) {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			return nil, fmt.Errorf("sqlite: %w", err)
		}
		return decodeACTRecord(data)
	})
}

// ListACTConflicts implements serversync.ACTStore.
func (s *Store) ListACTConflicts(ctx context.Context, mailboxID string) iter.Seq2[*serversync.ACTConflict, error] {
	return rowsSeq(ctx, s, "SELECT data FROM act_conflicts WHERE mailbox_id = ? ORDER BY seq", []any{mailboxID}, func(rows *sql.Rows) (*serversync.ACTConflict, error) {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			return nil, fmt.Errorf("sqlite: %w", err)
		}
		var c serversync.ACTConflict
		if err := json.Unmarshal(data, &c); err != nil {
			return nil, fmt.Errorf("sqlite: decode ACT conflict: %w", err)
		}
		return &c, nil
	})
}
