package graph

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector"
)

// Defaults of Options.
const (
	// MaxInFlightDefault is Graph's documented limit of concurrent requests per
	// application and mailbox.
	MaxInFlightDefault = 4
	// PageSizeDefault is the delta page size asked for (Prefer: odata.maxpagesize).
	PageSizeDefault = 100
	// BatchSizeDefault is the number of MIME downloads per $batch (Graph's maximum).
	BatchSizeDefault = 20
	// MaxRetryWaitDefault bounds the Retry-After waiting of one request.
	MaxRetryWaitDefault = 2 * time.Minute
	// MaxJSONBytes bounds a JSON reply held in memory (a delta page, a folder).
	MaxJSONBytes = 4 << 20
	// MaxBatchBytesDefault bounds a $batch reply held in memory: a larger one is
	// abandoned and its messages are downloaded one by one, streamed.
	MaxBatchBytesDefault = 8 << 20
	// MaxSendBase64Bytes is the largest base64 body sendMail is given: the API
	// takes request bodies up to 4 MB, so a larger message is refused before
	// anything is sent.
	MaxSendBase64Bytes = 3_500_000
)

// Options tune a Connector. The zero value (or nil) takes the defaults.
type Options struct {
	// HTTPClient sends every request. Nil: the connector builds clients of its own,
	// verifying TLS against the system roots plus Endpoint.RootCAsPEM, one per set
	// of roots.
	HTTPClient *http.Client
	// MaxInFlight bounds the requests in flight per mailbox, across every session
	// of this Connector (0: MaxInFlightDefault). A $batch counts as its number of
	// requests, at most MaxInFlight (see the package documentation).
	MaxInFlight int
	// PageSize is the delta page size asked for (0: PageSizeDefault).
	PageSize int
	// BatchSize is the number of MIME downloads per $batch (0: BatchSizeDefault,
	// at most 20; 1: no $batch, every message is a GET of its $value).
	BatchSize int
	// MaxRetryWait is the total Retry-After waiting one request may do before it
	// fails with serversync.CodeThrottled (0: MaxRetryWaitDefault).
	MaxRetryWait time.Duration
	// MaxMessageBytes bounds one MIME body (0: connector.MaxMessageBytesDefault).
	MaxMessageBytes int64
	// MaxBatchBytes bounds one $batch reply in memory (0: MaxBatchBytesDefault).
	MaxBatchBytes int64
	// CalendarPast and CalendarFuture bound the calendarView that ACT sessions
	// follow, around the time the session opens (0: CalendarPastDefault,
	// CalendarFutureDefault). Appointments wholly outside it are not seen; a
	// delta link keeps the window it started with, until the session's window
	// ends more than 30 days past it (see the package documentation).
	CalendarPast, CalendarFuture time.Duration
	// Logger receives debug and warning records (never a token). Nil: slog.Default().
	Logger *slog.Logger
}

// Stats are the connector's counters since New.
type Stats struct {
	Requests      int64         // HTTP requests sent, $batch requests included
	BatchRequests int64         // $batch requests sent
	Throttled     int64         // 429 and 503 answers (with Retry-After or not), $batch items included
	RetryWait     time.Duration // total time spent waiting for Retry-After
}

// Connector talks to Microsoft Graph: mail, and the calendar, contacts and To
// Do tasks of ACT. It implements serversync's IncomingConnector,
// OutgoingConnector, Prober, SentCopyKeeper and ACTConnector and is safe
// for concurrent use; one per process is enough (the per-mailbox request budget
// is shared by its sessions only).
type Connector struct {
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	clients map[string]*http.Client // by RootCAsPEM
	budgets map[string]*semaphore.Weighted

	requests, batches, throttled, retryWait atomic.Int64
}

var (
	_ serversync.IncomingConnector = (*Connector)(nil)
	_ serversync.OutgoingConnector = (*Connector)(nil)
	_ serversync.SentCopyKeeper    = (*Connector)(nil)
)

// New returns a Connector; opts may be nil.
func New(opts *Options) *Connector {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = MaxInFlightDefault
	}
	if o.PageSize <= 0 {
		o.PageSize = PageSizeDefault
	}
	if o.BatchSize <= 0 {
		o.BatchSize = BatchSizeDefault
	}
	o.BatchSize = min(o.BatchSize, 20)
	if o.MaxRetryWait <= 0 {
		o.MaxRetryWait = MaxRetryWaitDefault
	}
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = connector.MaxMessageBytesDefault
	}
	if o.CalendarPast <= 0 {
		o.CalendarPast = CalendarPastDefault
	}
	if o.CalendarFuture <= 0 {
		o.CalendarFuture = CalendarFutureDefault
	}
	if o.MaxBatchBytes <= 0 {
		o.MaxBatchBytes = MaxBatchBytesDefault
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Connector{opts: o, log: log, clients: map[string]*http.Client{}, budgets: map[string]*semaphore.Weighted{}}
}

// Stats returns the counters.
func (c *Connector) Stats() Stats {
	return Stats{
		Requests:      c.requests.Load(),
		BatchRequests: c.batches.Load(),
		Throttled:     c.throttled.Load(),
		RetryWait:     time.Duration(c.retryWait.Load()),
	}
}

// KeepsSentCopy implements serversync.SentCopyKeeper: sendMail saves a copy in
// Sent Items.
func (c *Connector) KeepsSentCopy() bool { return true }

// OpenIncoming implements serversync.IncomingConnector. No request is sent: the
// first Fetch finds out whether the mailbox can be read.
func (c *Connector) OpenIncoming(ctx context.Context, target *serversync.Target) (serversync.IncomingSession, error) {
	m, err := c.mailbox(ctx, target)
	if err != nil {
		return nil, err
	}
	return &session{m: m}, nil
}

// OpenOutgoing implements serversync.OutgoingConnector.
func (c *Connector) OpenOutgoing(ctx context.Context, target *serversync.Target) (serversync.OutgoingSession, error) {
	m, err := c.mailbox(ctx, target)
	if err != nil {
		return nil, err
	}
	// sendMail is one request, made only once there is a message; asking for
	// the token now lets Test & Enable see a refused token or a missing
	// Mail.Send permission before anything is queued.
	token, err := m.token(ctx, "connect")
	if err != nil {
		return nil, err
	}
	if err := sendPermission(token, m.appOnly); err != nil {
		return nil, err
	}
	return &sender{m: m}, nil
}

// mailbox is one target's view of Graph: where it is, how to authenticate,
// and its share of the request budget.
type mailbox struct {
	c       *Connector
	target  serversync.Target
	base    *url.URL // {URL}/v1.0
	user    string   // "/users/alice%40example.test" or "/me"
	client  *http.Client
	budget  *semaphore.Weighted
	appOnly bool
	timeout time.Duration
}

func (c *Connector) mailbox(ctx context.Context, target *serversync.Target) (*mailbox, error) {
	if err := ctx.Err(); err != nil {
		return nil, connector.NetError("connect", err)
	}
	if target == nil {
		return nil, connector.Error("connect", serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodeBadTarget, errors.New("graph: no target"))
	}
	base, err := baseURL(target.Endpoint)
	if err != nil {
		return nil, err
	}
	m := &mailbox{c: c, target: *target, base: base, timeout: target.Endpoint.Timeout}
	creds := target.Credentials
	switch creds.Kind {
	case auth.KindAppOnly:
		address := target.EmailAddress
		if address == "" {
			address = creds.Username
		}
		if address == "" {
			return nil, connector.Error("connect", serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeBadTarget,
				errors.New("graph: app-only credentials need the mailbox's email address"))
		}
		m.user, m.appOnly = "/users/"+url.PathEscape(address), true
	case auth.KindOAuth:
		m.user = "/me"
	default:
		return nil, connector.Error("connect", serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodeAuthUnavailable,
			fmt.Errorf("graph: Graph needs OAuth or server-to-server credentials, not %s", creds.Kind))
	}
	if creds.TokenSource == nil {
		return nil, connector.Error("connect", serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodeAuthUnavailable,
			errors.New("graph: OAuth credentials without a token source"))
	}
	m.client, err = c.httpClient(target.Endpoint)
	if err != nil {
		return nil, err
	}
	// One budget per mailbox and server. For /me the mailbox's address stands
	// for the token holder's identity.
	key := base.String() + "/me/" + strings.ToLower(target.EmailAddress)
	if m.appOnly {
		key = base.String() + strings.ToLower(m.user)
	}
	c.mu.Lock()
	m.budget = c.budgets[key]
	if m.budget == nil {
		m.budget = semaphore.NewWeighted(int64(c.opts.MaxInFlight))
		c.budgets[key] = m.budget
	}
	c.mu.Unlock()
	return m, nil
}

// baseURL is the endpoint's URL (or https://Host:Port when it has none) with /v1.0.
func baseURL(ep serversync.Endpoint) (*url.URL, error) {
	raw := ep.URL
	if raw == "" && ep.Host != "" {
		host := ep.Host
		if ep.Port > 0 {
			host = ep.Address()
		}
		raw = "https://" + host
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, connector.Error("connect", serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodeBadTarget,
			fmt.Errorf("graph: the endpoint URL %q is not an http(s) URL", raw))
	}
	if u.Scheme == "http" && !ep.AllowPlaintextAuth {
		return nil, connector.Error("connect", serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodePlaintextAuthRefused,
			fmt.Errorf("%w: the Graph URL %q is not https", connector.ErrPlaintextAuth, raw))
	}
	u = u.JoinPath("v1.0")
	u.RawQuery, u.Fragment = "", ""
	return u, nil
}

// httpClient returns the client for an endpoint: Options.HTTPClient, or one of
// the connector's own per set of extra roots.
func (c *Connector) httpClient(ep serversync.Endpoint) (*http.Client, error) {
	if c.opts.HTTPClient != nil {
		return c.opts.HTTPClient, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if client, ok := c.clients[ep.RootCAsPEM]; ok {
		return client, nil
	}
	cfg, err := connector.TLSConfig(ep)
	if err != nil {
		return nil, err
	}
	cfg.ServerName = "" // the transport takes it from each request's URL
	transport := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     cfg,
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 30 * time.Second,
	}
	client := &http.Client{
		Transport: transport,
		// Links are followed by the connector, which checks their host: a
		// redirect would carry the token elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	c.clients[ep.RootCAsPEM] = client
	return client, nil
}

// CloseIdleConnections closes the idle connections of the connector's own clients.
func (c *Connector) CloseIdleConnections() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, client := range c.clients {
		client.CloseIdleConnections()
	}
}
