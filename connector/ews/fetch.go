package ews

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector"
)

// cursorVersion is the version of the cursor format; another is refused.
const cursorVersion = 1

// cursor is the position Fetch hands out, as compact JSON:
// {"v":1,"folder":"inbox","state":"H4sIAAAA…"}. State is the SyncState of
// SyncFolderItems, opaque to the connector.
type cursor struct {
	V      int    `json:"v"`
	Folder string `json:"folder"`
	State  string `json:"state,omitempty"`
}

func (c cursor) encode() []byte {
	c.V = cursorVersion
	b, err := json.Marshal(c)
	if err != nil {
		panic(err) // unreachable: strings and numbers
	}
	return b
}

func decodeCursor(b []byte) (*cursor, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var c cursor
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, connector.Error("fetch", serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeBadCursor,
			fmt.Errorf("ews: the cursor is not one of this connector's: %w", err))
	}
	if c.V != cursorVersion {
		return nil, connector.Error("fetch", serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeBadCursor,
			fmt.Errorf("ews: cursor version %d is not supported (want %d)", c.V, cursorVersion))
	}
	return &c, nil
}

// session is an incoming session: EWS has no connection to hold, so it is the
// mailbox and a cache of folder ids.
type session struct {
	m       *mailbox
	folders map[string]string // lower-case display name → FolderId
}

var (
	_ serversync.IncomingSession = (*session)(nil)
	_ serversync.FolderSession   = (*session)(nil)
)

func (s *session) Close() error { return nil }

// folderName is the name RemoteMessage.Folder carries.
func folderName(name string) string {
	if name == "" {
		return "inbox"
	}
	return name
}

// Fetch implements serversync.IncomingSession with SyncFolderItems: the sync
// state is the cursor, and each round of up to MaxChanges changes is followed
// by GetItem calls for the new items' MIME content. A message's cursor is the
// state before its round, except the round's last message, which carries the
// state after it: a crash in the middle of a round asks for that round again,
// and the Store's message keys skip what was tracked already. A sync state
// Exchange no longer accepts (ErrorInvalidSyncStateData) starts over without
// one and reports FetchResult.Reset.
func (s *session) Fetch(ctx context.Context, req serversync.FetchRequest, fn func(*serversync.RemoteMessage) error) (serversync.FetchResult, error) {
	var res serversync.FetchResult
	cur, err := decodeCursor(req.Cursor)
	if err != nil {
		return res, err
	}
	name := folderName(req.Folder)
	if cur != nil && !strings.EqualFold(cur.Folder, name) {
		return res, connector.Error("fetch", serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeBadCursor,
			fmt.Errorf("ews: the cursor is for folder %q, not %q", cur.Folder, name))
	}
	folderXML, err := s.folderXML(ctx, req.Folder, false)
	if err != nil {
		return res, err
	}
	state, stored := "", false
	if cur != nil && cur.State != "" {
		state, stored = cur.State, true
	}
	for {
		page, err := s.m.syncFolderItems(ctx, folderXML, state)
		var re *ResponseError
		if err != nil && stored && errors.As(err, &re) && re.is("ErrorInvalidSyncStateData", "ErrorInvalidSyncStateDataException") {
			s.m.c.log.Info("ews: Exchange no longer knows the sync state; starting again from the beginning", "mailbox", s.m.target.MailboxID)
			state, stored, res.Reset = "", false, true
			continue
		}
		if err != nil {
			return res, err
		}
		stored = false
		if err := s.deliver(ctx, req, name, state, page, fn); err != nil {
			return res, err
		}
		if page.SyncState == "" {
			return res, connector.Error("fetch", serversync.ErrorTransient, serversync.ScopeMailbox, serversync.CodeProtocolError,
				errors.New("ews: SyncFolderItems returned no SyncState"))
		}
		state = page.SyncState
		res.Cursor = cursor{Folder: name, State: state}.encode()
		if page.includesLast() {
			return res, nil
		}
	}
}

// syncFolderItems asks for the changes after state ("" for the first round).
// A failure is returned as the *ResponseError when EWS said it, so Fetch can
// tell an invalid sync state; other failures come classified.
func (m *mailbox) syncFolderItems(ctx context.Context, folderXML, state string) (*responseMessage, error) {
	var b strings.Builder
	b.WriteString(`<m:SyncFolderItems><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties>` +
		`<t:FieldURI FieldURI="item:DateTimeReceived"/><t:FieldURI FieldURI="item:Size"/></t:AdditionalProperties></m:ItemShape>` +
		`<m:SyncFolderId>` + folderXML + `</m:SyncFolderId>`)
	if state != "" {
		b.WriteString(`<m:SyncState>` + esc(state) + `</m:SyncState>`)
	}
	b.WriteString(`<m:MaxChangesReturned>` + strconv.Itoa(m.c.opts.MaxChanges) + `</m:MaxChangesReturned>` +
		`<m:SyncScope>NormalItems</m:SyncScope></m:SyncFolderItems>`)
	msgs, status, err := m.call(ctx, "fetch", aboutFolder, b.String(), MaxReplyBytes)
	if err != nil {
		return nil, err
	}
	if len(msgs) == 0 {
		return nil, connector.Error("fetch", serversync.ErrorTransient, serversync.ScopeMailbox, serversync.CodeProtocolError,
			errors.New("ews: SyncFolderItems returned no response message"))
	}
	if re := msgs[0].err(status); re != nil {
		if re.is("ErrorInvalidSyncStateData", "ErrorInvalidSyncStateDataException") {
			return nil, re
		}
		return nil, m.classify("fetch", aboutFolder, re)
	}
	return &msgs[0], nil
}

// wanted is a created item to hand over.
type wanted struct {
	id       string
	received time.Time
}

// deliver downloads a round's new items and hands them to fn in order.
func (s *session) deliver(ctx context.Context, req serversync.FetchRequest, name, before string, page *responseMessage,
	fn func(*serversync.RemoteMessage) error) error {
	var todo []wanted
	for _, ch := range page.ChangesParsed.List {
		if !strings.EqualFold(ch.XMLName.Local, "Create") || ch.Item == nil || ch.Item.ItemID.ID == "" {
			continue // updates, deletes and read flags change nothing that was tracked
		}
		received := ch.Item.received()
		if !req.Since.IsZero() && !received.IsZero() && received.Before(req.Since) {
			continue
		}
		todo = append(todo, wanted{id: ch.Item.ItemID.ID, received: received})
	}
	after := cursor{Folder: name, State: page.SyncState}.encode()
	beforeCursor := cursor{Folder: name, State: before}.encode()
	if before == "" {
		beforeCursor = nil // the start: nothing to resume from but the beginning
	}
	handed, total := 0, len(todo)
	hand := func(w wanted, mime []byte) error {
		handed++
		c := beforeCursor
		if handed == total && page.SyncState != "" {
			c = after
		}
		return fn(&serversync.RemoteMessage{Folder: name, Ref: w.id, Size: int64(len(mime)), ReceivedAt: w.received,
			Body: bytes.NewReader(mime), Cursor: c})
	}
	for len(todo) > 0 {
		n := min(s.m.c.opts.BatchSize, len(todo))
		chunk := todo[:n]
		todo = todo[n:]
		bodies, err := s.m.getItems(ctx, chunk, s.m.c.opts.MaxBatchBytes)
		var ce *serversync.ConnectorError
		if n > 1 && errors.As(err, &ce) && ce.Code == serversync.CodeReplyTooLong {
			s.m.c.log.Debug("ews: GetItem reply too large; downloading one by one", "mailbox", s.m.target.MailboxID)
			bodies = map[string][]byte{}
			for _, w := range chunk {
				one, err := s.m.getItems(ctx, []wanted{w}, s.m.c.opts.MaxMessageBytes/3*4+MaxReplyBytes)
				if err != nil {
					return err
				}
				for k, v := range one {
					bodies[k] = v
				}
			}
		} else if err != nil {
			return err
		}
		for _, w := range chunk {
			mime, ok := bodies[w.id]
			if !ok {
				handed++ // deleted since the sync listed it
				continue
			}
			if err := hand(w, mime); err != nil {
				return err
			}
		}
	}
	return nil
}

// getItems downloads the MIME content of items with one GetItem and returns
// it by id; an item Exchange no longer has (ErrorItemNotFound) is missing.
func (m *mailbox) getItems(ctx context.Context, items []wanted, limit int64) (map[string][]byte, error) {
	var b strings.Builder
	b.WriteString(`<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:IncludeMimeContent>true</t:IncludeMimeContent>` +
		`</m:ItemShape><m:ItemIds>`)
	for _, w := range items {
		b.WriteString(`<t:ItemId Id="` + esc(w.id) + `"/>`)
	}
	b.WriteString(`</m:ItemIds></m:GetItem>`)
	msgs, status, err := m.call(ctx, "fetch", aboutMessage, b.String(), limit)
	if err != nil {
		return nil, err
	}
	if len(msgs) != len(items) {
		return nil, connector.Error("fetch", serversync.ErrorTransient, serversync.ScopeMailbox, serversync.CodeProtocolError,
			fmt.Errorf("ews: GetItem answered %d response messages for %d items", len(msgs), len(items)))
	}
	out := make(map[string][]byte, len(items))
	for i := range msgs {
		if re := msgs[i].err(status); re != nil {
			if re.is("ErrorItemNotFound") {
				continue
			}
			return nil, m.classify("fetch", aboutMessage, re)
		}
		if len(msgs[i].Items.List) == 0 {
			return nil, connector.Error("fetch", serversync.ErrorTransient, serversync.ScopeMailbox, serversync.CodeProtocolError,
				fmt.Errorf("ews: GetItem returned no item for %s", items[i].id))
		}
		it := msgs[i].Items.List[0]
		mime, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(it.MimeContent), ""))
		if err != nil {
			return nil, connector.Error("fetch", serversync.ErrorTransient, serversync.ScopeMailbox, serversync.CodeProtocolError,
				fmt.Errorf("ews: the MimeContent of %s is not base64: %w", items[i].id, err))
		}
		if int64(len(mime)) > m.c.opts.MaxMessageBytes {
			return nil, connector.Error("fetch", serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeReplyTooLong,
				fmt.Errorf("ews: a %d-byte message is over the %d-byte limit", len(mime), m.c.opts.MaxMessageBytes))
		}
		// Response messages come in the order of the ItemIds asked for.
		out[items[i].id] = mime
	}
	return out, nil
}
