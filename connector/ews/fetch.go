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
// {"v":1,"folder":"inbox","state":"H4sIAAAA…","skip":3,"last":"AAMk…"}. State is
// the SyncState to ask SyncFolderItems with (opaque to the connector); Skip is
// how many created items of the round that state starts were handed over
// already (Exchange answers the same state with the same changes, and more when
// the round had room) and Last the id of the last of them: when the round comes
// back otherwise (its created item at Skip is not Last), nothing of it is
// skipped, so nothing is lost; what is offered twice, the message keys catch.
type cursor struct {
	V      int    `json:"v"`
	Folder string `json:"folder"`
	State  string `json:"state,omitempty"`
	Skip   int    `json:"skip,omitempty"`
	Last   string `json:"last,omitempty"`
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
	if c.V != cursorVersion || c.Skip < 0 {
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
// state before its round with its place in the round (see cursor); the round's
// last message carries the state after it. A sync state Exchange no longer
// accepts (ErrorInvalidSyncStateData) starts over without one and reports
// FetchResult.Reset.
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
	state, stored, skip, last := "", false, 0, ""
	if cur != nil && cur.State != "" {
		state, stored, skip, last = cur.State, true, cur.Skip, cur.Last
	} else if cur != nil {
		skip, last = cur.Skip, cur.Last // within the first round
	}
	for {
		page, err := s.m.syncFolderItems(ctx, folderXML, state)
		var re *ResponseError
		if err != nil && stored && errors.As(err, &re) && re.is("ErrorInvalidSyncStateData", "ErrorInvalidSyncStateDataException") {
			s.m.c.log.Info("ews: Exchange no longer knows the sync state; starting again from the beginning", "mailbox", s.m.target.MailboxID)
			state, stored, skip, last, res.Reset = "", false, 0, "", true
			continue
		}
		if err != nil {
			return res, err
		}
		stored = false
		if err := s.deliver(ctx, req, name, state, skip, last, page, fn); err != nil {
			return res, err
		}
		skip, last = 0, ""
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

// wanted is a created item to hand over, index its place among the round's
// created items.
type wanted struct {
	index    int
	id       string
	received time.Time
}

// deliver downloads a round's new items and hands them to fn in order.
func (s *session) deliver(ctx context.Context, req serversync.FetchRequest, name, before string, skip int, last string,
	page *responseMessage, fn func(*serversync.RemoteMessage) error) error {
	var created []*item
	for _, ch := range page.ChangesParsed.List {
		if strings.EqualFold(ch.XMLName.Local, "Create") && ch.Item != nil && ch.Item.ItemID.ID != "" {
			created = append(created, ch.Item)
		} // updates, deletes and read flags change nothing that was tracked
	}
	if skip > 0 && (skip > len(created) || created[skip-1].ItemID.ID != last) {
		s.m.c.log.Debug("ews: a resumed round came back changed; offering all of it again", "mailbox", s.m.target.MailboxID)
		skip = 0
	}
	var todo []wanted
	for i, it := range created[skip:] {
		received := it.received()
		if !req.Since.IsZero() && !received.IsZero() && received.Before(req.Since) {
			continue
		}
		todo = append(todo, wanted{index: skip + i, id: it.ItemID.ID, received: received})
	}
	handed, total := 0, len(todo)
	hand := func(w wanted, mime []byte) error {
		handed++
		c := cursor{Folder: name, State: before, Skip: w.index + 1, Last: w.id}.encode()
		if handed == total && page.SyncState != "" {
			c = cursor{Folder: name, State: page.SyncState}.encode()
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
