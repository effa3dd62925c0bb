package graph

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector"
)

var _ serversync.Prober = (*Connector)(nil)

// claims are the parts of an access token Probe shows (read without
// verifying the signature: Graph verifies it).
type claims struct {
	Roles []string `json:"roles"`
	Scp   string   `json:"scp"`
	Tid   string   `json:"tid"`
	AppID string   `json:"appid"`
	UPN   string   `json:"upn"`
	PUN   string   `json:"preferred_username"`
}

// tokenClaims decodes a JWT's payload; ok is false for an opaque token.
func tokenClaims(token string) (claims, bool) {
	var c claims
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return c, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil || json.Unmarshal(payload, &c) != nil {
		return c, false
	}
	return c, true
}

// permissions are the token's application roles or delegated scopes.
func (c claims) permissions() []string {
	if len(c.Roles) > 0 {
		return c.Roles
	}
	return strings.Fields(c.Scp)
}

// Probe implements serversync.Prober: "token" (an access token was issued;
// its permissions are shown, never the token), "mailbox" (the mailbox's root
// folder can be read), "open-inbox" (the inbox, with its counts) and
// "send-permission" (the token carries Mail.Send). It stops at the first
// failing step; nothing changes on the server.
func (c *Connector) Probe(ctx context.Context, target *serversync.Target) []serversync.TestStep {
	var list []serversync.TestStep
	var ep serversync.Endpoint
	if target != nil {
		ep = target.Endpoint
	}
	step := func(name string, begin time.Time, err error, detail string) bool {
		s := serversync.TestStep{Name: name, OK: err == nil, Err: err, Duration: time.Since(begin), Detail: detail}
		if err != nil && detail == "" {
			s.Detail = advice(err, ep)
		}
		list = append(list, s)
		return err == nil
	}
	begin := time.Now()
	m, err := c.mailbox(ctx, target)
	if err != nil {
		step("token", begin, err, "")
		return list
	}
	token, err := m.token(ctx, "probe")
	if err != nil {
		step("token", begin, err, "")
		return list
	}
	cl, isJWT := tokenClaims(token)
	detail := "got an access token (not a JWT: its permissions cannot be shown)"
	if isJWT {
		kind := "delegated scopes"
		if len(cl.Roles) > 0 {
			kind = "application roles"
		}
		detail = fmt.Sprintf("got an access token with %s %s", kind, strings.Join(cl.permissions(), ", "))
		if cl.Tid != "" {
			detail += " (tenant " + cl.Tid + ")"
		}
	}
	step("token", begin, nil, detail)

	begin = time.Now()
	var root mailFolder
	err = m.doJSON(ctx, call{op: "probe", method: http.MethodGet, url: m.url(m.user+"/mailFolders/msgfolderroot", nil), about: aboutMailbox}, &root)
	if !step("mailbox", begin, err, "") {
		return list
	}
	list[len(list)-1].Detail = "the mailbox " + strings.TrimPrefix(m.user, "/") + " can be read"

	begin = time.Now()
	var inbox mailFolder
	err = m.doJSON(ctx, call{op: "probe", method: http.MethodGet, url: m.url(m.user+"/mailFolders/inbox", nil), about: aboutFolder}, &inbox)
	if !step("open-inbox", begin, err, "") {
		return list
	}
	list[len(list)-1].Detail = fmt.Sprintf("opened %s: %d messages, %d unread", cmpOr(inbox.DisplayName, "the inbox"), inbox.Total, inbox.Unread)

	begin = time.Now()
	switch err := sendPermission(token, m.appOnly); {
	case err != nil:
		step("send-permission", begin, err, err.Error())
	case !isJWT:
		step("send-permission", begin, nil, "the token is opaque: whether it may send shows at the first send")
	default:
		step("send-permission", begin, nil, "the token carries Mail.Send")
	}
	return list
}

// sendPermission refuses a token that shows it may not send (a JWT without
// Mail.Send among its roles or scopes), saying which permission to grant. An
// opaque token passes: the first send tells.
func sendPermission(token string, appOnly bool) error {
	cl, isJWT := tokenClaims(token)
	if !isJWT || slices.ContainsFunc(cl.permissions(), func(p string) bool { return strings.EqualFold(p, "Mail.Send") }) {
		return nil
	}
	grant := "grant the delegated permission Mail.Send to the application and sign in again"
	if len(cl.Roles) > 0 || appOnly {
		grant = "grant the application permission Mail.Send (with admin consent) to the application"
	}
	return connector.Error("send", serversync.ErrorAuth, serversync.ScopeMailbox, serversync.CodeNoPermission,
		fmt.Errorf("graph: the token lacks Mail.Send (it has %s): %s", strings.Join(cl.permissions(), ", "), grant))
}

// advice is what a person can do about a failed step.
func advice(err error, ep serversync.Endpoint) string {
	var ce *serversync.ConnectorError
	if errors.As(err, &ce) {
		switch ce.Code {
		case serversync.CodeNoPermission, serversync.CodeMailboxNotFound, serversync.CodeThrottled, serversync.CodeAuthUnavailable,
			serversync.CodeTokenRefused, serversync.CodeAuthFailed, serversync.CodeAuthExpired:
			return ce.Err.Error()
		}
	}
	return connector.Advice(err, ep)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
