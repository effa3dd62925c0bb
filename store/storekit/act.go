package storekit

import (
	"fmt"
	"time"

	"github.com/serversync/serversync"
)

// ACTHostSave is the record SaveACTRecord stores for the host change r over
// stored (nil: none yet), or the *serversync.ValidationError to refuse it with:
// a missing ID, MailboxID, Kind or UID, or a change of a stored record's
// MailboxID, Kind or UID.
func ACTHostSave(stored, r *serversync.ACTRecord) (*serversync.ACTRecord, error) {
	switch {
	case r == nil || r.ID == "":
		return nil, Required("ACTRecord", "ID")
	case r.MailboxID == "":
		return nil, Required("ACTRecord", "MailboxID")
	case r.Kind == "":
		return nil, Required("ACTRecord", "Kind")
	case r.UID == "":
		return nil, Required("ACTRecord", "UID")
	}
	if stored == nil {
		out := r.Clone()
		out.ServerID, out.ChangeKey, out.ServerModifiedAt = "", "", time.Time{}
		out.Version, out.Pending = 1, true
		return out, nil
	}
	switch {
	case stored.MailboxID != r.MailboxID:
		return nil, Unchangeable("ACTRecord", "MailboxID")
	case stored.Kind != r.Kind:
		return nil, Unchangeable("ACTRecord", "Kind")
	case stored.UID != r.UID:
		return nil, Unchangeable("ACTRecord", "UID")
	}
	out := stored.Clone()
	out.Item = append([]byte(nil), r.Item...)
	out.Deleted, out.HostModifiedAt = r.Deleted, r.HostModifiedAt
	out.Version, out.Pending = stored.Version+1, true
	return out, nil
}

// ACTApplyWrite checks one write of ApplyACTChanges against the stored record
// (nil: none) and returns the record to store (or, with Remove, the one removed),
// or an error wrapping serversync.ErrACTRecordChanged.
func ACTApplyWrite(stored *serversync.ACTRecord, w serversync.ACTWrite, mailboxID string) (*serversync.ACTRecord, error) {
	if w.Record == nil || w.Record.ID == "" {
		return nil, Required("ACTRecord", "ID")
	}
	if w.Record.MailboxID != mailboxID {
		return nil, Unchangeable("ACTRecord", "MailboxID")
	}
	var have int64
	if stored != nil {
		have = stored.Version
	}
	if have != w.PrevVersion {
		return nil, fmt.Errorf("%w: record %s is at version %d, not %d", serversync.ErrACTRecordChanged, w.Record.ID, have, w.PrevVersion)
	}
	if w.Remove {
		if stored == nil {
			return nil, nil
		}
		return stored.Clone(), nil
	}
	out := w.Record.Clone()
	out.Version = w.PrevVersion + 1
	return out, nil
}

// ACTPushed is the record MarkACTPushed leaves of stored: serverID and changeKey
// set, Pending cleared when version is still the stored one, and remove true for
// a tombstone at that version.
func ACTPushed(stored *serversync.ACTRecord, version int64, serverID, changeKey string) (out *serversync.ACTRecord, remove bool) {
	out = stored.Clone()
	out.ServerID, out.ChangeKey = serverID, changeKey
	if stored.Version == version {
		if stored.Deleted {
			return nil, true
		}
		out.Pending = false
	}
	return out, false
}

// MatchACTRecord reports whether r matches filter (but its Limit).
func MatchACTRecord(r *serversync.ACTRecord, f serversync.ACTRecordFilter) bool {
	return r.MailboxID == f.MailboxID &&
		(f.Kind == "" || r.Kind == f.Kind) &&
		(f.Pending == nil || r.Pending == *f.Pending) &&
		(f.ServerID == "" || r.ServerID == f.ServerID) &&
		(f.UID == "" || r.UID == f.UID)
}
