// Package ewstest is an in-memory Exchange Web Services server for tests: a
// TLS httptest server that speaks the SOAP Microsoft documents for the
// operations serversync uses (SyncFolderItems, GetItem, MoveItem, DeleteItem,
// CreateItem, UpdateItem, FindItem, FindFolder, CreateFolder, GetFolder),
// holding real folders per mailbox and real sync states (opaque tokens naming a
// position in the mailbox's change journal, so a state replays exactly the
// changes after it). Calendar items, contacts and tasks keep the properties
// written, a ChangeKey that changes on every write (UpdateItem with
// NeverOverwrite refuses a stale one with ErrorIrresolvableConflict), extended
// properties FindItem can restrict on, and recurring series' deleted and
// modified occurrences (OccurrenceItemId with InstanceIndex).
// It checks HTTP Basic credentials or, given a keytab, Kerberos (SPNEGO,
// "Negotiate", validated with gokrb5's service side as IIS validates it), and
// ExchangeImpersonation rights and delegate rights as Exchange does, can be told to answer ErrorServerBusy with
// BackOffMilliseconds, to forget sync states (ErrorInvalidSyncStateData) and to
// replay a SyncFolderItems reply, and serves Autodiscover (JSON v2 and POX,
// with redirects) for the domains it is given.
//
// Its certificate covers 127.0.0.1, localhost and, for each domain D of
// Options.Domains, D, autodiscover.D and mail.D; [Server.Client] trusts it and
// dials the server whatever host a URL names, so Autodiscover's host names
// reach it without DNS.
//
// A Server is safe for concurrent use.
package ewstest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/jcmturner/gokrb5/v8/keytab"
)

// Options configure a Server; nil takes the defaults.
type Options struct {
	// Domains are the mail domains whose Autodiscover host names the
	// certificate covers (default "example.test").
	Domains []string
	// Keytab, when set, is the path of a keytab holding the server's HTTP/<host>
	// keys (a real KDC's): the server then takes Kerberos, answering
	// "WWW-Authenticate: Negotiate", and HTTP Basic only with AlsoBasic. A client's
	// principal name@REALM logs in as the user (AddUser) whose login is name or
	// name@realm, as an Active Directory account maps to its mailbox. Without a
	// Keytab the server takes Basic alone.
	Keytab string
	// AlsoBasic keeps HTTP Basic besides Negotiate when Keytab is set.
	AlsoBasic bool
}

// Server is the fake EWS and Autodiscover server.
type Server struct {
	ts    *httptest.Server
	caPEM string
	pool  *x509.CertPool
	// keytab is the service's keys for Negotiate (nil: no Kerberos); basic says
	// whether Basic is taken.
	keytab *keytab.Keytab
	basic  bool

	mu            sync.Mutex
	users         map[string]user               // by lower-case login
	mailboxes     map[string]*mailbox           // by lower-case address
	impersonators map[string]map[string]bool    // account → mailboxes it may impersonate ("*": any)
	delegates     map[string]map[string]bool    // account → mailboxes it may open
	busy          []busyRule                    // ErrorServerBusy to answer next
	replay        map[string]bool               // mailboxes whose next SyncFolderItems replays the last reply
	lastSync      map[string][]byte             // the last SyncFolderItems reply, by mailbox
	autodiscover  map[string]AutodiscoverConfig // by lower-case domain
	requests      []Request
	adRequests    []AutodiscoverRequest
	sent          []Sent
	nextID        int
}

type user struct {
	password string
	mailbox  string // lower-case address of the user's own mailbox, "" for a service account
}

type busyRule struct {
	op      string // "" any
	backOff time.Duration
}

// Request is one EWS request the server answered.
type Request struct {
	Op           string // "SyncFolderItems", "GetItem", …
	Login        string // the user logged in (Basic user name, or the Kerberos principal's user)
	Auth         string // how: "Basic" or "Negotiate"
	Impersonated string // the ExchangeImpersonation address, "" when none
	Mailbox      string // the mailbox acted on, "" when refused before
	Version      string // RequestServerVersion
	Code         string // the first response code ("NoError", "ErrorServerBusy", …)
	At           time.Time
	Items        int    // ItemIds asked for (GetItem, MoveItem, DeleteItem)
	SyncState    string // the SyncState a SyncFolderItems sent, "" for none
}

// AutodiscoverRequest is one Autodiscover request the server answered.
type AutodiscoverRequest struct {
	Host, Method, Path string
	WithCredentials    bool
}

// Sent is a message sent with CreateItem.
type Sent struct {
	Mailbox     string // the sending mailbox
	Disposition string
	Recipients  []string
	MIME        []byte
}

// NewServer starts a server; Close it.
func NewServer(opts *Options) (*Server, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if len(o.Domains) == 0 {
		o.Domains = []string{"example.test"}
	}
	cert, caPEM, err := selfSigned(o.Domains)
	if err != nil {
		return nil, err
	}
	s := &Server{
		caPEM: caPEM, users: map[string]user{}, mailboxes: map[string]*mailbox{},
		impersonators: map[string]map[string]bool{}, delegates: map[string]map[string]bool{},
		replay: map[string]bool{}, lastSync: map[string][]byte{}, autodiscover: map[string]AutodiscoverConfig{},
	}
	s.basic = o.Keytab == "" || o.AlsoBasic
	if o.Keytab != "" {
		if s.keytab, err = keytab.Load(o.Keytab); err != nil {
			return nil, fmt.Errorf("ewstest: read the keytab: %w", err)
		}
	}
	s.pool = x509.NewCertPool()
	s.pool.AppendCertsFromPEM([]byte(caPEM))
	mux := http.NewServeMux()
	mux.HandleFunc("POST /EWS/Exchange.asmx", s.serveEWS)
	mux.HandleFunc("GET /autodiscover/autodiscover.json/v1.0/{address}", s.serveJSON)
	mux.HandleFunc("POST /autodiscover/autodiscover.xml", s.servePOX)
	s.ts = httptest.NewUnstartedServer(mux)
	s.ts.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	s.ts.StartTLS()
	return s, nil
}

// Close stops the server.
func (s *Server) Close() { s.ts.Close() }

// URL is https://127.0.0.1:port.
func (s *Server) URL() string { return s.ts.URL }

// EWSURL is the server's EWS endpoint.
func (s *Server) EWSURL() string { return s.ts.URL + "/EWS/Exchange.asmx" }

// RootCAsPEM is the certificate clients must trust.
func (s *Server) RootCAsPEM() string { return s.caPEM }

// Client returns an HTTP client that trusts the server and dials it for every
// host name, as DNS would for a real deployment's autodiscover.D and mail.D.
func (s *Server) Client() *http.Client {
	addr := s.ts.Listener.Addr().String()
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, addr)
		},
		TLSClientConfig:   &tls.Config{RootCAs: s.pool, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2: true,
	}}
}

// AddUser adds a login with a password; mailbox is the address of the user's
// own mailbox (created if missing), "" for a service account without one. A
// user without a password logs in with Kerberos only (Options.Keytab).
func (s *Server) AddUser(login, password, mailbox string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mailbox = strings.ToLower(mailbox)
	if mailbox != "" {
		s.mailboxLocked(mailbox)
	}
	s.users[strings.ToLower(login)] = user{password: password, mailbox: mailbox}
}

// AddMailbox creates a mailbox with its distinguished folders.
func (s *Server) AddMailbox(address string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mailboxLocked(strings.ToLower(address))
}

// AllowImpersonation gives account the ApplicationImpersonation right on
// mailbox ("*": every mailbox).
func (s *Server) AllowImpersonation(account, mailbox string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	grant(s.impersonators, account, mailbox)
}

// AllowDelegate gives account Full Access to mailbox.
func (s *Server) AllowDelegate(account, mailbox string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	grant(s.delegates, account, mailbox)
}

func grant(m map[string]map[string]bool, account, mailbox string) {
	account = strings.ToLower(account)
	if m[account] == nil {
		m[account] = map[string]bool{}
	}
	m[account][strings.ToLower(mailbox)] = true
}

// InjectBusy makes the next n requests of operation op ("" for any) fail with
// ErrorServerBusy, as a SOAP fault carrying BackOffMilliseconds.
func (s *Server) InjectBusy(op string, n int, backOff time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.busy = append(s.busy, busyRule{op: op, backOff: backOff})
	}
}

// InvalidateSyncStates forgets every sync state of a mailbox: a
// SyncFolderItems with one of them answers ErrorInvalidSyncStateData.
func (s *Server) InvalidateSyncStates(address string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.mailboxes[strings.ToLower(address)]; m != nil {
		m.states = map[string]syncPosition{}
	}
}

// ReplayNextSync makes the mailbox's next SyncFolderItems answer again the last
// reply that brought new items, whatever it asks, as a retrying proxy might.
func (s *Server) ReplayNextSync(address string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replay[strings.ToLower(address)] = true
}

// Requests returns the EWS requests answered so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Count returns how many requests of operation op were answered.
func (s *Server) Count(op string) int {
	n := 0
	for _, r := range s.Requests() {
		if r.Op == op {
			n++
		}
	}
	return n
}

// AutodiscoverRequests returns the Autodiscover requests answered so far.
func (s *Server) AutodiscoverRequests() []AutodiscoverRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]AutodiscoverRequest(nil), s.adRequests...)
}

// Sent returns what CreateItem sent, in order.
func (s *Server) Sent() []Sent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Sent(nil), s.sent...)
}

// encodeID makes an opaque id in the alphabet of Exchange's (base64 with +, /
// and =), so that clients that do not escape ids break here as they would there.
func encodeID(kind, mailbox string, n int) string {
	return base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "%s\x00%s\x00%d\x00~~", kind, mailbox, n))
}

// decodeID returns the mailbox an id belongs to.
func decodeID(id string) (kind, mailbox string, ok bool) {
	raw, err := base64.StdEncoding.DecodeString(id)
	if err != nil {
		return "", "", false
	}
	parts := strings.Split(string(raw), "\x00")
	if len(parts) != 4 {
		return "", "", false
	}
	return parts[0], parts[1], true
}

// selfSigned makes a certificate for loopback and the domains' hosts.
func selfSigned(domains []string) (tls.Certificate, string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	names := []string{"localhost"}
	for _, d := range domains {
		names = append(names, d, "autodiscover."+d, "mail."+d)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "ewstest"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: names,
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), nil
}
