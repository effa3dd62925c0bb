package graphtest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The permission a route needs.
type perm int

const (
	permRead perm = iota
	permWrite
	permSend
	permCalendarsRead
	permCalendarsWrite
	permContactsRead
	permContactsWrite
	permTasksRead
	permTasksWrite
)

// call is one request to a mailbox, authenticated and admitted.
type call struct {
	s         *Server
	mb        *mailbox
	p         Principal
	userPath  string // "me" or "users/{escaped address}", for links
	immutable bool   // Prefer: IdType="ImmutableId"
	pageSize  int    // Prefer: odata.maxpagesize, 0 when absent
	timeZone  string // Prefer: outlook.timezone, "" when absent
}

type callKey struct{}

func callOf(r *http.Request) *call { return r.Context().Value(callKey{}).(*call) }

type route struct {
	perm perm
	fn   func(c *call, w http.ResponseWriter, r *http.Request)
}

func (rt route) ServeHTTP(w http.ResponseWriter, r *http.Request) { rt.fn(callOf(r), w, r) }

// routes is the server's handler: $batch, and the API on /v1.0/me/… and
// /v1.0/users/{address}/….
func (s *Server) routes() http.Handler {
	top := http.NewServeMux()
	top.HandleFunc("POST /v1.0/$batch", s.serveBatch)
	top.HandleFunc("/v1.0/", s.serveAPI)
	s.api = s.mailboxRoutes()
	top.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "BadRequest", "Invalid version: the path must start with /v1.0/.")
	})
	return s.track(top)
}

// track counts the handlers running, so Close can wait for them.
func (s *Server) track(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		if s.closed { // Close is waiting for the handlers: start no more
			s.mu.Unlock()
			writeError(w, http.StatusServiceUnavailable, "ServiceUnavailable", "The server is shutting down.")
			return
		}
		s.calls.Add(1)
		s.mu.Unlock()
		defer s.calls.Done()
		h.ServeHTTP(w, r)
	})
}

// mailboxRoutes maps the path after /v1.0/{user} to handlers. Segments are
// normalized before matching (see normalizePath).
func (s *Server) mailboxRoutes() *http.ServeMux {
	mux := http.NewServeMux()
	handle := func(pattern string, p perm, fn func(c *call, w http.ResponseWriter, r *http.Request)) {
		mux.Handle(pattern, route{perm: p, fn: fn})
	}
	handle("GET /mailFolders", permRead, serveListFolders)
	handle("POST /mailFolders", permWrite, serveCreateFolder)
	handle("GET /mailFolders/{folder}", permRead, serveGetFolder)
	handle("GET /mailFolders/{folder}/childFolders", permRead, serveListFolders)
	handle("POST /mailFolders/{folder}/childFolders", permWrite, serveCreateFolder)
	handle("GET /mailFolders/{folder}/messages/delta", permRead, serveDelta)
	handle("GET /mailFolders/{folder}/messages", permRead, serveListMessages)
	handle("POST /mailFolders/{folder}/messages", permWrite, serveCreateMessage)
	handle("GET /messages/{id}", permRead, serveGetMessage)
	handle("PATCH /messages/{id}", permWrite, servePatchMessage)
	handle("DELETE /messages/{id}", permWrite, serveDeleteMessage)
	handle("GET /messages/{id}/$value", permRead, serveMessageValue)
	handle("POST /messages/{id}/move", permWrite, serveMove)
	handle("POST /sendMail", permSend, serveSendMail)

	handle("GET /calendar", permCalendarsRead, serveGetCalendar)
	handle("PATCH /calendar", permCalendarsWrite, servePatchCalendar)
	handle("GET /calendarView/delta", permCalendarsRead, serveActDelta)
	handle("GET /events", permCalendarsRead, serveListAct)
	handle("POST /events", permCalendarsWrite, serveCreateAct)
	handle("GET /events/{id}", permCalendarsRead, serveGetAct)
	handle("PATCH /events/{id}", permCalendarsWrite, servePatchAct)
	handle("DELETE /events/{id}", permCalendarsWrite, serveDeleteAct)
	handle("GET /events/{id}/instances", permCalendarsRead, serveInstances)
	handle("GET /contacts/delta", permContactsRead, serveActDelta)
	handle("GET /contacts", permContactsRead, serveListAct)
	handle("POST /contacts", permContactsWrite, serveCreateAct)
	handle("GET /contacts/{id}", permContactsRead, serveGetAct)
	handle("PATCH /contacts/{id}", permContactsWrite, servePatchAct)
	handle("DELETE /contacts/{id}", permContactsWrite, serveDeleteAct)
	handle("GET /todo/lists", permTasksRead, serveTodoLists)
	handle("GET /todo/lists/{list}/tasks/delta", permTasksRead, serveActDelta)
	handle("GET /todo/lists/{list}/tasks", permTasksRead, serveListAct)
	handle("POST /todo/lists/{list}/tasks", permTasksWrite, serveCreateAct)
	handle("GET /todo/lists/{list}/tasks/{id}", permTasksRead, serveGetAct)
	handle("PATCH /todo/lists/{list}/tasks/{id}", permTasksWrite, servePatchAct)
	handle("DELETE /todo/lists/{list}/tasks/{id}", permTasksWrite, serveDeleteAct)
	handle("POST /todo/lists/{list}/tasks/{id}/extensions", permTasksWrite, serveTaskExtension)
	handle("PATCH /todo/lists/{list}/tasks/{id}/extensions/{ext}", permTasksWrite, serveTaskExtension)
	return mux
}

// canonicalSegments are the literal path segments of the API, matched without
// regard to case as Graph does.
var canonicalSegments = []string{"mailFolders", "childFolders", "messages", "delta", "move", "sendMail", "$value",
	"calendar", "calendarView", "events", "instances", "contacts", "todo", "lists", "tasks", "extensions"}

// normalizePath turns the segments of a Graph path into the fake's route form:
// canonical case for literal segments, mailFolders('id') → mailFolders/id,
// users('x') → users/x, microsoft.graph.delta() → delta.
func normalizePath(segs []string) []string {
	var out []string
	for _, seg := range segs {
		if name, arg, ok := strings.Cut(seg, "('"); ok && strings.HasSuffix(arg, "')") {
			out = append(out, canonical(name), strings.ReplaceAll(strings.TrimSuffix(arg, "')"), "''", "'"))
			continue
		}
		if strings.EqualFold(seg, "microsoft.graph.delta()") {
			seg = "delta"
		}
		out = append(out, canonical(seg))
	}
	return out
}

func canonical(seg string) string {
	for _, c := range canonicalSegments {
		if strings.EqualFold(seg, c) {
			return c
		}
	}
	return seg
}

// splitPath unescapes the segments of an escaped path.
func splitPath(escaped string) ([]string, error) {
	var out []string
	for _, seg := range strings.Split(strings.Trim(escaped, "/"), "/") {
		v, err := url.PathUnescape(seg)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// bearer reads the token of an Authorization header.
func bearer(r *http.Request) string {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

func unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"`)
	writeError(w, http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.")
}

func (s *Server) principal(w http.ResponseWriter, r *http.Request) (Principal, bool) {
	p, err := s.authenticate(r.Context(), bearer(r))
	if err != nil {
		unauthorized(w)
		return Principal{}, false
	}
	return p, true
}

// serveAPI authenticates, finds the mailbox, authorizes, admits and serves a
// request under /v1.0/.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	a := s.admitRequest(w, r)
	if a == nil {
		return
	}
	defer s.release(a.c.mb, a.c.p.AppID)
	s.serveAdmitted(w, a)
}

// admitted is a request that passed authentication, authorization and
// admission: it counts as in flight for its mailbox until release.
type admitted struct {
	c     *call
	inner *http.Request // the request on the route's path
}

// admitRequest authenticates, finds the mailbox, authorizes and admits a
// request under /v1.0/, or answers it and returns nil.
func (s *Server) admitRequest(w http.ResponseWriter, r *http.Request) *admitted {
	p, ok := s.principal(w, r)
	if !ok {
		return nil
	}
	segs, err := splitPath(strings.TrimPrefix(r.URL.EscapedPath(), "/v1.0"))
	if err != nil || len(segs) == 0 {
		writeError(w, http.StatusBadRequest, "BadRequest", "Resource not found for the segment.")
		return nil
	}
	segs = normalizePath(segs)
	var address, userPath string
	var rest []string
	switch {
	case strings.EqualFold(segs[0], "me"):
		if p.AppOnly {
			writeError(w, http.StatusBadRequest, "BadRequest", "/me request is only valid with delegated authentication flow.")
			return nil
		}
		address, userPath, rest = p.User, "me", segs[1:]
	case strings.EqualFold(segs[0], "users") && len(segs) >= 2:
		address, userPath, rest = segs[1], "users/"+url.PathEscape(segs[1]), segs[2:]
	default:
		writeError(w, http.StatusBadRequest, "BadRequest", "Resource not found for the segment '"+segs[0]+"'.")
		return nil
	}

	s.mu.Lock()
	mb, err := s.mailbox(address)
	var mbTenant string
	var restDisabled bool
	if err == nil {
		mbTenant, restDisabled = mb.tenant, mb.restDisabled
	}
	s.mu.Unlock()
	if err != nil {
		writeError(w, http.StatusNotFound, "ErrorInvalidUser", "The requested user '"+address+"' is invalid.")
		return nil
	}
	if (p.AppOnly && p.TenantID != mbTenant) || (!p.AppOnly && !strings.EqualFold(p.User, mb.address)) {
		accessDenied(w)
		return nil
	}
	if restDisabled {
		writeError(w, http.StatusNotFound, "MailboxNotEnabledForRESTAPI", "The mailbox is either inactive, soft-deleted, or is hosted on-premise.")
		return nil
	}

	inner := r.Clone(r.Context())
	inner.Method = strings.ToUpper(inner.Method)
	inner.URL.Path = "/" + strings.Join(rest, "/")
	inner.URL.RawPath = ""
	mux := s.api
	h, pattern := mux.Handler(inner)
	rt, isRoute := h.(route)
	if pattern == "" || !isRoute {
		if s.pathExists(inner) {
			writeError(w, http.StatusMethodNotAllowed, "BadRequest", "The HTTP method '"+r.Method+"' is not allowed for this resource.")
			return nil
		}
		writeError(w, http.StatusBadRequest, "BadRequest", "Resource not found for the segment '"+strings.Join(rest, "/")+"'.")
		return nil
	}
	switch rt.perm {
	case permRead:
		ok = p.has("Mail.Read") || p.has("Mail.ReadWrite")
	case permWrite:
		ok = p.has("Mail.ReadWrite")
	case permSend:
		ok = p.has("Mail.Send")
	case permCalendarsRead, permCalendarsWrite:
		ok = p.hasAccess("Calendars", rt.perm == permCalendarsWrite)
	case permContactsRead, permContactsWrite:
		ok = p.hasAccess("Contacts", rt.perm == permContactsWrite)
	case permTasksRead, permTasksWrite:
		ok = p.hasAccess("Tasks", rt.perm == permTasksWrite)
	}
	if !ok {
		accessDenied(w)
		return nil
	}

	if !s.admit(w, mb, p.AppID) {
		return nil
	}
	c := &call{s: s, mb: mb, p: p, userPath: userPath}
	c.immutable, c.pageSize, c.timeZone = preferences(r.Header)
	return &admitted{c: c, inner: inner.WithContext(context.WithValue(r.Context(), callKey{}, c))}
}

// serveAdmitted serves an admitted request; the caller releases it.
func (s *Server) serveAdmitted(w http.ResponseWriter, a *admitted) {
	r := a.inner
	if s.opts.OnRequest != nil {
		s.opts.OnRequest(r.Context(), a.c.mb.address, r.Method, r.URL.Path)
		if r.Context().Err() != nil {
			return // the client or the server went away while it was held
		}
	}
	s.api.ServeHTTP(w, r)
}

// pathExists says whether a route serves the request's path with another method.
func (s *Server) pathExists(r *http.Request) bool {
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete} {
		probe := *r
		probe.Method = m
		if _, pattern := s.api.Handler(&probe); pattern != "" {
			return true
		}
	}
	return false
}

func accessDenied(w http.ResponseWriter) {
	writeError(w, http.StatusForbidden, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
}

// admit counts a request of application app against the mailbox and answers it
// 429 or 503 when an injected failure, the concurrency limit or the request
// rate says so.
func (s *Server) admit(w http.ResponseWriter, mb *mailbox, app string) bool {
	s.mu.Lock()
	mb.requests++
	use := mb.use(app)
	switch {
	case mb.throttleN > 0:
		mb.throttleN--
		s.throttled++
		after := mb.throttleAfter
		s.mu.Unlock()
		w.Header().Set("Retry-After", retryAfter(after, 1))
		writeError(w, http.StatusTooManyRequests, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.")
		return false
	case mb.unavailN > 0:
		mb.unavailN--
		after := mb.unavailAfter
		s.mu.Unlock()
		if after > 0 {
			w.Header().Set("Retry-After", retryAfter(after, 1))
		}
		writeError(w, http.StatusServiceUnavailable, "ServiceUnavailable", "The service is temporarily unavailable.")
		return false
	case use.inflight >= ConcurrencyLimit:
		s.throttled++
		s.mu.Unlock()
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.")
		return false
	}
	if limit := s.opts.RequestLimit; limit > 0 {
		now := s.opts.Now()
		i := 0
		for i < len(use.recent) && !use.recent[i].After(now.Add(-RequestWindow)) {
			i++
		}
		use.recent = use.recent[i:]
		if len(use.recent) >= limit {
			s.throttled++
			wait := use.recent[0].Add(RequestWindow).Sub(now)
			s.mu.Unlock()
			w.Header().Set("Retry-After", retryAfter(wait, 1))
			writeError(w, http.StatusTooManyRequests, "ApplicationThrottled", "Application is over its MailboxRequestRate limit.")
			return false
		}
		use.recent = append(use.recent, now)
	}
	use.inflight++
	mb.maxConcurrent = max(mb.maxConcurrent, use.inflight)
	s.mu.Unlock()
	return true
}

func (s *Server) release(mb *mailbox, app string) {
	s.mu.Lock()
	mb.use(app).inflight--
	s.mu.Unlock()
}

func retryAfter(d time.Duration, least int) string {
	secs := int((d + time.Second - 1) / time.Second)
	return strconv.Itoa(max(secs, least))
}

// preferences reads the Prefer headers: IdType="ImmutableId",
// odata.maxpagesize=N and outlook.timezone="zone".
func preferences(h http.Header) (immutable bool, pageSize int, timeZone string) {
	for _, v := range h.Values("Prefer") {
		for _, pref := range strings.Split(v, ",") {
			name, val, _ := strings.Cut(strings.TrimSpace(pref), "=")
			val = strings.Trim(strings.TrimSpace(val), `"`)
			switch {
			case strings.EqualFold(name, "IdType") && strings.EqualFold(val, "ImmutableId"):
				immutable = true
			case strings.EqualFold(name, "odata.maxpagesize"):
				if n, err := strconv.Atoi(val); err == nil && n > 0 {
					pageSize = n
				}
			case strings.EqualFold(name, "outlook.timezone"):
				timeZone = val
			}
		}
	}
	return immutable, pageSize, timeZone
}

// writeError answers with Graph's error shape.
func writeError(w http.ResponseWriter, status int, code, message string) {
	requestID := newID("")
	w.Header().Set("request-id", requestID)
	writeJSON(w, status, map[string]any{"error": map[string]any{
		"code": code, "message": message,
		"innerError": map[string]any{"date": time.Now().UTC().Format(time.RFC3339), "request-id": requestID},
	}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		panic(err) // only maps, slices and strings are written
	}
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// errTooLarge is a request body above its limit.
var errTooLarge = errors.New("request body too large")

// readBody reads a request body of at most limit bytes.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > limit {
		return nil, errTooLarge
	}
	return body, nil
}

// jsonBody reads a JSON request body, answering 413 when it is over
// MaxRequestBody and 400 when it cannot be read.
func jsonBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := readBody(r, MaxRequestBody)
	switch {
	case errors.Is(err, errTooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, "ErrorRequestEntityTooLarge", "The request body is too large.")
		return nil, false
	case err != nil:
		writeError(w, http.StatusBadRequest, "ErrorInvalidRequest", "The request body could not be read.")
		return nil, false
	}
	return body, true
}
