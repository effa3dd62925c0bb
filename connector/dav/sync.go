package dav

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector"
)

type multistatus struct {
	XMLName   xml.Name   `xml:"DAV: multistatus"`
	Responses []response `xml:"DAV: response"`
	SyncToken string     `xml:"DAV: sync-token"`
}

type response struct {
	Hrefs     []string   `xml:"DAV: href"`
	Status    string     `xml:"DAV: status"`
	Propstats []propstat `xml:"DAV: propstat"`
}

type propstat struct {
	Status string `xml:"DAV: status"`
	Prop   props  `xml:"DAV: prop"`
}

type props struct {
	ETag             string            `xml:"DAV: getetag"`
	CTag             string            `xml:"http://calendarserver.org/ns/ getctag"`
	SyncToken        string            `xml:"DAV: sync-token"`
	ResourceType     *resourceType     `xml:"DAV: resourcetype"`
	SupportedReports []supportedReport `xml:"DAV: supported-report-set>supported-report"`
	CalendarData     string            `xml:"urn:ietf:params:xml:ns:caldav calendar-data"`
	AddressData      string            `xml:"urn:ietf:params:xml:ns:carddav address-data"`
	Owner            *string           `xml:"urn:serversync:act owner"`
	LastModified     string            `xml:"DAV: getlastmodified"`
}

type resourceType struct {
	Collection *struct{} `xml:"DAV: collection"`
}

// supportedReport is RFC 3253's <supported-report><report><X/></report>; Xandikos
// leaves the <report> wrapper out, so the bare form counts too.
type supportedReport struct {
	SyncCollection *struct{} `xml:"DAV: sync-collection"`
	Report         struct {
		SyncCollection *struct{} `xml:"DAV: sync-collection"`
	} `xml:"DAV: report"`
}

func statusCode(s string) int {
	// "HTTP/1.1 200 OK"
	f := strings.Fields(s)
	if len(f) < 2 {
		return 0
	}
	var code int
	fmt.Sscanf(f[1], "%d", &code)
	return code
}

func (r response) okProps() []props {
	var out []props
	for _, ps := range r.Propstats {
		if c := statusCode(ps.Status); c == 0 || c/100 == 2 {
			out = append(out, ps.Prop)
		}
	}
	return out
}

// path is the response's resource path, decoded ("" if unusable).
func (r response) path() string {
	if len(r.Hrefs) == 0 {
		return ""
	}
	u, err := url.Parse(strings.TrimSpace(r.Hrefs[0]))
	if err != nil {
		return ""
	}
	return u.Path
}

func (s *session) propfind(ctx context.Context, path, depth, propXML string) (*multistatus, error) {
	body := `<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/"><D:prop>` +
		propXML + `</D:prop></D:propfind>`
	return s.multistatus(ctx, "PROPFIND", path, depth, body)
}

func (s *session) multistatus(ctx context.Context, method, path, depth, body string) (*multistatus, error) {
	h := http.Header{"Content-Type": {"application/xml; charset=utf-8"}}
	if depth != "" {
		h.Set("Depth", depth)
	}
	data, _, err := s.h.do(ctx, method, s.resolve(path), h, []byte(body))
	if err != nil {
		return nil, err
	}
	var ms multistatus
	if err := xml.Unmarshal(data, &ms); err != nil {
		return nil, err
	}
	return &ms, nil
}

// cursor is the opaque position Changes returns, as JSON.
type cursor struct {
	Collection string            `json:"c"`
	SyncToken  string            `json:"t,omitempty"` // sync-collection mode
	CTag       string            `json:"g,omitempty"` // listing mode
	ETags      map[string]string `json:"e,omitempty"` // listing mode: path → ETag
	Listing    bool              `json:"l,omitempty"`
}

// Changes implements serversync.ACTSession.
func (s *session) Changes(ctx context.Context, kind serversync.ACTKind, cur []byte) (serversync.ACTChanges, error) {
	col, err := s.collection("changes", kind)
	if err != nil {
		return serversync.ACTChanges{}, err
	}
	useSync := col.syncCollection && !s.c.DisableSyncCollection
	var prev cursor
	reset := false
	if cur != nil {
		if err := json.Unmarshal(cur, &prev); err != nil || prev.Collection != col.path || prev.Listing == useSync {
			// Another collection, another mode or garbage: start over, as a server
			// that forgot the position would make us.
			prev, reset = cursor{}, true
		}
	}
	var res serversync.ACTChanges
	if useSync {
		res, err = s.syncChanges(ctx, kind, col, prev.SyncToken)
	} else {
		res, err = s.listChanges(ctx, kind, col, prev)
	}
	if err != nil {
		return serversync.ACTChanges{}, classify("changes", err)
	}
	res.Reset = res.Reset || reset
	return res, nil
}

// syncChanges sends the RFC 6578 sync-collection REPORT, starting over (Reset) when
// the server refuses the token.
func (s *session) syncChanges(ctx context.Context, kind serversync.ACTKind, col *collection, token string) (serversync.ACTChanges, error) {
	var res serversync.ACTChanges
	changed := map[string]string{} // path → ETag
	deleted := map[string]bool{}
	for round := 0; ; round++ {
		if round > 1000 {
			return res, errors.New("dav: the server keeps truncating the sync-collection report")
		}
		body := `<?xml version="1.0" encoding="utf-8"?><D:sync-collection xmlns:D="DAV:"><D:sync-token>` +
			xmlEscape(token) + `</D:sync-token><D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>`
		ms, err := s.multistatus(ctx, "REPORT", col.path, "0", body)
		var se *StatusError
		if err != nil && token != "" && errors.As(err, &se) && (se.Code == http.StatusForbidden || se.Code == http.StatusConflict ||
			se.Code == http.StatusBadRequest || se.Code == http.StatusPreconditionFailed || se.Code >= 500) {
			// The token is no longer valid (RFC 6578 §3.2: DAV:valid-sync-token).
			// Xandikos answers an unknown token with 500 instead: a server error
			// on a token is retried once without it, and if the server is really
			// down that fails too.
			token, res.Reset = "", true
			clear(changed)
			clear(deleted)
			continue
		}
		if err != nil {
			return res, err
		}
		truncated := false
		for _, r := range ms.Responses {
			p := r.path()
			if p == "" {
				continue
			}
			if dirPath(p) == col.path {
				if statusCode(r.Status) == http.StatusInsufficientStorage {
					truncated = true
				}
				continue
			}
			if c := statusCode(r.Status); c == http.StatusNotFound || c == http.StatusGone {
				deleted[p] = true
				delete(changed, p)
				continue
			}
			etag := ""
			for _, pr := range r.okProps() {
				if pr.ETag != "" {
					etag = pr.ETag
				}
			}
			changed[p] = etag
			delete(deleted, p)
		}
		if ms.SyncToken == "" {
			return res, errors.New("dav: the sync-collection report carries no sync-token")
		}
		token = ms.SyncToken
		if !truncated {
			break
		}
	}
	if err := s.fetch(ctx, kind, changed, deleted, &res); err != nil {
		return res, err
	}
	res.Cursor, _ = json.Marshal(cursor{Collection: col.path, SyncToken: token})
	return res, nil
}

// listChanges lists the collection's ETags and compares them with the cursor's;
// an unchanged ctag saves the listing.
func (s *session) listChanges(ctx context.Context, kind serversync.ACTKind, col *collection, prev cursor) (serversync.ACTChanges, error) {
	var res serversync.ACTChanges
	top, err := s.propfind(ctx, col.path, "0", `<CS:getctag/>`)
	if err != nil {
		return res, err
	}
	ctag := ""
	for _, r := range top.Responses {
		for _, p := range r.okProps() {
			if p.CTag != "" {
				ctag = p.CTag
			}
		}
	}
	if ctag != "" && ctag == prev.CTag && prev.ETags != nil {
		res.Cursor, _ = json.Marshal(prev)
		return res, nil
	}
	ms, err := s.propfind(ctx, col.path, "1", `<D:getetag/><D:resourcetype/>`)
	if err != nil {
		return res, err
	}
	now := map[string]string{}
	for _, r := range ms.Responses {
		p := r.path()
		if p == "" || dirPath(p) == col.path {
			continue
		}
		for _, pr := range r.okProps() {
			if pr.ResourceType != nil && pr.ResourceType.Collection != nil {
				continue
			}
			now[p] = pr.ETag
		}
	}
	changed := map[string]string{}
	deleted := map[string]bool{}
	for p, etag := range now {
		if old, ok := prev.ETags[p]; !ok || old != etag || etag == "" {
			changed[p] = etag
		}
	}
	for p := range prev.ETags {
		if _, ok := now[p]; !ok {
			deleted[p] = true
		}
	}
	if err := s.fetch(ctx, kind, changed, deleted, &res); err != nil {
		return res, err
	}
	// Items fetched carry the ETag of what was read, which may be newer than the listing's.
	for _, ch := range res.Changes {
		if !ch.Deleted {
			now[ch.ServerID] = ch.Item.Header().ChangeKey
		} else {
			delete(now, ch.ServerID)
		}
	}
	res.Cursor, _ = json.Marshal(cursor{Collection: col.path, CTag: ctag, ETags: now, Listing: true})
	return res, nil
}

// multigetBatch is how many items one calendar-multiget / addressbook-multiget asks for.
const multigetBatch = 50

// fetch reads every changed item (in path order) and appends the changes: by
// multiget REPORTs of multigetBatch items, and one GET for each item a multiget
// did not return (or when its reply was too large).
func (s *session) fetch(ctx context.Context, kind serversync.ACTKind, changed map[string]string, deleted map[string]bool, res *serversync.ACTChanges) error {
	paths := make([]string, 0, len(changed))
	for p := range changed {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for len(paths) > 0 {
		batch := paths[:min(multigetBatch, len(paths))]
		paths = paths[len(batch):]
		got, err := s.multiget(ctx, kind, batch)
		if err != nil && !errors.Is(err, errBodyTooLarge) {
			var se *StatusError
			if !errors.As(err, &se) || !slices.Contains([]int{400, 403, 405, 415, 501}, se.Code) {
				return err
			}
			// A server without multiget: one GET each below.
		}
		for _, p := range batch {
			if item, ok := got[p]; ok {
				if item == nil {
					deleted[p] = true
				} else {
					res.Changes = append(res.Changes, serversync.ACTChange{ServerID: p, Item: item})
				}
				continue
			}
			if err := s.fetchOne(ctx, kind, p, deleted, res); err != nil {
				return err
			}
		}
	}
	gone := make([]string, 0, len(deleted))
	for p := range deleted {
		gone = append(gone, p)
	}
	sort.Strings(gone)
	for _, p := range gone {
		res.Changes = append(res.Changes, serversync.ACTChange{ServerID: p, Deleted: true})
	}
	return nil
}

// multiget returns the items of paths the server sent, nil for those it says are
// gone; paths it did not answer for, or whose data was unreadable, are left out.
func (s *session) multiget(ctx context.Context, kind serversync.ACTKind, paths []string) (map[string]serversync.ACTItem, error) {
	col := s.cols[kind]
	var b strings.Builder
	if kind == serversync.KindContact {
		b.WriteString(`<?xml version="1.0" encoding="utf-8"?><R:addressbook-multiget xmlns:D="DAV:" xmlns:R="urn:ietf:params:xml:ns:carddav"><D:prop><D:getetag/><D:getlastmodified/><R:address-data/></D:prop>`)
	} else {
		b.WriteString(`<?xml version="1.0" encoding="utf-8"?><R:calendar-multiget xmlns:D="DAV:" xmlns:R="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/><D:getlastmodified/><R:calendar-data/></D:prop>`)
	}
	for _, p := range paths {
		b.WriteString(`<D:href>` + xmlEscape((&url.URL{Path: p}).EscapedPath()) + `</D:href>`)
	}
	if kind == serversync.KindContact {
		b.WriteString(`</R:addressbook-multiget>`)
	} else {
		b.WriteString(`</R:calendar-multiget>`)
	}
	ms, err := s.multistatus(ctx, "REPORT", col.path, "", b.String())
	if err != nil {
		return nil, err
	}
	got := map[string]serversync.ACTItem{}
	for _, r := range ms.Responses {
		p := r.path()
		if c := statusCode(r.Status); c == http.StatusNotFound || c == http.StatusGone {
			got[p] = nil
			continue
		}
		for _, pr := range r.okProps() {
			data := pr.CalendarData
			if kind == serversync.KindContact {
				data = pr.AddressData
			}
			if data == "" {
				continue
			}
			item, err := decodeItem(kind, []byte(data))
			if err != nil {
				continue // fetchOne reads it again and decides
			}
			hd := item.Header()
			hd.MailboxID, hd.ServerID, hd.ChangeKey = s.mailboxID, p, pr.ETag
			fillModified(item, pr.LastModified)
			got[p] = item
		}
	}
	return got, nil
}

// fetchOne reads one item with GET.
func (s *session) fetchOne(ctx context.Context, kind serversync.ACTKind, p string, deleted map[string]bool, res *serversync.ACTChanges) error {
	item, err := s.get(ctx, kind, p)
	var se *StatusError
	switch {
	case errors.As(err, &se) && (se.Code == http.StatusNotFound || se.Code == http.StatusGone):
		deleted[p] = true // deleted since it was listed
		return nil
	case errors.Is(err, ErrBadData):
		// One item no client could read must not stop the sync of the others;
		// it is skipped until it changes again.
		return nil
	case err != nil:
		return err
	}
	res.Changes = append(res.Changes, serversync.ACTChange{ServerID: p, Item: item})
	return nil
}

// get reads one item.
func (s *session) get(ctx context.Context, kind serversync.ACTKind, path string) (serversync.ACTItem, error) {
	s.gets++
	data, h, err := s.h.do(ctx, http.MethodGet, s.resolve(path), nil, nil)
	if err != nil {
		return nil, err
	}
	item, err := decodeItem(kind, data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	hd := item.Header()
	hd.MailboxID, hd.ServerID, hd.ChangeKey = s.mailboxID, path, h.Get("ETag")
	fillModified(item, h.Get("Last-Modified"))
	return item, nil
}

// fillModified sets an item's Modified, when its data has no LAST-MODIFIED (or
// REV), from the resource's HTTP Last-Modified: when the server stored it, which
// is what a last-modified-wins conflict policy compares.
func fillModified(item serversync.ACTItem, httpDate string) {
	t, err := http.ParseTime(strings.TrimSpace(httpDate))
	if err != nil {
		return
	}
	switch it := item.(type) {
	case *serversync.Appointment:
		if it.Modified.IsZero() {
			it.Modified = t
		}
	case *serversync.Contact:
		if it.Modified.IsZero() {
			it.Modified = t
		}
	case *serversync.Task:
		if it.Modified.IsZero() {
			it.Modified = t
		}
	}
}

func decodeItem(kind serversync.ACTKind, data []byte) (serversync.ACTItem, error) {
	switch kind {
	case serversync.KindAppointment:
		return decodeAppointment(data)
	case serversync.KindTask:
		return decodeTask(data)
	case serversync.KindContact:
		return decodeContact(data)
	}
	return nil, fmt.Errorf("dav: unknown ACT kind %q", kind)
}

func xmlEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

var safeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@+=-]{0,200}$`)

// Put implements serversync.ACTSession.
func (s *session) Put(ctx context.Context, item serversync.ACTItem, ifMatch string) error {
	if item == nil {
		return classify("put", fmt.Errorf("%w: no item", ErrBadData))
	}
	kind := item.ACTKind()
	col, err := s.collection("put", kind)
	if err != nil {
		return err
	}
	hd := item.Header()
	if hd.UID == "" {
		hd.UID = serversync.NewID()
	}
	var data []byte
	contentType := "text/calendar; charset=utf-8"
	switch it := item.(type) {
	case *serversync.Appointment:
		data, err = encodeAppointment(it)
	case *serversync.Task:
		data, err = encodeTask(it)
	case *serversync.Contact:
		data, err = encodeContact(it)
		contentType = "text/vcard; charset=utf-8"
	default:
		err = fmt.Errorf("%w: unknown item type %T", ErrBadData, item)
	}
	if err != nil {
		return classify("put", err)
	}
	header := http.Header{"Content-Type": {contentType}}
	path := hd.ServerID
	if path == "" {
		// The name follows from the UID, so a create repeated after a crash meets the
		// item it made (412 on If-None-Match) instead of making a second one.
		name := hd.UID
		if !safeName.MatchString(name) {
			sum := sha256.Sum256([]byte(hd.UID))
			name = "uid-" + hex.EncodeToString(sum[:16])
		}
		ext := ".ics"
		if kind == serversync.KindContact {
			ext = ".vcf"
		}
		path = col.path + name + ext
		header.Set("If-None-Match", "*")
	} else if ifMatch != "" {
		header.Set("If-Match", ifMatch)
	}
	_, rh, err := s.h.do(ctx, http.MethodPut, s.resolve(path), header, data)
	var se *StatusError
	if errors.As(err, &se) && se.Code == http.StatusPreconditionFailed {
		return &serversync.ACTConflictError{Kind: kind, ServerID: path, IfMatch: ifMatch, Err: err}
	}
	if errors.As(err, &se) && hd.ServerID == "" && (se.Code == http.StatusConflict || se.Code == http.StatusForbidden) {
		// CalDAV's no-uid-conflict (RFC 4791 §5.3.2.1) and CardDAV's: another
		// resource holds the UID, and the server may name it.
		if holder := uidHolder(se.Body, col.path); holder != "" {
			return &serversync.ACTConflictError{Kind: kind, ServerID: holder, IfMatch: ifMatch, Err: err}
		}
	}
	if errors.As(err, &se) && slices.Contains([]int{http.StatusBadRequest, http.StatusRequestEntityTooLarge,
		http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity}, se.Code) {
		// This item, not the mailbox: the others still sync.
		return connector.Error("put", serversync.ErrorPermanent, serversync.ScopeItem, serversync.CodeACTItemRefused, err)
	}
	if err != nil {
		return classify("put", err)
	}
	etag := rh.Get("ETag")
	if etag == "" || strings.HasPrefix(etag, "W/") {
		// The server changed what it stored (or will not say): ask for its version.
		ms, err := s.propfind(ctx, path, "0", `<D:getetag/>`)
		if err != nil {
			return classify("put", err)
		}
		for _, r := range ms.Responses {
			for _, p := range r.okProps() {
				if p.ETag != "" {
					etag = p.ETag
				}
			}
		}
	}
	hd.ServerID, hd.ChangeKey = path, etag
	if hd.MailboxID == "" {
		hd.MailboxID = s.mailboxID
	}
	return nil
}

var hrefElement = regexp.MustCompile(`<(?:[A-Za-z0-9]+:)?href>([^<]+)</`)

// uidHolder is the path of the resource a no-uid-conflict reply names, when it
// names one in the collection.
func uidHolder(body, collection string) string {
	m := hrefElement.FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	u, err := url.Parse(strings.TrimSpace(html.UnescapeString(m[1])))
	if err != nil || !strings.HasPrefix(u.Path, collection) || u.Path == collection {
		return ""
	}
	return u.Path
}

// Delete implements serversync.ACTSession.
func (s *session) Delete(ctx context.Context, kind serversync.ACTKind, serverID, ifMatch string) error {
	col, err := s.collection("delete", kind)
	if err != nil {
		return err
	}
	if serverID == "" || !strings.HasPrefix(serverID, col.path) {
		return classify("delete", fmt.Errorf("%w: %q is not an item of the %s collection %s", ErrBadData, serverID, kind, col.path))
	}
	header := http.Header{}
	if ifMatch != "" {
		header.Set("If-Match", ifMatch)
	}
	_, _, err = s.h.do(ctx, http.MethodDelete, s.resolve(serverID), header, nil)
	var se *StatusError
	switch {
	case errors.As(err, &se) && se.Code == http.StatusPreconditionFailed:
		return &serversync.ACTConflictError{Kind: kind, ServerID: serverID, IfMatch: ifMatch, Err: err}
	case errors.As(err, &se) && (se.Code == http.StatusNotFound || se.Code == http.StatusGone):
		return nil
	}
	return classify("delete", err)
}
