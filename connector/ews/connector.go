package ews

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector"
)

// Defaults of Options.
const (
	// ServerVersionDefault is the RequestServerVersion sent: Exchange 2013 SP1
	// and every later on-premises version (2016, 2019, Subscription Edition)
	// answer it.
	ServerVersionDefault = "Exchange2013_SP1"
	// MaxChangesDefault is SyncFolderItems' MaxChangesReturned (EWS's maximum).
	MaxChangesDefault = 512
	// BatchSizeDefault is the number of items one GetItem asks for.
	BatchSizeDefault = 10
	// MaxBusyRetriesDefault bounds the ErrorServerBusy retries of one request.
	MaxBusyRetriesDefault = 5
	// MaxRetryWaitDefault bounds the BackOffMilliseconds waiting of one request.
	MaxRetryWaitDefault = 2 * time.Minute
	// MaxReplyBytes bounds a reply without message bodies held in memory.
	MaxReplyBytes = 8 << 20
	// MaxBatchBytesDefault bounds a GetItem reply of several messages: a larger
	// one is abandoned and its messages are asked for one by one.
	MaxBatchBytesDefault = 32 << 20
)

// Authenticator makes the transport that authenticates one mailbox's requests:
// it wraps base (which dials, verifies TLS and pools connections) for creds
// on endpoint ep. It is called once per session. Basic authentication is the
// default ([BasicAuth]); an NTLM or Negotiate authenticator plugs in here, and
// since those authenticate connections rather than requests it may build its
// own pool instead of using base. It must refuse, with a *serversync.ConnectorError,
// credentials it cannot use or that would travel unencrypted.
type Authenticator func(base http.RoundTripper, creds auth.Credentials, ep serversync.Endpoint) (http.RoundTripper, error)

// Options tune a Connector. The zero value (or nil) takes the defaults.
type Options struct {
	// HTTPClient sends every request (its Transport is wrapped by Authenticator,
	// its redirects are never followed). Nil: the connector builds clients of its
	// own, verifying TLS against the system roots plus Endpoint.RootCAsPEM.
	HTTPClient *http.Client
	// Authenticator authenticates requests (nil: BasicAuth).
	Authenticator Authenticator
	// ServerVersion is sent as RequestServerVersion ("": ServerVersionDefault;
	// "Exchange2016" is the other useful value).
	ServerVersion string
	// MaxChanges is SyncFolderItems' MaxChangesReturned (0: MaxChangesDefault, at most 512).
	MaxChanges int
	// BatchSize is the number of messages one GetItem downloads (0: BatchSizeDefault).
	BatchSize int
	// MaxBusyRetries bounds how often one request is sent again after
	// ErrorServerBusy (0: MaxBusyRetriesDefault); MaxRetryWait bounds the total
	// BackOffMilliseconds waited (0: MaxRetryWaitDefault). Past either the
	// request fails with serversync.CodeThrottled, transient.
	MaxBusyRetries int
	MaxRetryWait   time.Duration
	// MaxMessageBytes bounds one MIME message (0: connector.MaxMessageBytesDefault).
	MaxMessageBytes int64
	// MaxBatchBytes bounds a GetItem reply of several messages (0: MaxBatchBytesDefault).
	MaxBatchBytes int64
	// AutodiscoverHosts are host names, besides the mailbox's domain and its
	// subdomains, that Autodiscover may send credentials to (see Discover).
	AutodiscoverHosts []string
	// Logger receives debug and warning records (never a password). Nil: slog.Default().
	Logger *slog.Logger
}

// Stats are the connector's counters since New.
type Stats struct {
	Requests  int64         // SOAP requests sent
	Busy      int64         // ErrorServerBusy answers
	RetryWait time.Duration // total time spent waiting for BackOffMilliseconds
}

// Connector talks to Exchange Server through EWS. It implements serversync's
// IncomingConnector, OutgoingConnector, Prober, SentCopyKeeper and Discoverer
// and is safe for concurrent use; one per process is enough.
type Connector struct {
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	clients map[string]*http.Client // by RootCAsPEM

	requests, busy, retryWait atomic.Int64
}

var (
	_ serversync.IncomingConnector = (*Connector)(nil)
	_ serversync.OutgoingConnector = (*Connector)(nil)
	_ serversync.SentCopyKeeper    = (*Connector)(nil)
	_ serversync.Prober            = (*Connector)(nil)
	_ serversync.Discoverer        = (*Connector)(nil)
)

// New returns a Connector; opts may be nil.
func New(opts *Options) *Connector {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Authenticator == nil {
		o.Authenticator = BasicAuth
	}
	if o.ServerVersion == "" {
		o.ServerVersion = ServerVersionDefault
	}
	if o.MaxChanges <= 0 || o.MaxChanges > MaxChangesDefault {
		o.MaxChanges = MaxChangesDefault
	}
	if o.BatchSize <= 0 {
		o.BatchSize = BatchSizeDefault
	}
	if o.MaxBusyRetries <= 0 {
		o.MaxBusyRetries = MaxBusyRetriesDefault
	}
	if o.MaxRetryWait <= 0 {
		o.MaxRetryWait = MaxRetryWaitDefault
	}
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = connector.MaxMessageBytesDefault
	}
	if o.MaxBatchBytes <= 0 {
		o.MaxBatchBytes = MaxBatchBytesDefault
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Connector{opts: o, log: log, clients: map[string]*http.Client{}}
}

// Stats returns the counters.
func (c *Connector) Stats() Stats {
	return Stats{Requests: c.requests.Load(), Busy: c.busy.Load(), RetryWait: time.Duration(c.retryWait.Load())}
}

// KeepsSentCopy implements serversync.SentCopyKeeper: CreateItem with
// SendAndSaveCopy saves a copy in Sent Items.
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

// OpenOutgoing implements serversync.OutgoingConnector. It reads the mailbox's
// Sent Items folder, so that refused credentials or a missing right show at Test
// & Enable, before anything is queued.
func (c *Connector) OpenOutgoing(ctx context.Context, target *serversync.Target) (serversync.OutgoingSession, error) {
	m, err := c.mailbox(ctx, target)
	if err != nil {
		return nil, err
	}
	if _, err := m.getFolder(ctx, "connect", "sentitems"); err != nil {
		return nil, err
	}
	return &sender{m: m}, nil
}

// mailbox is one target's view of EWS: the URL, the authenticated client, and
// how the mailbox is addressed.
type mailbox struct {
	c      *Connector
	target serversync.Target
	url    string
	client *http.Client
	// impersonate is the SMTP address of the ExchangeImpersonation header
	// (impersonation); delegate the address put in DistinguishedFolderIds
	// (delegation). Both are empty when the mailbox's own user logs in.
	impersonate, delegate string
	timeout               time.Duration
}

func (c *Connector) mailbox(ctx context.Context, target *serversync.Target) (*mailbox, error) {
	if err := ctx.Err(); err != nil {
		return nil, connector.NetError("connect", err)
	}
	if target == nil {
		return nil, connector.Error("connect", serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodeBadTarget, errors.New("ews: no target"))
	}
	endpoint, err := ewsURL(target.Endpoint)
	if err != nil {
		return nil, err
	}
	m := &mailbox{c: c, target: *target, url: endpoint, timeout: target.Endpoint.Timeout}
	address := target.EmailAddress
	switch creds := target.Credentials; creds.Kind {
	case auth.KindImpersonation:
		m.impersonate = firstNonEmpty(address, creds.Mailbox)
	case auth.KindIntegrated:
		// The process's own identity (a service account) acts for each mailbox
		// through its ApplicationImpersonation role, as the identity of a Windows
		// service does on Exchange.
		m.impersonate = firstNonEmpty(address, creds.Mailbox)
	case auth.KindDelegation:
		m.delegate = firstNonEmpty(creds.Mailbox, address)
	}
	if (target.Credentials.Kind == auth.KindImpersonation || target.Credentials.Kind == auth.KindDelegation) && m.impersonate+m.delegate == "" {
		return nil, connector.Error("connect", serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeBadTarget,
			errors.New("ews: impersonation and delegation need the mailbox's email address"))
	}
	base, err := c.httpClient(target.Endpoint)
	if err != nil {
		return nil, err
	}
	rt := base.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	authed, err := c.opts.Authenticator(rt, target.Credentials, target.Endpoint)
	if err != nil {
		return nil, err
	}
	client := *base
	client.Transport = authed
	// Credentials must not follow a redirect to another host.
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	m.client = &client
	return m, nil
}

// ewsURL is the endpoint's URL, or https://Host:Port/EWS/Exchange.asmx when it
// has none or it names only a host. Plain http is refused unless the endpoint
// allows credentials over unencrypted channels.
func ewsURL(ep serversync.Endpoint) (string, error) {
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
		return "", connector.Error("connect", serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodeBadTarget,
			fmt.Errorf("ews: the endpoint URL %q is not an http(s) URL (with AutoDiscover, the server is not discovered yet)", raw))
	}
	if u.Scheme == "http" && !ep.AllowPlaintextAuth {
		return "", connector.Error("connect", serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodePlaintextAuthRefused,
			fmt.Errorf("%w: the EWS URL %q is not https", connector.ErrPlaintextAuth, raw))
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/EWS/Exchange.asmx"
	}
	u.Fragment = ""
	return u.String(), nil
}

// BasicAuth is the default Authenticator: HTTP Basic with the credentials'
// user name and password (the mailbox's own user, or the service account for
// impersonation and delegation), and a bearer token for OAuth credentials
// (Exchange 2019 with hybrid modern authentication). Basic is refused over
// plain http unless ep.AllowPlaintextAuth.
func BasicAuth(base http.RoundTripper, creds auth.Credentials, ep serversync.Endpoint) (http.RoundTripper, error) {
	switch creds.Kind {
	case auth.KindPassword, auth.KindImpersonation, auth.KindDelegation:
		if creds.Username == "" {
			return nil, connector.Error("authenticate", serversync.ErrorAuth, serversync.ScopeProfile, serversync.CodeAuthUnavailable,
				errors.New("ews: the credentials have no user name"))
		}
	case auth.KindOAuth, auth.KindAppOnly:
		if creds.TokenSource == nil {
			return nil, connector.Error("authenticate", serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodeAuthUnavailable,
				errors.New("ews: OAuth credentials without a token source"))
		}
	default:
		return nil, connector.Error("authenticate", serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodeAuthUnavailable,
			fmt.Errorf("ews: the Basic authenticator cannot use %s credentials (plug an Authenticator that can into Options)", creds.Kind))
	}
	return &basicTransport{base: base, creds: creds, allowPlain: ep.AllowPlaintextAuth}, nil
}

// HTTPAuth is the Authenticator connector/standard uses: the profile's Auth
// Protocol decides (auth.HTTPTransportWith). Negotiate is SPNEGO with Kerberos
// (the user's or service account's password, or the process's own identity for
// WindowsIntegrated credentials), NTLM is NTLMv2, Basic is the password over TLS,
// and Auto sends the first request without credentials and answers what the
// server's WWW-Authenticate offers: Negotiate where a Kerberos identity is
// configured, else NTLM, else Basic. OAuth credentials send their bearer token.
// Failures before a request leaves (the KDC refusing a login, Basic over plain
// http) are classified like the other connectors' authentication failures.
func HTTPAuth(base http.RoundTripper, creds auth.Credentials, ep serversync.Endpoint) (http.RoundTripper, error) {
	if creds.Kind == auth.KindAnonymous || creds.Kind == "" {
		return nil, connector.Error("authenticate", serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodeAuthUnavailable,
			errors.New("ews: EWS needs credentials"))
	}
	if creds.Kind == auth.KindIntegrated && creds.Kerberos == nil {
		return nil, connector.Error("authenticate", serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodeAuthUnavailable,
			auth.ErrNoKerberosIdentity)
	}
	rt := auth.HTTPTransportWith(creds, base, &auth.HTTPOptions{AllowBasicWithoutTLS: ep.AllowPlaintextAuth})
	return &classifyingTransport{base: rt, creds: creds}, nil
}

// classifyingTransport turns the authentication failures of auth's transport
// into the ConnectorErrors the Syncer acts on.
type classifyingTransport struct {
	base  http.RoundTripper
	creds auth.Credentials
}

func (t *classifyingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err == nil {
		return resp, nil
	}
	if errors.Is(err, auth.ErrBasicWithoutTLS) {
		return nil, connector.Error("authenticate", serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodePlaintextAuthRefused,
			fmt.Errorf("%w: %s is not https", connector.ErrPlaintextAuth, req.URL.Host))
	}
	if ce := connector.TokenFailure("authenticate", t.creds, err); ce != nil {
		return nil, ce
	}
	return nil, err
}

type basicTransport struct {
	base       http.RoundTripper
	creds      auth.Credentials
	allowPlain bool
}

func (t *basicTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "https" && !t.allowPlain {
		return nil, connector.Error("authenticate", serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodePlaintextAuthRefused,
			fmt.Errorf("%w: %s is not https", connector.ErrPlaintextAuth, req.URL.Host))
	}
	r := req.Clone(req.Context())
	switch t.creds.Kind {
	case auth.KindOAuth, auth.KindAppOnly:
		tok, err := t.creds.TokenSource.Token()
		if err != nil {
			if ce := connector.TokenFailure("authenticate", t.creds, err); ce != nil {
				return nil, ce
			}
			return nil, fmt.Errorf("ews: get an access token: %w", err)
		}
		r.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	default:
		r.SetBasicAuth(t.creds.Username, t.creds.Password.Reveal())
	}
	return t.base.RoundTrip(r)
}

// httpClient returns Options.HTTPClient, or one of the connector's own per set
// of extra roots.
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
	client := &http.Client{Transport: &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     cfg,
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 30 * time.Second,
	}}
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

// what says what a request is about, for classifying a failure.
type what int

const (
	aboutMailbox what = iota
	aboutFolder
	aboutMessage
	aboutSend
)

// call sends one EWS operation and returns its response messages. It waits
// out ErrorServerBusy (a fault, or every response message busy) as the server's
// BackOffMilliseconds says, within Options.MaxBusyRetries and MaxRetryWait.
// Response messages of class Error are left to the caller (rm.err).
func (m *mailbox) call(ctx context.Context, op string, about what, body string, limit int64) ([]responseMessage, int, error) {
	payload := envelope(m.c.opts.ServerVersion, m.impersonate, body)
	waited := time.Duration(0)
	for attempt := 0; ; attempt++ {
		msgs, status, err := m.once(ctx, op, payload, limit)
		var re *ResponseError
		if err == nil {
			if busy := allBusy(msgs, status); busy != nil {
				re, err = busy, busy
			}
		} else if errors.As(err, &re) && !re.is("ErrorServerBusy") {
			re = nil
		}
		if re == nil {
			if err != nil {
				return nil, status, m.classify(op, about, err)
			}
			return msgs, status, nil
		}
		m.c.busy.Add(1)
		wait := re.BackOff
		if wait <= 0 {
			wait = time.Second << min(attempt, 5)
		}
		if attempt >= m.c.opts.MaxBusyRetries || waited+wait > m.c.opts.MaxRetryWait {
			return nil, status, connector.Error(op, serversync.ErrorTransient, serversync.ScopeMailbox, serversync.CodeThrottled,
				fmt.Errorf("ews: the server stayed busy after %d retries and %s of waiting (it asks for %s more): %w", attempt, waited, wait, re))
		}
		m.c.log.Debug("ews: server busy", "op", op, "mailbox", m.target.MailboxID, "back_off", wait)
		if err := m.c.wait(ctx, wait); err != nil {
			return nil, status, connector.NetError(op, err)
		}
		waited += wait
	}
}

// allBusy returns ErrorServerBusy when every response message says it.
func allBusy(msgs []responseMessage, status int) *ResponseError {
	var busy *ResponseError
	for i := range msgs {
		re := msgs[i].err(status)
		if re == nil || !re.is("ErrorServerBusy") {
			return nil
		}
		busy = re
	}
	return busy
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

// once posts a SOAP request and parses the reply, reading at most limit bytes.
// The endpoint timeout bounds the wait for the headers; the body may then take
// one more second per connector.MessageBytesPerSecond bytes of the limit.
func (m *mailbox) once(ctx context.Context, op string, payload []byte, limit int64) ([]responseMessage, int, error) {
	reqCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var timedOut atomic.Bool
	var timer *time.Timer
	if m.timeout > 0 {
		timer = time.AfterFunc(m.timeout, func() { timedOut.Store(true); cancel() })
		defer timer.Stop()
	}
	req, err := http.NewRequestWithContext(reqCtx, http.MethodPost, m.url, bytes.NewReader(payload))
	if err != nil {
		return nil, 0, connector.Error(op, serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodeBadTarget, fmt.Errorf("ews: %w", err))
	}
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	req.Header.Set("Accept", "text/xml")
	m.c.requests.Add(1)
	resp, err := m.client.Do(req)
	if err != nil {
		var ce *serversync.ConnectorError
		if errors.As(err, &ce) {
			return nil, 0, ce
		}
		if timedOut.Load() {
			return nil, 0, connector.Error(op, serversync.ErrorTransient, serversync.ScopeMailbox, serversync.CodeTimeout,
				fmt.Errorf("ews: no reply within %s: %w", m.timeout, err))
		}
		return nil, 0, connector.NetError(op, err)
	}
	defer resp.Body.Close()
	if timer != nil {
		timer.Reset(m.timeout + connector.BodyAllowance(limit))
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, resp.StatusCode, &httpError{Status: resp.StatusCode}
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		if timedOut.Load() {
			return nil, resp.StatusCode, connector.Error(op, serversync.ErrorTransient, serversync.ScopeMailbox, serversync.CodeReplyTooSlow,
				fmt.Errorf("ews: the reply did not arrive in time: %w", err))
		}
		return nil, resp.StatusCode, connector.NetError(op, fmt.Errorf("ews: the reply was cut short: %w", err))
	}
	if int64(len(raw)) > limit {
		return nil, resp.StatusCode, &connector.ReplyLimitError{Code: serversync.CodeReplyTooLong,
			Reason: fmt.Sprintf("the server's reply is longer than %d bytes (raise the connector's limit if the server is legitimate)", limit)}
	}
	ct := strings.ToLower(resp.Header.Get("Content-Type"))
	if !strings.Contains(ct, "xml") {
		if resp.StatusCode >= 300 {
			return nil, resp.StatusCode, &httpError{Status: resp.StatusCode}
		}
		return nil, resp.StatusCode, &ProtocolError{Reason: fmt.Sprintf("the server answered %q where SOAP was expected: check the EWS URL", ct)}
	}
	msgs, err := parseReply(resp.StatusCode, raw)
	if err != nil {
		var pe *ProtocolError
		if errors.As(err, &pe) && resp.StatusCode >= 300 {
			return nil, resp.StatusCode, &httpError{Status: resp.StatusCode}
		}
		return nil, resp.StatusCode, err
	}
	return msgs, resp.StatusCode, nil
}

// httpError is an HTTP failure without a SOAP reply.
type httpError struct{ Status int }

func (e *httpError) Error() string {
	return fmt.Sprintf("ews: HTTP %d %s", e.Status, http.StatusText(e.Status))
}
