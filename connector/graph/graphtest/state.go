package graphtest

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	gomime "mime"
	"net/http"
	"net/mail"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The well-known folder names of Graph this fake creates in every mailbox.
var wellKnownFolders = []struct{ name, display string }{
	{"msgfolderroot", "Top of Information Store"},
	{"inbox", "Inbox"},
	{"sentitems", "Sent Items"},
	{"drafts", "Drafts"},
	{"deleteditems", "Deleted Items"},
}

// ErrNoMailbox is returned for an address that is not a mailbox of the fake.
var ErrNoMailbox = errors.New("graphtest: no such mailbox")

// ErrNoFolder is returned for a folder a mailbox does not hold.
var ErrNoFolder = errors.New("graphtest: no such folder")

// ErrNoMessage is returned for a message id a mailbox does not hold.
var ErrNoMessage = errors.New("graphtest: no such message")

type mailbox struct {
	address string
	tenant  string

	folders   []*folder // in creation order
	messages  map[string]*message
	seq       int64 // the change log's position: each change takes the next number
	removals  []removal
	idCounter int

	requests      int
	apps          map[string]*appUse // by Principal.AppID
	maxConcurrent int
	throttleN     int
	throttleAfter time.Duration
	unavailN      int
	unavailAfter  time.Duration
	replayNext    bool
	lastPage      []entry // the entries of the last delta page served
	restDisabled  bool

	// ACT state, made on first use (actInit).
	act         map[string]*actItem // events, contacts and tasks by id
	actRemovals []actRemoval
	todoLists   []*todoList
	calendarID  string
	calendarExt map[string]string // the default calendar's single-value extended properties
}

// appUse is what one application does with a mailbox: Graph's limits count
// per application and mailbox.
type appUse struct {
	inflight int
	recent   []time.Time // requests in the RequestLimit window
}

func (mb *mailbox) use(app string) *appUse {
	u, ok := mb.apps[app]
	if !ok {
		u = &appUse{}
		if mb.apps == nil {
			mb.apps = map[string]*appUse{}
		}
		mb.apps[app] = u
	}
	return u
}

type folder struct {
	id        string
	wellKnown string
	display   string
	parent    string // folder id; "" for msgfolderroot
}

type message struct {
	id       string // immutable id
	folder   string // folder id
	moves    int    // how often the message changed folder: part of its regular id
	seq      int64  // the change that last touched it
	placed   int64  // the change that put it in its folder: the folder's order
	received time.Time
	sent     time.Time // the Date header; zero without one
	subject  string
	msgID    string
	from     mail.Address
	isRead   bool
	mime     []byte
}

// removal is a message leaving a folder: moved away or deleted.
type removal struct {
	seq    int64
	folder string
	id     string // immutable id
	moves  int    // the message's moves while it was in the folder
}

// Message is a snapshot of a message of the fake.
type Message struct {
	ID                string // the immutable id
	Folder            string // display name of its folder ("Inbox", "Sent Items"…)
	FolderID          string
	ReceivedAt        time.Time
	Subject           string
	InternetMessageID string
	From              string
	IsRead            bool
	MIME              []byte
}

// Folder is a snapshot of a mail folder of the fake.
type Folder struct {
	ID            string
	DisplayName   string
	WellKnownName string // "inbox", "sentitems"…; "" for folders created later
	ParentID      string
	Total, Unread int
}

func newID(prefix string) string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	// Graph ids are base64 text that may hold '-', '_' and end with '=': keep
	// them, so a client that mangles ids is caught.
	return prefix + base64.URLEncoding.EncodeToString(b[:22])
}

// AddMailbox creates a mailbox with the well-known folders msgfolderroot, inbox,
// sentitems, drafts and deleteditems. Adding an existing address changes
// nothing but its tenant.
func (s *Server) AddMailbox(address, tenantID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := strings.ToLower(address)
	if mb, ok := s.mailboxes[key]; ok {
		mb.tenant = tenantID
		return
	}
	mb := &mailbox{address: address, tenant: tenantID, messages: map[string]*message{}}
	root := ""
	for _, wk := range wellKnownFolders {
		f := &folder{id: newID("AAMkAGFolder"), wellKnown: wk.name, display: wk.display, parent: root}
		if wk.name == "msgfolderroot" {
			root = f.id
		}
		mb.folders = append(mb.folders, f)
	}
	s.mailboxes[key] = mb
}

func (s *Server) mailbox(address string) (*mailbox, error) {
	mb, ok := s.mailboxes[strings.ToLower(address)]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNoMailbox, address)
	}
	return mb, nil
}

// folder finds a folder by well-known name, id or (case-insensitive) display name.
func (mb *mailbox) folder(name string) *folder {
	for _, f := range mb.folders {
		if f.id == name || (f.wellKnown != "" && strings.EqualFold(f.wellKnown, name)) {
			return f
		}
	}
	for _, f := range mb.folders {
		if strings.EqualFold(f.display, name) {
			return f
		}
	}
	return nil
}

// folderByRef finds a folder as the API names it: a well-known name or an id.
func (mb *mailbox) folderByRef(ref string) *folder {
	for _, f := range mb.folders {
		if f.id == ref || (f.wellKnown != "" && strings.EqualFold(f.wellKnown, ref)) {
			return f
		}
	}
	return nil
}

func (mb *mailbox) folderByID(id string) *folder {
	for _, f := range mb.folders {
		if f.id == id {
			return f
		}
	}
	return nil
}

var wordDecoder = new(gomime.WordDecoder)

// decodeHeader decodes RFC 2047 words, keeping the raw text when it cannot.
func decodeHeader(v string) string {
	if out, err := wordDecoder.DecodeHeader(v); err == nil {
		return out
	}
	return v
}

func (mb *mailbox) root() *folder { return mb.folders[0] }

func (mb *mailbox) next() int64 { mb.seq++; return mb.seq }

// regularID is the id Graph gives without Prefer: IdType="ImmutableId": it
// changes when the message changes folder.
func regularID(immutable string, moves int) string {
	return "AQMk" + base64.RawURLEncoding.EncodeToString([]byte(immutable+"|"+strconv.Itoa(moves)))
}

// lookup finds a message by its immutable id, or by a regular id that is still
// current (a regular id from before a move no longer resolves, as in Graph).
func (mb *mailbox) lookup(id string) *message {
	if m, ok := mb.messages[id]; ok {
		return m
	}
	rest, ok := strings.CutPrefix(id, "AQMk")
	if !ok {
		return nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return nil
	}
	imm, moves, ok := strings.Cut(string(raw), "|")
	if !ok {
		return nil
	}
	m, found := mb.messages[imm]
	if !found || strconv.Itoa(m.moves) != moves {
		return nil
	}
	return m
}

// add stores a message in folder f.
func (mb *mailbox) add(f *folder, mime []byte, received time.Time) (*message, error) {
	parsed, err := mail.ReadMessage(bytes.NewReader(mime))
	if err != nil {
		return nil, fmt.Errorf("graphtest: invalid MIME: %w", err)
	}
	m := &message{
		id:       newID("AAMkAGMsg"),
		folder:   f.id,
		received: received.UTC().Truncate(time.Second),
		mime:     append([]byte(nil), mime...),
		msgID:    strings.TrimSpace(parsed.Header.Get("Message-Id")),
	}
	m.subject = decodeHeader(parsed.Header.Get("Subject"))
	if date, err := parsed.Header.Date(); err == nil {
		m.sent = date
	}
	if from, err := parsed.Header.AddressList("From"); err == nil && len(from) > 0 {
		m.from = *from[0]
	}
	m.seq = mb.next()
	m.placed = m.seq
	mb.messages[m.id] = m
	return m, nil
}

// move takes a message to folder f, recording its leaving the old folder.
func (mb *mailbox) move(m *message, f *folder) {
	if m.folder == f.id {
		m.seq = mb.next()
		return
	}
	mb.removals = append(mb.removals, removal{seq: mb.next(), folder: m.folder, id: m.id, moves: m.moves})
	m.folder = f.id
	m.moves++
	m.seq = mb.next()
	m.placed = m.seq
}

// remove deletes a message for good.
func (mb *mailbox) remove(m *message) {
	mb.removals = append(mb.removals, removal{seq: mb.next(), folder: m.folder, id: m.id, moves: m.moves})
	delete(mb.messages, m.id)
}

func (mb *mailbox) inFolder(f *folder) []*message {
	var out []*message
	for _, m := range mb.messages {
		if m.folder == f.id {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b *message) int { return int(a.placed - b.placed) })
	return out
}

func (mb *mailbox) snapshotFolder(f *folder) Folder {
	out := Folder{ID: f.id, DisplayName: f.display, WellKnownName: f.wellKnown, ParentID: f.parent}
	for _, m := range mb.messages {
		if m.folder == f.id {
			out.Total++
			if !m.isRead {
				out.Unread++
			}
		}
	}
	return out
}

// Deliver puts a message into a folder of a mailbox (a well-known name, an id or
// a display name) as if it had arrived at received, and returns its immutable id.
func (s *Server) Deliver(address, folderName string, mime []byte, received time.Time) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb, err := s.mailbox(address)
	if err != nil {
		return "", err
	}
	f := mb.folder(folderName)
	if f == nil {
		return "", fmt.Errorf("%w: %s in %s", ErrNoFolder, folderName, address)
	}
	m, err := mb.add(f, mime, received)
	if err != nil {
		return "", err
	}
	return m.id, nil
}

// Messages is a snapshot of the messages in a folder of a mailbox (a
// well-known name, an id or a display name), in the order they arrived there.
// It is empty for an unknown mailbox or folder.
func (s *Server) Messages(address, folderName string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb, err := s.mailbox(address)
	if err != nil {
		return nil
	}
	f := mb.folder(folderName)
	if f == nil {
		return nil
	}
	var out []Message
	for _, m := range mb.inFolder(f) {
		out = append(out, Message{
			ID: m.id, Folder: f.display, FolderID: f.id, ReceivedAt: m.received, Subject: m.subject,
			InternetMessageID: m.msgID, From: m.from.Address, IsRead: m.isRead, MIME: append([]byte(nil), m.mime...),
		})
	}
	return out
}

// FolderByName finds a folder of a mailbox by display name (case-insensitive),
// well-known name or id.
func (s *Server) FolderByName(address, displayName string) (Folder, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb, err := s.mailbox(address)
	if err != nil {
		return Folder{}, false
	}
	f := mb.folder(displayName)
	if f == nil {
		return Folder{}, false
	}
	return mb.snapshotFolder(f), true
}

// Update marks a message changed, as when a user reads it (isRead is toggled):
// it comes back in the next delta of its folder.
func (s *Server) Update(address, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb, err := s.mailbox(address)
	if err != nil {
		return err
	}
	m := mb.lookup(id)
	if m == nil {
		return fmt.Errorf("%w: %s", ErrNoMessage, id)
	}
	m.isRead = !m.isRead
	m.seq = mb.next()
	return nil
}

// AddFolder creates a folder under msgfolderroot, as a user of Outlook would;
// an existing display name (in any case) is an error.
func (s *Server) AddFolder(address, displayName string) (Folder, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb, err := s.mailbox(address)
	if err != nil {
		return Folder{}, err
	}
	f, err := mb.addFolder(mb.root(), displayName)
	if err != nil {
		return Folder{}, err
	}
	return mb.snapshotFolder(f), nil
}

// ErrFolderExists is returned for a folder name its parent already holds.
var ErrFolderExists = errors.New("graphtest: a folder with that name already exists")

func (mb *mailbox) addFolder(parent *folder, displayName string) (*folder, error) {
	if strings.TrimSpace(displayName) == "" {
		return nil, fmt.Errorf("graphtest: a folder needs a display name")
	}
	for _, f := range mb.folders {
		if f.parent == parent.id && strings.EqualFold(f.display, displayName) {
			return nil, fmt.Errorf("%w: %s", ErrFolderExists, displayName)
		}
	}
	f := &folder{id: newID("AAMkAGFolder"), display: displayName, parent: parent.id}
	mb.folders = append(mb.folders, f)
	return f, nil
}

// Move takes a message to another folder (a well-known name, an id or a display
// name), as a user of Outlook would.
func (s *Server) Move(address, id, folderName string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb, err := s.mailbox(address)
	if err != nil {
		return err
	}
	m := mb.lookup(id)
	if m == nil {
		return fmt.Errorf("%w: %s", ErrNoMessage, id)
	}
	f := mb.folder(folderName)
	if f == nil {
		return fmt.Errorf("%w: %s in %s", ErrNoFolder, folderName, address)
	}
	mb.move(m, f)
	return nil
}

// Remove deletes a message for good (a hard delete): its folder's next delta
// reports it @removed.
func (s *Server) Remove(address, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb, err := s.mailbox(address)
	if err != nil {
		return err
	}
	m := mb.lookup(id)
	if m == nil {
		return fmt.Errorf("%w: %s", ErrNoMessage, id)
	}
	mb.remove(m)
	return nil
}

// Throttle makes the next n requests for the mailbox fail with 429
// ApplicationThrottled and Retry-After (in whole seconds, at least 1).
func (s *Server) Throttle(address string, n int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if mb, err := s.mailbox(address); err == nil {
		mb.throttleN, mb.throttleAfter = n, retryAfter
	}
}

// Unavailable makes the next n requests for the mailbox fail with 503, with
// Retry-After when retryAfter > 0.
func (s *Server) Unavailable(address string, n int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if mb, err := s.mailbox(address); err == nil {
		mb.unavailN, mb.unavailAfter = n, retryAfter
	}
}

// ExpireSyncState expires every delta and skip token handed out for the mailbox
// so far: requesting one answers 410 SyncStateNotFound.
func (s *Server) ExpireSyncState(address string) {
	s.InvalidateSyncState(address, http.StatusGone, "SyncStateNotFound")
}

// InvalidateSyncState makes every delta and skip token handed out for the
// mailbox so far fail with status and code: Graph documents 410
// SyncStateNotFound, 410 SyncStateInvalid and 400 resyncRequired, all meaning
// "start again without a token".
func (s *Server) InvalidateSyncState(address string, status int, code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb, err := s.mailbox(address)
	if err != nil {
		return
	}
	for _, st := range s.delta {
		if st.mailbox == mb && st.invalid == nil {
			st.invalid = &failure{status: status, code: code}
		}
	}
}

// DisableREST makes the mailbox one Graph cannot reach (inactive, or hosted on
// premises): its requests get 404 MailboxNotEnabledForRESTAPI.
func (s *Server) DisableREST(address string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if mb, err := s.mailbox(address); err == nil {
		mb.restDisabled = true
	}
}

// ReplayNextPage makes the next delta page served for the mailbox repeat, in
// front of its own items, the items of the page served before it.
func (s *Server) ReplayNextPage(address string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if mb, err := s.mailbox(address); err == nil {
		mb.replayNext = true
	}
}

// Requests is the number of requests that reached the mailbox (each $batch item
// counts), throttled ones included.
func (s *Server) Requests(address string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if mb, err := s.mailbox(address); err == nil {
		return mb.requests
	}
	return 0
}

// MaxConcurrent is the largest number of requests of one application for the
// mailbox served at once so far (requests refused for concurrency do not count).
func (s *Server) MaxConcurrent(address string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if mb, err := s.mailbox(address); err == nil {
		return mb.maxConcurrent
	}
	return 0
}
