package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"

	"github.com/jackc/pgx/v5"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/store/storekit"
)

var _ serversync.ACTStore = (*Store)(nil)

// lockClassACT is the first key of the advisory lock ACT writes take per mailbox:
// a record's insert and the checks before it are one step for every process.
const lockClassACT = 0x61637420 // "act "

func decodeACTRecord(data []byte) (*serversync.ACTRecord, error) {
	var r serversync.ACTRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("postgres: decode ACT record: %w", err)
	}
	return &r, nil
}

// lockACT serializes the ACT writes of one mailbox until the transaction ends.
func lockACT(ctx context.Context, tx pgx.Tx, mailboxID string) error {
	_, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, hashtext($2))", lockClassACT, mailboxID)
	return dbError(err)
}

// actRecord reads a record in tx, locked; nil when there is none.
func actRecord(ctx context.Context, tx pgx.Tx, id string) (*serversync.ACTRecord, error) {
	var data []byte
	err := tx.QueryRow(ctx, "SELECT data FROM act_records WHERE id = $1 FOR UPDATE", id).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	} else if err != nil {
		return nil, dbError(err)
	}
	return decodeACTRecord(data)
}

func putACTRecord(ctx context.Context, tx pgx.Tx, r *serversync.ACTRecord) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO act_records (id, mailbox_id, kind, server_id, uid, pending, version, data)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (id) DO UPDATE SET mailbox_id = excluded.mailbox_id, kind = excluded.kind, server_id = excluded.server_id,
			uid = excluded.uid, pending = excluded.pending, version = excluded.version, data = excluded.data`,
		r.ID, r.MailboxID, string(r.Kind), r.ServerID, r.UID, r.Pending, r.Version, data)
	return dbError(err)
}

func mailboxExists(ctx context.Context, tx pgx.Tx, id string) (bool, error) {
	var one int
	err := tx.QueryRow(ctx, "SELECT 1 FROM mailboxes WHERE id = $1", id).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return err == nil, dbError(err)
}

// SaveACTRecord implements serversync.ACTStore.
func (s *Store) SaveACTRecord(ctx context.Context, r *serversync.ACTRecord) (*serversync.ACTRecord, error) {
	if _, err := storekit.ACTHostSave(nil, r); err != nil {
		return nil, err // required fields, before any round trip
	}
	var out *serversync.ACTRecord
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockACT(ctx, tx, r.MailboxID); err != nil {
			return err
		}
		stored, err := actRecord(ctx, tx, r.ID)
		if err != nil {
			return err
		}
		rec, err := storekit.ACTHostSave(stored, r)
		if err != nil {
			return err
		}
		if stored == nil {
			if ok, err := mailboxExists(ctx, tx, rec.MailboxID); err != nil {
				return err
			} else if !ok {
				return notFound("mailbox", rec.MailboxID)
			}
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
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		out = nil
		if err := lockACT(ctx, tx, a.MailboxID); err != nil {
			return err
		}
		if ok, err := mailboxExists(ctx, tx, a.MailboxID); err != nil {
			return err
		} else if !ok {
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
				if _, err := tx.Exec(ctx, "DELETE FROM act_records WHERE id = $1", rec.ID); err != nil {
					return dbError(err)
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
			if _, err := tx.Exec(ctx, "INSERT INTO act_conflicts (id, mailbox_id, data) VALUES ($1, $2, $3)", c.ID, c.MailboxID, conflicts[i]); err != nil {
				return dbError(err)
			}
		}
		if c := a.Cursor; c != nil {
			_, err := tx.Exec(ctx, `INSERT INTO cursors (mailbox_id, folder, data, updated_at) VALUES ($1, $2, $3, $4)
				ON CONFLICT (mailbox_id, folder) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at`,
				c.MailboxID, c.Folder, c.Data, c.UpdatedAt)
			return dbError(err)
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
	err := s.inTx(ctx, func(tx pgx.Tx) error {
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
			_, err := tx.Exec(ctx, "DELETE FROM act_records WHERE id = $1", id)
			return dbError(err)
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
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	data, err := readData(ctx, s.pool, "act_records", "ACT record", id, "")
	if err != nil {
		return nil, err
	}
	return decodeACTRecord(data)
}

// ListACTRecords implements serversync.ACTStore.
func (s *Store) ListACTRecords(ctx context.Context, f serversync.ACTRecordFilter) iter.Seq2[*serversync.ACTRecord, error] {
	var w where
	w.add("mailbox_id =", f.MailboxID)
	if f.Kind != "" {
		w.add("kind =", string(f.Kind))
	}
	if f.Pending != nil {
		w.add("pending =", *f.Pending)
	}
	if f.ServerID != "" {
		w.add("server_id =", f.ServerID)
	}
	if f.UID != "" {
		w.add("uid =", f.UID)
	}
	return stream(ctx, s, list[*serversync.ACTRecord]{
		selectFrom: "SELECT id, data FROM act_records",
		filter:     w,
		key:        "id",
		limit:      f.Limit,
		scan: func(rows pgx.Rows) (*serversync.ACTRecord, any, error) {
			var id string
			var data []byte
			if err := rows.Scan(&id, &data); err != nil {
				return nil, nil, dbError(err)
			}
			r, err := decodeACTRecord(data)
			return r, id, err
		},
	})
}

// ListACTConflicts implements serversync.ACTStore.
func (s *Store) ListACTConflicts(ctx context.Context, mailboxID string) iter.Seq2[*serversync.ACTConflict, error] {
	var w where
	w.add("mailbox_id =", mailboxID)
	return stream(ctx, s, list[*serversync.ACTConflict]{
		selectFrom: "SELECT seq, data FROM act_conflicts",
		filter:     w,
		key:        "seq",
		scan: func(rows pgx.Rows) (*serversync.ACTConflict, any, error) {
			var seq int64
			var data []byte
			if err := rows.Scan(&seq, &data); err != nil {
				return nil, nil, dbError(err)
			}
			var c serversync.ACTConflict
			if err := json.Unmarshal(data, &c); err != nil {
				return nil, nil, fmt.Errorf("postgres: decode ACT conflict: %w", err)
			}
			return &c, seq, nil
		},
	})
}
