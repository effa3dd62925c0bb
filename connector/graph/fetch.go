package graph

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector"
)

// cursorVersion is the version of the cursor format; another is refused.
const cursorVersion = 1

// cursor is the position Fetch hands out, as compact JSON:
// {"v":1,"folder":"inbox","link":"https://graph.microsoft.com/v1.0/…/delta?$skiptoken=…","skip":3,"last":"AAMk…"}.
// Link is the delta page to request next; Skip is how many items of that page
// were handed over already (Graph answers the same link with the same page) and
// Last the id of the last of them: when the page comes back otherwise (the item
// at Skip is not Last), nothing of it is skipped, so a page that changed loses
// nothing; what is offered twice, the Syncer's message keys catch.
type cursor struct {
	V      int    `json:"v"`
	Folder string `json:"folder"`
	Link   string `json:"link,omitempty"`
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
			fmt.Errorf("graph: the cursor is not one of this connector's: %w", err))
	}
	if c.V != cursorVersion || c.Skip < 0 {
		return nil, connector.Error("fetch", serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeBadCursor,
			fmt.Errorf("graph: cursor version %d is not supported (want %d)", c.V, cursorVersion))
	}
	return &c, nil
}

// deltaItem is one message of a delta page.
type deltaItem struct {
	ID       string          `json:"id"`
	Received string          `json:"receivedDateTime"`
	Removed  json.RawMessage `json:"@removed"`
}

type deltaPage struct {
	Value []deltaItem `json:"value"`
	Next  string      `json:"@odata.nextLink"`
	Delta string      `json:"@odata.deltaLink"`
}

// session is an incoming session: Graph has no connection to hold, so it is
// the mailbox and a cache of folder ids.
type session struct {
	m       *mailbox
	folders map[string]string // lower-case display name → id
	closed  bool
}

var (
	_ serversync.IncomingSession = (*session)(nil)
	_ serversync.FolderSession   = (*session)(nil)
)

func (s *session) Close() error {
	s.closed = true
	return nil
}

// folderName is the name RemoteMessage.Folder carries.
func folderName(name string) string {
	if name == "" {
		return "inbox"
	}
	return name
}

// Fetch implements serversync.IncomingSession through the folder's message
// delta: see the package documentation for the cursor.
func (s *session) Fetch(ctx context.Context, req serversync.FetchRequest, fn func(*serversync.RemoteMessage) error) (serversync.FetchResult, error) {
	var res serversync.FetchResult
	cur, err := decodeCursor(req.Cursor)
	if err != nil {
		return res, err
	}
	name := folderName(req.Folder)
	if cur != nil && !strings.EqualFold(cur.Folder, name) {
		return res, connector.Error("fetch", serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeBadCursor,
			fmt.Errorf("graph: the cursor is for folder %q, not %q", cur.Folder, name))
	}
	id, err := s.folderID(ctx, req.Folder, false)
	if err != nil {
		return res, err
	}
	initial := s.initialLink(id, req.Since)
	link, skip, last, stored := initial, 0, "", false
	if cur != nil && cur.Link != "" {
		if s.m.sameOrigin(cur.Link) {
			link, skip, last, stored = cur.Link, cur.Skip, cur.Last, true
		} else {
			s.m.c.log.Warn("graph: the stored cursor points at another server; starting again from the beginning", "mailbox", s.m.target.MailboxID)
			res.Reset = true
		}
	}
	for {
		page, err := s.page(ctx, link)
		var ge *graphError
		if err != nil && stored && errors.As(err, &ge) && isSyncStateLost(ge) {
			s.m.c.log.Info("graph: the delta token expired; starting again from the beginning", "mailbox", s.m.target.MailboxID, "code", ge.Code)
			link, skip, last, stored, res.Reset = initial, 0, "", false, true
			continue
		}
		if err != nil {
			return res, err
		}
		stored = false // a link Graph just gave is not a stale token
		if skip > 0 && (skip > len(page.Value) || page.Value[skip-1].ID != last) {
			s.m.c.log.Debug("graph: a resumed page came back changed; offering all of it again", "mailbox", s.m.target.MailboxID)
			skip = 0
		}
		if err := s.deliver(ctx, req, name, link, skip, page.Value, fn); err != nil {
			return res, err
		}
		switch {
		case page.Next != "":
			if !s.m.sameOrigin(page.Next) {
				return res, connector.Error("fetch", serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodeProtocolError,
					fmt.Errorf("graph: the server's nextLink points at another server (%s); the token is not sent there", hostOf(page.Next)))
			}
			link, skip, last = page.Next, 0, ""
		case page.Delta != "":
			if !s.m.sameOrigin(page.Delta) {
				return res, connector.Error("fetch", serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodeProtocolError,
					fmt.Errorf("graph: the server's deltaLink points at another server (%s); the token is not sent there", hostOf(page.Delta)))
			}
			res.Cursor = cursor{Folder: name, Link: page.Delta}.encode()
			return res, nil
		default:
			return res, connector.Error("fetch", serversync.ErrorTransient, serversync.ScopeMailbox, serversync.CodeProtocolError,
				errors.New("graph: a delta page with neither @odata.nextLink nor @odata.deltaLink"))
		}
	}
}

func hostOf(link string) string {
	if u, err := url.Parse(link); err == nil {
		return u.Host
	}
	return "?"
}

// initialLink is the first delta request of a folder.
func (s *session) initialLink(folderID string, since time.Time) string {
	q := url.Values{"$select": {"receivedDateTime,internetMessageId,subject,from"}}
	if !since.IsZero() {
		q.Set("$filter", "receivedDateTime ge "+since.UTC().Format("2006-01-02T15:04:05Z"))
	}
	return s.m.url(s.m.user+"/mailFolders/"+url.PathEscape(folderID)+"/messages/delta", q)
}

// page requests one delta page.
func (s *session) page(ctx context.Context, link string) (*deltaPage, error) {
	var p deltaPage
	err := s.m.doJSON(ctx, call{
		op: "fetch", method: http.MethodGet, url: link, messages: true, about: aboutFolder,
		prefer: []string{"odata.maxpagesize=" + strconv.Itoa(s.m.c.opts.PageSize)},
	}, &p)
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// wanted is a page item to hand over: its index in the page and its time.
type wanted struct {
	index    int
	id       string
	received time.Time
}

// deliver downloads the page's messages after skip and hands them to fn in
// page order.
func (s *session) deliver(ctx context.Context, req serversync.FetchRequest, name, link string, skip int, items []deltaItem,
	fn func(*serversync.RemoteMessage) error) error {
	var todo []wanted
	for i, it := range items {
		if i < skip || len(it.Removed) > 0 && string(it.Removed) != "null" || it.ID == "" {
			continue
		}
		received, _ := time.Parse(time.RFC3339Nano, it.Received)
		if !req.Since.IsZero() && !received.IsZero() && received.Before(req.Since) {
			continue
		}
		todo = append(todo, wanted{index: i, id: it.ID, received: received})
	}
	hand := func(w wanted, body io.Reader, size int64) error {
		return fn(&serversync.RemoteMessage{
			Folder: name, Ref: w.id, Size: size, ReceivedAt: w.received, Body: body,
			Cursor: cursor{Folder: name, Link: link, Skip: w.index + 1, Last: w.id}.encode(),
		})
	}
	batch := s.m.c.opts.BatchSize
	for len(todo) > 0 {
		n := min(batch, len(todo))
		chunk := todo[:n]
		todo = todo[n:]
		if n == 1 {
			if err := s.stream(ctx, chunk[0], hand); err != nil {
				return err
			}
			continue
		}
		bodies, err := s.m.batchDownload(ctx, chunk)
		if errors.Is(err, errBatchTooLarge) {
			s.m.c.log.Debug("graph: $batch reply too large; downloading one by one", "mailbox", s.m.target.MailboxID)
			for _, w := range chunk {
				if err := s.stream(ctx, w, hand); err != nil {
					return err
				}
			}
			continue
		}
		if err != nil {
			return err
		}
		for _, w := range chunk {
			body, ok := bodies[w.id]
			if !ok {
				continue // deleted since the delta listed it
			}
			if err := hand(w, bytes.NewReader(body), int64(len(body))); err != nil {
				return err
			}
			delete(bodies, w.id)
		}
	}
	return nil
}

// valueURL is the path of a message's MIME below /v1.0.
func (m *mailbox) valuePath(id string) string {
	return m.user + "/messages/" + url.PathEscape(id) + "/$value"
}

// stream downloads one message with GET $value and hands its body to fn as
// it arrives.
func (s *session) stream(ctx context.Context, w wanted, hand func(wanted, io.Reader, int64) error) error {
	r, err := s.m.send(ctx, call{op: "fetch", method: http.MethodGet, url: s.m.url(s.m.valuePath(w.id), nil), messages: true, about: aboutMessage})
	var ce *serversync.ConnectorError
	if errors.As(err, &ce) && ce.Code == serversync.CodeBadRef {
		return nil // deleted since the delta listed it
	}
	if err != nil {
		return err
	}
	defer r.Close()
	if ct := strings.ToLower(r.Header.Get("Content-Type")); strings.Contains(ct, "json") || strings.Contains(ct, "html") {
		return connector.Error("fetch", serversync.ErrorTransient, serversync.ScopeMailbox, serversync.CodeProtocolError,
			fmt.Errorf("graph: the server answered %s where a MIME message was expected", ct))
	}
	body := &classifiedReader{r: r.body.limit(s.m.c.opts.MaxMessageBytes), b: r.body}
	size := max(r.ContentLength, 0)
	return hand(w, body, size)
}

// classifiedReader turns read errors of a body into connector errors, so a
// body cut short fails with a classified error in the caller's hands.
type classifiedReader struct {
	r io.Reader
	b *limitedBody
}

func (c *classifiedReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err != nil && err != io.EOF {
		err = c.b.classify("fetch", err)
	}
	return n, err
}

var errBatchTooLarge = errors.New("graph: $batch reply over the limit")

type batchRequest struct {
	ID      string            `json:"id"`
	Method  string            `json:"method"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers,omitempty"`
}

type batchResponse struct {
	ID      string            `json:"id"`
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Body    json.RawMessage   `json:"body"`
}

// batchDownload gets the MIME of the messages through $batch and returns
// them by id; a message Graph no longer has is missing from the map. Items
// throttled inside the batch are sent again after their Retry-After.
func (m *mailbox) batchDownload(ctx context.Context, chunk []wanted) (map[string][]byte, error) {
	out := make(map[string][]byte, len(chunk))
	pending := chunk
	waited := time.Duration(0)
	for len(pending) > 0 {
		reqs := make([]batchRequest, len(pending))
		byRequest := make(map[string]wanted, len(pending))
		for i, w := range pending {
			id := strconv.Itoa(i + 1)
			reqs[i] = batchRequest{ID: id, Method: http.MethodGet, URL: m.valuePath(w.id), Headers: map[string]string{"Prefer": preferImmutableID}}
			byRequest[id] = w
		}
		body, err := json.Marshal(map[string]any{"requests": reqs})
		if err != nil {
			return nil, err
		}
		r, err := m.send(ctx, call{
			op: "fetch", method: http.MethodPost, url: m.url("/$batch", nil), body: body, contentType: "application/json",
			weight: m.batchWeight(len(reqs)), about: aboutMailbox,
		})
		if err != nil {
			return nil, err
		}
		m.c.batches.Add(1)
		var reply struct {
			Responses []batchResponse `json:"responses"`
		}
		if err := readJSON("fetch", r, &reply, m.c.opts.MaxBatchBytes); err != nil {
			var ce *serversync.ConnectorError
			if errors.As(err, &ce) && ce.Code == serversync.CodeReplyTooLong {
				return nil, errBatchTooLarge
			}
			return nil, err
		}
		var retry []wanted
		var retryAfter time.Duration
		answered := map[string]bool{}
		for _, resp := range reply.Responses {
			w, ok := byRequest[resp.ID]
			if !ok || answered[resp.ID] {
				continue
			}
			answered[resp.ID] = true
			switch {
			case resp.Status >= 200 && resp.Status < 300:
				mime, err := m.batchBody(resp)
				if err != nil {
					return nil, err
				}
				out[w.id] = mime
			case resp.Status == http.StatusTooManyRequests || resp.Status == http.StatusServiceUnavailable && header(resp.Headers, "Retry-After") != "":
				m.c.throttled.Add(1)
				after, ok := parseRetryAfter(header(resp.Headers, "Retry-After"))
				if !ok {
					after = time.Second
				}
				retryAfter = max(retryAfter, after)
				retry = append(retry, w)
			case resp.Status == http.StatusNotFound:
				// deleted since the delta listed it
			default:
				ge := parseGraphError(resp.Status, strings.NewReader(string(resp.Body)))
				return nil, m.classify("fetch", aboutMessage, ge)
			}
		}
		for id, w := range byRequest {
			if !answered[id] {
				return nil, connector.Error("fetch", serversync.ErrorTransient, serversync.ScopeMailbox, serversync.CodeProtocolError,
					fmt.Errorf("graph: the $batch reply has no response for message %s", w.id))
			}
		}
		if len(retry) > 0 {
			if waited+retryAfter > m.c.opts.MaxRetryWait {
				return nil, connector.Error("fetch", serversync.ErrorTransient, serversync.ScopeMailbox, serversync.CodeThrottled,
					fmt.Errorf("graph: $batch items throttled past the %s one request may wait", m.c.opts.MaxRetryWait))
			}
			if err := m.c.wait(ctx, retryAfter); err != nil {
				return nil, connector.NetError("fetch", err)
			}
			waited += retryAfter
		}
		pending = retry
	}
	return out, nil
}

// batchBody decodes a $batch item's MIME body: a JSON string of base64.
func (m *mailbox) batchBody(resp batchResponse) ([]byte, error) {
	var s string
	if err := json.Unmarshal(resp.Body, &s); err != nil {
		return nil, connector.Error("fetch", serversync.ErrorTransient, serversync.ScopeMailbox, serversync.CodeProtocolError,
			errors.New("graph: a $batch item's body is not the base64 string of a MIME message"))
	}
	mime, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, connector.Error("fetch", serversync.ErrorTransient, serversync.ScopeMailbox, serversync.CodeProtocolError,
			fmt.Errorf("graph: a $batch item's body is not base64: %w", err))
	}
	if int64(len(mime)) > m.c.opts.MaxMessageBytes {
		return nil, connector.Error("fetch", serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeReplyTooLong,
			fmt.Errorf("graph: a %d-byte message is over the %d-byte limit", len(mime), m.c.opts.MaxMessageBytes))
	}
	return mime, nil
}

// header looks a header up in a $batch item, whatever its case.
func header(h map[string]string, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// batchWeight is what a $batch of n requests holds of the mailbox's budget.
func (m *mailbox) batchWeight(n int) int64 {
	return int64(min(n, m.c.opts.MaxInFlight))
}
