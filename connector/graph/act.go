package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector"
	"github.com/serversync/serversync/internal/tzwin"
)

// Defaults of the ACT options.
const (
	// CalendarPastDefault is how far back the calendarView of appointments reaches.
	CalendarPastDefault = 365 * 24 * time.Hour
	// CalendarFutureDefault is how far ahead it reaches.
	CalendarFutureDefault = 2 * 365 * 24 * time.Hour
)

// The properties this connector keeps on the items it writes. Single-value
// extended properties (https://learn.microsoft.com/graph/api/resources/singlevaluelegacyextendedproperty)
// live on events, contacts and calendars and can be filtered on
// (https://learn.microsoft.com/graph/api/singlevaluelegacyextendedproperty-get,
// "Get resource instances filtered by a property"); To Do tasks have none, so
// tasks carry an open extension instead
// (https://learn.microsoft.com/graph/api/opentypeextension-post-opentypeextension,
// todoTask is among the resources that support them).
const (
	propertySet = "{8a1c9e3e-5b0f-4bd8-9d2a-3f6e1c7b2a10}"
	// uidProperty holds an event's or a contact's ACTHeader.UID: the key that makes
	// a retried create find the item it made.
	uidProperty = "String " + propertySet + " Name serversync.uid"
	// layoutProperty holds the labels and order of a contact's emails, phones and
	// addresses, which Graph's contact has no place for.
	layoutProperty = "String " + propertySet + " Name serversync.contactLayout"
	// ownerProperty on the default calendar names the deployment that owns the
	// mailbox's ACT sync (serversync.ACTOwnerMarker).
	ownerProperty = "String " + propertySet + " Name serversync.actOwner"
	// taskExtension is the open extension of a To Do task: its UID, and what To Do
	// has no field for (percent complete, the exact priority, the due date's zone).
	taskExtension = "com.serversync.act"
)

// preferTextBody asks for bodies as plain text, the model's form
// (https://learn.microsoft.com/graph/api/event-get, Prefer: outlook.body-content-type).
const preferTextBody = `outlook.body-content-type="text"`

// preferUTC asks for event times in UTC, whatever the mailbox's own zone
// (https://learn.microsoft.com/graph/api/event-get, Prefer: outlook.timezone):
// the zone to show them in is read from originalStartTimeZone.
const preferUTC = `outlook.timezone="UTC"`

// errUIDExists is behind the conflict of a create whose UID the server holds.
var errUIDExists = errors.New("graph: an item with this UID is already on the server")

var (
	_ serversync.ACTConnector   = (*Connector)(nil)
	_ serversync.ACTSession     = (*actSession)(nil)
	_ serversync.ACTOwnerMarker = (*actSession)(nil)
)

// OpenACT implements serversync.ACTConnector: appointments are the events of
// the mailbox's default calendar (as calendarView delta shows them, in the
// window Options.CalendarPast to Options.CalendarFuture around now), contacts
// its default contacts folder, tasks its default Microsoft To Do list. No
// request is sent: the first call finds out whether the mailbox can be reached.
// The session shares the mailbox's request budget with its mail sessions.
func (c *Connector) OpenACT(ctx context.Context, target *serversync.Target) (serversync.ACTSession, error) {
	m, err := c.mailbox(ctx, target)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC().Truncate(time.Hour)
	return &actSession{m: m, from: now.Add(-c.opts.CalendarPast), to: now.Add(c.opts.CalendarFuture)}, nil
}

// actSession is an ACT session: the mailbox, the calendar window, the To Do
// list's id and the tasks' UIDs once looked up.
type actSession struct {
	m        *mailbox
	from, to time.Time
	todoList string
	taskUIDs map[string]string // UID → task id, nil until needed
}

func (s *actSession) Close() error { return nil }

// actCursor is the position Changes hands out: the delta link of the kind's
// collection, as JSON {"v":1,"kind":"task","link":"…"}.
type actCursor struct {
	V    int    `json:"v"`
	Kind string `json:"kind"`
	Link string `json:"link"`
	// Series are the ids of the series masters in the calendar window: see
	// Changes.
	Series []string `json:"series,omitempty"`
	// From and To are the calendar window of the delta link.
	From time.Time `json:"from,omitzero"`
	To   time.Time `json:"to,omitzero"`
}

// windowRoll is how far the end of the session's calendar window may pass the
// end of a cursor's before Changes starts a round over the wider window.
const windowRoll = 30 * 24 * time.Hour

// Changes implements serversync.ACTSession through the kind's delta: every
// page of a round is read, so the cursor is always a delta link. A cursor this
// connector did not make, or one Graph no longer knows (410
// SyncStateNotFound, SyncStateInvalid, resyncRequired), starts a fresh round
// and reports Reset.
func (s *actSession) Changes(ctx context.Context, kind serversync.ACTKind, cur []byte) (serversync.ACTChanges, error) {
	var res serversync.ACTChanges
	var c actCursor
	valid := len(cur) > 0 && json.Unmarshal(cur, &c) == nil && c.V == cursorVersion && c.Kind == string(kind) && s.m.sameOrigin(c.Link)
	if len(cur) > 0 && !valid {
		s.m.c.log.Info("graph: an ACT cursor this connector cannot use; listing every item again", "mailbox", s.m.target.MailboxID, "kind", kind)
		res.Reset = true
	}
	if kind == serversync.KindAppointment && valid && !c.From.IsZero() && !c.To.IsZero() {
		// A window only grows: a new round lists at least what the old one did,
		// so a reset never looks like the deletion of what left the window.
		s.from, s.to = minTime(s.from, c.From), maxTime(s.to, c.To)
		if c.To.Before(s.to.Add(-windowRoll)) {
			s.m.c.log.Info("graph: the calendar window moved on; listing every appointment again", "mailbox", s.m.target.MailboxID)
			valid, res.Reset = false, true
		}
	}
	initial, err := s.initialLink(ctx, kind)
	if err != nil {
		return res, err
	}
	link, stored := initial, false
	var known []string                   // series masters of the round before
	window := [2]time.Time{s.from, s.to} // of the round that ends in the delta link
	if valid {
		link, stored, known = c.Link, true, c.Series
		if !c.From.IsZero() {
			window = [2]time.Time{c.From, c.To}
		}
	}
	changed := map[string]bool{} // ids to read: events' series masters, not their occurrences
	var order []string
	removed := map[string]bool{}
	var removedOrder []string
	deltaLink := ""
	for {
		var page struct {
			Value []struct {
				ID             string          `json:"id"`
				Type           string          `json:"type"`
				SeriesMasterID string          `json:"seriesMasterId"`
				Removed        json.RawMessage `json:"@removed"`
			} `json:"value"`
			Next  string `json:"@odata.nextLink"`
			Delta string `json:"@odata.deltaLink"`
		}
		err := s.do(ctx, call{op: "act-changes", method: http.MethodGet, url: link, about: aboutACT,
			prefer: []string{"odata.maxpagesize=" + strconv.Itoa(s.m.c.opts.PageSize)}}, &page)
		var ge *graphError
		if err != nil && stored && errors.As(err, &ge) && (isSyncStateLost(ge) || ge.Status == http.StatusNotFound) {
			// A 404 is a collection that is gone (a To Do list replaced): the
			// default one is looked up again.
			s.m.c.log.Info("graph: the ACT delta token expired; listing every item again", "mailbox", s.m.target.MailboxID, "kind", kind, "code", ge.Code)
			if ge.Status == http.StatusNotFound && kind == serversync.KindTask {
				s.todoList, s.taskUIDs = "", nil
				if initial, err = s.initialLink(ctx, kind); err != nil {
					return res, err
				}
			}
			link, stored, res.Reset, known = initial, false, true, nil
			window = [2]time.Time{s.from, s.to}
			clear(changed)
			clear(removed)
			order, removedOrder = nil, nil
			continue
		}
		if err != nil {
			return res, err
		}
		stored = false
		for _, it := range page.Value {
			if it.ID == "" {
				continue
			}
			if len(it.Removed) > 0 && string(it.Removed) != "null" {
				if !removed[it.ID] {
					removed[it.ID] = true
					removedOrder = append(removedOrder, it.ID)
				}
				continue
			}
			id := it.ID
			if it.SeriesMasterID != "" && (it.Type == "occurrence" || it.Type == "exception") {
				id = it.SeriesMasterID
			}
			if !changed[id] {
				changed[id] = true
				order = append(order, id)
			}
		}
		next := cmpOr(page.Next, page.Delta)
		if next == "" {
			return res, connector.Error("act-changes", serversync.ErrorTransient, serversync.ScopeMailbox, serversync.CodeProtocolError,
				errors.New("graph: a delta page with neither @odata.nextLink nor @odata.deltaLink"))
		}
		if !s.m.sameOrigin(next) {
			return res, connector.Error("act-changes", serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodeProtocolError,
				fmt.Errorf("graph: the server's delta link points at another server (%s); the token is not sent there", hostOf(next)))
		}
		if page.Next != "" {
			link = page.Next
			continue
		}
		deltaLink = page.Delta
		break
	}
	if kind == serversync.KindAppointment {
		if order, err = s.stillThere(ctx, removed, removedOrder, changed, order); err != nil {
			return res, err
		}
	}
	items, err := s.getAll(ctx, kind, order)
	if err != nil {
		return res, err
	}
	remove := func(id string) {
		if !removed[id] {
			removed[id] = true
			removedOrder = append(removedOrder, id)
		}
	}
	series := map[string]bool{}
	for _, id := range known {
		series[id] = true
	}
	for i, id := range order {
		item := items[i]
		if item == nil { // deleted since the delta listed it
			remove(id)
			delete(series, id)
			continue
		}
		delete(removed, id)
		if a, ok := item.(*serversync.Appointment); ok && a.Recurrence != nil {
			series[id] = true
		} else {
			delete(series, id)
		}
		res.Changes = append(res.Changes, serversync.ACTChange{ServerID: id, Item: item})
	}
	// calendarView delta never lists a series master, so a deleted series comes
	// only as its occurrences' removals: when anything was removed, the series
	// of the round before that did not change are looked up.
	if kind == serversync.KindAppointment && len(removedOrder) > 0 {
		var check []string
		for _, id := range slices.Sorted(maps.Keys(series)) {
			if !changed[id] {
				check = append(check, id)
			}
		}
		gone := make([]bool, len(check))
		err := s.parallel(ctx, len(check), func(ctx context.Context, i int) error {
			ok, err := s.exists(ctx, kind, check[i])
			gone[i] = !ok
			return err
		})
		if err != nil {
			return res, err
		}
		for i, id := range check {
			if gone[i] {
				remove(id)
				delete(series, id)
			}
		}
	}
	for _, id := range removedOrder {
		if removed[id] {
			res.Changes = append(res.Changes, serversync.ACTChange{ServerID: id, Deleted: true})
		}
	}
	next := actCursor{V: cursorVersion, Kind: string(kind), Link: deltaLink}
	if kind == serversync.KindAppointment {
		next.Series = slices.Sorted(maps.Keys(series))
		next.From, next.To = window[0], window[1]
		// calendarView lists only the window: on a reset, what is held outside
		// it is not deleted for being left out.
		res.Window = serversync.ACTWindow{From: window[0], Until: window[1]}
	}
	res.Cursor, _ = json.Marshal(next)
	return res, nil
}

// stillThere looks up the events a calendarView delta reported @removed:
// Graph reports an event that left the window (moved out of it, or written
// outside it) like a deleted one. An event still on the server is taken off
// removed and read as changed, so that the caller neither deletes it nor misses
// its new time; an occurrence or exception still there stands for its series.
// It returns order with the ids to read added.
func (s *actSession) stillThere(ctx context.Context, removed map[string]bool, removedOrder []string, changed map[string]bool, order []string) ([]string, error) {
	var check []string
	for _, id := range removedOrder {
		if removed[id] && !changed[id] {
			check = append(check, id)
		}
	}
	type ref struct {
		ID             string `json:"id"`
		Type           string `json:"type"`
		SeriesMasterID string `json:"seriesMasterId"`
	}
	found := make([]ref, len(check))
	err := s.parallel(ctx, len(check), func(ctx context.Context, i int) error {
		err := s.do(ctx, call{op: "act-changes", method: http.MethodGet, about: aboutACTItem,
			url: s.m.url(s.m.user+"/events/"+url.PathEscape(check[i]), url.Values{"$select": {"id,type,seriesMasterId"}})}, &found[i])
		if isNotFound(err) {
			found[i] = ref{}
			return nil
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	for i, id := range check {
		if found[i].ID == "" {
			continue // deleted
		}
		read := id
		if found[i].SeriesMasterID != "" && (found[i].Type == "occurrence" || found[i].Type == "exception") {
			read = found[i].SeriesMasterID
		} else {
			delete(removed, id)
		}
		if !changed[read] {
			changed[read] = true
			order = append(order, read)
		}
	}
	return order, nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// exists reports whether the item is still on the server.
func (s *actSession) exists(ctx context.Context, kind serversync.ACTKind, id string) (bool, error) {
	path, err := s.itemPath(ctx, kind, id)
	if err != nil {
		return false, err
	}
	err = s.do(ctx, call{op: "act-changes", method: http.MethodGet, url: s.m.url(path, url.Values{"$select": {"id"}}), about: aboutACTItem}, nil)
	if isNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// getAll reads the items with ids, nil for those gone, several at once.
func (s *actSession) getAll(ctx context.Context, kind serversync.ACTKind, ids []string) ([]serversync.ACTItem, error) {
	if kind == serversync.KindTask {
		if _, err := s.taskList(ctx); err != nil { // looked up once, before the reads share the session
			return nil, err
		}
	}
	out := make([]serversync.ACTItem, len(ids))
	err := s.parallel(ctx, len(ids), func(ctx context.Context, i int) error {
		item, err := s.get(ctx, kind, ids[i])
		out[i] = item
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// parallel runs fn for 0..n-1, up to the mailbox's budget at once (the budget,
// shared with every session of the mailbox, is what bounds them: Graph counts 4
// concurrent requests per mailbox); the first error cancels the others.
func (s *actSession) parallel(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	var g errgroup.Group
	g.SetLimit(s.m.c.opts.MaxInFlight)
	gctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for i := range n {
		g.Go(func() error {
			if err := fn(gctx, i); err != nil {
				cancel()
				return err
			}
			return nil
		})
	}
	return g.Wait()
}

// initialLink is the first delta request of a kind
// (https://learn.microsoft.com/graph/api/event-delta, contact-delta, todotask-delta).
func (s *actSession) initialLink(ctx context.Context, kind serversync.ACTKind) (string, error) {
	switch kind {
	case serversync.KindAppointment:
		return s.m.url(s.m.user+"/calendarView/delta", s.window()), nil
	case serversync.KindContact:
		return s.m.url(s.m.user+"/contacts/delta", nil), nil
	case serversync.KindTask:
		list, err := s.taskList(ctx)
		if err != nil {
			return "", err
		}
		return s.m.url(s.taskPath(list)+"/delta", nil), nil
	}
	return "", unknownKind(kind)
}

func unknownKind(kind serversync.ACTKind) error {
	return connector.Error("act", serversync.ErrorPermanent, serversync.ScopeItem, serversync.CodeBadRef, fmt.Errorf("graph: no ACT kind %q", kind))
}

func (s *actSession) window() url.Values {
	return url.Values{"startDateTime": {s.from.Format(time.RFC3339)}, "endDateTime": {s.to.Format(time.RFC3339)}}
}

func (s *actSession) taskPath(list string) string {
	return s.m.user + "/todo/lists/" + url.PathEscape(list) + "/tasks"
}

// itemPath is the path of an item below /v1.0.
func (s *actSession) itemPath(ctx context.Context, kind serversync.ACTKind, id string) (string, error) {
	switch kind {
	case serversync.KindAppointment:
		return s.m.user + "/events/" + url.PathEscape(id), nil
	case serversync.KindContact:
		return s.m.user + "/contacts/" + url.PathEscape(id), nil
	case serversync.KindTask:
		list, err := s.taskList(ctx)
		if err != nil {
			return "", err
		}
		return s.taskPath(list) + "/" + url.PathEscape(id), nil
	}
	return "", unknownKind(kind)
}

// taskList finds the default To Do list (wellknownListName defaultList,
// https://learn.microsoft.com/graph/api/todo-list-lists).
func (s *actSession) taskList(ctx context.Context) (string, error) {
	if s.todoList != "" {
		return s.todoList, nil
	}
	link := s.m.url(s.m.user+"/todo/lists", nil)
	for link != "" {
		var page struct {
			Value []struct {
				ID        string `json:"id"`
				WellKnown string `json:"wellknownListName"`
			} `json:"value"`
			Next string `json:"@odata.nextLink"`
		}
		if err := s.do(ctx, call{op: "act-tasks", method: http.MethodGet, url: link, about: aboutACT}, &page); err != nil {
			return "", err
		}
		for _, l := range page.Value {
			if strings.EqualFold(l.WellKnown, "defaultList") {
				s.todoList = l.ID
				return l.ID, nil
			}
		}
		link = ""
		if page.Next != "" && s.m.sameOrigin(page.Next) {
			link = page.Next
		}
	}
	return "", connector.Error("act-tasks", serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeFolderNotFound,
		errors.New("graph: the mailbox has no default Microsoft To Do list"))
}

// expandFor is the $expand that reads what this connector keeps on an item.
func expandFor(kind serversync.ACTKind, property string) string {
	if kind == serversync.KindTask {
		return "extensions"
	}
	return "singleValueExtendedProperties($filter=id eq '" + property + "')"
}

// get reads one item as the model holds it; nil when it is gone.
func (s *actSession) get(ctx context.Context, kind serversync.ACTKind, id string) (serversync.ACTItem, error) {
	path, err := s.itemPath(ctx, kind, id)
	if err != nil {
		return nil, err
	}
	var raw json.RawMessage
	// One $expand filters on one property id: a contact's layout is read apart.
	q := url.Values{"$expand": {expandFor(kind, uidProperty)}}
	err = s.do(ctx, call{op: "act-get", method: http.MethodGet, url: s.m.url(path, q), about: aboutACTItem, prefer: []string{preferTextBody, preferUTC}}, &raw)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	switch kind {
	case serversync.KindAppointment:
		var ev graphEvent
		if err := json.Unmarshal(raw, &ev); err != nil {
			return nil, badReply("act-get", err)
		}
		return s.readSeries(ctx, &ev)
	case serversync.KindContact:
		var gc graphContact
		if err := json.Unmarshal(raw, &gc); err != nil {
			return nil, badReply("act-get", err)
		}
		var layout struct {
			Ext []extendedProperty `json:"singleValueExtendedProperties"`
		}
		err := s.do(ctx, call{op: "act-get", method: http.MethodGet, about: aboutACTItem,
			url: s.m.url(path, url.Values{"$select": {"id"}, "$expand": {expandFor(kind, layoutProperty)}})}, &layout)
		if isNotFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return readContact(&gc, propertyValue(layout.Ext, layoutProperty)), nil
	default:
		var gt graphTask
		if err := json.Unmarshal(raw, &gt); err != nil {
			return nil, badReply("act-get", err)
		}
		return readTask(&gt), nil
	}
}

func badReply(op string, err error) error {
	return connector.Error(op, serversync.ErrorTransient, serversync.ScopeMailbox, serversync.CodeProtocolError,
		fmt.Errorf("graph: the server's reply is not the JSON expected: %w", err))
}

func isNotFound(err error) bool {
	var ge *graphError
	return errors.As(err, &ge) && ge.Status == http.StatusNotFound
}

func isConflict(err error) bool {
	var ge *graphError
	return errors.As(err, &ge) && ge.Status == http.StatusPreconditionFailed
}

// readSeries reads an event; for a series master also its instances in the
// window: exceptions become Overrides, occurrences the rule makes that Graph
// no longer lists become Recurrence.Exceptions (Graph v1.0 has no list of
// deleted occurrences: outside the window none can be told).
func (s *actSession) readSeries(ctx context.Context, ev *graphEvent) (*serversync.Appointment, error) {
	a := readEvent(ev)
	if a.Recurrence == nil || ev.Type != "seriesMaster" {
		return a, nil
	}
	insts, err := s.instances(ctx, ev.ID)
	if err != nil {
		return nil, err
	}
	loc := a.Start.Time.Location()
	seen := map[int64]bool{}
	for _, in := range insts {
		orig, err := time.Parse(time.RFC3339, in.OriginalStart)
		if err != nil {
			continue
		}
		seen[orig.Unix()] = true
		if in.Type == "exception" {
			o := readEvent(&in)
			o.ACTHeader, o.Recurrence, o.Overrides = serversync.ACTHeader{}, nil, nil
			o.RecurrenceID = orig.In(loc)
			a.Overrides = append(a.Overrides, *o)
		}
	}
	for _, t := range expand(a.Recurrence.Rule, a.Start.Time, s.from, s.to) {
		if !seen[t.Unix()] {
			a.Recurrence.Exceptions = append(a.Recurrence.Exceptions, t)
		}
	}
	slices.SortFunc(a.Overrides, func(x, y serversync.Appointment) int { return x.RecurrenceID.Compare(y.RecurrenceID) })
	return a, nil
}

// instances lists a series' occurrences and exceptions in the window
// (https://learn.microsoft.com/graph/api/event-list-instances).
func (s *actSession) instances(ctx context.Context, master string) ([]graphEvent, error) {
	var out []graphEvent
	link := s.m.url(s.m.user+"/events/"+url.PathEscape(master)+"/instances", s.window())
	for link != "" {
		var page struct {
			Value []graphEvent `json:"value"`
			Next  string       `json:"@odata.nextLink"`
		}
		if err := s.do(ctx, call{op: "act-get", method: http.MethodGet, url: link, about: aboutACTItem, prefer: []string{preferTextBody, preferUTC}}, &page); err != nil {
			return nil, err
		}
		out = append(out, page.Value...)
		link = ""
		if page.Next != "" && s.m.sameOrigin(page.Next) {
			link = page.Next
		}
	}
	return out, nil
}

// Put implements serversync.ACTSession.
func (s *actSession) Put(ctx context.Context, item serversync.ACTItem, ifMatch string) error {
	h := item.Header()
	kind := item.ACTKind()
	if h.UID == "" {
		h.UID = serversync.NewID()
	}
	var body any
	var err error
	switch v := item.(type) {
	case *serversync.Appointment:
		body, err = writeEvent(v, true)
	case *serversync.Contact:
		body = writeContact(v)
	case *serversync.Task:
		body, err = writeTask(v, h.ServerID == "")
	default:
		return unknownKind(kind)
	}
	if err != nil {
		return connector.Error("act-put", serversync.ErrorPermanent, serversync.ScopeItem, serversync.CodeRejected, err)
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return connector.Error("act-put", serversync.ErrorPermanent, serversync.ScopeItem, serversync.CodeRejected, err)
	}
	var reply struct {
		ID   string `json:"id"`
		ETag string `json:"@odata.etag"`
	}
	created := h.ServerID == ""
	if created {
		existing, err := s.findUID(ctx, kind, h.UID)
		if err != nil {
			return err
		}
		if existing != "" {
			return &serversync.ACTConflictError{Kind: kind, ServerID: existing, IfMatch: ifMatch, Err: errUIDExists}
		}
		collection := s.m.user + "/events"
		switch kind {
		case serversync.KindContact:
			collection = s.m.user + "/contacts"
		case serversync.KindTask:
			list, err := s.taskList(ctx)
			if err != nil {
				return err
			}
			collection = s.taskPath(list)
		}
		if err := s.do(ctx, call{op: "act-put", method: http.MethodPost, url: s.m.url(collection, nil), body: raw,
			contentType: "application/json", about: aboutACT}, &reply); err != nil {
			return err
		}
		h.ServerID = reply.ID
		if kind == serversync.KindTask && s.taskUIDs != nil {
			s.taskUIDs[h.UID] = reply.ID
		}
	} else {
		path, err := s.itemPath(ctx, kind, h.ServerID)
		if err != nil {
			return err
		}
		err = s.do(ctx, s.conditional(call{op: "act-put", method: http.MethodPatch, url: s.m.url(path, nil), body: raw,
			contentType: "application/json", about: aboutACTItem}, ifMatch), &reply)
		if isConflict(err) {
			return &serversync.ACTConflictError{Kind: kind, ServerID: h.ServerID, IfMatch: ifMatch, Err: err}
		}
		if err != nil {
			return err
		}
		if kind == serversync.KindTask {
			if err := s.putTaskExtension(ctx, path, item.(*serversync.Task)); err != nil {
				return err
			}
		}
	}
	h.ChangeKey = reply.ETag
	if a, ok := item.(*serversync.Appointment); ok && a.Recurrence != nil {
		if err := s.putExceptions(ctx, a); err != nil {
			return err
		}
	}
	if (kind == serversync.KindTask && !created) || (kind == serversync.KindAppointment && item.(*serversync.Appointment).Recurrence != nil) {
		// The extension or the occurrences changed the item's version again.
		return s.refreshVersion(ctx, kind, h)
	}
	return nil
}

// do sends an ACT call. Every one asks for immutable ids, so an event or a
// contact keeps its ServerID when a user moves it
// (https://learn.microsoft.com/graph/outlook-immutable-id; To Do ignores it).
func (s *actSession) do(ctx context.Context, c call, out any) error {
	c.messages = true
	return s.m.doJSON(ctx, c, out)
}

// conditional adds If-Match to a call when the caller has a version.
func (s *actSession) conditional(c call, ifMatch string) call {
	if ifMatch != "" {
		c.ifMatch = ifMatch
	}
	return c
}

// refreshVersion reads the item's current ETag into h.
func (s *actSession) refreshVersion(ctx context.Context, kind serversync.ACTKind, h *serversync.ACTHeader) error {
	path, err := s.itemPath(ctx, kind, h.ServerID)
	if err != nil {
		return err
	}
	var reply struct {
		ETag string `json:"@odata.etag"`
	}
	if err := s.do(ctx, call{op: "act-put", method: http.MethodGet, url: s.m.url(path, url.Values{"$select": {"id"}}), about: aboutACTItem}, &reply); err != nil {
		return err
	}
	h.ChangeKey = reply.ETag
	return nil
}

// putExceptions makes the series' occurrences what the appointment says:
// occurrences in Recurrence.Exceptions are deleted, those in Overrides changed
// (which makes them exceptions). An occurrence Graph no longer lists (deleted
// before, or outside the window) is left as it is: Graph cannot restore a
// deleted occurrence short of setting the recurrence again.
func (s *actSession) putExceptions(ctx context.Context, a *serversync.Appointment) error {
	if len(a.Recurrence.Exceptions) == 0 && len(a.Overrides) == 0 {
		return nil
	}
	insts, err := s.instances(ctx, a.ServerID)
	if err != nil {
		return err
	}
	byStart := map[int64]string{}
	for _, in := range insts {
		if orig, err := time.Parse(time.RFC3339, in.OriginalStart); err == nil {
			byStart[orig.Unix()] = in.ID
		}
	}
	for _, ex := range a.Recurrence.Exceptions {
		id, ok := byStart[ex.Unix()]
		if !ok {
			continue
		}
		err := s.do(ctx, call{op: "act-put", method: http.MethodDelete, url: s.m.url(s.m.user+"/events/"+url.PathEscape(id), nil), about: aboutACTItem}, nil)
		if err != nil && !isNotFound(err) {
			return err
		}
	}
	for i := range a.Overrides {
		o := &a.Overrides[i]
		id, ok := byStart[o.RecurrenceID.Unix()]
		if !ok {
			s.m.c.log.Debug("graph: an override of an occurrence Graph does not list is left out", "mailbox", s.m.target.MailboxID)
			continue
		}
		body, err := writeEvent(o, false)
		if err != nil {
			return connector.Error("act-put", serversync.ErrorPermanent, serversync.ScopeItem, serversync.CodeRejected, err)
		}
		raw, _ := json.Marshal(body)
		if err := s.do(ctx, call{op: "act-put", method: http.MethodPatch, url: s.m.url(s.m.user+"/events/"+url.PathEscape(id), nil),
			body: raw, contentType: "application/json", about: aboutACTItem}, nil); err != nil {
			return err
		}
	}
	return nil
}

// putTaskExtension writes the task's open extension, creating it when the
// task has none (one made in To Do itself).
func (s *actSession) putTaskExtension(ctx context.Context, path string, t *serversync.Task) error {
	ext := taskExtensionOf(t)
	raw, _ := json.Marshal(ext)
	err := s.do(ctx, call{op: "act-put", method: http.MethodPatch, url: s.m.url(path+"/extensions/"+taskExtension, nil),
		body: raw, contentType: "application/json", about: aboutACTItem}, nil)
	if isNotFound(err) {
		err = s.do(ctx, call{op: "act-put", method: http.MethodPost, url: s.m.url(path+"/extensions", nil),
			body: raw, contentType: "application/json", about: aboutACTItem}, nil)
	}
	return err
}

// findUID returns the id of the item of kind whose UID is uid, "" when none.
// Events and contacts are found by the extended property
// ($filter=singleValueExtendedProperties/Any(…)); tasks by listing the To Do
// list once per session with their extensions (To Do filters on no extension).
func (s *actSession) findUID(ctx context.Context, kind serversync.ACTKind, uid string) (string, error) {
	if kind == serversync.KindTask {
		if s.taskUIDs == nil {
			if err := s.loadTaskUIDs(ctx); err != nil {
				return "", err
			}
		}
		return s.taskUIDs[uid], nil
	}
	collection := s.m.user + "/events"
	if kind == serversync.KindContact {
		collection = s.m.user + "/contacts"
	}
	q := url.Values{
		"$filter": {"singleValueExtendedProperties/Any(ep: ep/id eq '" + uidProperty + "' and ep/value eq '" + strings.ReplaceAll(uid, "'", "''") + "')"},
		"$select": {"id"},
	}
	var page struct {
		Value []struct {
			ID string `json:"id"`
		} `json:"value"`
	}
	if err := s.do(ctx, call{op: "act-put", method: http.MethodGet, url: s.m.url(collection, q), about: aboutACT}, &page); err != nil {
		return "", err
	}
	if len(page.Value) > 0 {
		return page.Value[0].ID, nil
	}
	return "", nil
}

func (s *actSession) loadTaskUIDs(ctx context.Context) error {
	list, err := s.taskList(ctx)
	if err != nil {
		return err
	}
	uids := map[string]string{}
	link := s.m.url(s.taskPath(list), url.Values{"$expand": {"extensions"}})
	for link != "" {
		var page struct {
			Value []graphTask `json:"value"`
			Next  string      `json:"@odata.nextLink"`
		}
		if err := s.do(ctx, call{op: "act-put", method: http.MethodGet, url: link, about: aboutACT}, &page); err != nil {
			return err
		}
		for _, t := range page.Value {
			if ext := t.extension(); ext != nil && ext.UID != "" {
				uids[ext.UID] = t.ID
			}
		}
		link = ""
		if page.Next != "" && s.m.sameOrigin(page.Next) {
			link = page.Next
		}
	}
	s.taskUIDs = uids
	return nil
}

// Delete implements serversync.ACTSession.
func (s *actSession) Delete(ctx context.Context, kind serversync.ACTKind, serverID, ifMatch string) error {
	path, err := s.itemPath(ctx, kind, serverID)
	if err != nil {
		return err
	}
	err = s.do(ctx, s.conditional(call{op: "act-delete", method: http.MethodDelete, url: s.m.url(path, nil), about: aboutACTItem}, ifMatch), nil)
	switch {
	case isNotFound(err):
		return nil
	case isConflict(err):
		return &serversync.ACTConflictError{Kind: kind, ServerID: serverID, IfMatch: ifMatch, Err: err}
	case err != nil:
		return err
	}
	for uid, id := range s.taskUIDs {
		if id == serverID {
			delete(s.taskUIDs, uid)
		}
	}
	return nil
}

// ACTOwner implements serversync.ACTOwnerMarker: the marker is a single-value
// extended property of the mailbox's default calendar
// (https://learn.microsoft.com/graph/api/singlevaluelegacyextendedproperty-post-singlevalueextendedproperties,
// calendar is among the resources that take one), readable with
// $expand=singleValueExtendedProperties($filter=id eq '…').
func (s *actSession) ACTOwner(ctx context.Context) (string, error) {
	var cal struct {
		Ext []extendedProperty `json:"singleValueExtendedProperties"`
	}
	err := s.do(ctx, call{op: "act-owner", method: http.MethodGet, about: aboutACT,
		url: s.m.url(s.m.user+"/calendar", url.Values{"$select": {"id"}, "$expand": {expandFor(serversync.KindAppointment, ownerProperty)}})}, &cal)
	if err != nil {
		return "", err
	}
	return propertyValue(cal.Ext, ownerProperty), nil
}

// SetACTOwner implements serversync.ACTOwnerMarker.
func (s *actSession) SetACTOwner(ctx context.Context, owner string) error {
	raw, _ := json.Marshal(map[string]any{"singleValueExtendedProperties": []extendedProperty{{ID: ownerProperty, Value: owner}}})
	return s.do(ctx, call{op: "act-owner", method: http.MethodPatch, url: s.m.url(s.m.user+"/calendar", nil),
		body: raw, contentType: "application/json", about: aboutACT}, nil)
}

// readTime reads a dateTimeTimeZone as the instant it names, shown in zone
// (a Windows or IANA name: originalStartTimeZone, or what the extension kept)
// or else in the value's own zone. An all-day value is its date at midnight
// UTC, as the model holds dates.
func readTime(v *dateTimeTimeZone, zone string, allDay bool) serversync.DateTime {
	if v == nil || v.DateTime == "" {
		return serversync.DateTime{}
	}
	loc, _, ok := tzwin.Location(v.TimeZone)
	if !ok {
		loc = time.UTC
	}
	t, err := time.ParseInLocation("2006-01-02T15:04:05.9999999", v.DateTime, loc)
	if err != nil {
		return serversync.DateTime{}
	}
	showLoc, iana, ok := tzwin.Location(zone)
	if zone == "" || !ok {
		showLoc, iana, _ = tzwin.Location(v.TimeZone)
		if showLoc == nil {
			showLoc, iana = time.UTC, ""
		}
	}
	t = t.In(showLoc)
	if allDay {
		return serversync.DateTime{Time: time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)}
	}
	return serversync.DateTime{Time: t, TZID: iana}
}

// writeTime writes a DateTime under the Windows name of its zone (the names
// Exchange keeps; an IANA name the table lacks is sent as it is, which Graph
// takes too), UTC when it has none.
func writeTime(d serversync.DateTime, allDay bool) (*dateTimeTimeZone, error) {
	if d.IsZero() {
		return nil, nil
	}
	if allDay {
		return &dateTimeTimeZone{DateTime: d.Time.Format("2006-01-02") + "T00:00:00", TimeZone: "UTC"}, nil
	}
	if d.TZID == "" {
		return &dateTimeTimeZone{DateTime: d.Time.UTC().Format("2006-01-02T15:04:05"), TimeZone: "UTC"}, nil
	}
	loc, _, ok := tzwin.Location(d.TZID)
	if !ok {
		return nil, fmt.Errorf("graph: unknown time zone %q", d.TZID)
	}
	zone := d.TZID
	if win, ok := tzwin.Windows(d.TZID); ok {
		zone = win
	}
	return &dateTimeTimeZone{DateTime: d.Time.In(loc).Format("2006-01-02T15:04:05"), TimeZone: zone}, nil
}
