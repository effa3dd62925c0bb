package serversync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"time"
)

// This file holds what the Store keeps of the ACT workload (DESIGN §12): the
// host-side copy of each item, which is also the queue of changes to push, and the
// conflicts met.

// ACTRecord is the host-side copy of one ACT item of a mailbox. Pending records
// are the queue of host changes waiting to reach the server, the way queued
// EmailActivities are the outbox: a later host change of the same record replaces
// the pending one (they coalesce), and a host delete stays as a tombstone (Deleted)
// until the server has it. A Record is a plain value, not safe for concurrent
// mutation.
type ACTRecord struct {
	ID        string
	MailboxID string
	Kind      ACTKind
	// Item is the item (an Appointment, Contact or Task) as JSON; Decode reads it.
	Item []byte
	// ServerID, UID and ChangeKey are the item's ACTHeader fields. The UID is fixed
	// when the record is created, before any push: a push retried after a crash
	// finds the item it created and adopts it instead of creating a second one.
	ServerID  string
	UID       string
	ChangeKey string
	// Version increases with every change of the item's content, whoever made it;
	// the host applies changes idempotently by it.
	Version int64
	// Pending marks a host change not yet on the server.
	Pending bool
	// Deleted marks a host delete not yet on the server (with Pending).
	Deleted bool
	// HostModifiedAt is when the host last changed the item; ServerModifiedAt when
	// the server's version last came in (the item's Modified when the server sets it).
	HostModifiedAt   time.Time
	ServerModifiedAt time.Time
}

// Clone returns a deep copy.
func (r *ACTRecord) Clone() *ACTRecord {
	c := *r
	c.Item = append([]byte(nil), r.Item...)
	return &c
}

// Decode returns the record's item, its header set from the record.
func (r *ACTRecord) Decode() (ACTItem, error) {
	item, err := decodeACTItem(r.Kind, r.Item)
	if err != nil {
		return nil, err
	}
	h := item.Header()
	h.MailboxID, h.ServerID, h.UID, h.ChangeKey = r.MailboxID, r.ServerID, r.UID, r.ChangeKey
	return item, nil
}

// encodeACTItem is the JSON the record keeps of item.
func encodeACTItem(item ACTItem) ([]byte, error) {
	return json.Marshal(item)
}

func decodeACTItem(kind ACTKind, data []byte) (ACTItem, error) {
	var item ACTItem
	switch kind {
	case KindAppointment:
		item = &Appointment{}
	case KindContact:
		item = &Contact{}
	case KindTask:
		item = &Task{}
	default:
		return nil, fmt.Errorf("serversync: unknown ACT kind %q", kind)
	}
	if err := json.Unmarshal(data, item); err != nil {
		return nil, fmt.Errorf("serversync: decode %s: %w", kind, err)
	}
	return item, nil
}

// ACTConflictPolicy says which side wins when an item changed on both sides since
// the last sync (OrgSettings.ACTConflictPolicy).
type ACTConflictPolicy string

// ACT conflict policies.
const (
	// ACTLastModifiedWins keeps the version changed last (the host's change time
	// against the server's LAST-MODIFIED); a server change without a time, and a
	// server delete, count as made when it was seen. The default: it is what a
	// person who edited an appointment in two places expects to find, as Outlook's
	// own sync does.
	ACTLastModifiedWins ACTConflictPolicy = ""
	// ACTHostWins keeps the host's version and writes it over the server's.
	ACTHostWins ACTConflictPolicy = "HostWins"
	// ACTServerWins keeps the server's version and drops the host's change.
	ACTServerWins ACTConflictPolicy = "ServerWins"
)

func (p ACTConflictPolicy) valid() bool {
	return p == ACTLastModifiedWins || p == ACTHostWins || p == ACTServerWins
}

// ACTConflict records one conflict and how it was resolved.
type ACTConflict struct {
	ID        string
	MailboxID string
	RecordID  string
	Kind      ACTKind
	ServerID  string
	Policy    ACTConflictPolicy
	// Winner is "host" or "server".
	Winner string
	// HostDeleted and ServerDeleted say which side's change was a delete.
	HostDeleted, ServerDeleted bool
	// HostItem and ServerItem are both versions as JSON (nil for a delete).
	HostItem, ServerItem []byte
	At                   time.Time
}

// The winners of an ACTConflict.
const (
	ACTWinnerHost   = "host"
	ACTWinnerServer = "server"
)

// ACTRecordFilter selects ACT records; zero fields match everything but the
// mailbox, which is required.
type ACTRecordFilter struct {
	MailboxID string
	Kind      ACTKind
	Pending   *bool
	ServerID  string
	UID       string
	Limit     int // 0 means no limit
}

// ACTWrite is one record write of ACTStore.ApplyACTChanges.
type ACTWrite struct {
	// Record is the record as it is to be stored (its Version is ignored).
	Record *ACTRecord
	// PrevVersion is the Version the write replaces: 0 for a new record. A record
	// whose stored Version differs changed meanwhile (the host saved it), and the
	// whole apply fails with ErrACTRecordChanged.
	PrevVersion int64
	// Remove removes the record instead of storing it.
	Remove bool
}

// ACTApply is a batch of server changes for ACTStore.ApplyACTChanges.
type ACTApply struct {
	MailboxID string
	// Cursor, when not nil, is stored as the mailbox's cursor of folder
	// ACTFolder(kind), in the same transaction.
	Cursor    *Cursor
	Writes    []ACTWrite
	Conflicts []*ACTConflict
}

// ACTFolder is the cursor folder of kind's change tracking: ACT cursors are kept
// with the mail cursors (Store.GetCursor) and go with the mailbox.
func ACTFolder(kind ACTKind) string { return "act:" + string(kind) }

// ErrACTRecordChanged is returned by ACTStore.ApplyACTChanges when a record it
// was to write changed meanwhile; nothing was stored.
var ErrACTRecordChanged = errors.New("serversync: the ACT record changed meanwhile")

// ACTStore is implemented by stores that keep the ACT workload: the host-side
// copy of each item (its queue of changes to push) and the conflicts met. The
// Syncer needs it for ACT (a store without it leaves ACT disabled, with an
// alert); store/storetest checks it when a store has it. Every rule of Store
// applies (copies in and out, timestamps as given, ErrNotFound, streaming lists).
// Deleting a mailbox deletes its records and conflicts.
type ACTStore interface {
	// SaveACTRecord stores a host change: r's Item, Deleted and HostModifiedAt,
	// with Pending set and Version one above the stored one (1 for a new record).
	// ID, MailboxID, Kind and UID are required; a stored record keeps its
	// MailboxID, Kind, UID, ServerID and ChangeKey, and a new one starts with no
	// ServerID or ChangeKey whatever r says (the host cannot set the server's
	// handle). It returns the record as stored.
	SaveACTRecord(ctx context.Context, r *ACTRecord) (*ACTRecord, error)
	// ApplyACTChanges stores a batch of server changes and, when set, the cursor
	// after them, atomically: either all of it happens or none. That is what
	// makes server changes reach the host exactly once. Each write's Version is
	// set to PrevVersion+1; a write whose PrevVersion is not the stored Version (0:
	// the record must not exist) fails the batch with ErrACTRecordChanged. It
	// returns the records as stored (removed ones as they were), in write order.
	ApplyACTChanges(ctx context.Context, a ACTApply) ([]*ACTRecord, error)
	// MarkACTPushed records that version of the record reached the server, which
	// now calls it serverID at changeKey: both are stored in any case (a later
	// push must name the server's current version), Pending is cleared only when
	// the stored Version is still version, and a tombstone (Deleted) at version is
	// removed. It returns the record as stored, or nil when removed.
	MarkACTPushed(ctx context.Context, id string, version int64, serverID, changeKey string) (*ACTRecord, error)
	GetACTRecord(ctx context.Context, id string) (*ACTRecord, error)
	// ListACTRecords streams the matching records ordered by ID.
	ListACTRecords(ctx context.Context, filter ACTRecordFilter) iter.Seq2[*ACTRecord, error]
	// ListACTConflicts streams a mailbox's conflicts in the order they were stored.
	ListACTConflicts(ctx context.Context, mailboxID string) iter.Seq2[*ACTConflict, error]
}

// Clone returns a deep copy.
func (c *ACTConflict) Clone() *ACTConflict {
	d := *c
	d.HostItem = append([]byte(nil), c.HostItem...)
	d.ServerItem = append([]byte(nil), c.ServerItem...)
	if c.HostItem == nil {
		d.HostItem = nil
	}
	if c.ServerItem == nil {
		d.ServerItem = nil
	}
	return &d
}
