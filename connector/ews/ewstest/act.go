package ewstest

import (
	"encoding/xml"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/teambition/rrule-go"

	"github.com/serversync/serversync/internal/tzwin"
)

// This file holds the calendar items, contacts and tasks: items whose
// properties are kept as the XML elements CreateItem and UpdateItem sent, with
// a ChangeKey that changes on every write, UpdateItem's ConflictResolution
// NeverOverwrite, FindItem with an IsEqualTo restriction on an extended
// property, and recurring series whose occurrences are addressed by
// InstanceIndex (deleted and modified occurrences).

// node is an XML element as a tree: its local name, attributes without
// namespace declarations, text and children.
type node struct {
	Name     string
	Attrs    []xml.Attr
	Text     string
	Children []*node
}

func (n *node) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	n.Name = start.Name.Local
	for _, a := range start.Attr {
		if a.Name.Space == "xmlns" || a.Name.Local == "xmlns" {
			continue
		}
		n.Attrs = append(n.Attrs, xml.Attr{Name: xml.Name{Local: a.Name.Local}, Value: a.Value})
	}
	for {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			child := &node{}
			if err := child.UnmarshalXML(d, t); err != nil {
				return err
			}
			n.Children = append(n.Children, child)
		case xml.CharData:
			n.Text += string(t)
		case xml.EndElement:
			if len(n.Children) > 0 {
				n.Text = ""
			}
			return nil
		}
	}
}

func (n *node) String() string {
	var b strings.Builder
	b.WriteString("<t:" + n.Name)
	for _, a := range n.Attrs {
		b.WriteString(" " + a.Name.Local + `="` + esc(a.Value) + `"`)
	}
	b.WriteString(">" + esc(n.Text))
	for _, c := range n.Children {
		b.WriteString(c.String())
	}
	b.WriteString("</t:" + n.Name + ">")
	return b.String()
}

func (n *node) child(name string) *node {
	if n == nil {
		return nil
	}
	for _, c := range n.Children {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func (n *node) attr(name string) string {
	if n == nil {
		return ""
	}
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func (n *node) text() string {
	if n == nil {
		return ""
	}
	return strings.TrimSpace(n.Text)
}

func (n *node) clone() *node {
	c := &node{Name: n.Name, Attrs: append([]xml.Attr(nil), n.Attrs...), Text: n.Text}
	for _, ch := range n.Children {
		c.Children = append(c.Children, ch.clone())
	}
	return c
}

// sameURI reports whether two ExtendedFieldURIs name one property.
func sameURI(a, b *node) bool {
	if a == nil || b == nil {
		return false
	}
	for _, k := range []string{"PropertySetId", "DistinguishedPropertySetId", "PropertyName", "PropertyTag", "PropertyId"} {
		if !strings.EqualFold(a.attr(k), b.attr(k)) {
			return false
		}
	}
	return true
}

// actRequest is an ACT operation read as a tree.
type actRequest struct {
	Body struct {
		Op node `xml:",any"`
	} `xml:"Body"`
}

// actKinds are the item elements this fake keeps properties of.
var actKinds = map[string]bool{"CalendarItem": true, "Contact": true, "Task": true}

func (it *item) setChanged() {
	it.version++
	it.modified = time.Now().UTC()
}

func (it *item) changeKey() string {
	if it.kind == "" {
		return "CQAAABYAAA"
	}
	return "CQAAABYAAA" + strconv.Itoa(it.version)
}

func (it *item) idXML() string {
	return fmt.Sprintf(`<t:ItemId Id="%s" ChangeKey="%s"/>`, esc(it.id), esc(it.changeKey()))
}

// createACT stores calendar items, contacts and tasks.
func (c *call) createACT(m *mailbox, saveTo *folder, items []*node) string {
	var b strings.Builder
	for _, n := range items {
		if !actKinds[n.Name] {
			b.WriteString(errorMessage("CreateItem", failure{code: "ErrorInvalidRequest", text: "ewstest does not create " + n.Name + " items."}))
			continue
		}
		c.s.nextID++
		it := &item{id: encodeID("I", m.address, c.s.nextID), folder: saveTo.id, kind: n.Name, received: time.Now()}
		for _, p := range n.Children {
			it.props = append(it.props, p.clone())
		}
		it.setChanged()
		m.items[it.id] = it
		m.note(saveTo.id, it.id, true)
		b.WriteString(successMessage("CreateItem", `<m:Items><t:`+it.kind+`>`+it.idXML()+`</t:`+it.kind+`></m:Items>`))
	}
	return b.String()
}

// actXML is an ACT item as GetItem answers it.
func (m *mailbox) actXML(it *item, idOnly bool) string {
	var b strings.Builder
	b.WriteString(`<t:` + it.kind + `>` + it.idXML())
	if !idOnly {
		for _, p := range it.props {
			b.WriteString(p.String())
		}
		if !it.originalStart.IsZero() {
			b.WriteString(`<t:OriginalStart>` + it.originalStart.UTC().Format(time.RFC3339) + `</t:OriginalStart>`)
		}
		if len(it.occurrences) > 0 {
			b.WriteString(`<t:ModifiedOccurrences>`)
			for _, id := range sortedOccurrences(it.occurrences) {
				occ := m.items[id]
				if occ == nil {
					continue
				}
				fmt.Fprintf(&b, `<t:Occurrence>%s<t:Start>%s</t:Start><t:End>%s</t:End><t:OriginalStart>%s</t:OriginalStart></t:Occurrence>`,
					occ.idXML(), esc(occ.prop("Start").text()), esc(occ.prop("End").text()), occ.originalStart.UTC().Format(time.RFC3339))
			}
			b.WriteString(`</t:ModifiedOccurrences>`)
		}
		if len(it.deletedOccurrences) > 0 {
			b.WriteString(`<t:DeletedOccurrences>`)
			for _, t := range it.deletedOccurrences {
				b.WriteString(`<t:DeletedOccurrence><t:Start>` + t.UTC().Format(time.RFC3339) + `</t:Start></t:DeletedOccurrence>`)
			}
			b.WriteString(`</t:DeletedOccurrences>`)
		}
		b.WriteString(`<t:LastModifiedTime>` + it.modified.Format(time.RFC3339) + `</t:LastModifiedTime>`)
	}
	b.WriteString(`</t:` + it.kind + `>`)
	return b.String()
}

func sortedOccurrences(occ map[int]string) []string {
	var idx []int
	for i := range occ {
		idx = append(idx, i)
	}
	for i := 1; i < len(idx); i++ {
		for j := i; j > 0 && idx[j] < idx[j-1]; j-- {
			idx[j], idx[j-1] = idx[j-1], idx[j]
		}
	}
	var out []string
	for _, i := range idx {
		out = append(out, occ[i])
	}
	return out
}

func (it *item) prop(name string) *node {
	for _, p := range it.props {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// occurrenceStart is the original start of the series' occurrence index (from
// 1), expanding the master's Recurrence in its StartTimeZone.
func (it *item) occurrenceStart(index int) (time.Time, bool) {
	start, err := time.Parse(time.RFC3339, it.prop("Start").text())
	rec := it.prop("Recurrence")
	if err != nil || rec == nil || index < 1 {
		return time.Time{}, false
	}
	loc := time.UTC
	if l, _, ok := tzwin.Location(it.prop("StartTimeZone").attr("Id")); ok {
		loc = l
	}
	opt := rrule.ROption{Dtstart: start.In(loc), Interval: 1}
	atoi := func(n *node) int { v, _ := strconv.Atoi(n.text()); return v }
	days := func(n *node) []rrule.Weekday {
		var out []rrule.Weekday
		for _, d := range strings.Fields(n.text()) {
			for i, w := range []rrule.Weekday{rrule.MO, rrule.TU, rrule.WE, rrule.TH, rrule.FR, rrule.SA, rrule.SU} {
				if strings.EqualFold(d, []string{"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"}[i]) {
					out = append(out, w)
				}
			}
		}
		return out
	}
	for _, p := range rec.Children {
		if n := p.child("Interval"); n != nil && atoi(n) > 0 {
			opt.Interval = atoi(n)
		}
		switch p.Name {
		case "DailyRecurrence":
			opt.Freq = rrule.DAILY
		case "WeeklyRecurrence":
			opt.Freq, opt.Byweekday = rrule.WEEKLY, days(p.child("DaysOfWeek"))
		case "AbsoluteMonthlyRecurrence":
			opt.Freq, opt.Bymonthday = rrule.MONTHLY, []int{atoi(p.child("DayOfMonth"))}
		case "AbsoluteYearlyRecurrence":
			opt.Freq, opt.Bymonthday = rrule.YEARLY, []int{atoi(p.child("DayOfMonth"))}
			if t, err := time.Parse("January", p.child("Month").text()); err == nil {
				opt.Bymonth = []int{int(t.Month())}
			}
		case "NumberedRecurrence":
			opt.Count = atoi(p.child("NumberOfOccurrences"))
		case "EndDateRecurrence":
			if end, err := time.ParseInLocation("2006-01-02", p.child("EndDate").text()[:min(10, len(p.child("EndDate").text()))], loc); err == nil {
				opt.Until = end.AddDate(0, 0, 1).Add(-time.Second)
			}
		}
	}
	r, err := rrule.NewRRule(opt)
	if err != nil {
		return time.Time{}, false
	}
	next := r.Iterator()
	for i := 1; ; i++ {
		t, ok := next()
		if !ok || i > 10000 {
			return time.Time{}, false
		}
		if i == index {
			return t, true
		}
	}
}

// occurrence resolves an OccurrenceItemId: the master and the occurrence's
// original start.
func (c *call) occurrence(n *node) (*mailbox, *item, int, time.Time, *failure) {
	m, master, f := c.item(n.attr("RecurringMasterId"))
	if f != nil {
		return nil, nil, 0, time.Time{}, f
	}
	index, _ := strconv.Atoi(n.attr("InstanceIndex"))
	start, ok := master.occurrenceStart(index)
	if !ok {
		return nil, nil, 0, time.Time{}, &failure{code: "ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange", text: "Occurrence index is out of recurrence range."}
	}
	for _, d := range master.deletedOccurrences {
		if d.Equal(start) {
			return nil, nil, 0, time.Time{}, &failure{code: "ErrorCalendarOccurrenceIsDeletedFromRecurrence", text: "Occurrence with this index was previously deleted from the recurrence."}
		}
	}
	return m, master, index, start, nil
}

// deleteOccurrence removes one occurrence from its series.
func (c *call) deleteOccurrence(n *node) *failure {
	m, master, index, start, f := c.occurrence(n)
	if f != nil {
		return f
	}
	if id, ok := master.occurrences[index]; ok {
		delete(m.items, id)
		delete(master.occurrences, index)
	}
	master.deletedOccurrences = append(master.deletedOccurrences, start)
	master.setChanged()
	m.noteUpdate(master)
	return nil
}

func (m *mailbox) noteUpdate(it *item) {
	m.journal = append(m.journal, change{seq: len(m.journal) + 1, folder: it.folder, create: false, update: true, item: it.id})
}

func (c *call) updateItem(raw []byte) (string, *failure) {
	var req actRequest
	if err := xml.Unmarshal(raw, &req); err != nil {
		return "", &failure{code: "ErrorSchemaValidation", text: "The request failed schema validation.", fault: true}
	}
	op := &req.Body.Op
	resolution := op.attr("ConflictResolution")
	var b strings.Builder
	for _, ic := range op.child("ItemChanges").Children {
		var m *mailbox
		var it *item
		var f *failure
		if ref := ic.child("OccurrenceItemId"); ref != nil {
			var master *item
			var index int
			var start time.Time
			if m, master, index, start, f = c.occurrence(ref); f == nil {
				if id, ok := master.occurrences[index]; ok {
					it = m.items[id]
				} else {
					c.s.nextID++
					it = &item{id: encodeID("I", m.address, c.s.nextID), kind: master.kind, master: master.id, originalStart: start, received: time.Now()}
					for _, p := range master.props {
						if p.Name != "Recurrence" {
							it.props = append(it.props, p.clone())
						}
					}
					m.items[it.id] = it
					if master.occurrences == nil {
						master.occurrences = map[int]string{}
					}
					master.occurrences[index] = it.id
				}
				master.setChanged()
				m.noteUpdate(master)
			}
		} else {
			ref := ic.child("ItemId")
			m, it, f = c.item(ref.attr("Id"))
			if f == nil && it.kind == "" {
				f = &failure{code: "ErrorInvalidRequest", text: "ewstest updates only calendar items, contacts and tasks."}
			}
			if f == nil && resolution == "NeverOverwrite" && ref.attr("ChangeKey") != "" && ref.attr("ChangeKey") != it.changeKey() {
				f = &failure{code: "ErrorIrresolvableConflict", text: "The send or update operation could not be performed because the change key passed in the request does not match the current change key for the item."}
			}
		}
		if f != nil {
			b.WriteString(errorMessage("UpdateItem", *f))
			continue
		}
		before := it.seriesKey()
		for _, u := range ic.child("Updates").Children {
			it.apply(u)
		}
		if it.master == "" && before != it.seriesKey() {
			// A new start or pattern makes a new series: Exchange drops the exceptions.
			for _, id := range it.occurrences {
				delete(m.items, id)
			}
			it.occurrences, it.deletedOccurrences = nil, nil
		}
		it.setChanged()
		if it.master == "" {
			m.noteUpdate(it)
		}
		b.WriteString(successMessage("UpdateItem", `<m:Items><t:`+it.kind+`>`+it.idXML()+`</t:`+it.kind+`></m:Items><m:ConflictResults><t:Count>0</t:Count></m:ConflictResults>`))
	}
	return b.String(), nil
}

func (it *item) seriesKey() string {
	var b strings.Builder
	for _, name := range []string{"Start", "StartTimeZone", "Recurrence"} {
		if p := it.prop(name); p != nil {
			b.WriteString(p.String())
		}
	}
	return b.String()
}

// indexedCollections maps an IndexedFieldURI's FieldURI to its collection.
var indexedCollections = map[string]string{"contacts:EmailAddress": "EmailAddresses", "contacts:PhoneNumber": "PhoneNumbers",
	"contacts:ImAddress": "ImAddresses"}

// apply applies one SetItemField or DeleteItemField.
func (it *item) apply(u *node) {
	if len(u.Children) == 0 {
		return
	}
	uri := u.Children[0]
	var value *node
	if u.Name == "SetItemField" && len(u.Children) > 1 && len(u.Children[1].Children) > 0 {
		value = u.Children[1].Children[0]
	}
	switch uri.Name {
	case "FieldURI":
		name := uri.attr("FieldURI")
		name = name[strings.LastIndexByte(name, ':')+1:]
		it.replace(func(p *node) bool { return p.Name == name }, value)
	case "ExtendedFieldURI":
		it.replace(func(p *node) bool { return p.Name == "ExtendedProperty" && sameURI(p.child("ExtendedFieldURI"), uri) }, value)
	case "IndexedFieldURI":
		field, key := uri.attr("FieldURI"), uri.attr("FieldIndex")
		collection, part := indexedCollections[field], ""
		if rest, ok := strings.CutPrefix(field, "contacts:PhysicalAddress:"); ok {
			collection, part = "PhysicalAddresses", rest
		}
		coll := it.prop(collection)
		if coll == nil {
			if value == nil {
				return
			}
			coll = &node{Name: collection}
			it.props = append(it.props, coll)
		}
		var entry *node
		for _, e := range coll.Children {
			if e.attr("Key") == key {
				entry = e
			}
		}
		var newEntry *node
		if value != nil && len(value.Children) > 0 {
			newEntry = value.Children[0]
		}
		switch {
		case part == "" && newEntry != nil && entry != nil:
			entry.Text = newEntry.Text
		case part == "" && newEntry != nil:
			coll.Children = append(coll.Children, newEntry.clone())
		case part == "":
			coll.Children = without(coll.Children, entry)
		default:
			if entry == nil {
				if newEntry == nil {
					return
				}
				entry = &node{Name: "Entry", Attrs: []xml.Attr{{Name: xml.Name{Local: "Key"}, Value: key}}}
				coll.Children = append(coll.Children, entry)
			}
			var sub *node
			if newEntry != nil {
				sub = newEntry.child(part)
			}
			replaceIn(&entry.Children, func(p *node) bool { return p.Name == part }, sub)
			if len(entry.Children) == 0 {
				coll.Children = without(coll.Children, entry)
			}
		}
		if len(coll.Children) == 0 {
			it.props = without(it.props, coll)
		}
	}
}

func (it *item) replace(match func(*node) bool, value *node) { replaceIn(&it.props, match, value) }

func replaceIn(list *[]*node, match func(*node) bool, value *node) {
	for i, p := range *list {
		if match(p) {
			if value == nil {
				*list = append((*list)[:i], (*list)[i+1:]...)
			} else {
				(*list)[i] = value.clone()
			}
			return
		}
	}
	if value != nil {
		*list = append(*list, value.clone())
	}
}

func without(list []*node, n *node) []*node {
	for i, p := range list {
		if p == n {
			return append(list[:i], list[i+1:]...)
		}
	}
	return list
}

// findItem answers FindItem on a folder, with no restriction or an IsEqualTo
// of an ExtendedFieldURI and a constant.
func (c *call) findItem(op *operation, raw []byte) (string, *failure) {
	m, fo, f := c.folder(op.ParentFolderIDs)
	if f != nil {
		return "", f
	}
	var req actRequest
	if err := xml.Unmarshal(raw, &req); err != nil {
		return "", &failure{code: "ErrorSchemaValidation", text: "The request failed schema validation.", fault: true}
	}
	restriction := req.Body.Op.child("Restriction")
	var uri *node
	var want string
	if restriction != nil {
		eq := restriction.child("IsEqualTo")
		uri = eq.child("ExtendedFieldURI")
		if eq == nil || uri == nil {
			return "", &failure{code: "ErrorInvalidRequest", text: "ewstest restricts FindItem only with IsEqualTo on an extended property."}
		}
		want = eq.child("FieldURIOrConstant").child("Constant").attr("Value")
	}
	var b strings.Builder
	n := 0
	for _, ch := range m.journal {
		it := m.items[ch.item]
		if !ch.create || ch.folder != fo.id || it == nil || it.folder != fo.id || it.master != "" {
			continue
		}
		if uri != nil {
			match := false
			for _, p := range it.props {
				if p.Name == "ExtendedProperty" && sameURI(p.child("ExtendedFieldURI"), uri) && p.child("Value").text() == want {
					match = true
				}
			}
			if !match {
				continue
			}
		}
		kind := it.kind
		if kind == "" {
			kind = "Message"
		}
		n++
		b.WriteString(`<t:` + kind + `>` + it.idXML() + `</t:` + kind + `>`)
	}
	return successMessage("FindItem", fmt.Sprintf(`<m:RootFolder TotalItemsInView="%d" IncludesLastItemInRange="true"><t:Items>%s</t:Items></m:RootFolder>`, n, b.String())), nil
}

// Items returns the subjects (display names for contacts) of the items of an
// ACT folder ("calendar", "contacts", "tasks"), by id.
func (s *Server) Items(address, folderName string) map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, f := s.folderLocked(address, folderName)
	if f == nil {
		return nil
	}
	out := map[string]string{}
	for _, it := range m.items {
		if it.folder == f.id && it.kind != "" && it.master == "" {
			name := it.prop("Subject").text()
			if it.kind == "Contact" {
				name = it.prop("DisplayName").text()
			}
			out[it.id] = name
		}
	}
	return out
}

// Touch changes an ACT item's subject as another client would, giving it a
// new ChangeKey.
func (s *Server) Touch(address, id, subject string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.mailboxes[strings.ToLower(address)]
	if m == nil || m.items[id] == nil || m.items[id].kind == "" {
		return false
	}
	it := m.items[id]
	name := "Subject"
	if it.kind == "Contact" {
		name = "DisplayName"
	}
	it.replace(func(p *node) bool { return p.Name == name }, &node{Name: name, Text: subject})
	it.setChanged()
	m.noteUpdate(it)
	return true
}
