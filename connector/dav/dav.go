// Package dav is the ACT connector for CalDAV (appointments as VEVENT, tasks as
// VTODO) and CardDAV (contacts as vCard) servers: Radicale, Xandikos, Nextcloud,
// iCloud, Fastmail and the like.
//
// A session discovers the mailbox owner's collections the way DAVx⁵ and Thunderbird
// do (current-user-principal, then calendar-home-set and addressbook-home-set; the
// first calendar that holds VEVENT, the first that holds VTODO, the first address
// book). It follows changes with the RFC 6578 sync-collection REPORT where the
// collection offers it and by listing ETags (skipped while the collection's ctag
// stays the same) where it does not. Writes carry If-Match / If-None-Match, so a
// version the caller did not see is never overwritten: the server's 412 becomes an
// error matching serversync.ErrACTConflict.
//
// go-webdav does the discovery; the REPORT, the listing and the writes are sent
// here, since its CalDAV client has no sync-collection and neither client sends
// preconditions. Every response body is bounded (Connector.MaxBodyBytes).
package dav

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-webdav"
	"github.com/emersion/go-webdav/caldav"
	"github.com/emersion/go-webdav/carddav"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector"
)

// DefaultMaxBodyBytes bounds one response body when Connector.MaxBodyBytes is 0.
const DefaultMaxBodyBytes = 16 << 20

// DefaultTimeout bounds each request when the endpoint sets no timeout.
const DefaultTimeout = 60 * time.Second

// Connector opens CalDAV/CardDAV sessions. The zero value is ready; it is safe for
// concurrent use.
type Connector struct {
	// DisableSyncCollection makes sessions list ETags even where the server offers
	// sync-collection (a server whose sync tokens are known to be broken; the tests
	// use it to run the listing against a server that has both).
	DisableSyncCollection bool
	// MaxBodyBytes bounds each response body (0: DefaultMaxBodyBytes). A larger one
	// fails with serversync.CodeReplyTooLong.
	MaxBodyBytes int64

	tls connector.TLSConfigs
}

var _ serversync.ACTConnector = (*Connector)(nil)

// OpenACT discovers the target's collections. Target.Endpoint.URL is the server's
// DAV URL (the context path, e.g. https://dav.example.com/ or
// https://cloud.example.com/remote.php/dav/); the credentials must be a password
// (HTTP Basic). A kind whose collection the account lacks fails on use with
// serversync.CodeFolderNotFound, so a server without task lists still syncs the rest.
func (c *Connector) OpenACT(ctx context.Context, target *serversync.Target) (serversync.ACTSession, error) {
	if target == nil {
		return nil, connector.Error("connect", serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodeBadTarget, errors.New("dav: no target"))
	}
	if err := connector.CheckTarget(target); err != nil {
		return nil, err
	}
	ep := target.Endpoint
	base, err := url.Parse(ep.URL)
	if err != nil || (base.Scheme != "https" && base.Scheme != "http") || base.Host == "" || base.User != nil {
		return nil, connector.Error("connect", serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodeBadTarget,
			fmt.Errorf("dav: the endpoint URL %q is not an http(s) URL without credentials", ep.URL))
	}
	creds := target.Credentials
	switch creds.Kind {
	case auth.KindPassword:
		if err := connector.CheckPlaintextAuth(ep, base.Scheme == "https"); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("dav: %s credentials (CalDAV and CardDAV take a password): %w", creds.Kind, serversync.ErrUnsupportedCredentials)
	}
	if ep.Host == "" {
		ep.Host = base.Hostname()
	}
	tlsConf, err := c.tls.For(ep)
	if err != nil {
		return nil, err
	}
	timeout := ep.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	transport := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: timeout}).DialContext,
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       30 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	max := c.MaxBodyBytes
	if max <= 0 {
		max = DefaultMaxBodyBytes
	}
	h := &httpClient{
		// A whole exchange, body included, gets the endpoint timeout plus the time the
		// largest allowed body may take: a server dripping bytes cannot hold a session.
		client:   &http.Client{Transport: transport, Timeout: timeout + connector.BodyAllowance(max), CheckRedirect: sameOrigin(base)},
		user:     creds.Username,
		password: creds.Password,
		max:      max,
	}
	s := &session{c: c, h: h, base: base, cols: map[serversync.ACTKind]*collection{}, mailboxID: target.MailboxID}
	if err := s.discover(ctx); err != nil {
		transport.CloseIdleConnections()
		return nil, err
	}
	return s, nil
}

// sameOrigin refuses redirects to another scheme or host: credentials go only where
// the profile said.
func sameOrigin(base *url.URL) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if len(via) >= 5 {
			return errors.New("dav: too many redirects")
		}
		if req.URL.Scheme != base.Scheme || req.URL.Host != base.Host {
			return fmt.Errorf("dav: refusing a redirect to %s://%s", req.URL.Scheme, req.URL.Host)
		}
		return nil
	}
}

// StatusError is an HTTP reply other than 2xx (and 207) from the server.
type StatusError struct {
	Method, Path string
	Code         int
	Body         string // the first bytes of the reply, for diagnosis
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("dav: %s %s: %d %s", e.Method, e.Path, e.Code, http.StatusText(e.Code))
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// errBodyTooLarge is the error of a response body over Connector.MaxBodyBytes.
var errBodyTooLarge = errors.New("dav: the server's reply is larger than the connector's MaxBodyBytes")

// httpClient sends requests with Basic auth, turns every non-2xx reply into a
// *StatusError and bounds response bodies. It implements webdav.HTTPClient.
type httpClient struct {
	client   *http.Client
	user     string
	password auth.Secret
	max      int64
}

func (h *httpClient) Do(req *http.Request) (*http.Response, error) {
	req.SetBasicAuth(h.user, h.password.Reveal())
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, &StatusError{Method: req.Method, Path: req.URL.Path, Code: resp.StatusCode,
			Body: strings.TrimSpace(strings.ToValidUTF8(string(snippet), "?"))}
	}
	resp.Body = &boundedBody{ReadCloser: resp.Body, left: h.max}
	return resp, nil
}

type boundedBody struct {
	io.ReadCloser
	left int64
}

func (b *boundedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// One byte more than allowed tells a body of exactly the limit from a longer one.
		var one [1]byte
		if n, _ := b.ReadCloser.Read(one[:]); n > 0 {
			return 0, errBodyTooLarge
		}
		return b.ReadCloser.Read(p)
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}

// do sends a request built here and returns the whole (bounded) body.
func (h *httpClient) do(ctx context.Context, method string, u *url.URL, header http.Header, body []byte) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := h.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	return data, resp.Header, nil
}

// classify turns an error of op into a *serversync.ConnectorError (conflicts and
// errors already classified pass through).
func classify(op string, err error) error {
	if err == nil || errors.Is(err, serversync.ErrACTConflict) || errors.Is(err, serversync.ErrUnsupportedCredentials) {
		return err
	}
	var ce *serversync.ConnectorError
	if errors.As(err, &ce) {
		return err
	}
	var se *StatusError
	switch {
	case errors.As(err, &se):
		switch {
		case se.Code == http.StatusUnauthorized:
			return connector.Error(op, serversync.ErrorAuth, serversync.ScopeMailbox, serversync.CodeAuthFailed, err)
		case se.Code == http.StatusForbidden:
			return connector.Error(op, serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeNoPermission, err)
		case se.Code == http.StatusNotFound || se.Code == http.StatusGone:
			return connector.Error(op, serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeFolderNotFound, err)
		case se.Code == http.StatusTooManyRequests:
			return connector.Error(op, serversync.ErrorTransient, serversync.ScopeProfile, serversync.CodeThrottled, err)
		case se.Code >= 500:
			return connector.Error(op, serversync.ErrorTransient, serversync.ScopeProfile, serversync.CodeServerUnavailable, err)
		}
		return connector.Error(op, serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeProtocolError, err)
	case errors.Is(err, errBodyTooLarge):
		return connector.Error(op, serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeReplyTooLong, err)
	case errors.Is(err, ErrBadData):
		return connector.Error(op, serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeProtocolError, err)
	case errors.Is(err, context.DeadlineExceeded):
		return connector.Error(op, serversync.ErrorTransient, serversync.ScopeProfile, serversync.CodeTimeout, err)
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return connector.Error(op, serversync.ErrorTransient, serversync.ScopeProfile, serversync.CodeTimeout, err)
	}
	var xmlErr *xml.SyntaxError
	if errors.As(err, &xmlErr) {
		return connector.Error(op, serversync.ErrorTransient, serversync.ScopeMailbox, serversync.CodeProtocolError, err)
	}
	return connector.NetError(op, err)
}

// collection is one calendar or address book a session uses.
type collection struct {
	path           string // absolute path, ending in "/"
	syncCollection bool   // offers RFC 6578
}

type session struct {
	c         *Connector
	h         *httpClient
	base      *url.URL
	mailboxID string
	cols      map[serversync.ACTKind]*collection
	missing   map[serversync.ACTKind]string
	gets      int // items read one by one (tests check multiget does the work)
}

func (s *session) Close() error {
	s.h.client.CloseIdleConnections()
	return nil
}

func (s *session) discover(ctx context.Context) error {
	wd, err := webdav.NewClient(ctxClient{s.h, ctx}, s.base.String())
	if err != nil {
		return classify("discover", err)
	}
	principal, err := wd.FindCurrentUserPrincipal(ctx)
	if err != nil {
		return classify("discover", err)
	}
	s.missing = map[serversync.ACTKind]string{}
	cal, err := caldav.NewClient(ctxClient{s.h, ctx}, s.base.String())
	if err != nil {
		return classify("discover", err)
	}
	if home, err := cal.FindCalendarHomeSet(ctx, principal); err != nil {
		return classify("discover", err)
	} else if cals, err := cal.FindCalendars(ctx, home); err != nil {
		return classify("discover", err)
	} else {
		for _, kind := range []serversync.ACTKind{serversync.KindAppointment, serversync.KindTask} {
			comp := map[serversync.ACTKind]string{serversync.KindAppointment: "VEVENT", serversync.KindTask: "VTODO"}[kind]
			for _, c := range cals {
				if len(c.SupportedComponentSet) == 0 || slices.ContainsFunc(c.SupportedComponentSet, func(s string) bool { return strings.EqualFold(s, comp) }) {
					s.cols[kind] = &collection{path: dirPath(c.Path)}
					break
				}
			}
			if s.cols[kind] == nil {
				s.missing[kind] = fmt.Sprintf("no calendar under %s holds %s", home, comp)
			}
		}
	}
	card, err := carddav.NewClient(ctxClient{s.h, ctx}, s.base.String())
	if err != nil {
		return classify("discover", err)
	}
	if home, err := card.FindAddressBookHomeSet(ctx, principal); err != nil {
		return classify("discover", err)
	} else if books, err := card.FindAddressBooks(ctx, home); err != nil {
		return classify("discover", err)
	} else if len(books) > 0 {
		s.cols[serversync.KindContact] = &collection{path: dirPath(books[0].Path)}
	} else {
		s.missing[serversync.KindContact] = "no address book under " + home
	}
	for _, col := range s.cols {
		ms, err := s.propfind(ctx, col.path, "0", `<D:supported-report-set/>`)
		if err != nil {
			return classify("discover", err)
		}
		for _, r := range ms.Responses {
			for _, ps := range r.okProps() {
				for _, sr := range ps.SupportedReports {
					if sr.Report.SyncCollection != nil || sr.SyncCollection != nil {
						col.syncCollection = true
					}
				}
			}
		}
	}
	return nil
}

func dirPath(p string) string {
	if !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return p
}

// ctxClient gives go-webdav's requests (which it builds without a context) the
// session's.
type ctxClient struct {
	h   *httpClient
	ctx context.Context
}

func (c ctxClient) Do(req *http.Request) (*http.Response, error) {
	return c.h.Do(req.WithContext(c.ctx))
}

func (s *session) collection(op string, kind serversync.ACTKind) (*collection, error) {
	if col := s.cols[kind]; col != nil {
		return col, nil
	}
	why, known := s.missing[kind]
	if !known {
		return nil, connector.Error(op, serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeBadTarget,
			fmt.Errorf("dav: unknown ACT kind %q", kind))
	}
	return nil, connector.Error(op, serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeFolderNotFound,
		fmt.Errorf("dav: %s: %s", kind, why))
}

func (s *session) resolve(p string) *url.URL {
	return &url.URL{Scheme: s.base.Scheme, Host: s.base.Host, Path: p}
}
