package graphtest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/serversync/serversync/internal/testcert"
)

// DefaultPageSize is the number of items a delta page holds when the client does
// not ask for another size with Prefer: odata.maxpagesize, as in Graph.
const DefaultPageSize = 10

// MaxPageSize is the largest odata.maxpagesize the fake honours.
const MaxPageSize = 1000

// ConcurrencyLimit is the number of requests for one mailbox Graph serves at
// once (the documented Outlook limit); the next concurrent one gets 429.
const ConcurrencyLimit = 4

// MaxRequestBody is the largest request body accepted (Graph's 4 MB limit):
// sendMail beyond it gets 413 ErrorMessageSizeExceeded.
const MaxRequestBody = 4 << 20

// MaxSyncStatesDefault is the default of Options.MaxSyncStates.
const MaxSyncStatesDefault = 100_000

// RequestWindow is the period Options.RequestLimit counts requests over.
const RequestWindow = 10 * time.Minute

// MaxBatchRequests is the most requests a $batch may hold.
const MaxBatchRequests = 20

// Options changes how the fake behaves. A nil *Options is the zero value.
type Options struct {
	// Authenticate checks a bearer token and says who it is. It is asked about
	// tokens not added with AddToken; nil means only those are accepted. An error
	// is answered 401 InvalidAuthenticationToken.
	Authenticate func(ctx context.Context, token string) (Principal, error)
	// Deliver is called for each recipient of sent mail that is not a mailbox of
	// the fake (e.g. to hand it to a real Postfix/Dovecot over SMTP/LMTP), with
	// the MIME as delivered (no Bcc header). Recipients that are mailboxes of the
	// fake get the message in their inbox. With Deliver nil, mail to other
	// recipients is only recorded in Sent. An error makes sendMail answer 500.
	Deliver func(ctx context.Context, from string, to []string, mime []byte) error
	// DefaultPageSize is the delta page size without Prefer: odata.maxpagesize;
	// 0 means DefaultPageSize.
	DefaultPageSize int
	// Now is the clock for received times of sent and created messages and for
	// RequestLimit; nil means time.Now. It is called with the server's lock
	// held: it must not call the Server.
	Now func() time.Time
	// RequestLimit is the number of requests a mailbox takes per RequestWindow
	// (Graph's documented limit is 10,000 per 10 minutes); the next ones get
	// 429 with Retry-After until the oldest leaves the window. 0 means no limit.
	RequestLimit int
	// OnRequest, when set, is called for each request to a mailbox (each $batch
	// item too) once it was admitted and counts as in flight, before it is
	// served; path is what follows /v1.0/me or /v1.0/users/{address}, as
	// "/mailFolders/inbox/messages/delta". Blocking in it holds the request open: tests use it to make
	// requests overlap deterministically. ctx ends when the client goes away or
	// the server closes.
	OnRequest func(ctx context.Context, address, method, path string)
	// MaxSyncStates is how many delta and skip tokens the fake remembers; the
	// oldest beyond it expire (410 SyncStateNotFound), as Graph's tokens do, so
	// a long-running demo does not grow without bound. 0 means
	// MaxSyncStatesDefault.
	MaxSyncStates int
	// Addr is the TCP address to listen on; "" means 127.0.0.1 on a free port.
	// The certificate is valid for 127.0.0.1 and localhost only.
	Addr string
}

// Principal is who a token speaks for.
type Principal struct {
	// AppOnly is a client-credentials token: it reaches /users/{address} of its
	// tenant, never /me.
	AppOnly bool
	// TenantID is the tenant of the token (tid claim); an app-only principal may
	// only reach mailboxes of this tenant.
	TenantID string
	// AppID is the application (appid claim). The concurrency and request-rate
	// limits count per application and mailbox, as Graph's do; principals with
	// the same AppID ("" included) share them.
	AppID string
	// User is the address of a delegated principal: the mailbox of /me, and the
	// only one it may reach.
	User string
	// Permissions are the roles (app-only) or scopes (delegated) of the token:
	// Mail.ReadWrite to read and change mail (Mail.Read is enough to read),
	// Mail.Send for sendMail.
	Permissions []string
}

// hasAccess reports whether p may read (or, with write, change) the items of
// an area ("Calendars", "Contacts", "Tasks"): its .ReadWrite permission, or
// .Read to read, delegated or application (.All) alike.
func (p Principal) hasAccess(area string, write bool) bool {
	perms := []string{area + ".ReadWrite", area + ".ReadWrite.All"}
	if !write {
		perms = append(perms, area+".Read", area+".Read.All")
	}
	for _, perm := range perms {
		if p.has(perm) {
			return true
		}
	}
	return false
}

func (p Principal) has(perm string) bool {
	for _, have := range p.Permissions {
		for _, one := range strings.Fields(have) { // an scp claim is one string
			if strings.EqualFold(one, perm) {
				return true
			}
		}
	}
	return false
}

// SentMessage is a message accepted by sendMail.
type SentMessage struct {
	From string   // the sending mailbox
	To   []string // every recipient, To, Cc and Bcc
	MIME []byte   // the MIME as delivered: without its Bcc header
}

// Server is a fake Graph server. It is safe for concurrent use.
type Server struct {
	opts      Options
	url       string
	caPEM     string
	http      *http.Server
	ln        net.Listener
	served    chan struct{}
	ctx       context.Context
	cancel    context.CancelFunc
	calls     sync.WaitGroup // requests being served
	closeOnce sync.Once
	api       *http.ServeMux // the routes under /v1.0/{user}

	mu         sync.Mutex
	mailboxes  map[string]*mailbox // by lower-case address
	tokens     map[string]Principal
	delta      map[string]*deltaState // by $skiptoken or $deltatoken
	deltaOrder []string               // the tokens of delta, oldest first
	sent       []SentMessage
	throttled  int
	batches    int
	closed     bool
	client     *http.Client // made by Client
	transport  *http.Transport
}

// NewServer starts a fake on 127.0.0.1 with a fresh self-signed certificate.
// Close stops it.
func NewServer(opts *Options) (*Server, error) {
	s := &Server{
		mailboxes: map[string]*mailbox{},
		tokens:    map[string]Principal{},
		delta:     map[string]*deltaState{},
		served:    make(chan struct{}),
	}
	if opts != nil {
		s.opts = *opts
	}
	if s.opts.DefaultPageSize <= 0 {
		s.opts.DefaultPageSize = DefaultPageSize
	}
	if s.opts.DefaultPageSize > MaxPageSize {
		return nil, fmt.Errorf("graphtest: DefaultPageSize %d is above %d", s.opts.DefaultPageSize, MaxPageSize)
	}
	if s.opts.MaxSyncStates <= 0 {
		s.opts.MaxSyncStates = MaxSyncStatesDefault
	}
	if s.opts.Now == nil {
		s.opts.Now = time.Now
	}
	cert, caPEM, err := testcert.New()
	if err != nil {
		return nil, fmt.Errorf("graphtest: certificate: %w", err)
	}
	ln, err := net.Listen("tcp", cmpOr(s.opts.Addr, "127.0.0.1:0"))
	if err != nil {
		return nil, fmt.Errorf("graphtest: listen: %w", err)
	}
	s.ln = ln
	s.caPEM = caPEM
	s.url = "https://" + ln.Addr().String()
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.http = &http.Server{
		Handler:           s.routes(),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return s.ctx },
		// Clients that refuse the certificate (as they must, until told to trust
		// it) or hang up are expected in tests, not news for stderr.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go func() {
		defer close(s.served)
		_ = s.http.ServeTLS(ln, "", "")
	}()
	return s, nil
}

// URL is the server's base, https://127.0.0.1:PORT, without /v1.0.
func (s *Server) URL() string { return s.url }

// RootCAsPEM is the certificate clients must trust to reach the server.
func (s *Server) RootCAsPEM() string { return s.caPEM }

// Client returns an HTTP client that trusts the server's certificate (and the
// system's roots, nothing else); Close closes its idle connections.
func (s *Server) Client() *http.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client == nil {
		roots, err := x509.SystemCertPool()
		if err != nil {
			roots = x509.NewCertPool()
		}
		roots.AppendCertsFromPEM([]byte(s.caPEM))
		s.transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}, ForceAttemptHTTP2: true}
		s.client = &http.Client{Transport: s.transport}
	}
	return s.client
}

// Close stops the server: it closes every connection, ends the contexts of
// requests held in Options.OnRequest, and returns once every request handler and
// every goroutine of the server has returned.
// Calling it again waits for the first call to finish.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		_ = s.http.Close() // closes the connections under held requests first
		s.cancel()
		<-s.served
		s.calls.Wait()
		s.mu.Lock()
		if s.transport != nil {
			s.transport.CloseIdleConnections()
		}
		s.mu.Unlock()
	})
}

// AddToken makes token a valid bearer token for p.
func (s *Server) AddToken(token string, p Principal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[token] = p
}

// authenticate says who a bearer token speaks for.
func (s *Server) authenticate(ctx context.Context, token string) (Principal, error) {
	if token == "" {
		return Principal{}, errors.New("no token")
	}
	s.mu.Lock()
	p, ok := s.tokens[token]
	s.mu.Unlock()
	if ok {
		return p, nil
	}
	if s.opts.Authenticate == nil {
		return Principal{}, errors.New("unknown token")
	}
	return s.opts.Authenticate(ctx, token)
}

// Throttled is the number of 429 answers given, injected or for concurrency.
func (s *Server) Throttled() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.throttled
}

// Batches is the number of $batch requests received.
func (s *Server) Batches() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.batches
}

// Sent is every message sendMail accepted, in order.
func (s *Server) Sent() []SentMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SentMessage, len(s.sent))
	for i, m := range s.sent {
		out[i] = SentMessage{From: m.From, To: append([]string(nil), m.To...), MIME: append([]byte(nil), m.MIME...)}
	}
	return out
}
