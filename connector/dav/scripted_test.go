package dav_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector/dav"
)

const msHead = `<?xml version="1.0"?><D:multistatus xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:R="urn:ietf:params:xml:ns:carddav">`

func okResp(href, props string) string {
	return `<D:response><D:href>` + href + `</D:href><D:propstat><D:prop>` + props + `</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>`
}

func vcardOf(uid string) string {
	return "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:" + uid + "\r\nFN:" + uid + "\r\nEND:VCARD\r\n"
}

// scriptedDAV is a minimal CardDAV server whose sync-collection report is
// truncated (507) on the first page, as RFC 6578 §3.6 allows, and refuses stale
// tokens with 403 valid-sync-token.
type scriptedDAV struct {
	mu      sync.Mutex
	reports []string // sync tokens asked for
}

func (d *scriptedDAV) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	req := string(body)
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	reply := func(s string) {
		w.WriteHeader(http.StatusMultiStatus)
		_, _ = io.WriteString(w, msHead+s+`</D:multistatus>`)
	}
	switch {
	case r.Method == "PROPFIND" && strings.Contains(req, "current-user-principal"):
		reply(okResp(r.URL.Path, `<D:current-user-principal><D:href>/p/</D:href></D:current-user-principal>`))
	case r.Method == "PROPFIND" && strings.Contains(req, "calendar-home-set"):
		reply(okResp("/p/", `<C:calendar-home-set><D:href>/p/cal/</D:href></C:calendar-home-set>`))
	case r.Method == "PROPFIND" && strings.Contains(req, "addressbook-home-set"):
		reply(okResp("/p/", `<R:addressbook-home-set><D:href>/p/card/</D:href></R:addressbook-home-set>`))
	case r.Method == "PROPFIND" && r.URL.Path == "/p/cal/":
		reply(okResp("/p/cal/", `<D:resourcetype><D:collection/></D:resourcetype>`)) // no calendars
	case r.Method == "PROPFIND" && r.URL.Path == "/p/card/":
		reply(okResp("/p/card/", `<D:resourcetype><D:collection/></D:resourcetype>`) +
			okResp("/p/card/b/", `<D:resourcetype><D:collection/><R:addressbook/></D:resourcetype>`))
	case r.Method == "PROPFIND" && strings.Contains(req, "supported-report-set"):
		reply(okResp(r.URL.Path, `<D:supported-report-set><D:supported-report><D:report><D:sync-collection/></D:report></D:supported-report></D:supported-report-set>`))
	case r.Method == "REPORT" && strings.Contains(req, "sync-collection"):
		token := between(req, "<D:sync-token>", "</D:sync-token>")
		d.mu.Lock()
		d.reports = append(d.reports, token)
		d.mu.Unlock()
		switch token {
		case "":
			reply(okResp("/p/card/b/a.vcf", `<D:getetag>"a1"</D:getetag>`) +
				`<D:response><D:href>/p/card/b/</D:href><D:status>HTTP/1.1 507 Insufficient Storage</D:status></D:response><D:sync-token>page2</D:sync-token>`)
		case "page2":
			reply(okResp("/p/card/b/b%20x.vcf", `<D:getetag>"b1"</D:getetag>`) +
				`<D:response><D:href>/p/card/b/c.vcf</D:href><D:status>HTTP/1.1 404 Not Found</D:status></D:response><D:sync-token>done</D:sync-token>`)
		case "done":
			reply(`<D:sync-token>done</D:sync-token>`)
		default:
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, `<?xml version="1.0"?><D:error xmlns:D="DAV:"><D:valid-sync-token/></D:error>`)
		}
	case r.Method == "REPORT" && strings.Contains(req, "addressbook-multiget"):
		var out string
		for _, href := range []string{"/p/card/b/a.vcf", "/p/card/b/b%20x.vcf"} {
			if strings.Contains(req, href) {
				out += okResp(href, `<D:getetag>"`+href[len(href)-5:len(href)-4]+`1"</D:getetag><R:address-data>`+vcardOf(href[len(href)-5:len(href)-4])+`</R:address-data>`)
			}
		}
		reply(out)
	default:
		http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusBadRequest)
	}
}

func between(s, a, b string) string {
	i := strings.Index(s, a)
	if i < 0 {
		return ""
	}
	s = s[i+len(a):]
	if j := strings.Index(s, b); j >= 0 {
		return s[:j]
	}
	return ""
}

func TestSyncCollectionFollowsTruncationAndResets(t *testing.T) {
	fake := &scriptedDAV{}
	url, pem := tlsServer(t, fake.ServeHTTP)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := (&dav.Connector{}).OpenACT(ctx, target(url, pem))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Changes(ctx, serversync.KindAppointment, nil); code(err) != serversync.CodeFolderNotFound {
		t.Fatalf("an account without calendars: %v, want %s", err, serversync.CodeFolderNotFound)
	}
	res, err := s.Changes(ctx, serversync.KindContact, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ch := range res.Changes {
		desc := ch.ServerID
		if ch.Deleted {
			desc += " deleted"
		} else {
			desc += " " + ch.Item.(*serversync.Contact).DisplayName + " " + ch.Item.Header().ChangeKey
		}
		got = append(got, desc)
	}
	want := []string{`/p/card/b/a.vcf a "a1"`, `/p/card/b/b x.vcf x "x1"`, "/p/card/b/c.vcf deleted"}
	if strings.Join(got, "|") != strings.Join(want, "|") || res.Reset {
		t.Fatalf("changes %q (reset %v), want %q", got, res.Reset, want)
	}
	if strings.Join(fake.reports, ",") != ",page2" {
		t.Fatalf("tokens asked for: %q", fake.reports)
	}
	if !strings.Contains(string(res.Cursor), `"done"`) {
		t.Fatalf("cursor %s does not hold the last page's token", res.Cursor)
	}
	stale := []byte(strings.Replace(string(res.Cursor), `"done"`, `"expired"`, 1))
	again, err := s.Changes(ctx, serversync.KindContact, stale)
	if err != nil || !again.Reset || len(again.Changes) != 3 {
		t.Fatalf("stale token: %d changes, reset %v, %v", len(again.Changes), again.Reset, err)
	}
}
