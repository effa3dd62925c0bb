package monitor

import (
	"context"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/serversync/serversync"
)

func (h *Handler) overview(w http.ResponseWriter, r *http.Request) {
	d, err := h.loadOverview(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.render(w, r, http.StatusOK, "overview", d)
}

func (h *Handler) profile(w http.ResponseWriter, r *http.Request) {
	d, err := h.loadProfile(r.Context(), r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.render(w, r, http.StatusOK, "profile", d)
}

func (h *Handler) mailbox(w http.ResponseWriter, r *http.Request) {
	d, err := h.loadMailbox(r.Context(), r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.render(w, r, http.StatusOK, "mailbox", d)
}

// actionTimeout bounds an action: Test & Enable waits for the mail servers.
const actionTimeout = 3 * time.Minute

func (h *Handler) actor(r *http.Request) string {
	if h.opts.Actor != nil {
		return h.opts.Actor(r)
	}
	return "monitor"
}

func (h *Handler) mailboxAction(w http.ResponseWriter, r *http.Request) {
	id, action := r.PathValue("id"), r.PathValue("action")
	ctx, cancel := context.WithTimeout(r.Context(), actionTimeout)
	defer cancel()
	var err error
	var done string
	switch action {
	case "test-enable":
		if h.opts.Syncer == nil {
			http.Error(w, "monitor: no Syncer: Test & Enable is not available here", http.StatusNotFound)
			return
		}
		_, err = h.opts.Syncer.TestAndEnable(ctx, id)
		done = "tested"
	case "approve":
		err, done = h.opts.Admin.Approve(ctx, h.actor(r), id), "approved"
	case "disable":
		_, err = h.opts.Admin.UpdateMailbox(ctx, id, func(m *serversync.Mailbox) {
			m.IncomingEnabled, m.OutgoingEnabled, m.ACTEnabled = false, false, false
		})
		done = "disabled"
	case "filter":
		_, err = h.opts.Admin.ChangeIncomingFilter(ctx, id, serversync.IncomingFilter(r.PostFormValue("filter")))
		done = "filter"
	default:
		http.NotFound(w, r)
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.Info("monitor: mailbox action", "action", action, "mailbox", id, "actor", h.actor(r))
	http.Redirect(w, r, h.opts.Prefix+"/mailboxes/"+url.PathEscape(id)+"?done="+done, http.StatusSeeOther)
}

func (h *Handler) profileAction(w http.ResponseWriter, r *http.Request) {
	id, action := r.PathValue("id"), r.PathValue("action")
	if action != "test-enable" || h.opts.Syncer == nil {
		http.NotFound(w, r)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), actionTimeout)
	defer cancel()
	if _, err := h.opts.Syncer.TestAndEnableProfile(ctx, id); err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.Info("monitor: profile action", "action", action, "profile", id, "actor", h.actor(r))
	http.Redirect(w, r, h.opts.Prefix+"/profiles/"+url.PathEscape(id)+"?done=scheduled", http.StatusSeeOther)
}

func (h *Handler) funcs() template.FuncMap {
	return template.FuncMap{
		"ago": func(t time.Time) string {
			if t.IsZero() {
				return "never"
			}
			d := h.opts.Now().Sub(t)
			switch {
			case d < 0:
				return "in " + roundDuration(-d)
			case d < time.Second:
				return "just now"
			}
			return roundDuration(d) + " ago"
		},
		"stamp": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format(time.RFC3339)
		},
		"dur":   roundDuration,
		"lower": strings.ToLower,
		"status": func(s serversync.TestStatus, enabled bool) string {
			switch {
			case enabled:
				return "ok"
			case s == serversync.TestFailure:
				return "bad"
			}
			return "muted"
		},
		"level": func(l serversync.AlertLevel) string { return strings.ToLower(string(l)) },
		"percent": func(done, total int64) int64 {
			if total <= 0 {
				return 0
			}
			return min(done*100/total, 100)
		},
		"dict": func(kv ...any) map[string]any {
			m := make(map[string]any, len(kv)/2)
			for i := 0; i+1 < len(kv); i += 2 {
				m[fmt.Sprint(kv[i])] = kv[i+1]
			}
			return m
		},
		"active": func(t time.Time) bool { return !t.IsZero() && t.After(h.opts.Now()) },
	}
}

func roundDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
