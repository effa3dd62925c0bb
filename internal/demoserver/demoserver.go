// Package demoserver runs an in-process mail system on loopback: an IMAP server
// (go-imap's imapmemserver, with IDLE) and an SMTP submission server (go-smtp) that
// delivers to the IMAP users' inboxes, both on implicit TLS with a certificate from
// a CA generated at start. The quickstart and the Syncer's fast tests use it; the
// interop tests use real Dovecot and Postfix instead.
package demoserver

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/mail"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/serversync/serversync/internal/testcert"
)

// Server is a running demo mail system.
type Server struct {
	// Host is 127.0.0.1; IMAPPort and SMTPPort use implicit TLS.
	Host     string
	IMAPPort int
	SMTPPort int
	// CAPEM is the certificate authority to trust (Profile.ExtraRootCAsPEM).
	CAPEM string

	mem  *imapmemserver.Server
	imap *imapserver.Server
	smtp *smtp.Server
	// The servers' own Close misses a listener their Serve has not registered yet,
	// so Close closes these itself and waits for both Serve loops to return.
	listeners []net.Listener
	serving   sync.WaitGroup

	imapConns connCounter

	// closing ends the SMTP replies held back by SetReplyDelay, so Close does not
	// wait them out; delayedReplies lets Close wait for them to wake.
	closing        chan struct{}
	delayedReplies sync.WaitGroup

	mu         sync.Mutex
	passwords  map[string]string // login (email address) → password
	tokens     map[string]string // OAuth access token → login
	sendHook   func(from string, to []string) error
	replyDelay time.Duration
	closed     bool // closing is closed
	sent       int
	deliveries map[string]int // Message-ID → messages accepted with it
}

// Start starts the servers with the given users (email address → password).
func Start(users map[string]string) (*Server, error) {
	cert, caPEM, err := testcert.New()
	if err != nil {
		return nil, err
	}
	tlsConfig := &tls.Config{Certificates: []tls.Certificate{cert}}
	s := &Server{Host: "127.0.0.1", CAPEM: caPEM, mem: imapmemserver.New(), closing: make(chan struct{}),
		passwords: map[string]string{}, tokens: map[string]string{}, deliveries: map[string]int{}}
	for email, password := range users {
		if err := s.AddUser(email, password); err != nil {
			return nil, err
		}
	}

	s.imap = imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return &imapSession{SessionIMAP4rev2: s.mem.NewSession().(imapserver.SessionIMAP4rev2), s: s}, nil, nil
		},
		Caps: imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}, imap.CapIdle: {}, imap.CapMove: {},
			imap.CapUIDPlus: {}, imap.CapNamespace: {}},
		Logger: discardLogger{},
	})
	tcpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	// Counted below TLS, so the IMAP server still sees *tls.Conn connections.
	counted := &countingListener{Listener: tcpLn, c: &s.imapConns, accepting: make(chan struct{})}
	imapLn := tls.NewListener(counted, tlsConfig)
	s.IMAPPort = imapLn.Addr().(*net.TCPAddr).Port
	s.listeners = append(s.listeners, imapLn)
	s.serving.Go(func() { _ = s.imap.Serve(imapLn) })
	// go-imap's Serve registers with a WaitGroup that its Close waits on, with
	// nothing ordering the two: a Close right after Start raced with it. Serve
	// has registered once it accepts.
	<-counted.accepting

	s.smtp = smtp.NewServer(backend{s})
	s.smtp.Domain = "localhost"
	s.smtp.ReadTimeout, s.smtp.WriteTimeout = time.Minute, time.Minute
	s.smtp.MaxMessageBytes = 32 << 20
	// Clients that drop mid-session (the crash test kills them by the dozen) are
	// expected here, not news worth a line on stderr each.
	s.smtp.ErrorLog = discardLogger{}
	smtpLn, err := tls.Listen("tcp", "127.0.0.1:0", tlsConfig)
	if err != nil {
		_ = s.Close()
		return nil, err
	}
	s.SMTPPort = smtpLn.Addr().(*net.TCPAddr).Port
	s.listeners = append(s.listeners, smtpLn)
	s.serving.Go(func() { _ = s.smtp.Serve(smtpLn) })
	return s, nil
}

// AllowToken lets the user email log in to IMAP and SMTP with the OAuth access token
// (SASL OAUTHBEARER), as a provider would after issuing it.
func (s *Server) AllowToken(email, accessToken string) {
	s.mu.Lock()
	s.tokens[accessToken] = email
	s.mu.Unlock()
}

// tokenUser returns the user an access token was issued to, if username (when
// given) is that user.
func (s *Server) tokenUser(token, username string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	email, ok := s.tokens[token]
	return email, ok && (username == "" || strings.EqualFold(username, email))
}

// imapSession adds SASL OAUTHBEARER to the in-memory server's sessions.
type imapSession struct {
	imapserver.SessionIMAP4rev2
	s *Server
}

func (x *imapSession) AuthenticateMechanisms() []string {
	return []string{sasl.Plain, sasl.OAuthBearer}
}

func (x *imapSession) Authenticate(mech string) (sasl.Server, error) {
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				return imapserver.ErrAuthFailed
			}
			return x.Login(username, password)
		}), nil
	case sasl.OAuthBearer:
		return sasl.NewOAuthBearerServer(func(o sasl.OAuthBearerOptions) *sasl.OAuthBearerError {
			email, ok := x.s.tokenUser(o.Token, o.Username)
			x.s.mu.Lock()
			password := x.s.passwords[strings.ToLower(email)]
			x.s.mu.Unlock()
			if !ok || x.Login(email, password) != nil {
				return &sasl.OAuthBearerError{Status: "invalid_token", Schemes: "bearer"}
			}
			return nil
		}), nil
	}
	return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Text: "unsupported mechanism"}
}

// Close stops both servers and returns once they have stopped.
func (s *Server) Close() error {
	var errs []error
	for _, ln := range s.listeners {
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	// Their Close also ends open connections; "already closed" is not a failure.
	if err := s.imap.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		errs = append(errs, err)
	}
	if s.smtp != nil {
		if err := s.smtp.Close(); err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, smtp.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	s.serving.Wait()
	// Replies held back wake up only now, to find their connection closed.
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.closing)
	}
	s.mu.Unlock()
	s.delayedReplies.Wait()
	return errors.Join(errs...)
}

// AddUser adds a mailbox with an empty INBOX.
func (s *Server) AddUser(email, password string) error {
	u := imapmemserver.NewUser(email, password)
	if err := u.Create("INBOX", nil); err != nil {
		return err
	}
	s.mem.AddUser(u)
	s.mu.Lock()
	s.passwords[strings.ToLower(email)] = password
	s.mu.Unlock()
	return nil
}

// SetSendHook makes the SMTP server call fn for each message before accepting it;
// an error (e.g. an *smtp.SMTPError with a 4xx or 5xx code) refuses it. Tests use
// it to inject failures.
func (s *Server) SetSendHook(fn func(from string, to []string) error) {
	s.mu.Lock()
	s.sendHook = fn
	s.mu.Unlock()
}

// SetReplyDelay makes the SMTP server wait d after it has taken a message (and
// delivered it to the recipients' inboxes) before it replies 250. A client that dies
// during the wait leaves a delivered message it got no reply for: the crash test uses
// it to kill the Syncer while the outcome of a send is unknown to it.
func (s *Server) SetReplyDelay(d time.Duration) {
	s.mu.Lock()
	s.replyDelay = d
	s.mu.Unlock()
}

// Deliveries reports, for each Message-ID (without angle brackets), how many
// messages carrying it the SMTP server accepted: a count above one is an email
// sent twice.
func (s *Server) Deliveries() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.deliveries)
}

// Sent reports how many messages the SMTP server accepted.
func (s *Server) Sent() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent
}

// Deliver appends raw to user's INBOX, as a mail server delivering new mail would.
func (s *Server) Deliver(email string, raw []byte) error {
	return s.withClient(email, func(c *imapclient.Client) error {
		cmd := c.Append("INBOX", int64(len(raw)), nil)
		if _, err := cmd.Write(raw); err != nil {
			return err
		}
		if err := cmd.Close(); err != nil {
			return err
		}
		_, err := cmd.Wait()
		return err
	})
}

// Messages returns the messages of user's folder, in order.
func (s *Server) Messages(email, folder string) ([][]byte, error) {
	var out [][]byte
	err := s.withClient(email, func(c *imapclient.Client) error {
		data, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			return err
		}
		if data.NumMessages == 0 {
			return nil
		}
		msgs, err := c.Fetch(imap.SeqSetNum(seqRange(data.NumMessages)...), &imap.FetchOptions{
			BodySection: []*imap.FetchItemBodySection{{Peek: true}},
		}).Collect()
		if err != nil {
			return err
		}
		for _, m := range msgs {
			for _, b := range m.BodySection {
				out = append(out, b.Bytes)
			}
		}
		return nil
	})
	return out, err
}

func seqRange(n uint32) []uint32 {
	out := make([]uint32, n)
	for i := range out {
		out[i] = uint32(i + 1)
	}
	return out
}

func (s *Server) withClient(email string, fn func(*imapclient.Client) error) error {
	s.mu.Lock()
	password, ok := s.passwords[strings.ToLower(email)]
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("demoserver: no user %s", email)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(s.CAPEM))
	c, err := imapclient.DialTLS(fmt.Sprintf("%s:%d", s.Host, s.IMAPPort), &imapclient.Options{
		TLSConfig: &tls.Config{RootCAs: pool, ServerName: s.Host},
	})
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Login(email, password).Wait(); err != nil {
		return err
	}
	return errors.Join(fn(c), c.Logout().Wait())
}

// backend is the SMTP side: authenticated submission delivering to local users.
type backend struct{ s *Server }

func (b backend) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{s: b.s}, nil }

type session struct {
	s    *Server
	user string
	from string
	to   []string
}

func (ss *session) AuthMechanisms() []string { return []string{sasl.Plain, sasl.OAuthBearer} }

func (ss *session) Auth(mech string) (sasl.Server, error) {
	if mech == sasl.OAuthBearer {
		return sasl.NewOAuthBearerServer(func(o sasl.OAuthBearerOptions) *sasl.OAuthBearerError {
			email, ok := ss.s.tokenUser(o.Token, o.Username)
			if !ok {
				return &sasl.OAuthBearerError{Status: "invalid_token", Schemes: "bearer"}
			}
			ss.user = email
			return nil
		}), nil
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		ss.s.mu.Lock()
		defer ss.s.mu.Unlock()
		if want, ok := ss.s.passwords[strings.ToLower(username)]; !ok || want != password {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "authentication failed"}
		}
		ss.user = username
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.user == "" {
		return smtp.ErrAuthRequired
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.s.mu.Lock()
	_, ok := ss.s.passwords[strings.ToLower(to)]
	ss.s.mu.Unlock()
	if !ok {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user here"}
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.s.mu.Lock()
	hook := ss.s.sendHook
	ss.s.mu.Unlock()
	if hook != nil {
		if err := hook(ss.from, ss.to); err != nil {
			return err
		}
	}
	received := fmt.Appendf(nil, "Received: from demo by localhost; %s\r\n", time.Now().Format(time.RFC1123Z))
	msg := append(received, raw...)
	for _, to := range ss.to {
		if err := ss.s.Deliver(to, bytes.Clone(msg)); err != nil {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "delivery failed: " + err.Error()}
		}
	}
	var messageID string
	if m, err := mail.ReadMessage(bytes.NewReader(raw)); err == nil {
		messageID = strings.Trim(m.Header.Get("Message-Id"), "<> ")
	}
	ss.s.mu.Lock()
	ss.s.sent++
	if messageID != "" {
		ss.s.deliveries[messageID]++
	}
	delay := ss.s.replyDelay
	if delay > 0 && !ss.s.closed {
		ss.s.delayedReplies.Add(1) // under mu, so Close's Wait sees it
		defer ss.s.delayedReplies.Done()
	} else {
		delay = 0
	}
	ss.s.mu.Unlock()
	if delay > 0 {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ss.s.closing:
		}
	}
	return nil
}

func (ss *session) Reset()        { ss.from, ss.to = "", nil }
func (ss *session) Logout() error { return nil }

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}
func (discardLogger) Println(...any)        {}

// PeakIMAPConnections is the most IMAP connections open at once since the server
// started or since the last ResetPeakIMAPConnections.
func (s *Server) PeakIMAPConnections() int { return s.imapConns.peakValue() }

// ResetPeakIMAPConnections starts a new peak from the connections open now.
func (s *Server) ResetPeakIMAPConnections() { s.imapConns.resetPeak() }

// connCounter counts open connections and their peak.
type connCounter struct {
	mu         sync.Mutex
	open, peak int
}

func (c *connCounter) add(n int) {
	c.mu.Lock()
	c.open += n
	c.peak = max(c.peak, c.open)
	c.mu.Unlock()
}

func (c *connCounter) peakValue() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.peak
}

func (c *connCounter) resetPeak() {
	c.mu.Lock()
	c.peak = c.open
	c.mu.Unlock()
}

type countingListener struct {
	net.Listener
	c *connCounter
	// accepting is closed at the first Accept: the server is serving.
	accepting     chan struct{}
	acceptingOnce sync.Once
}

func (l *countingListener) Accept() (net.Conn, error) {
	if l.accepting != nil {
		l.acceptingOnce.Do(func() { close(l.accepting) })
	}
	conn, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.c.add(1)
	return &countedConn{Conn: conn, c: l.c}, nil
}

type countedConn struct {
	net.Conn
	c      *connCounter
	closed sync.Once
}

func (c *countedConn) Close() error {
	c.closed.Do(func() { c.c.add(-1) })
	return c.Conn.Close()
}
