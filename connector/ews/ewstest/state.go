package ewstest

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/mail"
	"sort"
	"strings"
	"time"
)

// mailbox is one mailbox's folders, items, change journal and sync states.
type mailbox struct {
	address string
	folders map[string]*folder // by id
	items   map[string]*item   // by id
	journal []change
	states  map[string]syncPosition // token → position
}

type folder struct {
	id, name, parent, distinguished string
}

type item struct {
	id, folder string
	mime       []byte
	received   time.Time

	// kind is the element of a calendar item, contact or task ("CalendarItem",
	// "Contact", "Task"), "" for a message; props its properties as written.
	kind     string
	props    []*node
	version  int
	modified time.Time
	// A series master's modified occurrences (InstanceIndex → item id) and the
	// original starts of its deleted ones; an occurrence's master and start.
	occurrences        map[int]string
	deletedOccurrences []time.Time
	master             string
	originalStart      time.Time
}

// change is one entry of the journal: an item created in or removed from a folder.
type change struct {
	seq    int
	folder string
	create bool
	update bool // an item's properties changed (create is false)
	item   string
}

// syncPosition is what a sync state token stands for.
type syncPosition struct {
	folder string
	seq    int
}

// Message is an item as tests see it.
type Message struct {
	ID       string
	Subject  string
	MIME     []byte
	Received time.Time
}

var distinguishedFolders = []struct{ id, name, parent string }{
	{"msgfolderroot", "Top of Information Store", ""},
	{"inbox", "Inbox", "msgfolderroot"},
	{"sentitems", "Sent Items", "msgfolderroot"},
	{"deleteditems", "Deleted Items", "msgfolderroot"},
	{"drafts", "Drafts", "msgfolderroot"},
	{"calendar", "Calendar", "msgfolderroot"},
	{"contacts", "Contacts", "msgfolderroot"},
	{"tasks", "Tasks", "msgfolderroot"},
}

func (s *Server) mailboxLocked(address string) *mailbox {
	if m := s.mailboxes[address]; m != nil {
		return m
	}
	m := &mailbox{address: address, folders: map[string]*folder{}, items: map[string]*item{}, states: map[string]syncPosition{}}
	ids := map[string]string{}
	for _, d := range distinguishedFolders {
		s.nextID++
		id := encodeID("F", address, s.nextID)
		ids[d.id] = id
		m.folders[id] = &folder{id: id, name: d.name, parent: ids[d.parent], distinguished: d.id}
	}
	s.mailboxes[address] = m
	return m
}

// distinguished returns the id of a distinguished folder.
func (m *mailbox) distinguished(name string) string {
	for _, f := range m.folders {
		if f.distinguished == strings.ToLower(name) {
			return f.id
		}
	}
	return ""
}

// folderLocked returns the mailbox of address and its folder called name (see
// byName); either is nil when it does not exist. s.mu is held.
func (s *Server) folderLocked(address, name string) (*mailbox, *folder) {
	m := s.mailboxes[strings.ToLower(address)]
	if m == nil {
		return nil, nil
	}
	return m, m.byName(name)
}

// byName finds a folder by distinguished id or display name.
func (m *mailbox) byName(name string) *folder {
	if id := m.distinguished(name); id != "" {
		return m.folders[id]
	}
	for _, f := range m.folders {
		if strings.EqualFold(f.name, name) {
			return f
		}
	}
	return nil
}

func (m *mailbox) seq() int { return len(m.journal) }

func (m *mailbox) note(folder, itemID string, create bool) {
	m.journal = append(m.journal, change{seq: len(m.journal) + 1, folder: folder, create: create, item: itemID})
}

func (s *Server) addItemLocked(m *mailbox, folderID string, mime []byte, received time.Time) *item {
	s.nextID++
	it := &item{id: encodeID("I", m.address, s.nextID), folder: folderID, mime: append([]byte(nil), mime...), received: received}
	m.items[it.id] = it
	m.note(folderID, it.id, true)
	return it
}

func (m *mailbox) moveItem(it *item, to string) {
	m.note(it.folder, it.id, false)
	it.folder = to
	m.note(to, it.id, true)
}

func (m *mailbox) removeItem(it *item) {
	m.note(it.folder, it.id, false)
	delete(m.items, it.id)
}

// newState stores a position and returns its token.
func (m *mailbox) newState(p syncPosition) string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	token := "H4sIAAAAAAAEAO29B2AcSZ" + base64.StdEncoding.EncodeToString(b)
	m.states[token] = p
	return token
}

// Deliver puts a message into a folder of a mailbox ("inbox", or a display name).
func (s *Server) Deliver(address, folderName string, mime []byte, received time.Time) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, f := s.folderLocked(address, folderName)
	if m == nil {
		return "", fmt.Errorf("ewstest: no mailbox %s", address)
	}
	if f == nil {
		return "", fmt.Errorf("ewstest: %s has no folder %q", address, folderName)
	}
	return s.addItemLocked(m, f.id, mime, received).id, nil
}

// Remove deletes an item outright, as a user emptying it from their mailbox would.
func (s *Server) Remove(address, id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.mailboxes[strings.ToLower(address)]
	if m == nil || m.items[id] == nil {
		return false
	}
	m.removeItem(m.items[id])
	return true
}

// Messages returns the items of a folder ("inbox", "sentitems", or a display
// name), oldest first; nil when the folder does not exist.
func (s *Server) Messages(address, folderName string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, f := s.folderLocked(address, folderName)
	if f == nil {
		return nil
	}
	var out []Message
	for _, c := range m.journal {
		if !c.create || c.folder != f.id {
			continue
		}
		it := m.items[c.item]
		if it == nil || it.folder != f.id {
			continue
		}
		msg := Message{ID: it.id, MIME: it.mime, Received: it.received}
		if parsed, err := mail.ReadMessage(strings.NewReader(string(it.mime))); err == nil {
			msg.Subject = parsed.Header.Get("Subject")
		}
		out = append(out, msg)
	}
	// An item moved back and forth is listed once, at its last arrival.
	seen := map[string]int{}
	var uniq []Message
	for _, msg := range out {
		if i, ok := seen[msg.ID]; ok {
			uniq[i] = msg
			continue
		}
		seen[msg.ID] = len(uniq)
		uniq = append(uniq, msg)
	}
	return uniq
}

// Folders returns the display names of a mailbox's folders, sorted.
func (s *Server) Folders(address string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.mailboxes[strings.ToLower(address)]
	if m == nil {
		return nil
	}
	var names []string
	for _, f := range m.folders {
		names = append(names, f.name)
	}
	sort.Strings(names)
	return names
}
