package graphtest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

const graphTime = "2006-01-02T15:04:05Z"

// deltaState is what a $skiptoken or $deltatoken stands for.
type deltaState struct {
	mailbox *mailbox
	folder  string // folder id
	// A $skiptoken: the next page of a round.
	round  *round
	offset int
	// A $deltatoken: where in the change log the next round starts.
	pos int64
	sel []string
	// view is the calendarView window of an events delta.
	view [2]time.Time
	// invalid, once set, is the answer to the token (InvalidateSyncState).
	invalid *failure
}

type failure struct {
	status int
	code   string
}

// round is one pass of delta over a folder, from a token (or the beginning) to
// the change log's position when it started: its items are fixed then, and its
// pages served from that list, so requesting a nextLink again gives the same page.
type round struct {
	folder  string
	entries []entry
	end     int64
	sel     []string
}

type entry struct {
	id      string // immutable id
	moves   int    // for the regular id
	removed bool
}

func (c *call) id(immutable string, moves int) string {
	if c.immutable {
		return immutable
	}
	return regularID(immutable, moves)
}

func (c *call) base() string { return c.s.url + "/v1.0/" + c.userPath }

func (c *call) preferenceApplied(w http.ResponseWriter, pageSize int) {
	var applied []string
	if c.immutable {
		applied = append(applied, `IdType="ImmutableId"`)
	}
	if pageSize > 0 {
		applied = append(applied, "odata.maxpagesize="+strconv.Itoa(pageSize))
	}
	if len(applied) > 0 {
		w.Header().Set("Preference-Applied", strings.Join(applied, ", "))
	}
}

// folderJSON renders a folder as Graph does.
func (c *call) folderJSON(f *folder) map[string]any {
	snap := c.mb.snapshotFolder(f)
	children := 0
	for _, g := range c.mb.folders {
		if g.parent == f.id {
			children++
		}
	}
	return map[string]any{
		"id": f.id, "displayName": f.display, "parentFolderId": f.parent, "childFolderCount": children,
		"unreadItemCount": snap.Unread, "totalItemCount": snap.Total, "isHidden": false,
	}
}

// messageJSON renders a message as Graph does, restricted to sel when given
// (id always stays).
func (c *call) messageJSON(m *message, sel []string) map[string]any {
	var from any // null without a From header, as Graph gives it
	if m.from.Address != "" {
		from = map[string]any{"emailAddress": map[string]any{"name": cmpOr(m.from.Name, m.from.Address), "address": m.from.Address}}
	}
	received := m.received.Format(graphTime)
	sent := received
	if !m.sent.IsZero() {
		sent = m.sent.UTC().Format(graphTime)
	}
	full := map[string]any{
		"@odata.etag":          `W/"CQAAABYAAAA` + strconv.FormatInt(m.seq, 10) + `"`,
		"id":                   c.id(m.id, m.moves),
		"createdDateTime":      received,
		"lastModifiedDateTime": received,
		"changeKey":            "CQAAABYAAAA" + strconv.FormatInt(m.seq, 10),
		"receivedDateTime":     received,
		"sentDateTime":         sent,
		"hasAttachments":       false,
		"internetMessageId":    m.msgID,
		"subject":              m.subject,
		"isRead":               m.isRead,
		"isDraft":              false,
		"parentFolderId":       m.folder,
		"from":                 from,
		"sender":               from,
	}
	if len(sel) == 0 {
		return full
	}
	out := map[string]any{"@odata.etag": full["@odata.etag"], "id": full["id"]}
	for _, name := range sel {
		for k, v := range full {
			if strings.EqualFold(k, name) {
				out[k] = v
			}
		}
	}
	return out
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func parseSelect(v string) []string {
	var out []string
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func notFound(w http.ResponseWriter) {
	writeError(w, http.StatusNotFound, "ErrorItemNotFound", "The specified object was not found in the store.")
}

func serveGetFolder(c *call, w http.ResponseWriter, r *http.Request) {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	f := c.mb.folderByRef(r.PathValue("folder"))
	if f == nil {
		notFound(w)
		return
	}
	out := c.folderJSON(f)
	out["@odata.context"] = c.s.url + "/v1.0/$metadata#users('" + c.mb.address + "')/mailFolders/$entity"
	writeJSON(w, http.StatusOK, out)
}

var displayNameFilter = regexp.MustCompile(`(?i)^\s*displayName\s+eq\s+'((?:[^']|'')*)'\s*$`)

// serveListFolders lists the children of msgfolderroot (or of {folder}),
// optionally filtered by displayName, in pages of $top (default 10) by $skip.
func serveListFolders(c *call, w http.ResponseWriter, r *http.Request) {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	parent := c.mb.root()
	if ref := r.PathValue("folder"); ref != "" {
		if parent = c.mb.folderByRef(ref); parent == nil {
			notFound(w)
			return
		}
	}
	q := r.URL.Query()
	var name *string
	if filter := q.Get("$filter"); filter != "" {
		m := displayNameFilter.FindStringSubmatch(filter)
		if m == nil {
			writeError(w, http.StatusBadRequest, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes.")
			return
		}
		v := strings.ReplaceAll(m[1], "''", "'")
		name = &v
	}
	top, skip, ok := topSkip(w, q)
	if !ok {
		return
	}
	var all []map[string]any
	for _, f := range c.mb.folders {
		if f.parent == parent.id && (name == nil || strings.EqualFold(f.display, *name)) {
			all = append(all, c.folderJSON(f))
		}
	}
	page := all[min(skip, len(all)):min(skip+top, len(all))]
	out := map[string]any{"@odata.context": c.s.url + "/v1.0/$metadata#users('" + c.mb.address + "')/mailFolders", "value": nonNil(page)}
	if skip+top < len(all) {
		nq := r.URL.Query()
		nq.Set("$skip", strconv.Itoa(skip+top))
		nq.Set("$top", strconv.Itoa(top))
		out["@odata.nextLink"] = c.base() + r.URL.Path + "?" + nq.Encode()
	}
	writeJSON(w, http.StatusOK, out)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func serveCreateFolder(c *call, w http.ResponseWriter, r *http.Request) {
	body, ok := jsonBody(w, r)
	if !ok {
		return
	}
	var req struct {
		DisplayName string `json:"displayName"`
	}
	if err := json.Unmarshal(body, &req); err != nil || strings.TrimSpace(req.DisplayName) == "" {
		writeError(w, http.StatusBadRequest, "ErrorInvalidRequest", "The request is invalid: displayName is required.")
		return
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	parent := c.mb.root()
	if ref := r.PathValue("folder"); ref != "" {
		if parent = c.mb.folderByRef(ref); parent == nil {
			notFound(w)
			return
		}
	}
	f, err := c.mb.addFolder(parent, req.DisplayName)
	if err != nil {
		writeError(w, http.StatusConflict, "ErrorFolderExists", "A folder with the specified name already exists.")
		return
	}
	out := c.folderJSON(f)
	out["@odata.context"] = c.s.url + "/v1.0/$metadata#users('" + c.mb.address + "')/mailFolders/$entity"
	w.Header().Set("Location", c.base()+"/mailFolders('"+f.id+"')")
	writeJSON(w, http.StatusCreated, out)
}

var receivedFilter = regexp.MustCompile(`(?i)^\s*receivedDateTime\s+(ge|gt)\s+(\S+)\s*$`)

// serveDelta serves one page of messages delta: a new round without token, the
// next page of a round with $skiptoken, the changes since with $deltatoken.
func serveDelta(c *call, w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	f := c.mb.folderByRef(r.PathValue("folder"))
	if f == nil {
		notFound(w)
		return
	}
	var rd *round
	offset := 0
	skip, deltaTok := q.Get("$skiptoken"), q.Get("$deltatoken")
	switch {
	case skip == "" && deltaTok == "latest":
		// Documented: an empty round whose deltaLink starts from now.
		rd = &round{folder: f.id, end: c.mb.seq, sel: parseSelect(q.Get("$select"))}
	case skip != "" || deltaTok != "":
		st, ok := c.s.delta[skip+deltaTok]
		if !ok || st.mailbox != c.mb || st.folder != f.id || (skip != "") != (st.round != nil) {
			writeError(w, http.StatusGone, "SyncStateNotFound", "The sync state is not found or has expired. Please start a new sync without a token.")
			return
		}
		if st.invalid != nil {
			writeError(w, st.invalid.status, st.invalid.code, "The sync state is no longer valid. Please start a new sync without a token.")
			return
		}
		if st.round != nil {
			rd, offset = st.round, st.offset
		} else {
			rd = c.mb.changesSince(f, st.pos, st.sel)
		}
	default:
		var since time.Time
		strict := false
		if filter := q.Get("$filter"); filter != "" {
			m := receivedFilter.FindStringSubmatch(filter)
			var err error
			if m != nil {
				since, err = time.Parse(time.RFC3339, m[2])
			}
			if m == nil || err != nil {
				writeError(w, http.StatusBadRequest, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes; delta supports only receivedDateTime ge|gt <time>.")
				return
			}
			strict = strings.EqualFold(m[1], "gt")
		}
		rd = c.mb.initialRound(f, since, strict, parseSelect(q.Get("$select")))
	}

	size := c.s.opts.DefaultPageSize
	if c.pageSize > 0 {
		size = min(c.pageSize, MaxPageSize)
	}
	c.preferenceApplied(w, min(c.pageSize, MaxPageSize))
	end := min(offset+size, len(rd.entries))
	page := rd.entries[offset:end]
	served := page
	if c.mb.replayNext {
		c.mb.replayNext = false
		served = append(slices.Clone(c.mb.lastPage), page...)
	}
	c.mb.lastPage = slices.Clone(page)

	items := make([]map[string]any, 0, len(served))
	for _, e := range served {
		m := c.mb.messages[e.id]
		if e.removed || m == nil || m.folder != rd.folder {
			items = append(items, map[string]any{
				"@odata.type": "#microsoft.graph.message", "id": c.id(e.id, e.moves),
				"@removed": map[string]any{"reason": "deleted"},
			})
			continue
		}
		item := c.messageJSON(m, rd.sel)
		item["@odata.type"] = "#microsoft.graph.message"
		items = append(items, item)
	}
	out := map[string]any{"@odata.context": c.s.url + "/v1.0/$metadata#Collection(message)", "value": items}
	token := newID("")
	link := c.base() + "/mailfolders('" + f.id + "')/messages/delta?"
	if end < len(rd.entries) {
		c.s.keepSyncState(token, &deltaState{mailbox: c.mb, folder: f.id, round: rd, offset: end})
		out["@odata.nextLink"] = link + "$skiptoken=" + token
	} else {
		c.s.keepSyncState(token, &deltaState{mailbox: c.mb, folder: f.id, pos: rd.end, sel: rd.sel})
		out["@odata.deltaLink"] = link + "$deltatoken=" + token
	}
	writeJSON(w, http.StatusOK, out)
}

// keepSyncState remembers a token, forgetting the oldest beyond
// Options.MaxSyncStates. s.mu is held.
func (s *Server) keepSyncState(token string, st *deltaState) {
	s.delta[token] = st
	s.deltaOrder = append(s.deltaOrder, token)
	for len(s.deltaOrder) > s.opts.MaxSyncStates {
		delete(s.delta, s.deltaOrder[0])
		s.deltaOrder = s.deltaOrder[1:]
	}
}

// initialRound is every message of the folder received since the filter's time.
func (mb *mailbox) initialRound(f *folder, since time.Time, strict bool, sel []string) *round {
	rd := &round{folder: f.id, end: mb.seq, sel: sel}
	for _, m := range mb.inFolder(f) {
		if !since.IsZero() && (m.received.Before(since) || (strict && m.received.Equal(since))) {
			continue
		}
		rd.entries = append(rd.entries, entry{id: m.id, moves: m.moves})
	}
	return rd
}

// changesSince is what changed in the folder after pos: messages added or
// changed (as full items) and messages that left it (@removed).
func (mb *mailbox) changesSince(f *folder, pos int64, sel []string) *round {
	rd := &round{folder: f.id, end: mb.seq, sel: sel}
	type change struct {
		seq int64
		e   entry
	}
	var changes []change
	for _, m := range mb.messages {
		if m.folder == f.id && m.seq > pos {
			changes = append(changes, change{m.seq, entry{id: m.id, moves: m.moves}})
		}
	}
	seen := map[string]bool{}
	for i := len(mb.removals) - 1; i >= 0 && mb.removals[i].seq > pos; i-- {
		rm := mb.removals[i]
		if rm.folder != f.id || seen[rm.id] {
			continue
		}
		seen[rm.id] = true
		if m := mb.messages[rm.id]; m != nil && m.folder == f.id {
			continue // back in the folder: reported as a full item
		}
		changes = append(changes, change{rm.seq, entry{id: rm.id, moves: rm.moves, removed: true}})
	}
	slices.SortFunc(changes, func(a, b change) int { return int(a.seq - b.seq) })
	for _, ch := range changes {
		rd.entries = append(rd.entries, ch.e)
	}
	return rd
}

// serveListMessages lists the messages of a folder in pages of $top (default
// 10) by $skip, newest first, as Graph does.
func serveListMessages(c *call, w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	top, skip, ok := topSkip(w, q)
	if !ok {
		return
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	f := c.mb.folderByRef(r.PathValue("folder"))
	if f == nil {
		notFound(w)
		return
	}
	msgs := c.mb.inFolder(f)
	slices.SortStableFunc(msgs, func(a, b *message) int { return b.received.Compare(a.received) })
	sel := parseSelect(q.Get("$select"))
	items := []map[string]any{}
	for _, m := range msgs[min(skip, len(msgs)):min(skip+top, len(msgs))] {
		items = append(items, c.messageJSON(m, sel))
	}
	out := map[string]any{"@odata.context": c.s.url + "/v1.0/$metadata#users('" + c.mb.address + "')/mailFolders('" + f.id + "')/messages", "value": items}
	if skip+top < len(msgs) {
		q.Set("$skip", strconv.Itoa(skip+top))
		q.Set("$top", strconv.Itoa(top))
		out["@odata.nextLink"] = c.base() + "/mailFolders('" + f.id + "')/messages?" + q.Encode()
	}
	c.preferenceApplied(w, 0)
	writeJSON(w, http.StatusOK, out)
}

// topSkip reads $top (default 10) and $skip.
func topSkip(w http.ResponseWriter, q url.Values) (top, skip int, ok bool) {
	top = 10
	if v := q.Get("$top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxPageSize {
			writeError(w, http.StatusBadRequest, "BadRequest", "Invalid $top value.")
			return 0, 0, false
		}
		top = n
	}
	if v := q.Get("$skip"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "BadRequest", "Invalid $skip value.")
			return 0, 0, false
		}
		skip = n
	}
	return top, skip, true
}

func (c *call) message(w http.ResponseWriter, r *http.Request) *message {
	m := c.mb.lookup(r.PathValue("id"))
	if m == nil {
		notFound(w)
	}
	return m
}

func serveGetMessage(c *call, w http.ResponseWriter, r *http.Request) {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	m := c.message(w, r)
	if m == nil {
		return
	}
	c.preferenceApplied(w, 0)
	writeJSON(w, http.StatusOK, c.messageJSON(m, parseSelect(r.URL.Query().Get("$select"))))
}

func serveMessageValue(c *call, w http.ResponseWriter, r *http.Request) {
	c.s.mu.Lock()
	m := c.message(w, r)
	var mime []byte
	if m != nil {
		mime = m.mime // never changed in place: safe to write unlocked
	}
	c.s.mu.Unlock()
	if m == nil {
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Content-Length", strconv.Itoa(len(mime)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(mime)
}

func servePatchMessage(c *call, w http.ResponseWriter, r *http.Request) {
	body, ok := jsonBody(w, r)
	if !ok {
		return
	}
	var req struct {
		IsRead *bool `json:"isRead"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, "ErrorInvalidRequest", "The request body is not valid JSON.")
		return
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	m := c.message(w, r)
	if m == nil {
		return
	}
	if req.IsRead != nil && *req.IsRead != m.isRead {
		m.isRead = *req.IsRead
		m.seq = c.mb.next()
	}
	c.preferenceApplied(w, 0)
	writeJSON(w, http.StatusOK, c.messageJSON(m, nil))
}

// serveDeleteMessage moves a message to Deleted Items, as Graph does; deleting
// it from Deleted Items removes it.
func serveDeleteMessage(c *call, w http.ResponseWriter, r *http.Request) {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	m := c.message(w, r)
	if m == nil {
		return
	}
	deleted := c.mb.folderByRef("deleteditems")
	if m.folder == deleted.id {
		c.mb.remove(m)
	} else {
		c.mb.move(m, deleted)
	}
	w.WriteHeader(http.StatusNoContent)
}

func serveMove(c *call, w http.ResponseWriter, r *http.Request) {
	body, ok := jsonBody(w, r)
	if !ok {
		return
	}
	var req struct {
		DestinationID string `json:"destinationId"`
	}
	if err := json.Unmarshal(body, &req); err != nil || req.DestinationID == "" {
		writeError(w, http.StatusBadRequest, "ErrorInvalidRequest", "The request is invalid: destinationId is required.")
		return
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	m := c.message(w, r)
	if m == nil {
		return
	}
	dest := c.mb.folderByRef(req.DestinationID)
	if dest == nil {
		writeError(w, http.StatusNotFound, "ErrorItemNotFound", "The destination folder was not found in the store.")
		return
	}
	c.mb.move(m, dest)
	c.preferenceApplied(w, 0)
	writeJSON(w, http.StatusCreated, c.messageJSON(m, nil))
}

// mimeBody reads a base64 MIME request body (Content-Type: text/plain) and
// answers the documented errors for it.
func mimeBody(w http.ResponseWriter, r *http.Request) ([]byte, *mail.Message, bool) {
	body, err := readBody(r, MaxRequestBody)
	if errors.Is(err, errTooLarge) {
		writeError(w, http.StatusRequestEntityTooLarge, "ErrorMessageSizeExceeded", "The message exceeds the maximum supported size.")
		return nil, nil, false
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "ErrorInvalidRequest", "The request body could not be read.")
		return nil, nil, false
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(strings.ToLower(ct), "text/plain") {
		writeError(w, http.StatusBadRequest, "ErrorInvalidRequest", "The fake takes only MIME content: Content-Type text/plain with a base64 body.")
		return nil, nil, false
	}
	mime, err := base64.StdEncoding.DecodeString(stripSpace(string(body)))
	if err != nil || len(mime) == 0 {
		writeError(w, http.StatusBadRequest, "ErrorMimeContentInvalidBase64String", "Invalid base64 string for MIME content.")
		return nil, nil, false
	}
	parsed, err := mail.ReadMessage(bytes.NewReader(mime))
	if err != nil || len(parsed.Header) == 0 {
		writeError(w, http.StatusBadRequest, "ErrorMimeContentInvalid", "The MIME content is invalid.")
		return nil, nil, false
	}
	return mime, parsed, true
}

func serveCreateMessage(c *call, w http.ResponseWriter, r *http.Request) {
	mime, _, ok := mimeBody(w, r)
	if !ok {
		return
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	f := c.mb.folderByRef(r.PathValue("folder"))
	if f == nil {
		notFound(w)
		return
	}
	m, err := c.mb.add(f, mime, c.s.opts.Now())
	if err != nil {
		writeError(w, http.StatusBadRequest, "ErrorMimeContentInvalid", "The MIME content is invalid.")
		return
	}
	c.preferenceApplied(w, 0)
	writeJSON(w, http.StatusCreated, c.messageJSON(m, nil))
}

// stripSpace drops the line breaks and blanks base64 text may be wrapped with.
func stripSpace(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, s)
}
