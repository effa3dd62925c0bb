package ews

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/teambition/rrule-go"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector"
)

var _ serversync.ACTConnector = (*Connector)(nil)

// OpenACT implements serversync.ACTConnector: the mailbox's Calendar, Contacts
// and Tasks folders, addressed as the mail side addresses them (the user's
// own, impersonated or delegated). No request is sent: the first Changes or
// Put finds out whether the mailbox can be reached.
func (c *Connector) OpenACT(ctx context.Context, target *serversync.Target) (serversync.ACTSession, error) {
	m, err := c.mailbox(ctx, target)
	if err != nil {
		return nil, err
	}
	return &actSession{m: m}, nil
}

// actSession is one mailbox's ACT session.
type actSession struct{ m *mailbox }

func (s *actSession) Close() error { return nil }

// cursorPrefix starts every ACT cursor: "ews-act1:<kind>:<SyncState>".
const cursorPrefix = "ews-act1:"

func actCursor(kind serversync.ACTKind, state string) []byte {
	return []byte(cursorPrefix + string(kind) + ":" + state)
}

// syncStateOf returns the SyncState of a cursor made for kind, false for any
// other cursor.
func syncStateOf(kind serversync.ACTKind, cur []byte) (string, bool) {
	rest, ok := strings.CutPrefix(string(cur), cursorPrefix+string(kind)+":")
	return rest, ok && rest != ""
}

// Changes implements serversync.ACTSession with SyncFolderItems on the kind's
// distinguished folder: every page of a round is read, so the cursor is always
// the SyncState after the last change. A cursor this connector did not make,
// or a SyncState Exchange no longer knows (ErrorInvalidSyncStateData), starts
// a fresh round and reports Reset. An item changed several times in one round
// is reported once, as it is now.
func (s *actSession) Changes(ctx context.Context, kind serversync.ACTKind, cur []byte) (serversync.ACTChanges, error) {
	var res serversync.ACTChanges
	state, valid := syncStateOf(kind, cur)
	if len(cur) > 0 && !valid {
		res.Reset = true
	}
	folder := s.m.distinguished(folderOf(kind))
	var order []string
	deleted := map[string]bool{}
	for {
		page, err := s.m.syncFolderItems(ctx, folder, state)
		if err != nil {
			// syncFolderItems returns an unclassified *ResponseError only
			// for a SyncState Exchange no longer knows.
			re, invalid := err.(*ResponseError)
			if invalid && state != "" {
				s.m.c.log.Info("ews: the sync state is no longer valid: reading the folder again", "mailbox", s.m.target.MailboxID, "kind", kind)
				state, res.Reset, order, deleted = "", true, nil, map[string]bool{}
				continue
			}
			if invalid {
				return res, s.m.classify("fetch", aboutFolder, re)
			}
			return res, err
		}
		for _, ch := range page.ChangesParsed.List {
			var id string
			switch ch.XMLName.Local {
			case "Create", "Update":
				if ch.Item != nil {
					id = ch.Item.ItemID.ID
				}
				deleted[id] = false
			case "Delete":
				if ch.ItemID != nil {
					id = ch.ItemID.ID
				}
				deleted[id] = true
			default:
				continue
			}
			if id == "" {
				continue
			}
			if i := indexOf(order, id); i >= 0 {
				order = append(order[:i], order[i+1:]...)
			}
			order = append(order, id)
		}
		state = strings.TrimSpace(page.SyncState)
		if page.includesLast() {
			break
		}
	}
	var live []string
	for _, id := range order {
		if !deleted[id] {
			live = append(live, id)
		}
	}
	items, err := s.getItems(ctx, kind, live)
	if err != nil {
		return res, err
	}
	for _, id := range order {
		it := items[id]
		if deleted[id] || it == nil {
			// An item created and deleted between two rounds, or gone since
			// this round's SyncFolderItems: reported deleted, which a caller
			// that never saw it ignores.
			res.Changes = append(res.Changes, serversync.ACTChange{ServerID: id, Deleted: true})
			continue
		}
		res.Changes = append(res.Changes, serversync.ACTChange{ServerID: id, Item: it})
	}
	res.Cursor = actCursor(kind, state)
	return res, nil
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

// getItems reads items of kind by id, BatchSize per GetItem. An id Exchange no
// longer holds is left out.
func (s *actSession) getItems(ctx context.Context, kind serversync.ACTKind, ids []string) (map[string]serversync.ACTItem, error) {
	raw, err := s.getRaw(ctx, kind, ids)
	if err != nil {
		return nil, err
	}
	out := map[string]serversync.ACTItem{}
	occurrences := map[string]*item{}
	if kind == serversync.KindAppointment {
		var occIDs []string
		for _, it := range raw {
			for _, o := range it.ModifiedOccurrences {
				occIDs = append(occIDs, o.ItemID.ID)
			}
		}
		if occurrences, err = s.getRaw(ctx, kind, occIDs); err != nil {
			return nil, err
		}
	}
	for id, it := range raw {
		switch kind {
		case serversync.KindAppointment:
			out[id] = appointment(it, occurrences)
		case serversync.KindContact:
			out[id] = contact(it)
		default:
			out[id] = task(it)
		}
		out[id].Header().MailboxID = s.m.target.MailboxID
	}
	return out, nil
}

// itemShape is the GetItem shape of a kind: every property, the body as text,
// and serversync's extended properties.
func itemShape(kind serversync.ACTKind) string {
	extra := extendedProperties
	if kind == serversync.KindAppointment {
		for _, f := range []string{"calendar:Recurrence", "calendar:ModifiedOccurrences", "calendar:DeletedOccurrences",
			"calendar:StartTimeZone", "calendar:EndTimeZone", "calendar:OriginalStart"} {
			extra += `<t:FieldURI FieldURI="` + f + `"/>`
		}
	}
	return `<m:ItemShape><t:BaseShape>AllProperties</t:BaseShape><t:BodyType>Text</t:BodyType><t:AdditionalProperties>` + extra +
		`</t:AdditionalProperties></m:ItemShape>`
}

func (s *actSession) getRaw(ctx context.Context, kind serversync.ACTKind, ids []string) (map[string]*item, error) {
	out := map[string]*item{}
	for len(ids) > 0 {
		n := min(len(ids), s.m.c.opts.BatchSize)
		batch := ids[:n]
		ids = ids[n:]
		var b strings.Builder
		b.WriteString(`<m:GetItem>` + itemShape(kind) + `<m:ItemIds>`)
		for _, id := range batch {
			b.WriteString(`<t:ItemId Id="` + esc(id) + `"/>`)
		}
		b.WriteString(`</m:ItemIds></m:GetItem>`)
		msgs, status, err := s.m.call(ctx, "fetch", aboutFolder, b.String(), MaxReplyBytes)
		if err != nil {
			return nil, err
		}
		for i := range msgs {
			if re := msgs[i].err(status); re != nil {
				if re.is("ErrorItemNotFound") {
					continue
				}
				return nil, s.m.classify("fetch", aboutFolder, re)
			}
			for j := range msgs[i].Items.List {
				it := &msgs[i].Items.List[j]
				out[it.ItemID.ID] = it
			}
		}
	}
	return out, nil
}

// conflictCodes are the answers of a write whose ChangeKey is stale or whose
// item is gone.
func isConflict(re *ResponseError) bool {
	return re.is("ErrorIrresolvableConflict", "ErrorChangeKeyRequiredForWriteOperations", "ErrorStaleObject")
}

// Put implements serversync.ACTSession. A create first looks for the UID
// (FindItem restricted on serversync's UID property) and refuses with an
// *serversync.ACTConflictError naming the holder; then CreateItem. An update is
// UpdateItem with the ChangeKey ifMatch and ConflictResolution NeverOverwrite
// (AlwaysOverwrite when ifMatch is ""). Meeting invitations are never sent.
func (s *actSession) Put(ctx context.Context, it serversync.ACTItem, ifMatch string) error {
	kind := it.ACTKind()
	h := it.Header()
	if h.UID == "" {
		h.UID = serversync.NewID()
	}
	fields, err := fieldsOf(it)
	if err != nil {
		return connector.Error("put", serversync.ErrorPermanent, serversync.ScopeItem, serversync.CodeRejected, err)
	}
	elem := itemElement(kind)
	var id itemID
	if h.ServerID == "" {
		holder, err := s.findUID(ctx, kind, h.UID)
		if err != nil {
			return err
		}
		if holder != "" {
			return &serversync.ACTConflictError{Kind: kind, ServerID: holder, IfMatch: ifMatch,
				Err: fmt.Errorf("ews: the %s already holds an item with UID %q", folderOf(kind), h.UID)}
		}
		var b strings.Builder
		b.WriteString(`<m:CreateItem`)
		if kind == serversync.KindAppointment {
			b.WriteString(` SendMeetingInvitations="SendToNone"`)
		}
		b.WriteString(`><m:SavedItemFolderId>` + s.m.distinguished(folderOf(kind)) + `</m:SavedItemFolderId><m:Items><t:` + elem + `>`)
		b.WriteString(createXML(fields))
		b.WriteString(`</t:` + elem + `></m:Items></m:CreateItem>`)
		if id, err = s.write(ctx, "put", b.String(), kind, "", ""); err != nil {
			return err
		}
	} else {
		ref := `<t:ItemId Id="` + esc(h.ServerID) + `"/>`
		if ifMatch != "" {
			ref = `<t:ItemId Id="` + esc(h.ServerID) + `" ChangeKey="` + esc(ifMatch) + `"/>`
		}
		if id, err = s.update(ctx, kind, ref, fields, ifMatch != "", h.ServerID, ifMatch); err != nil {
			return err
		}
	}
	h.ServerID, h.ChangeKey = id.ID, id.ChangeKey
	if a, ok := it.(*serversync.Appointment); ok && a.Recurrence != nil && (len(a.Recurrence.Exceptions) > 0 || len(a.Overrides) > 0) {
		if err := s.writeOccurrences(ctx, a); err != nil {
			return err
		}
	}
	return nil
}

// update sends one UpdateItem: SetItemField for every field with a value,
// DeleteItemField for every one without.
func (s *actSession) update(ctx context.Context, kind serversync.ACTKind, ref string, fields []field, conditional bool, serverID, ifMatch string) (itemID, error) {
	elem := itemElement(kind)
	var b strings.Builder
	resolution := "AlwaysOverwrite"
	if conditional {
		resolution = "NeverOverwrite"
	}
	b.WriteString(`<m:UpdateItem ConflictResolution="` + resolution + `"`)
	if kind == serversync.KindAppointment {
		b.WriteString(` SendMeetingInvitationsOrCancellations="SendToNone"`)
	}
	b.WriteString(`><m:ItemChanges><t:ItemChange>` + ref + `<t:Updates>`)
	for _, f := range fields {
		if f.xml == "" {
			b.WriteString(`<t:DeleteItemField>` + f.uri + `</t:DeleteItemField>`)
			continue
		}
		b.WriteString(`<t:SetItemField>` + f.uri + `<t:` + elem + `>` + f.xml + `</t:` + elem + `></t:SetItemField>`)
	}
	b.WriteString(`</t:Updates></t:ItemChange></m:ItemChanges></m:UpdateItem>`)
	return s.write(ctx, "put", b.String(), kind, serverID, ifMatch)
}

// write sends a CreateItem or UpdateItem and returns the item's new id and
// ChangeKey. A stale ChangeKey (or, for a conditional write, an item gone)
// comes back as *serversync.ACTConflictError.
func (s *actSession) write(ctx context.Context, op, body string, kind serversync.ACTKind, serverID, ifMatch string) (itemID, error) {
	msgs, status, err := s.m.call(ctx, op, aboutFolder, body, MaxReplyBytes)
	if err != nil {
		return itemID{}, err
	}
	if len(msgs) == 0 {
		return itemID{}, connector.Error(op, serversync.ErrorTransient, serversync.ScopeMailbox, serversync.CodeProtocolError,
			errors.New("ews: the reply has no response message"))
	}
	if re := msgs[0].err(status); re != nil {
		if isConflict(re) || (ifMatch != "" && re.is("ErrorItemNotFound")) {
			return itemID{}, &serversync.ACTConflictError{Kind: kind, ServerID: serverID, IfMatch: ifMatch, Err: re}
		}
		if re.is("ErrorItemNotFound") {
			return itemID{}, connector.Error(op, serversync.ErrorPermanent, serversync.ScopeItem, serversync.CodeBadRef,
				fmt.Errorf("the %s item is not in the mailbox: %w", kind, re))
		}
		if re.is("ErrorInvalidPropertySet", "ErrorInvalidPropertyRequest", "ErrorInvalidRecurrence", "ErrorCalendarInvalidRecurrence",
			"ErrorInvalidValueForProperty", "ErrorCalendarEndDateIsEarlierThanStartDate", "ErrorSchemaValidation") {
			return itemID{}, connector.Error(op, serversync.ErrorPermanent, serversync.ScopeItem, serversync.CodeRejected,
				fmt.Errorf("Exchange refused the %s: %w", kind, re))
		}
		return itemID{}, s.m.classify(op, aboutFolder, re)
	}
	if len(msgs[0].Items.List) == 0 || msgs[0].Items.List[0].ItemID.ID == "" {
		return itemID{}, connector.Error(op, serversync.ErrorTransient, serversync.ScopeMailbox, serversync.CodeProtocolError,
			errors.New("ews: the reply names no item"))
	}
	return msgs[0].Items.List[0].ItemID, nil
}

// findUID returns the id of the item of kind holding uid, "" when none does.
func (s *actSession) findUID(ctx context.Context, kind serversync.ACTKind, uid string) (string, error) {
	body := `<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>` +
		`<m:IndexedPageItemView MaxEntriesReturned="1" Offset="0" BasePoint="Beginning"/>` +
		`<m:Restriction><t:IsEqualTo>` + namedURI(propUID) + `<t:FieldURIOrConstant><t:Constant Value="` + esc(uid) + `"/></t:FieldURIOrConstant></t:IsEqualTo></m:Restriction>` +
		`<m:ParentFolderIds>` + s.m.distinguished(folderOf(kind)) + `</m:ParentFolderIds></m:FindItem>`
	msgs, status, err := s.m.call(ctx, "put", aboutFolder, body, MaxReplyBytes)
	if err != nil {
		return "", err
	}
	if err := s.m.first("put", aboutFolder, msgs, status); err != nil {
		return "", err
	}
	for _, it := range msgs[0].RootFolder.Items.List {
		if it.ItemID.ID != "" {
			return it.ItemID.ID, nil
		}
	}
	return "", nil
}

// changeKey returns an item's current ChangeKey, "" when it is gone.
func (s *actSession) changeKey(ctx context.Context, op, id string) (string, error) {
	body := `<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:ItemIds><t:ItemId Id="` + esc(id) + `"/></m:ItemIds></m:GetItem>`
	msgs, status, err := s.m.call(ctx, op, aboutFolder, body, MaxReplyBytes)
	if err != nil {
		return "", err
	}
	if len(msgs) > 0 {
		if re := msgs[0].err(status); re != nil {
			if re.is("ErrorItemNotFound") {
				return "", nil
			}
			return "", s.m.classify(op, aboutFolder, re)
		}
		if len(msgs[0].Items.List) > 0 {
			return msgs[0].Items.List[0].ItemID.ChangeKey, nil
		}
	}
	return "", connector.Error(op, serversync.ErrorTransient, serversync.ScopeMailbox, serversync.CodeProtocolError,
		errors.New("ews: GetItem named no item"))
}

// Delete implements serversync.ACTSession: DeleteItem, moving the item to
// Deleted Items without sending cancellations. EWS's DeleteItem takes no
// ChangeKey, so a conditional delete reads the ChangeKey first: a change in
// the moment between the two requests is the one race left.
func (s *actSession) Delete(ctx context.Context, kind serversync.ACTKind, serverID, ifMatch string) error {
	if ifMatch != "" {
		current, err := s.changeKey(ctx, "delete", serverID)
		if err != nil {
			return err
		}
		if current == "" {
			return nil
		}
		if current != ifMatch {
			return &serversync.ACTConflictError{Kind: kind, ServerID: serverID, IfMatch: ifMatch,
				Err: fmt.Errorf("ews: the item's ChangeKey is %s", current)}
		}
	}
	attrs := ""
	switch kind {
	case serversync.KindAppointment:
		attrs = ` SendMeetingCancellations="SendToNone"`
	case serversync.KindTask:
		attrs = ` AffectedTaskOccurrences="AllOccurrences"`
	}
	body := `<m:DeleteItem DeleteType="MoveToDeletedItems"` + attrs + `><m:ItemIds><t:ItemId Id="` + esc(serverID) + `"/></m:ItemIds></m:DeleteItem>`
	msgs, status, err := s.m.call(ctx, "delete", aboutFolder, body, MaxReplyBytes)
	if err != nil {
		return err
	}
	if len(msgs) > 0 {
		if re := msgs[0].err(status); re != nil && !re.is("ErrorItemNotFound") {
			return s.m.classify("delete", aboutFolder, re)
		}
	}
	return nil
}

// writeOccurrences removes the series' exceptions and writes its overrides,
// each addressed as an OccurrenceItemId by its InstanceIndex (its place in the
// series, from 1), then reads the master's ChangeKey, which they changed.
func (s *actSession) writeOccurrences(ctx context.Context, a *serversync.Appointment) error {
	index, err := instanceIndexer(a)
	if err != nil {
		return connector.Error("put", serversync.ErrorPermanent, serversync.ScopeItem, serversync.CodeRejected, err)
	}
	occ := func(i int) string {
		return `<t:OccurrenceItemId RecurringMasterId="` + esc(a.ServerID) + `" InstanceIndex="` + strconv.Itoa(i) + `"/>`
	}
	for _, ex := range a.Recurrence.Exceptions {
		i := index(ex)
		if i == 0 {
			s.m.c.log.Warn("ews: an exception is not an occurrence of its series: left out", "mailbox", s.m.target.MailboxID, "uid", a.UID)
			continue
		}
		body := `<m:DeleteItem DeleteType="MoveToDeletedItems" SendMeetingCancellations="SendToNone"><m:ItemIds>` + occ(i) + `</m:ItemIds></m:DeleteItem>`
		msgs, status, err := s.m.call(ctx, "put", aboutFolder, body, MaxReplyBytes)
		if err != nil {
			return err
		}
		if len(msgs) > 0 {
			if re := msgs[0].err(status); re != nil && !re.is("ErrorCalendarOccurrenceIsDeletedFromRecurrence", "ErrorItemNotFound") {
				return s.m.classify("put", aboutFolder, re)
			}
		}
	}
	for i := range a.Overrides {
		o := &a.Overrides[i]
		n := index(o.RecurrenceID)
		if n == 0 {
			s.m.c.log.Warn("ews: an override is not an occurrence of its series: left out", "mailbox", s.m.target.MailboxID, "uid", a.UID)
			continue
		}
		zone := zoneOf(o.Start)
		fields := []field{
			plainField("item:Subject", "Subject", o.Subject),
			bodyField(o.Body),
			plainField("calendar:Start", "Start", formatUTC(o.Start.Time)),
			plainField("calendar:End", "End", formatUTC(o.End.Time)),
			plainField("calendar:Location", "Location", o.Location),
			{uri: `<t:FieldURI FieldURI="calendar:StartTimeZone"/>`, xml: `<t:StartTimeZone Id="` + esc(zone) + `"/>`},
		}
		if _, err := s.update(ctx, serversync.KindAppointment, occ(n), fields, false, a.ServerID, ""); err != nil {
			return err
		}
	}
	ck, err := s.changeKey(ctx, "put", a.ServerID)
	if err != nil {
		return err
	}
	a.ChangeKey = ck
	return nil
}

// instanceIndexer returns a function giving an occurrence's InstanceIndex from
// its original start, 0 when the series has no occurrence then.
func instanceIndexer(a *serversync.Appointment) (func(time.Time) int, error) {
	opt, err := rrule.StrToROptionInLocation(strings.TrimPrefix(a.Recurrence.Rule, "RRULE:"), a.Start.Time.Location())
	if err != nil {
		return nil, fmt.Errorf("ews: the RRULE %q: %w", a.Recurrence.Rule, err)
	}
	opt.Dtstart = a.Start.Time
	r, err := rrule.NewRRule(*opt)
	if err != nil {
		return nil, fmt.Errorf("ews: the RRULE %q: %w", a.Recurrence.Rule, err)
	}
	return func(t time.Time) int {
		next := r.Iterator()
		for i := 1; i <= 5000; i++ {
			occ, ok := next()
			if !ok || occ.After(t) {
				return 0
			}
			if occ.Equal(t) || (a.AllDay && occ.Format("20060102") == t.Format("20060102")) {
				return i
			}
		}
		return 0
	}, nil
}
