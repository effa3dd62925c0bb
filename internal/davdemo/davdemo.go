// Package davdemo is an in-memory CalDAV/CardDAV server for tests and the
// quickstart: one account with one calendar (events and tasks) and one address
// book, on go-webdav's caldav and carddav handlers. It honours If-Match and
// If-None-Match on writes and deletes (go-webdav's handlers pass neither to a
// DELETE), refuses a second item with a UID its collection holds (CalDAV's
// no-uid-conflict, as 412 on the path that holds it would not name it), and keeps
// dead properties set by PROPPATCH on its collections, as Radicale and Xandikos
// do, for the ACT owner marker.
//
// Paths: the principal is /<user>/, the calendars /<user>/calendars/events/
// (VEVENT) and /<user>/calendars/tasks/ (VTODO), the address book
// /<user>/contacts/default/. It is safe for concurrent use.
package davdemo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-ical"
	"github.com/emersion/go-vcard"
	"github.com/emersion/go-webdav"
	"github.com/emersion/go-webdav/caldav"
	"github.com/emersion/go-webdav/carddav"
)

// Server is the demo server; it is an http.Handler.
type Server struct {
	// MaxResourceSize, when set, refuses larger items with 413, as a server with a
	// size limit does. Set it before serving.
	MaxResourceSize int

	user, password string
	cal, card      http.Handler

	mu      sync.Mutex
	objects map[string]*object             // by path
	dead    map[string]map[xml.Name]string // collection path → dead properties (inner XML)
	now     func() time.Time
}

type object struct {
	data []byte
	etag string
	mod  time.Time
	uid  string
}

// New returns a server for one account.
func New(user, password string) *Server {
	s := &Server{user: user, password: password, objects: map[string]*object{}, dead: map[string]map[xml.Name]string{}, now: time.Now}
	s.cal = &caldav.Handler{Backend: calBackend{s}}
	s.card = &carddav.Handler{Backend: cardBackend{s}}
	return s
}

func (s *Server) principal() string   { return "/" + s.user + "/" }
func (s *Server) calHome() string     { return s.principal() + "calendars/" }
func (s *Server) cardHome() string    { return s.principal() + "contacts/" }
func (s *Server) events() string      { return s.calHome() + "events/" }
func (s *Server) tasks() string       { return s.calHome() + "tasks/" }
func (s *Server) addressBook() string { return s.cardHome() + "default/" }

// SetNow sets the clock the server stamps items with (getlastmodified); tests
// use it to order the server's changes against the host's.
func (s *Server) SetNow(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// Count returns how many items the server holds in the collection "events",
// "tasks" or "contacts", for tests that count what was created.
func (s *Server) Count(collection string) int {
	prefix := map[string]string{"events": s.events(), "tasks": s.tasks(), "contacts": s.addressBook()}[collection]
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for p := range s.objects {
		if strings.HasPrefix(p, prefix) {
			n++
		}
	}
	return n
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	user, password, ok := r.BasicAuth()
	if !ok || user != s.user || password != s.password {
		w.Header().Set("WWW-Authenticate", `Basic realm="davdemo"`)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	p := r.URL.Path
	switch {
	case r.Method == "PROPPATCH" && s.isCollection(p):
		s.proppatch(w, r)
		return
	case r.Method == "PROPFIND" && (p == "/" || dirOf(p) == s.principal()):
		s.propfindPrincipal(w, r)
		return
	case r.Method == "PROPFIND" && s.isCollection(p):
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if s.answerDead(w, p, body) {
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
	case r.Method == http.MethodDelete:
		if !s.checkDelete(w, r) {
			return
		}
	}
	if strings.HasPrefix(p, s.cardHome()) {
		s.card.ServeHTTP(w, r)
		return
	}
	s.cal.ServeHTTP(w, r)
}

func dirOf(p string) string {
	if !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return p
}

func (s *Server) isCollection(p string) bool {
	p = dirOf(p)
	return p == s.events() || p == s.tasks() || p == s.addressBook()
}

// propfindPrincipal answers discovery at the root and the principal: what
// go-webdav's handlers each answer only half of.
func (s *Server) propfindPrincipal(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	w.WriteHeader(http.StatusMultiStatus)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="utf-8"?>
<D:multistatus xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:A="urn:ietf:params:xml:ns:carddav">
<D:response><D:href>%s</D:href><D:propstat><D:prop>
<D:current-user-principal><D:href>%s</D:href></D:current-user-principal>
<C:calendar-home-set><D:href>%s</D:href></C:calendar-home-set>
<A:addressbook-home-set><D:href>%s</D:href></A:addressbook-home-set>
<D:resourcetype><D:collection/></D:resourcetype>
</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>
</D:multistatus>`, r.URL.Path, s.principal(), s.calHome(), s.cardHome())
}

type propertyUpdate struct {
	Set []struct {
		Prop struct {
			Any []struct {
				XMLName xml.Name
				Inner   string `xml:",innerxml"`
			} `xml:",any"`
		} `xml:"DAV: prop"`
	} `xml:"DAV: set"`
	Remove []struct {
		Prop struct {
			Any []struct {
				XMLName xml.Name
			} `xml:",any"`
		} `xml:"DAV: prop"`
	} `xml:"DAV: remove"`
}

func (s *Server) proppatch(w http.ResponseWriter, r *http.Request) {
	var u propertyUpdate
	if err := xml.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&u); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	p := dirOf(r.URL.Path)
	var names []xml.Name
	s.mu.Lock()
	props := s.dead[p]
	if props == nil {
		props = map[xml.Name]string{}
		s.dead[p] = props
	}
	for _, set := range u.Set {
		for _, a := range set.Prop.Any {
			props[a.XMLName] = a.Inner
			names = append(names, a.XMLName)
		}
	}
	for _, rm := range u.Remove {
		for _, a := range rm.Prop.Any {
			delete(props, a.XMLName)
			names = append(names, a.XMLName)
		}
	}
	s.mu.Unlock()
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, `<x:%s xmlns:x="%s"/>`, n.Local, xmlEscape(n.Space))
	}
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	w.WriteHeader(http.StatusMultiStatus)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="utf-8"?><D:multistatus xmlns:D="DAV:"><D:response><D:href>%s</D:href>`+
		`<D:propstat><D:prop>%s</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response></D:multistatus>`, p, b.String())
}

type propfindRequest struct {
	Prop struct {
		Any []struct {
			XMLName xml.Name
		} `xml:",any"`
	} `xml:"DAV: prop"`
}

// answerDead answers a depth-0 PROPFIND that asks only for dead properties.
func (s *Server) answerDead(w http.ResponseWriter, p string, body []byte) bool {
	var req propfindRequest
	if xml.Unmarshal(body, &req) != nil || len(req.Prop.Any) == 0 {
		return false
	}
	for _, a := range req.Prop.Any {
		if a.XMLName.Space == "DAV:" || strings.HasPrefix(a.XMLName.Space, "urn:ietf:") || strings.HasPrefix(a.XMLName.Space, "http://calendarserver.org/") {
			return false
		}
	}
	s.mu.Lock()
	props := s.dead[dirOf(p)]
	var found, missing strings.Builder
	for _, a := range req.Prop.Any {
		if v, ok := props[a.XMLName]; ok {
			fmt.Fprintf(&found, `<x:%s xmlns:x="%s">%s</x:%s>`, a.XMLName.Local, xmlEscape(a.XMLName.Space), v, a.XMLName.Local)
		} else {
			fmt.Fprintf(&missing, `<x:%s xmlns:x="%s"/>`, a.XMLName.Local, xmlEscape(a.XMLName.Space))
		}
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	w.WriteHeader(http.StatusMultiStatus)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="utf-8"?><D:multistatus xmlns:D="DAV:"><D:response><D:href>%s</D:href>`, dirOf(p))
	if found.Len() > 0 {
		fmt.Fprintf(w, `<D:propstat><D:prop>%s</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>`, found.String())
	}
	if missing.Len() > 0 {
		fmt.Fprintf(w, `<D:propstat><D:prop>%s</D:prop><D:status>HTTP/1.1 404 Not Found</D:status></D:propstat>`, missing.String())
	}
	fmt.Fprint(w, `</D:response></D:multistatus>`)
	return true
}

func xmlEscape(v string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(v))
	return b.String()
}

// checkDelete applies If-Match to a DELETE, which go-webdav's handlers ignore.
func (s *Server) checkDelete(w http.ResponseWriter, r *http.Request) bool {
	im := webdav.ConditionalMatch(r.Header.Get("If-Match"))
	if !im.IsSet() {
		return true
	}
	s.mu.Lock()
	o := s.objects[r.URL.Path]
	s.mu.Unlock()
	if o == nil {
		http.Error(w, "not found", http.StatusNotFound)
		return false
	}
	if ok, _ := im.MatchETag(o.etag); !ok {
		http.Error(w, "precondition failed", http.StatusPreconditionFailed)
		return false
	}
	return true
}

// put stores data at p under the preconditions, refusing a UID another item of
// the collection holds.
func (s *Server) put(p string, data []byte, uid string, ifNoneMatch, ifMatch webdav.ConditionalMatch) (*object, error) {
	if !s.isCollection(path.Dir(p)) || strings.HasSuffix(p, "/") {
		return nil, webdav.NewHTTPError(http.StatusForbidden, fmt.Errorf("davdemo: %s is not an item of a collection", p))
	}
	if s.MaxResourceSize > 0 && len(data) > s.MaxResourceSize {
		return nil, webdav.NewHTTPError(http.StatusRequestEntityTooLarge, fmt.Errorf("davdemo: %d bytes is over the limit of %d", len(data), s.MaxResourceSize))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.objects[p]
	switch {
	case ifNoneMatch.IsWildcard() && old != nil:
		return nil, webdav.NewHTTPError(http.StatusPreconditionFailed, fmt.Errorf("davdemo: %s exists", p))
	case ifMatch.IsSet():
		if old == nil {
			return nil, webdav.NewHTTPError(http.StatusPreconditionFailed, fmt.Errorf("davdemo: %s does not exist", p))
		}
		if ok, _ := ifMatch.MatchETag(old.etag); !ok {
			return nil, webdav.NewHTTPError(http.StatusPreconditionFailed, fmt.Errorf("davdemo: %s changed", p))
		}
	}
	if uid != "" {
		dir := path.Dir(p) + "/"
		for q, o := range s.objects {
			if q != p && o.uid == uid && strings.HasPrefix(q, dir) {
				// As RFC 4791 §5.3.2.1 has it: the precondition, naming the holder.
				return nil, webdav.NewHTTPError(http.StatusConflict, fmt.Errorf(
					`<D:error xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><C:no-uid-conflict><D:href>%s</D:href></C:no-uid-conflict></D:error>`, xmlEscape(q)))
			}
		}
	}
	sum := sha256.Sum256(append([]byte(p+"\x00"), data...))
	o := &object{data: data, etag: hex.EncodeToString(sum[:8]), mod: s.now().UTC().Truncate(time.Second), uid: uid}
	if old != nil && old.etag == o.etag { // same content again: a new version all the same
		o.etag += "-" + fmt.Sprint(time.Now().UnixNano())
	}
	s.objects[p] = o
	return o, nil
}

func (s *Server) get(p string) (*object, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.objects[p]
	if o == nil {
		return nil, webdav.NewHTTPError(http.StatusNotFound, fmt.Errorf("davdemo: no %s", p))
	}
	return o, nil
}

func (s *Server) list(dir string) map[string]*object {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]*object{}
	for p, o := range s.objects {
		if strings.HasPrefix(p, dir) {
			out[p] = o
		}
	}
	return out
}

func (s *Server) remove(p string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.objects[p] == nil {
		return webdav.NewHTTPError(http.StatusNotFound, fmt.Errorf("davdemo: no %s", p))
	}
	delete(s.objects, p)
	return nil
}

func sortedPaths(m map[string]*object) []string {
	out := make([]string, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// calBackend is the CalDAV side.
type calBackend struct{ s *Server }

func (b calBackend) CurrentUserPrincipal(context.Context) (string, error) {
	return b.s.principal(), nil
}
func (b calBackend) CalendarHomeSetPath(context.Context) (string, error) { return b.s.calHome(), nil }
func (b calBackend) CreateCalendar(context.Context, *caldav.Calendar) error {
	return webdav.NewHTTPError(http.StatusForbidden, fmt.Errorf("davdemo: one calendar only"))
}

func (b calBackend) ListCalendars(context.Context) ([]caldav.Calendar, error) {
	return []caldav.Calendar{
		{Path: b.s.events(), Name: "Calendar", SupportedComponentSet: []string{"VEVENT"}},
		{Path: b.s.tasks(), Name: "Tasks", SupportedComponentSet: []string{"VTODO"}},
	}, nil
}

func (b calBackend) GetCalendar(ctx context.Context, p string) (*caldav.Calendar, error) {
	cals, _ := b.ListCalendars(ctx)
	for _, c := range cals {
		if c.Path == dirOf(p) {
			return &c, nil
		}
	}
	return nil, webdav.NewHTTPError(http.StatusNotFound, fmt.Errorf("davdemo: no calendar %s", p))
}

func (b calBackend) calendarObject(p string, o *object) (*caldav.CalendarObject, error) {
	cal, err := ical.NewDecoder(bytes.NewReader(o.data)).Decode()
	if err != nil {
		return nil, err
	}
	return &caldav.CalendarObject{Path: p, ModTime: o.mod, ContentLength: int64(len(o.data)), ETag: o.etag, Data: cal}, nil
}

func (b calBackend) GetCalendarObject(_ context.Context, p string, _ *caldav.CalendarCompRequest) (*caldav.CalendarObject, error) {
	o, err := b.s.get(p)
	if err != nil {
		return nil, err
	}
	return b.calendarObject(p, o)
}

func (b calBackend) ListCalendarObjects(_ context.Context, p string, _ *caldav.CalendarCompRequest) ([]caldav.CalendarObject, error) {
	objs := b.s.list(dirOf(p))
	var out []caldav.CalendarObject
	for _, q := range sortedPaths(objs) {
		co, err := b.calendarObject(q, objs[q])
		if err != nil {
			return nil, err
		}
		out = append(out, *co)
	}
	return out, nil
}

func (b calBackend) QueryCalendarObjects(ctx context.Context, p string, _ *caldav.CalendarQuery) ([]caldav.CalendarObject, error) {
	return b.ListCalendarObjects(ctx, p, nil)
}

func (b calBackend) PutCalendarObject(_ context.Context, p string, cal *ical.Calendar, opts *caldav.PutCalendarObjectOptions) (*caldav.CalendarObject, error) {
	var buf bytes.Buffer
	if err := ical.NewEncoder(&buf).Encode(cal); err != nil {
		return nil, webdav.NewHTTPError(http.StatusBadRequest, err)
	}
	uid := ""
	for _, c := range cal.Children {
		if v, err := c.Props.Text(ical.PropUID); err == nil && v != "" {
			uid = v
			break
		}
	}
	o, err := b.s.put(p, buf.Bytes(), uid, opts.IfNoneMatch, opts.IfMatch)
	if err != nil {
		return nil, err
	}
	return &caldav.CalendarObject{Path: p, ModTime: o.mod, ETag: o.etag}, nil
}

func (b calBackend) DeleteCalendarObject(_ context.Context, p string) error { return b.s.remove(p) }

// cardBackend is the CardDAV side.
type cardBackend struct{ s *Server }

func (b cardBackend) CurrentUserPrincipal(context.Context) (string, error) {
	return b.s.principal(), nil
}
func (b cardBackend) AddressBookHomeSetPath(context.Context) (string, error) {
	return b.s.cardHome(), nil
}

func (b cardBackend) book() carddav.AddressBook {
	return carddav.AddressBook{Path: b.s.addressBook(), Name: "Contacts"}
}

func (b cardBackend) ListAddressBooks(context.Context) ([]carddav.AddressBook, error) {
	return []carddav.AddressBook{b.book()}, nil
}

func (b cardBackend) GetAddressBook(_ context.Context, p string) (*carddav.AddressBook, error) {
	if dirOf(p) != b.s.addressBook() {
		return nil, webdav.NewHTTPError(http.StatusNotFound, fmt.Errorf("davdemo: no address book %s", p))
	}
	ab := b.book()
	return &ab, nil
}

func (b cardBackend) CreateAddressBook(context.Context, *carddav.AddressBook) error {
	return webdav.NewHTTPError(http.StatusForbidden, fmt.Errorf("davdemo: one address book only"))
}

func (b cardBackend) DeleteAddressBook(context.Context, string) error {
	return webdav.NewHTTPError(http.StatusForbidden, fmt.Errorf("davdemo: the address book stays"))
}

func (b cardBackend) addressObject(p string, o *object) (*carddav.AddressObject, error) {
	card, err := vcard.NewDecoder(bytes.NewReader(o.data)).Decode()
	if err != nil {
		return nil, err
	}
	return &carddav.AddressObject{Path: p, ModTime: o.mod, ContentLength: int64(len(o.data)), ETag: o.etag, Card: card}, nil
}

func (b cardBackend) GetAddressObject(_ context.Context, p string, _ *carddav.AddressDataRequest) (*carddav.AddressObject, error) {
	o, err := b.s.get(p)
	if err != nil {
		return nil, err
	}
	return b.addressObject(p, o)
}

func (b cardBackend) ListAddressObjects(_ context.Context, p string, _ *carddav.AddressDataRequest) ([]carddav.AddressObject, error) {
	objs := b.s.list(dirOf(p))
	var out []carddav.AddressObject
	for _, q := range sortedPaths(objs) {
		ao, err := b.addressObject(q, objs[q])
		if err != nil {
			return nil, err
		}
		out = append(out, *ao)
	}
	return out, nil
}

func (b cardBackend) QueryAddressObjects(ctx context.Context, p string, _ *carddav.AddressBookQuery) ([]carddav.AddressObject, error) {
	return b.ListAddressObjects(ctx, p, nil)
}

func (b cardBackend) PutAddressObject(_ context.Context, p string, card vcard.Card, opts *carddav.PutAddressObjectOptions) (*carddav.AddressObject, error) {
	var buf bytes.Buffer
	if err := vcard.NewEncoder(&buf).Encode(card); err != nil {
		return nil, webdav.NewHTTPError(http.StatusBadRequest, err)
	}
	o, err := b.s.put(p, buf.Bytes(), card.Value(vcard.FieldUID), opts.IfNoneMatch, opts.IfMatch)
	if err != nil {
		return nil, err
	}
	return &carddav.AddressObject{Path: p, ModTime: o.mod, ETag: o.etag}, nil
}

func (b cardBackend) DeleteAddressObject(_ context.Context, p string) error { return b.s.remove(p) }
