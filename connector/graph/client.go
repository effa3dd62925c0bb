package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector"
)

// preferImmutableID keeps message ids stable when messages move.
const preferImmutableID = `IdType="ImmutableId"`

// what says what a request is about, for classifying a 404.
type what int

const (
	aboutMailbox what = iota
	aboutFolder
	aboutMessage
	aboutSend
	aboutACT     // an ACT collection, list or the calendar
	aboutACTItem // one event, contact or task
)

// call is one Graph request, sent again as it is after a Retry-After.
type call struct {
	op          string // "fetch", "move", … for errors
	method      string
	url         string // absolute
	body        []byte
	contentType string
	messages    bool     // sends Prefer: IdType="ImmutableId" (mail, and ACT's events and contacts)
	prefer      []string // more Prefer values
	about       what
	weight      int64  // budget slots held while in flight (0: 1)
	ifMatch     string // sent as If-Match
}

// graphError is Graph's error reply.
type graphError struct {
	Status  int
	Code    string
	Message string
}

func (e *graphError) Error() string {
	if e.Code == "" && e.Message == "" {
		return fmt.Sprintf("graph: HTTP %d", e.Status)
	}
	return fmt.Sprintf("graph: HTTP %d %s: %q", e.Status, e.Code, e.Message)
}

// parseGraphError reads Graph's {"error":{"code","message"}} from a reply body
// (at most 64 KiB of it).
func parseGraphError(status int, body io.Reader) *graphError {
	ge := &graphError{Status: status}
	raw, _ := io.ReadAll(io.LimitReader(body, 64<<10))
	var reply struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(raw, &reply) == nil {
		ge.Code, ge.Message = reply.Error.Code, reply.Error.Message
	}
	if len(ge.Message) > 500 {
		ge.Message = ge.Message[:500] + "…"
	}
	return ge
}

// token gets an access token (the source caches it).
func (m *mailbox) token(ctx context.Context, op string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", connector.NetError(op, err)
	}
	tok, err := m.target.Credentials.TokenSource.Token()
	if err != nil {
		if ce := connector.TokenFailure(op, m.target.Credentials, err); ce != nil {
			return "", ce
		}
		// Not a refusal by the identity provider: it could not be reached.
		return "", connector.NetError(op, fmt.Errorf("graph: get an access token: %w", err))
	}
	if tok == nil || tok.AccessToken == "" {
		return "", connector.Error(op, serversync.ErrorAuth, serversync.ScopeProfile, serversync.CodeTokenRefused, errors.New("graph: the token source gave an empty token"))
	}
	return tok.AccessToken, nil
}

// url builds an absolute URL below base: path is below /v1.0 ("/me/mailFolders/inbox").
func (m *mailbox) url(path string, query url.Values) string {
	u := *m.base
	u.Path += path
	u.RawPath = ""
	if strings.Contains(path, "%") {
		u.RawPath = m.base.EscapedPath() + path
		if p, err := url.PathUnescape(u.RawPath); err == nil {
			u.Path = p
		}
	}
	if query != nil {
		u.RawQuery = strings.ReplaceAll(query.Encode(), "+", "%20")
	}
	return u.String()
}

// sameOrigin reports whether link may be sent the token: Graph's own links
// (nextLink, deltaLink) point at the endpoint's scheme and host.
func (m *mailbox) sameOrigin(link string) bool {
	u, err := url.Parse(link)
	return err == nil && u.Scheme == m.base.Scheme && strings.EqualFold(u.Host, m.base.Host)
}

// reply is a response whose body is read under the connector's limits; Close
// releases the request's budget slots.
type reply struct {
	*http.Response
	body    *limitedBody
	release func()
}

func (r *reply) Close() { r.release() }

// send runs a call: it waits for budget, sends, obeys Retry-After on 429 and
// 503 up to MaxRetryWait, and classifies every failure. On success the caller
// reads r.body and must Close r. Replies 2xx are successes; others are
// returned as classified errors, with the *graphError reachable.
func (m *mailbox) send(ctx context.Context, c call) (*reply, error) {
	waited := time.Duration(0)
	backoff := time.Second
	for {
		r, retryAfter, err := m.once(ctx, c)
		if err != nil || retryAfter < 0 {
			return r, err
		}
		if retryAfter == 0 {
			retryAfter, backoff = backoff, backoff*2
		}
		if waited+retryAfter > m.c.opts.MaxRetryWait {
			return nil, connector.Error(c.op, serversync.ErrorTransient, serversync.ScopeMailbox, serversync.CodeThrottled,
				fmt.Errorf("graph: the server asked to wait %s more after %s of waiting (over the %s one request may wait)", retryAfter, waited, m.c.opts.MaxRetryWait))
		}
		if err := m.c.wait(ctx, retryAfter); err != nil {
			return nil, connector.NetError(c.op, err)
		}
		waited += retryAfter
	}
}

// wait sleeps d unless ctx ends first, counting it.
func (c *Connector) wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	start := time.Now()
	select {
	case <-ctx.Done():
		c.retryWait.Add(int64(time.Since(start)))
		return ctx.Err()
	case <-t.C:
		c.retryWait.Add(int64(d))
		return nil
	}
}

// once sends a call once. retryAfter ≥ 0 (0: not said) asks the caller to
// retry after that long; -1 means r or err is the outcome.
func (m *mailbox) once(ctx context.Context, c call) (r *reply, retryAfter time.Duration, err error) {
	token, err := m.token(ctx, c.op)
	if err != nil {
		return nil, -1, err
	}
	weight := max(c.weight, 1)
	if err := m.budget.Acquire(ctx, weight); err != nil {
		return nil, -1, connector.NetError(c.op, err)
	}
	var releaseOnce sync.Once
	reqCtx, cancel := context.WithCancel(ctx)
	watch := newWatchdog(m.timeout, cancel)
	release := func() {
		releaseOnce.Do(func() {
			watch.stop()
			cancel()
			m.budget.Release(weight)
		})
	}
	var body io.Reader
	if c.body != nil {
		body = bytes.NewReader(c.body)
	}
	req, err := http.NewRequestWithContext(reqCtx, c.method, c.url, body)
	if err != nil {
		release()
		return nil, -1, connector.Error(c.op, serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeBadTarget, fmt.Errorf("graph: %w", err))
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	if c.contentType != "" {
		req.Header.Set("Content-Type", c.contentType)
	}
	if c.ifMatch != "" {
		req.Header.Set("If-Match", c.ifMatch)
	}
	var prefer []string
	if c.messages {
		prefer = append(prefer, preferImmutableID)
	}
	prefer = append(prefer, c.prefer...)
	if len(prefer) > 0 {
		req.Header.Set("Prefer", strings.Join(prefer, ", "))
	}
	m.c.requests.Add(1)
	resp, err := m.client.Do(req)
	if err != nil {
		release()
		return nil, -1, watch.classify(c.op, err)
	}
	watch.pause() // the headers are in: from now on only body reads wait
	lb := &limitedBody{rc: resp.Body, watch: watch}
	r = &reply{Response: resp, body: lb, release: func() { _ = resp.Body.Close(); release() }}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return r, -1, nil
	case resp.StatusCode == http.StatusTooManyRequests || (resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != ""):
		m.c.throttled.Add(1)
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		r.Close()
		after, _ := parseRetryAfter(resp.Header.Get("Retry-After"))
		m.c.log.Debug("graph: throttled", "op", c.op, "status", resp.StatusCode, "retry_after", after)
		return nil, after, nil
	}
	if resp.StatusCode == http.StatusServiceUnavailable {
		m.c.throttled.Add(1)
	}
	ge := parseGraphError(resp.StatusCode, lb.limit(64<<10))
	r.Close()
	// A server echoing the request must not put the token into an error.
	ge.Code = strings.ReplaceAll(ge.Code, token, "[token]")
	ge.Message = strings.ReplaceAll(ge.Message, token, "[token]")
	return nil, -1, m.classify(c.op, c.about, ge)
}

// parseRetryAfter reads a Retry-After header: seconds or an HTTP date.
func parseRetryAfter(v string) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0), true
	}
	return 0, false
}

// readJSON reads a JSON reply into out, at most MaxJSONBytes, and closes r.
func readJSON(op string, r *reply, out any, limit int64) error {
	defer r.Close()
	raw, err := io.ReadAll(r.body.limit(limit))
	if err != nil {
		return r.body.classify(op, err)
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.Contains(strings.ToLower(ct), "json") {
		return connector.Error(op, serversync.ErrorTransient, serversync.ScopeMailbox, serversync.CodeProtocolError,
			fmt.Errorf("graph: the server answered %s where JSON was expected: check the profile's server URL", ct))
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return connector.Error(op, serversync.ErrorTransient, serversync.ScopeMailbox, serversync.CodeProtocolError,
			fmt.Errorf("graph: the server's reply is not the JSON expected: %w", err))
	}
	return nil
}

// doJSON sends a call and reads its JSON reply into out (out may be nil).
func (m *mailbox) doJSON(ctx context.Context, c call, out any) error {
	r, err := m.send(ctx, c)
	if err != nil {
		return err
	}
	if out == nil || r.StatusCode == http.StatusNoContent || r.StatusCode == http.StatusAccepted {
		_, _ = io.Copy(io.Discard, r.body.limit(64<<10))
		r.Close()
		return nil
	}
	return readJSON(c.op, r, out, MaxJSONBytes)
}

// watchdog cancels a request whose reply keeps it waiting longer than the
// endpoint timeout plus one second per connector.MessageBytesPerSecond bytes
// of body read: a large body on a slow link may take its time, a stalled or
// dripping reply may not. Like connector.BoundedConn it counts the time spent
// waiting for the server (for the headers, then inside body reads), not the
// time the caller takes between reads to process what it got.
type watchdog struct {
	timeout time.Duration
	cancel  context.CancelFunc
	read    atomic.Int64
	fired   atomic.Bool
	headers atomic.Bool

	mu        sync.Mutex
	timer     *time.Timer
	stopped   bool
	waited    time.Duration // time spent waiting, up to waitStart
	waitStart time.Time     // when the current wait began; zero between reads
}

func newWatchdog(timeout time.Duration, cancel context.CancelFunc) *watchdog {
	w := &watchdog{timeout: timeout, cancel: cancel, waitStart: time.Now()}
	if timeout > 0 {
		w.timer = time.AfterFunc(timeout, w.check)
	}
	return w
}

func (w *watchdog) check() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	waited := w.waited
	if !w.waitStart.IsZero() {
		waited += time.Since(w.waitStart)
	}
	allowed := w.timeout + connector.BodyAllowance(w.read.Load())
	if left := allowed - waited; left > 0 {
		w.timer.Reset(left)
		return
	}
	w.fired.Store(true)
	w.cancel()
}

// pause ends a wait (the headers arrived, a read returned); resume begins one.
func (w *watchdog) pause() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.waitStart.IsZero() {
		w.waited += time.Since(w.waitStart)
		w.waitStart = time.Time{}
	}
}

func (w *watchdog) resume() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.waitStart.IsZero() {
		w.waitStart = time.Now()
	}
}

func (w *watchdog) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
	if w.timer != nil {
		w.timer.Stop()
	}
}

// classify turns a transport error into a connector error, telling a timeout
// of the watchdog apart from the caller's cancellation.
func (w *watchdog) classify(op string, err error) error {
	if w.fired.Load() {
		code := serversync.CodeTimeout
		if w.headers.Load() {
			code = serversync.CodeReplyTooSlow
		}
		return connector.Error(op, serversync.ErrorTransient, serversync.ScopeMailbox, code,
			fmt.Errorf("graph: no whole reply within %s: %w", w.timeout, err))
	}
	return connector.NetError(op, err)
}

// limitedBody is a reply body read under a byte limit and the watchdog.
type limitedBody struct {
	rc    io.ReadCloser
	watch *watchdog
	left  int64
	max   int64
	err   error // sticky
}

// limit sets how many bytes may be read (from now on) and returns b.
func (b *limitedBody) limit(n int64) *limitedBody {
	b.left, b.max = n, n
	b.watch.headers.Store(true)
	return b
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.left <= 0 {
		// One byte more tells a reply of exactly the limit from a longer one.
		var one [1]byte
		n, err := b.rc.Read(one[:])
		if n > 0 {
			b.err = &connector.ReplyLimitError{Code: serversync.CodeReplyTooLong, Reason: fmt.Sprintf(
				"the server's reply is longer than %d bytes (raise the connector's limit if the server is legitimate)", b.max)}
			return 0, b.err
		}
		if err != nil {
			b.err = err
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	b.watch.resume()
	n, err := b.rc.Read(p)
	b.watch.pause()
	b.left -= int64(n)
	b.watch.read.Add(int64(n))
	if err != nil && b.watch.fired.Load() {
		// Cut off by the watchdog: however the transport ends the body (an
		// error, or an EOF that looks clean), it is not whole.
		err = errCutOff
	}
	if err != nil {
		b.err = err
	}
	return n, err
}

var errCutOff = errors.New("graph: the reply was cut off")

// classify turns an error reading the body into a connector error.
func (b *limitedBody) classify(op string, err error) error {
	var le *connector.ReplyLimitError
	if errors.As(err, &le) {
		return le.Classify(op, serversync.ScopeMailbox, err)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return connector.Error(op, serversync.ErrorTransient, serversync.ScopeMailbox, serversync.CodeNetwork,
			fmt.Errorf("graph: the reply was cut short: %w", err))
	}
	return b.watch.classify(op, err)
}
