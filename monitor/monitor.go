// Package monitor is a monitoring page for serversync that a host mounts under a
// path prefix, behind its own authentication, as River UI or asynqmon are
// mounted: an overview of every profile and mailbox (status by workload,
// failures in the last hour, the "over half the mailboxes failed" alerts,
// throughput, the outgoing backlog, initial syncs in progress, certificates that
// expire soon), a page per profile and per mailbox (statuses, last sync, the last
// error with its code and what to do, counts, recent activities, alerts, which
// host holds its lease), and the admin actions (Test & Enable, approve, disable,
// change the incoming filter) as POST forms.
//
//	mon, err := monitor.New(store, monitor.Options{
//		Admin:  admin,
//		Syncer: syncer,            // nil: no Test & Enable button
//		Prefix: "/ops/mail",
//		Actor:  func(r *http.Request) string { return currentUser(r) }, // who approves
//	})
//	mux.Handle("/ops/mail/", requireAdmin(mon)) // the host's own authentication
//
// Everything it serves comes from the handler itself (html/template, embed.FS,
// charts drawn as SVG on the server, one small script that refreshes the page's
// live part): no CDN, no build step. A Content-Security-Policy of 'self' keeps it
// that way. It never renders a secret: passwords, client secrets, private keys
// and OAuth tokens are not part of any page.
//
// Actions are refused from other origins (http.CrossOriginProtection: the
// browser's Sec-Fetch-Site and Origin headers) and need a token from the page (an
// HMAC of a random nonce and a time, optionally bound to the user by
// Options.CSRFBinding). With Options.ReadOnly the forms are not shown and every
// POST is refused.
//
// The counts come from the Store (serversync.CountActivities is one GROUP BY on
// the stores of this module). Throughput needs the Syncer's events: pass a
// [Recorder] in Options and call its Record from Config.OnEvent; it counts what
// this process's Syncer did (with several processes, mount the page in each, or
// feed one Recorder from all of them).
package monitor

import (
	"context"
	"crypto/rand"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/serversync/serversync"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Options configure the handler.
type Options struct {
	// Admin performs the actions (approve, disable, change the filter). Without
	// it the page is read-only.
	Admin *serversync.Admin
	// Syncer runs Test & Enable; without it that action is not offered.
	Syncer *serversync.Syncer
	// Recorder, when set, feeds the throughput chart (see Recorder).
	Recorder *Recorder
	// Throttling, when set, reports how often the servers asked this process to
	// slow down, for the overview: pass the Graph connector's counters, e.g.
	//	func() monitor.Throttling { s := conn.Stats(); return monitor.Throttling{Answers: s.Throttled, Waited: s.RetryWait} }
	Throttling func() Throttling
	// Prefix is the path the handler is mounted under ("/ops/mail"); "" mounts it
	// at the root. Links and form actions start with it.
	Prefix string
	// ReadOnly hides the actions and refuses every POST.
	ReadOnly bool
	// CSRFKey signs the forms' tokens (at least 32 bytes). Empty: a random key per
	// handler, so tokens do not survive a restart (a page reloaded gets new ones).
	// Several processes behind one load balancer share a key.
	CSRFKey []byte
	// CSRFBinding, when set, returns what a token is bound to (the signed-in
	// user's ID, a session ID): a token taken from one user's page then fails for
	// another.
	CSRFBinding func(*http.Request) string
	// Actor names the user behind a request for Admin.Approve; nil: "monitor".
	Actor func(*http.Request) string
	// Refresh is how often the page's live part is refreshed; 0 means 5 s.
	Refresh time.Duration
	// CountsMaxAge is how long the overview reuses the store-wide activity counts
	// (one GROUP BY over every activity) before asking the store again, so that
	// open pages refreshing every few seconds do not scan a large table each
	// time; 0 means 15 s. A mailbox's own page always counts afresh (its
	// mailbox_id is indexed).
	CountsMaxAge time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives action failures; nil means slog.Default().
	Logger *slog.Logger
}

// Throttling counts the server's requests to slow down (HTTP 429 or 503 with
// Retry-After) that this process waited out, and how long it waited in all.
type Throttling struct {
	Answers int64
	Waited  time.Duration
}

// Handler serves the monitoring page. Create it with New.
type Handler struct {
	store    serversync.Store
	opts     Options
	pages    map[string]*template.Template
	mux      *http.ServeMux
	csrf     *csrf
	cop      *http.CrossOriginProtection
	static   http.Handler
	log      *slog.Logger
	readOnly bool

	countsMu sync.Mutex
	counts   []serversync.ActivityCount
	countsAt time.Time
}

// allCounts returns the store-wide activity counts, at most CountsMaxAge old.
func (h *Handler) allCounts(ctx context.Context) ([]serversync.ActivityCount, error) {
	h.countsMu.Lock()
	defer h.countsMu.Unlock()
	now := h.opts.Now()
	if h.counts != nil && now.Sub(h.countsAt) < h.opts.CountsMaxAge && !now.Before(h.countsAt) {
		return h.counts, nil
	}
	counts, err := serversync.CountActivities(ctx, h.store, serversync.ActivityCountFilter{})
	if err != nil {
		return nil, err
	}
	if counts == nil {
		counts = []serversync.ActivityCount{}
	}
	h.counts, h.countsAt = counts, now
	return counts, nil
}

// New returns the monitoring handler over store.
func New(store serversync.Store, opts Options) (*Handler, error) {
	if store == nil {
		return nil, errors.New("monitor: New needs the Store the Syncer uses")
	}
	opts.Prefix = strings.TrimRight(opts.Prefix, "/")
	if opts.Prefix != "" && !strings.HasPrefix(opts.Prefix, "/") {
		return nil, fmt.Errorf("monitor: Options.Prefix %q must start with /", opts.Prefix)
	}
	if opts.Refresh <= 0 {
		opts.Refresh = 5 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.CountsMaxAge <= 0 {
		opts.CountsMaxAge = 15 * time.Second
	}
	key := opts.CSRFKey
	if len(key) == 0 {
		key = make([]byte, 32)
		_, _ = rand.Read(key) // never fails (crypto/rand)
	} else if len(key) < 32 {
		return nil, errors.New("monitor: Options.CSRFKey must be at least 32 bytes (or empty for a random one)")
	}
	h := &Handler{
		store: store, opts: opts, pages: make(map[string]*template.Template),
		csrf: &csrf{key: key, binding: opts.CSRFBinding, now: opts.Now},
		cop:  http.NewCrossOriginProtection(),
		log:  opts.Logger, readOnly: opts.ReadOnly || opts.Admin == nil,
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	for _, page := range []string{"overview", "profile", "mailbox", "error"} {
		t, err := template.New("layout.html").Funcs(h.funcs()).ParseFS(templateFS, "templates/layout.html", "templates/"+page+".html")
		if err != nil {
			return nil, fmt.Errorf("monitor: templates: %w", err)
		}
		h.pages[page] = t
	}
	sub, _ := fs.Sub(staticFS, "static")
	h.static = http.StripPrefix(opts.Prefix+"/static/", http.FileServerFS(sub))

	mux := http.NewServeMux()
	p := opts.Prefix
	mux.HandleFunc("GET "+p+"/{$}", h.overview)
	if p != "" {
		mux.HandleFunc("GET "+p, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, p+"/", http.StatusMovedPermanently)
		})
	}
	mux.HandleFunc("GET "+p+"/profiles/{id}", h.profile)
	mux.HandleFunc("GET "+p+"/mailboxes/{id}", h.mailbox)
	mux.Handle("GET "+p+"/static/", h.static)
	mux.HandleFunc("POST "+p+"/mailboxes/{id}/{action}", h.mailboxAction)
	mux.HandleFunc("POST "+p+"/profiles/{id}/{action}", h.profileAction)
	h.mux = mux
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "+
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "same-origin")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if h.readOnly {
			http.Error(w, "monitor: read-only: actions are turned off", http.StatusForbidden)
			return
		}
		if err := h.cop.Check(r); err != nil {
			http.Error(w, "monitor: cross-origin request refused", http.StatusForbidden)
			return
		}
		if err := h.csrf.verify(r, r.PostFormValue("csrf")); err != nil {
			http.Error(w, "monitor: "+err.Error()+"; reload the page and try again", http.StatusForbidden)
			return
		}
	}
	if !strings.HasPrefix(r.URL.Path, h.opts.Prefix+"/static/") {
		hdr.Set("Cache-Control", "no-store")
	}
	h.mux.ServeHTTP(w, r)
}

// render executes a page, or answers 500 without half a page.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, page string, data any) {
	var b strings.Builder
	view := struct {
		Page     string
		Prefix   string
		Refresh  int64 // milliseconds, for the script
		Seconds  int64 // for the no-script refresh
		ReadOnly bool
		CSRF     string
		Notice   string
		Data     any
	}{page, h.opts.Prefix, h.opts.Refresh.Milliseconds(), max(int64(h.opts.Refresh.Seconds()), 1), h.readOnly, h.csrf.token(r), notices[r.URL.Query().Get("done")], data}
	if err := h.pages[page].Execute(&b, view); err != nil {
		h.log.Error("monitor: render", "page", page, "err", err)
		http.Error(w, "monitor: the page could not be drawn", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}

// fail answers with the error page: its message is the library's, which never
// holds secrets.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, serversync.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, serversync.ErrPermissionDenied):
		status = http.StatusForbidden
	case errors.Is(err, serversync.ErrSettingsChanged), errors.Is(err, serversync.ErrAlreadyExists):
		status = http.StatusConflict
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		status = http.StatusServiceUnavailable
	default:
		var verr *serversync.ValidationError
		if errors.As(err, &verr) {
			status = http.StatusBadRequest
		}
	}
	if status == http.StatusInternalServerError {
		h.log.Error("monitor", "path", r.URL.Path, "err", err)
	}
	h.render(w, r, status, "error", struct {
		Status  int
		Message string
	}{status, err.Error()})
}

// notices are the confirmations an action's redirect asks for (?done=…); only
// these fixed texts are shown, never anything from the URL.
var notices = map[string]string{
	"tested":    "Test & Enable finished.",
	"approved":  "The mailbox was approved.",
	"disabled":  "Incoming, outgoing and ACT were disabled; Test & Enable turns them on again.",
	"filter":    "The incoming filter was changed; the next sync reads the inbox again.",
	"scheduled": "The profile's mailboxes were marked for Test & Enable; the Syncers test them in the background.",
}
