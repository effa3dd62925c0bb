package graphtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/teambition/rrule-go"

	"github.com/serversync/serversync/internal/tzwin"
)

// The ACT collections of a mailbox, as the change log names them.
const (
	collEvents   = "act:events"
	collContacts = "act:contacts"
	collTasks    = "act:tasks:" // + the To Do list's id
)

// actItem is an event, a contact or a To Do task: Graph's JSON properties as the
// client last set them (a PATCH replaces the top-level properties it names, as in
// Graph), beside what the server manages.
type actItem struct {
	id       string
	coll     string
	seq      int64 // the change that last touched it
	version  int   // the changeKey's counter
	created  time.Time
	modified time.Time
	props    map[string]any
	ext      map[string]string         // single-value extended properties: lower-case id → value
	extIDs   map[string]string         // lower-case id → id as first written
	open     map[string]map[string]any // open extensions by lower-case name
	icaluid  string

	// A series master's changes to its occurrences: deleted ones, and the
	// properties of the overridden ones, by occurrenceKey.
	cancelled  map[string]bool
	exceptions map[string]map[string]any
}

// todoList is a Microsoft To Do task list.
type todoList struct {
	id, name, wellKnown string
}

// actRemoval is an ACT item (or an occurrence) that left its collection.
type actRemoval struct {
	seq  int64
	coll string
	ids  []string
}

func (it *actItem) etag() string { return `W/"` + it.changeKey() + `"` }

func (it *actItem) changeKey() string {
	return "DwAAABYAAA" + strconv.Itoa(it.version) + strings.TrimPrefix(it.id, "AAMkAG")[:6]
}

// touch records a change of the item in the mailbox's log.
func (mb *mailbox) touch(it *actItem, now time.Time) {
	it.seq = mb.next()
	it.version++
	it.modified = now.UTC()
}

func (mb *mailbox) actInit() {
	if mb.act != nil {
		return
	}
	mb.act = map[string]*actItem{}
	mb.todoLists = []*todoList{
		{id: newID("AAMkAGList"), name: "Tasks", wellKnown: "defaultList"},
		{id: newID("AAMkAGList"), name: "Flagged Emails", wellKnown: "flaggedEmails"},
	}
	mb.calendarID = newID("AAMkAGCal")
}

// graphDateTime reads a dateTimeTimeZone: the wall time in its zone (a Windows or
// an IANA name, as Graph takes both).
func graphDateTime(v any) (time.Time, string, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		return time.Time{}, "", false
	}
	dt, _ := m["dateTime"].(string)
	zone, _ := m["timeZone"].(string)
	loc, _, ok := tzwin.Location(zone)
	if !ok {
		return time.Time{}, "", false
	}
	t, err := time.ParseInLocation("2006-01-02T15:04:05.9999999", dt, loc)
	if err != nil {
		return time.Time{}, "", false
	}
	return t, zone, true
}

// windowsName is the zone name Exchange keeps for what a client sent: the
// Windows name of an IANA zone it knows, the name as sent otherwise.
func windowsName(zone string) string {
	if zone == "" {
		return "UTC"
	}
	if win, ok := tzwin.Windows(zone); ok {
		return win
	}
	return zone
}

// renderTime writes an instant as a dateTimeTimeZone in zone (Prefer:
// outlook.timezone), UTC by default, as Graph answers.
func renderTime(t time.Time, zone string) map[string]any {
	loc, _, ok := tzwin.Location(zone)
	if zone == "" || !ok {
		loc, zone = time.UTC, "UTC"
	}
	return map[string]any{"dateTime": t.In(loc).Format("2006-01-02T15:04:05.0000000"), "timeZone": zone}
}

// occurrenceKey names an occurrence of a series by its original start.
func occurrenceKey(t time.Time) string { return t.UTC().Format("20060102T150405Z") }

// occurrenceID is the id of an occurrence or exception of a series.
func occurrenceID(master string, original time.Time) string {
	return master + "_OCC" + occurrenceKey(original)
}

func splitOccurrenceID(id string) (master string, original time.Time, ok bool) {
	master, key, ok := strings.Cut(id, "_OCC")
	if !ok {
		return "", time.Time{}, false
	}
	t, err := time.Parse("20060102T150405Z", key)
	return master, t, err == nil
}

var weekdays = map[string]rrule.Weekday{"monday": rrule.MO, "tuesday": rrule.TU, "wednesday": rrule.WE, "thursday": rrule.TH,
	"friday": rrule.FR, "saturday": rrule.SA, "sunday": rrule.SU}
var indexes = map[string]int{"first": 1, "second": 2, "third": 3, "fourth": 4, "last": -1}

// occurrences expands a series master's patternedRecurrence into the original
// starts of its occurrences in [from, to), cancelled ones included.
func occurrences(it *actItem, from, to time.Time) []time.Time {
	start, _, ok := graphDateTime(it.props["start"])
	rec, _ := it.props["recurrence"].(map[string]any)
	if !ok || rec == nil {
		return nil
	}
	pattern, _ := rec["pattern"].(map[string]any)
	rng, _ := rec["range"].(map[string]any)
	num := func(m map[string]any, k string) int { f, _ := m[k].(float64); return int(f) }
	str := func(m map[string]any, k string) string { s, _ := m[k].(string); return s }
	opt := rrule.ROption{Dtstart: start, Interval: max(num(pattern, "interval"), 1)}
	var days []rrule.Weekday
	if list, ok := pattern["daysOfWeek"].([]any); ok {
		for _, d := range list {
			if wd, ok := weekdays[strings.ToLower(d.(string))]; ok {
				days = append(days, wd)
			}
		}
	}
	if wk, ok := weekdays[strings.ToLower(str(pattern, "firstDayOfWeek"))]; ok {
		opt.Wkst = wk
	}
	switch str(pattern, "type") {
	case "daily":
		opt.Freq = rrule.DAILY
	case "weekly":
		opt.Freq, opt.Byweekday = rrule.WEEKLY, days
	case "absoluteMonthly":
		opt.Freq, opt.Bymonthday = rrule.MONTHLY, []int{num(pattern, "dayOfMonth")}
	case "relativeMonthly":
		opt.Freq, opt.Byweekday, opt.Bysetpos = rrule.MONTHLY, days, []int{indexes[cmpOr(str(pattern, "index"), "first")]}
	case "absoluteYearly":
		opt.Freq, opt.Bymonth, opt.Bymonthday = rrule.YEARLY, []int{num(pattern, "month")}, []int{num(pattern, "dayOfMonth")}
	case "relativeYearly":
		opt.Freq, opt.Bymonth, opt.Byweekday = rrule.YEARLY, []int{num(pattern, "month")}, days
		opt.Bysetpos = []int{indexes[cmpOr(str(pattern, "index"), "first")]}
	default:
		return nil
	}
	switch str(rng, "type") {
	case "numbered":
		opt.Count = num(rng, "numberOfOccurrences")
	case "endDate":
		if end, err := time.ParseInLocation("2006-01-02", str(rng, "endDate"), start.Location()); err == nil {
			opt.Until = end.AddDate(0, 0, 1).Add(-time.Second)
		}
	}
	r, err := rrule.NewRRule(opt)
	if err != nil {
		return nil
	}
	out := r.Between(from, to, true)
	if len(out) > 2000 {
		out = out[:2000]
	}
	return out
}

// isSeries reports whether an event is a series master.
func isSeries(it *actItem) bool {
	rec, _ := it.props["recurrence"].(map[string]any)
	return rec != nil
}

// eventSpan is an event's start and end.
func eventSpan(props map[string]any) (time.Time, time.Time) {
	start, _, _ := graphDateTime(props["start"])
	end, _, _ := graphDateTime(props["end"])
	if end.Before(start) {
		end = start
	}
	return start, end
}

// instance is an occurrence or exception of a series as delta and instances
// list it.
type instance struct {
	id       string
	original time.Time
	props    map[string]any // the master's, with the exception's and the occurrence's times
	isExc    bool
}

// instances lists the occurrences and exceptions of a series that overlap [from, to).
func instances(it *actItem, from, to time.Time) []instance {
	start, end := eventSpan(it.props)
	length := end.Sub(start)
	var out []instance
	// An exception may have moved far from its original start: look wide.
	for _, orig := range occurrences(it, from.Add(-length-31*24*time.Hour), to.Add(31*24*time.Hour)) {
		inst, ok := makeInstance(it, orig)
		if !ok {
			continue
		}
		if s, e := eventSpan(inst.props); s.Before(to) && (e.After(from) || s.Equal(from)) {
			out = append(out, inst)
		}
	}
	return out
}

// instanceAt is the occurrence or exception whose original start is orig.
func instanceAt(it *actItem, orig time.Time) (instance, bool) {
	for _, o := range occurrences(it, orig.Add(-time.Second), orig.Add(time.Second)) {
		if o.Equal(orig) {
			return makeInstance(it, o)
		}
	}
	return instance{}, false
}

// makeInstance builds an occurrence of a series from its original start; false
// when it was deleted.
func makeInstance(it *actItem, orig time.Time) (instance, bool) {
	key := occurrenceKey(orig)
	if it.cancelled[key] {
		return instance{}, false
	}
	start, end := eventSpan(it.props)
	length := end.Sub(start)
	props := make(map[string]any, len(it.props))
	for k, v := range it.props {
		props[k] = v
	}
	zone := ""
	if s, ok := it.props["start"].(map[string]any); ok {
		zone, _ = s["timeZone"].(string)
	}
	props["start"] = map[string]any{"dateTime": orig.Format("2006-01-02T15:04:05"), "timeZone": cmpOr(zone, "UTC")}
	props["end"] = map[string]any{"dateTime": orig.Add(length).Format("2006-01-02T15:04:05"), "timeZone": cmpOr(zone, "UTC")}
	exc := it.exceptions[key]
	for k, v := range exc {
		props[k] = v
	}
	delete(props, "recurrence")
	return instance{id: occurrenceID(it.id, orig), original: orig, props: props, isExc: exc != nil}, true
}

// inWindow reports whether a single event overlaps [from, to).
func inWindow(props map[string]any, from, to time.Time) bool {
	s, e := eventSpan(props)
	return s.Before(to) && (e.After(from) || s.Equal(from))
}

// eventJSON renders an event (or an instance with props) as Graph does: times
// in UTC or the Prefer: outlook.timezone zone, the zones as sent kept in
// originalStartTimeZone / originalEndTimeZone under their Windows names.
func (c *call) eventJSON(it *actItem, inst *instance, expand string) map[string]any {
	props := it.props
	if inst != nil {
		props = inst.props
	}
	out := make(map[string]any, len(props)+12)
	for k, v := range props {
		out[k] = v
	}
	start, startZone, _ := graphDateTime(props["start"])
	end, endZone, _ := graphDateTime(props["end"])
	out["start"], out["end"] = renderTime(start, c.timeZone), renderTime(end, c.timeZone)
	out["originalStartTimeZone"], out["originalEndTimeZone"] = windowsName(startZone), windowsName(endZone)
	if rec, ok := props["recurrence"].(map[string]any); ok {
		if rng, ok := rec["range"].(map[string]any); ok {
			r := map[string]any{}
			for k, v := range rng {
				r[k] = v
			}
			if z, _ := rng["recurrenceTimeZone"].(string); z != "" {
				r["recurrenceTimeZone"] = windowsName(z)
			}
			out["recurrence"] = map[string]any{"pattern": rec["pattern"], "range": r}
		}
	}
	out["id"], out["iCalUId"] = it.id, it.icaluid
	out["@odata.etag"], out["changeKey"] = it.etag(), it.changeKey()
	out["createdDateTime"], out["lastModifiedDateTime"] = it.created.Format(time.RFC3339), it.modified.Format(time.RFC3339)
	switch {
	case inst != nil:
		out["id"], out["seriesMasterId"] = inst.id, it.id
		out["originalStart"] = inst.original.UTC().Format("2006-01-02T15:04:05Z")
		out["type"] = "occurrence"
		if inst.isExc {
			out["type"] = "exception"
		}
		out["recurrence"] = nil
	case isSeries(it):
		out["type"] = "seriesMaster"
	default:
		out["type"] = "singleInstance"
		out["recurrence"] = nil
	}
	if _, ok := out["body"]; !ok {
		out["body"] = map[string]any{"contentType": "text", "content": ""}
	}
	c.expandExtensions(it, out, expand)
	return out
}

// itemJSON renders a contact or a task.
func (c *call) itemJSON(it *actItem, expand string) map[string]any {
	out := make(map[string]any, len(it.props)+8)
	for k, v := range it.props {
		out[k] = v
	}
	out["id"], out["@odata.etag"] = it.id, it.etag()
	out["createdDateTime"], out["lastModifiedDateTime"] = it.created.Format(time.RFC3339), it.modified.Format(time.RFC3339)
	if it.coll == collContacts {
		out["changeKey"] = it.changeKey()
	} else {
		// To Do answers its times in UTC (or the Prefer: outlook.timezone zone)
		// and keeps no zone of its own.
		for _, k := range []string{"startDateTime", "dueDateTime", "completedDateTime", "reminderDateTime"} {
			if t, _, ok := graphDateTime(it.props[k]); ok {
				out[k] = renderTime(t, c.timeZone)
			}
		}
	}
	c.expandExtensions(it, out, expand)
	return out
}

var (
	expandSingleValue = regexp.MustCompile(`(?i)^singleValueExtendedProperties\(\$filter=id eq '((?:[^']|'')*)'\)$`)
	filterSingleValue = regexp.MustCompile(`(?i)^singleValueExtendedProperties/any\((\w+): (\w+)/id eq '((?:[^']|'')*)' and (\w+)/value eq '((?:[^']|'')*)'\)$`)
	filterWellKnown   = regexp.MustCompile(`(?i)^wellknownListName eq '(\w+)'$`)
)

// expandExtensions adds what $expand asks for: a single-value extended
// property by id, or the open extensions.
func (c *call) expandExtensions(it *actItem, out map[string]any, expand string) {
	if expand == "" {
		return
	}
	if m := expandSingleValue.FindStringSubmatch(expand); m != nil {
		id := strings.ToLower(strings.ReplaceAll(m[1], "''", "'"))
		if v, ok := it.ext[id]; ok {
			out["singleValueExtendedProperties"] = []any{map[string]any{"id": it.extIDs[id], "value": v}}
		}
		return
	}
	if strings.EqualFold(expand, "extensions") {
		list := []any{}
		for _, e := range it.open {
			list = append(list, e)
		}
		out["extensions"] = list
	}
}

// validExpand reports whether the fake knows the $expand.
func validExpand(expand string) bool {
	return expand == "" || expandSingleValue.MatchString(expand) || strings.EqualFold(expand, "extensions")
}

// setProps stores a POST or PATCH body: singleValueExtendedProperties and
// extensions apart, every other property replacing the one before.
func setProps(it *actItem, body map[string]any) {
	for k, v := range body {
		switch {
		case k == "singleValueExtendedProperties":
			list, _ := v.([]any)
			for _, e := range list {
				ep, _ := e.(map[string]any)
				id, _ := ep["id"].(string)
				val, _ := ep["value"].(string)
				if id != "" {
					it.ext[strings.ToLower(id)], it.extIDs[strings.ToLower(id)] = val, id
				}
			}
		case k == "extensions":
			list, _ := v.([]any)
			for _, e := range list {
				if ext, ok := e.(map[string]any); ok {
					setOpenExtension(it, ext)
				}
			}
		case strings.HasPrefix(k, "@odata"), k == "id", k == "changeKey", k == "createdDateTime", k == "lastModifiedDateTime",
			k == "iCalUId", k == "type", k == "seriesMasterId", k == "originalStart", k == "originalStartTimeZone", k == "originalEndTimeZone":
			// read-only
		default:
			it.props[k] = v
		}
	}
}

func setOpenExtension(it *actItem, ext map[string]any) bool {
	name, _ := ext["extensionName"].(string)
	if name == "" {
		return false
	}
	e := it.open[strings.ToLower(name)]
	if e == nil {
		e = map[string]any{"@odata.type": "#microsoft.graph.openTypeExtension", "extensionName": name, "id": name}
		it.open[strings.ToLower(name)] = e
	}
	for k, v := range ext {
		if k != "@odata.type" && k != "id" {
			e[k] = v
		}
	}
	return true
}

func newActItem(coll string, now time.Time) *actItem {
	return &actItem{id: newID("AAMkAGAct"), coll: coll, created: now.UTC(), modified: now.UTC(), props: map[string]any{},
		ext: map[string]string{}, extIDs: map[string]string{}, open: map[string]map[string]any{},
		cancelled: map[string]bool{}, exceptions: map[string]map[string]any{}}
}

// ifMatch checks If-Match against the item's ETag: 412 on a mismatch, as Graph
// answers for a change key that is not the item's current one.
func ifMatch(w http.ResponseWriter, r *http.Request, it *actItem) bool {
	want := r.Header.Get("If-Match")
	if want == "" || want == "*" || want == it.etag() {
		return true
	}
	writeError(w, http.StatusPreconditionFailed, "ErrorIrresolvableConflict",
		"The send or update operation could not be performed because the change key passed in the request does not match the current change key for the item.")
	return false
}

func readObject(w http.ResponseWriter, r *http.Request) (map[string]any, bool) {
	body, ok := jsonBody(w, r)
	if !ok {
		return nil, false
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		writeError(w, http.StatusBadRequest, "RequestBodyRead", "The request body is not a JSON object.")
		return nil, false
	}
	return m, true
}

// actColl is the collection a route works on: events, contacts, or the tasks
// of the To Do list in the path (nil with 404 answered when it has none).
func (c *call) actColl(w http.ResponseWriter, r *http.Request) (string, bool) {
	c.mb.actInit()
	switch {
	case strings.HasPrefix(r.URL.Path, "/events"), strings.HasPrefix(r.URL.Path, "/calendarView"):
		return collEvents, true
	case strings.HasPrefix(r.URL.Path, "/contacts"):
		return collContacts, true
	}
	list := r.PathValue("list")
	for _, l := range c.mb.todoLists {
		if l.id == list {
			return collTasks + l.id, true
		}
	}
	notFound(w)
	return "", false
}

func (c *call) actItem(w http.ResponseWriter, coll, id string) *actItem {
	it := c.mb.act[id]
	if it == nil || it.coll != coll {
		notFound(w)
		return nil
	}
	return it
}

func (c *call) render(it *actItem, expand string) map[string]any {
	if it.coll == collEvents {
		return c.eventJSON(it, nil, expand)
	}
	return c.itemJSON(it, expand)
}

func serveCreateAct(c *call, w http.ResponseWriter, r *http.Request) {
	body, ok := readObject(w, r)
	if !ok {
		return
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	coll, ok := c.actColl(w, r)
	if !ok {
		return
	}
	it := newActItem(coll, c.s.opts.Now())
	setProps(it, body)
	if coll == collEvents {
		if _, _, ok := graphDateTime(it.props["start"]); !ok {
			writeError(w, http.StatusBadRequest, "ErrorInvalidRequest", "An event needs a start and an end with a known time zone.")
			return
		}
		if _, _, ok := graphDateTime(it.props["end"]); !ok {
			writeError(w, http.StatusBadRequest, "ErrorInvalidRequest", "An event needs a start and an end with a known time zone.")
			return
		}
		it.icaluid = "040000008200E00074C5B7101A82E008" + strings.ToUpper(strconv.FormatInt(int64(len(c.mb.act)+1), 16)) + newID("")[:8]
	}
	if strings.HasPrefix(coll, collTasks) {
		if t, _ := it.props["title"].(string); t == "" {
			writeError(w, http.StatusBadRequest, "invalidRequest", "A task needs a title.")
			return
		}
	}
	c.mb.touch(it, c.s.opts.Now())
	c.mb.act[it.id] = it
	writeJSON(w, http.StatusCreated, c.render(it, ""))
}

func serveGetAct(c *call, w http.ResponseWriter, r *http.Request) {
	expand := r.URL.Query().Get("$expand")
	if !validExpand(expand) {
		writeError(w, http.StatusBadRequest, "BadRequest", "The $expand is not supported.")
		return
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	coll, ok := c.actColl(w, r)
	if !ok {
		return
	}
	if master, orig, isOcc := splitOccurrenceID(r.PathValue("id")); isOcc && coll == collEvents {
		it := c.actItem(w, coll, master)
		if it == nil {
			return
		}
		inst, ok := instanceAt(it, orig)
		if !ok {
			notFound(w)
			return
		}
		writeJSON(w, http.StatusOK, c.eventJSON(it, &inst, expand))
		return
	}
	it := c.actItem(w, coll, r.PathValue("id"))
	if it == nil {
		return
	}
	writeJSON(w, http.StatusOK, c.render(it, expand))
}

func servePatchAct(c *call, w http.ResponseWriter, r *http.Request) {
	body, ok := readObject(w, r)
	if !ok {
		return
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	coll, ok := c.actColl(w, r)
	if !ok {
		return
	}
	now := c.s.opts.Now()
	if master, orig, isOcc := splitOccurrenceID(r.PathValue("id")); isOcc && coll == collEvents {
		// Changing an occurrence makes it an exception of its series.
		it := c.actItem(w, coll, master)
		if it == nil {
			return
		}
		key := occurrenceKey(orig)
		if _, found := instanceAt(it, orig); !found {
			notFound(w)
			return
		}
		exc := it.exceptions[key]
		if exc == nil {
			exc = map[string]any{}
			it.exceptions[key] = exc
		}
		for k, v := range body {
			if k != "recurrence" && !strings.HasPrefix(k, "@odata") && k != "singleValueExtendedProperties" {
				exc[k] = v
			}
		}
		c.mb.touch(it, now)
		inst, _ := instanceAt(it, orig)
		writeJSON(w, http.StatusOK, c.eventJSON(it, &inst, ""))
		return
	}
	it := c.actItem(w, coll, r.PathValue("id"))
	if it == nil || !ifMatch(w, r, it) {
		return
	}
	before, _ := json.Marshal(it.props["recurrence"])
	setProps(it, body)
	if after, _ := json.Marshal(it.props["recurrence"]); coll == collEvents && string(after) != string(before) {
		// Exchange drops a series' exceptions when its pattern changes.
		it.cancelled, it.exceptions = map[string]bool{}, map[string]map[string]any{}
	}
	c.mb.touch(it, now)
	writeJSON(w, http.StatusOK, c.render(it, ""))
}

func serveDeleteAct(c *call, w http.ResponseWriter, r *http.Request) {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	coll, ok := c.actColl(w, r)
	if !ok {
		return
	}
	if master, orig, isOcc := splitOccurrenceID(r.PathValue("id")); isOcc && coll == collEvents {
		it := c.actItem(w, coll, master)
		if it == nil {
			return
		}
		if _, found := instanceAt(it, orig); !found {
			notFound(w)
			return
		}
		it.cancelled[occurrenceKey(orig)] = true
		delete(it.exceptions, occurrenceKey(orig))
		c.mb.actRemovals = append(c.mb.actRemovals, actRemoval{seq: c.mb.next(), coll: coll, ids: []string{occurrenceID(it.id, orig)}})
		c.mb.touch(it, c.s.opts.Now())
		w.WriteHeader(http.StatusNoContent)
		return
	}
	it := c.actItem(w, coll, r.PathValue("id"))
	if it == nil || !ifMatch(w, r, it) {
		return
	}
	c.mb.removeAct(it, c.s.opts.Now())
	w.WriteHeader(http.StatusNoContent)
}

// removeAct deletes an item, recording it as removed; a series is recorded as
// its occurrences, since calendarView delta never lists the master.
func (mb *mailbox) removeAct(it *actItem, now time.Time) {
	ids := []string{it.id}
	if it.coll == collEvents && isSeries(it) {
		ids = nil
		for _, inst := range instances(it, now.AddDate(-10, 0, 0), now.AddDate(10, 0, 0)) {
			ids = append(ids, inst.id)
		}
	}
	mb.actRemovals = append(mb.actRemovals, actRemoval{seq: mb.next(), coll: it.coll, ids: ids})
	delete(mb.act, it.id)
}

// serveListAct lists events (series masters and single instances), contacts or
// tasks, filtered by a single-value extended property when asked, in pages of
// $top (default 10) by $skip.
func serveListAct(c *call, w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	expand := q.Get("$expand")
	if !validExpand(expand) {
		writeError(w, http.StatusBadRequest, "BadRequest", "The $expand is not supported.")
		return
	}
	var propID, propValue string
	if filter := q.Get("$filter"); filter != "" {
		m := filterSingleValue.FindStringSubmatch(filter)
		if m == nil || m[1] != m[2] || m[1] != m[4] {
			writeError(w, http.StatusBadRequest, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes.")
			return
		}
		propID, propValue = strings.ToLower(strings.ReplaceAll(m[3], "''", "'")), strings.ReplaceAll(m[5], "''", "'")
	}
	top, skip, ok := topSkip(w, q)
	if !ok {
		return
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	coll, ok := c.actColl(w, r)
	if !ok {
		return
	}
	var all []*actItem
	for _, it := range c.mb.act {
		// Graph compares string values without regard to case.
		if it.coll == coll && (propID == "" || strings.EqualFold(it.ext[propID], propValue) && propValue != "") {
			all = append(all, it)
		}
	}
	slices.SortFunc(all, func(a, b *actItem) int { return a.created.Compare(b.created) })
	items := []map[string]any{}
	for _, it := range all[min(skip, len(all)):min(skip+top, len(all))] {
		items = append(items, c.render(it, expand))
	}
	out := map[string]any{"value": items}
	if skip+top < len(all) {
		q.Set("$skip", strconv.Itoa(skip+top))
		q.Set("$top", strconv.Itoa(top))
		out["@odata.nextLink"] = c.base() + r.URL.Path + "?" + strings.ReplaceAll(q.Encode(), "+", "%20")
	}
	writeJSON(w, http.StatusOK, out)
}

// serveInstances lists the occurrences and exceptions of a series in a window.
func serveInstances(c *call, w http.ResponseWriter, r *http.Request) {
	from, to, ok := viewWindow(w, r.URL.Query())
	if !ok {
		return
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	c.mb.actInit()
	it := c.actItem(w, collEvents, r.PathValue("id"))
	if it == nil {
		return
	}
	items := []map[string]any{}
	if isSeries(it) {
		for _, inst := range instances(it, from, to) {
			items = append(items, c.eventJSON(it, &inst, ""))
		}
	} else if inWindow(it.props, from, to) {
		items = append(items, c.eventJSON(it, nil, ""))
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": items})
}

func viewWindow(w http.ResponseWriter, q url.Values) (time.Time, time.Time, bool) {
	from, err1 := time.Parse(time.RFC3339, q.Get("startDateTime"))
	to, err2 := time.Parse(time.RFC3339, q.Get("endDateTime"))
	if err1 != nil || err2 != nil || !to.After(from) {
		writeError(w, http.StatusBadRequest, "ErrorInvalidParameter", "This request requires a time window specified by the query string parameters StartDateTime and EndDateTime.")
		return time.Time{}, time.Time{}, false
	}
	return from, to, true
}

// actEntries lists what a delta round over coll reports: with full, every item
// (for events: the single instances, occurrences and exceptions in the view);
// otherwise what changed after pos, removals as removed entries.
func (mb *mailbox) actEntries(coll string, pos int64, full bool, from, to time.Time) []entry {
	type change struct {
		seq int64
		e   entry
	}
	var changes []change
	reported := map[string]bool{}
	for _, it := range mb.act {
		if it.coll != coll || (!full && it.seq <= pos) {
			continue
		}
		if coll != collEvents {
			changes = append(changes, change{it.seq, entry{id: it.id}})
			continue
		}
		if !isSeries(it) {
			// An event moved out of the view is removed from it.
			in := inWindow(it.props, from, to)
			if in || !full {
				changes = append(changes, change{it.seq, entry{id: it.id, removed: !in}})
			}
			continue
		}
		for _, inst := range instances(it, from, to) {
			changes = append(changes, change{it.seq, entry{id: inst.id}})
			reported[inst.id] = true
		}
	}
	if !full {
		for i := len(mb.actRemovals) - 1; i >= 0 && mb.actRemovals[i].seq > pos; i-- {
			rm := mb.actRemovals[i]
			if rm.coll != coll {
				continue
			}
			for _, id := range rm.ids {
				if !reported[id] {
					reported[id] = true
					changes = append(changes, change{rm.seq, entry{id: id, removed: true}})
				}
			}
		}
	}
	slices.SortStableFunc(changes, func(a, b change) int { return int(a.seq - b.seq) })
	out := make([]entry, len(changes))
	for i, ch := range changes {
		out[i] = ch.e
	}
	return out
}

// serveActDelta serves one page of calendarView, contacts or To Do tasks delta.
func serveActDelta(c *call, w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	coll, ok := c.actColl(w, r)
	if !ok {
		return
	}
	var rd *round
	var view [2]time.Time
	offset := 0
	skip, deltaTok := q.Get("$skiptoken"), q.Get("$deltatoken")
	if skip != "" || deltaTok != "" {
		st, ok := c.s.delta[skip+deltaTok]
		if !ok || st.mailbox != c.mb || st.folder != coll || (skip != "") != (st.round != nil) {
			writeError(w, http.StatusGone, "SyncStateNotFound", "The sync state is not found or has expired. Please start a new sync without a token.")
			return
		}
		if st.invalid != nil {
			writeError(w, st.invalid.status, st.invalid.code, "The sync state is no longer valid. Please start a new sync without a token.")
			return
		}
		view = st.view
		if st.round != nil {
			rd, offset = st.round, st.offset
		} else {
			rd = &round{folder: coll, end: c.mb.seq, entries: c.mb.actEntries(coll, st.pos, false, view[0], view[1])}
		}
	} else {
		if coll == collEvents {
			from, to, ok := viewWindow(w, q)
			if !ok {
				return
			}
			view = [2]time.Time{from, to}
		}
		rd = &round{folder: coll, end: c.mb.seq, entries: c.mb.actEntries(coll, 0, true, view[0], view[1])}
	}
	size := c.s.opts.DefaultPageSize
	if c.pageSize > 0 {
		size = min(c.pageSize, MaxPageSize)
	}
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
		if item := c.actDeltaItem(e, coll); item != nil {
			items = append(items, item)
			continue
		}
		items = append(items, map[string]any{"id": e.id, "@removed": map[string]any{"reason": "deleted"}})
	}
	out := map[string]any{"value": items}
	token := newID("")
	link := c.base() + r.URL.Path + "?"
	if end < len(rd.entries) {
		c.s.keepSyncState(token, &deltaState{mailbox: c.mb, folder: coll, round: rd, offset: end, view: view})
		out["@odata.nextLink"] = link + "$skiptoken=" + token
	} else {
		c.s.keepSyncState(token, &deltaState{mailbox: c.mb, folder: coll, pos: rd.end, view: view})
		out["@odata.deltaLink"] = link + "$deltatoken=" + token
	}
	writeJSON(w, http.StatusOK, out)
}

// actDeltaItem renders a delta entry as it is now, nil when it is gone.
func (c *call) actDeltaItem(e entry, coll string) map[string]any {
	if e.removed {
		return nil
	}
	if master, orig, ok := splitOccurrenceID(e.id); ok {
		it := c.mb.act[master]
		if it == nil {
			return nil
		}
		inst, ok := instanceAt(it, orig)
		if !ok {
			return nil
		}
		return c.eventJSON(it, &inst, "")
	}
	it := c.mb.act[e.id]
	if it == nil || it.coll != coll {
		return nil
	}
	return c.render(it, "")
}

func serveTodoLists(c *call, w http.ResponseWriter, r *http.Request) {
	var want string
	if filter := r.URL.Query().Get("$filter"); filter != "" {
		m := filterWellKnown.FindStringSubmatch(filter)
		if m == nil {
			writeError(w, http.StatusBadRequest, "invalidRequest", "Invalid filter clause.")
			return
		}
		want = m[1]
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	c.mb.actInit()
	items := []map[string]any{}
	for _, l := range c.mb.todoLists {
		if want == "" || strings.EqualFold(want, l.wellKnown) {
			items = append(items, map[string]any{"id": l.id, "displayName": l.name, "wellknownListName": cmpOr(l.wellKnown, "none"),
				"isOwner": true, "isShared": false, "@odata.etag": `W/"` + l.id[:8] + `"`})
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": items})
}

// serveTaskExtension creates or updates an open extension of a task.
func serveTaskExtension(c *call, w http.ResponseWriter, r *http.Request) {
	body, ok := readObject(w, r)
	if !ok {
		return
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	coll, ok := c.actColl(w, r)
	if !ok {
		return
	}
	it := c.actItem(w, coll, r.PathValue("id"))
	if it == nil {
		return
	}
	if name := r.PathValue("ext"); name != "" {
		if it.open[strings.ToLower(name)] == nil {
			notFound(w)
			return
		}
		body["extensionName"] = it.open[strings.ToLower(name)]["extensionName"]
	}
	if !setOpenExtension(it, body) {
		writeError(w, http.StatusBadRequest, "invalidRequest", "An open extension needs an extensionName.")
		return
	}
	c.mb.touch(it, c.s.opts.Now())
	name, _ := body["extensionName"].(string)
	status := http.StatusCreated
	if r.Method == http.MethodPatch {
		status = http.StatusOK
	}
	writeJSON(w, status, it.open[strings.ToLower(name)])
}

// serveGetCalendar returns the default calendar, with a single-value extended
// property when $expand asks for it.
func serveGetCalendar(c *call, w http.ResponseWriter, r *http.Request) {
	expand := r.URL.Query().Get("$expand")
	if expand != "" && !expandSingleValue.MatchString(expand) {
		writeError(w, http.StatusBadRequest, "BadRequest", "The $expand is not supported.")
		return
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	c.mb.actInit()
	out := map[string]any{"id": c.mb.calendarID, "name": "Calendar", "canEdit": true, "isDefaultCalendar": true,
		"owner": map[string]any{"address": c.mb.address}}
	if m := expandSingleValue.FindStringSubmatch(expand); m != nil {
		id := strings.ToLower(strings.ReplaceAll(m[1], "''", "'"))
		if v, ok := c.mb.calendarExt[id]; ok {
			out["singleValueExtendedProperties"] = []any{map[string]any{"id": m[1], "value": v}}
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func servePatchCalendar(c *call, w http.ResponseWriter, r *http.Request) {
	body, ok := readObject(w, r)
	if !ok {
		return
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	c.mb.actInit()
	if c.mb.calendarExt == nil {
		c.mb.calendarExt = map[string]string{}
	}
	list, _ := body["singleValueExtendedProperties"].([]any)
	for _, e := range list {
		ep, _ := e.(map[string]any)
		id, _ := ep["id"].(string)
		val, _ := ep["value"].(string)
		if id != "" {
			c.mb.calendarExt[strings.ToLower(id)] = val
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": c.mb.calendarID, "name": "Calendar"})
}

// RemoveACTItem deletes an event, contact or task as a user would in Outlook
// or To Do: its collection's next delta reports it removed.
func (s *Server) RemoveACTItem(address, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb, err := s.mailbox(address)
	if err != nil {
		return err
	}
	mb.actInit()
	it := mb.act[id]
	if it == nil {
		return fmt.Errorf("%w: %s", ErrNoItem, id)
	}
	mb.removeAct(it, s.opts.Now())
	return nil
}

// ErrNoItem is returned for an ACT item id a mailbox does not hold.
var ErrNoItem = errors.New("graphtest: no such item")
