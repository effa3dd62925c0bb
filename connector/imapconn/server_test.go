package imapconn_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-sasl"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/imapconn"
	"github.com/serversync/serversync/internal/testcert"
)

const (
	masterUser     = "master"
	masterPassword = "master-pass"
)

// serverConfig shapes an in-process memserver.
type serverConfig struct {
	caps           imap.CapSet // default: IMAP4rev1 + NAMESPACE, UIDPLUS, MOVE
	noSASLPlain    bool        // advertise no AUTH= mechanism: LOGIN only
	otherNS        bool        // report an other-users namespace "shared/" (delegation)
	startTLS       *tls.Config // offer STARTTLS with this config
	implicitTLS    *tls.Config // serve implicit TLS with this config
	users          []string    // default: alice, bob, svc (password "<name>-pass")
	extraMailboxes map[string][]string
	noWireLog      bool // don't keep what clients sent (benchmarks)
}

// testServer is an imapmemserver on 127.0.0.1:0 with master-user and SASL
// authorization-identity logins like Dovecot's, and a log of what clients sent.
type testServer struct {
	mem       *imapmemserver.Server
	users     map[string]*imapmemserver.User
	passwords map[string]string
	cfg       serverConfig
	port      int
	logins    atomic.Int32 // LOGIN and AUTHENTICATE attempts
	wire      lockedBuffer // everything clients sent and received
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *lockedBuffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Reset()
}

func newTestServer(t testing.TB, cfg serverConfig) *testServer {
	t.Helper()
	if cfg.caps == nil {
		cfg.caps = imap.CapSet{
			imap.CapIMAP4rev1: {}, imap.CapNamespace: {}, imap.CapUIDPlus: {}, imap.CapMove: {},
		}
	}
	if cfg.users == nil {
		cfg.users = []string{"alice", "bob", "svc"}
	}
	ts := &testServer{
		mem:       imapmemserver.New(),
		users:     map[string]*imapmemserver.User{},
		passwords: map[string]string{},
		cfg:       cfg,
	}
	for _, name := range cfg.users {
		u := imapmemserver.NewUser(name, name+"-pass")
		require.NoError(t, u.Create("INBOX", nil))
		for _, mbox := range cfg.extraMailboxes[name] {
			require.NoError(t, u.Create(mbox, nil))
		}
		ts.mem.AddUser(u)
		ts.users[name] = u
		ts.passwords[name] = name + "-pass"
	}
	var wire io.Writer = &ts.wire
	if cfg.noWireLog {
		wire = nil
	}
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			inner := ts.mem.NewSession().(imapserver.SessionIMAP4rev2)
			return &testSession{SessionIMAP4rev2: inner, ts: ts}, nil, nil
		},
		Caps:         cfg.caps,
		TLSConfig:    cfg.startTLS,
		InsecureAuth: true,
		DebugWriter:  wire,
		Logger:       discardLogger{},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ts.port = ln.Addr().(*net.TCPAddr).Port
	if cfg.implicitTLS != nil {
		ln = tls.NewListener(ln, cfg.implicitTLS)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ts
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}

// target returns a plaintext target for user with its own password.
func (ts *testServer) target(user string) *serversync.Target {
	return &serversync.Target{
		MailboxID:    user,
		EmailAddress: user + "@example.test",
		Endpoint: serversync.Endpoint{
			Host: "127.0.0.1", Port: ts.port, TLS: serversync.TLSNone,
			AllowPlaintextAuth: true, Timeout: 5 * time.Second,
		},
		Credentials: auth.Credentials{Kind: auth.KindPassword, Username: user, Password: auth.NewSecret(user + "-pass")},
	}
}

// imapSession is what an IMAP session is: an incoming session with folders.
type imapSession interface {
	serversync.IncomingSession
	serversync.FolderSession
}

// open opens a session with the default connector, closed at cleanup.
func (ts *testServer) open(t *testing.T, target *serversync.Target, opts *imapconn.Options) imapSession {
	t.Helper()
	sess, err := imapconn.New(opts).OpenIncoming(context.Background(), target)
	require.NoError(t, err)
	t.Cleanup(func() { _ = sess.Close() })
	folders, ok := sess.(imapSession)
	require.True(t, ok, "IMAP sessions have folders")
	return folders
}

// client is an independent plain go-imap client logged in as user, for setting
// up and checking what the connector does.
func (ts *testServer) client(t testing.TB, user string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(fmt.Sprintf("127.0.0.1:%d", ts.port), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	require.NoError(t, c.Login(user, ts.passwords[user]).Wait())
	return c
}

func appendMessage(t testing.TB, c *imapclient.Client, folder string, body []byte, date time.Time) imap.UID {
	t.Helper()
	cmd := c.Append(folder, int64(len(body)), &imap.AppendOptions{Time: date})
	_, err := cmd.Write(body)
	require.NoError(t, err)
	require.NoError(t, cmd.Close())
	data, err := cmd.Wait()
	require.NoError(t, err)
	return data.UID
}

func countMessages(t *testing.T, c *imapclient.Client, folder string) uint32 {
	t.Helper()
	data, err := c.Status(folder, &imap.StatusOptions{NumMessages: true}).Wait()
	require.NoError(t, err)
	return *data.NumMessages
}

// testSession adds Dovecot-like impersonation to a memserver session: LOGIN as
// "user*master" with the master password, or SASL PLAIN as the master user with
// the mailbox as authorization identity.
type testSession struct {
	imapserver.SessionIMAP4rev2
	ts *testServer
}

func (s *testSession) Login(username, password string) error {
	s.ts.logins.Add(1)
	if user, ok := strings.CutSuffix(username, "*"+masterUser); ok {
		if password != masterPassword {
			return imapserver.ErrAuthFailed
		}
		return s.SessionIMAP4rev2.Login(user, s.ts.passwords[user])
	}
	return s.SessionIMAP4rev2.Login(username, password)
}

func (s *testSession) AuthenticateMechanisms() []string {
	if s.ts.cfg.noSASLPlain {
		return nil
	}
	return []string{sasl.Plain, auth.Xoauth2}
}

func (s *testSession) Authenticate(mech string) (sasl.Server, error) {
	if mech == auth.Xoauth2 && !s.ts.cfg.noSASLPlain {
		return &xoauth2Server{s: s}, nil
	}
	if mech != sasl.Plain || s.ts.cfg.noSASLPlain {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Text: "unsupported mechanism"}
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if identity == "" || identity == username {
			return s.Login(username, password)
		}
		s.ts.logins.Add(1)
		if username != masterUser || password != masterPassword {
			return imapserver.ErrAuthFailed
		}
		if _, ok := s.ts.passwords[identity]; !ok {
			return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAuthorizationFailed, Text: "no such user"}
		}
		return s.SessionIMAP4rev2.Login(identity, s.ts.passwords[identity])
	}), nil
}

func (s *testSession) Namespace() (*imap.NamespaceData, error) {
	data, err := s.SessionIMAP4rev2.Namespace()
	if err == nil && s.ts.cfg.otherNS {
		data.Other = []imap.NamespaceDescriptor{{Prefix: "shared/", Delim: '/'}}
	}
	return data, err
}

// selfSignedCert returns a certificate for 127.0.0.1 and its PEM.
func selfSignedCert(testing.TB) (tls.Certificate, string) { return testcert.Must() }

// testMessage is a small RFC 5322 message, distinct per n, of about size bytes.
func testMessage(n, size int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: sender%d@example.test\r\nTo: alice@example.test\r\nSubject: message %d\r\n", n, n)
	fmt.Fprintf(&b, "Message-ID: <%d.%d@example.test>\r\nDate: Mon, 02 Jan 2006 15:04:05 +0000\r\n\r\n", n, time.Now().UnixNano())
	for line := 0; b.Len() < size; line++ {
		fmt.Fprintf(&b, "line %d of message %d: the quick brown fox jumps over the lazy dog\r\n", line, n)
	}
	return b.Bytes()
}

// fetched is what a Fetch callback saw.
type fetched struct {
	msg  serversync.RemoteMessage
	body []byte
}

func fetchAll(t *testing.T, sess serversync.IncomingSession, req serversync.FetchRequest) ([]fetched, serversync.FetchResult) {
	t.Helper()
	var got []fetched
	res, err := sess.Fetch(context.Background(), req, func(m *serversync.RemoteMessage) error {
		body, err := io.ReadAll(m.Body)
		if err != nil {
			return err
		}
		got = append(got, fetched{msg: *m, body: body})
		return nil
	})
	require.NoError(t, err)
	return got, res
}

// validToken is the only OAuth access token the test server accepts.
const validToken = "valid-token"

// xoauth2Server accepts "user=<u>\x01auth=Bearer valid-token\x01\x01" and answers
// anything else like Gmail: an error challenge, then NO once the client replies.
type xoauth2Server struct {
	s      *testSession
	failed bool
}

func (x *xoauth2Server) Next(resp []byte) ([]byte, bool, error) {
	if x.failed {
		return nil, true, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAuthenticationFailed, Text: "invalid token"}
	}
	if resp == nil {
		return []byte{}, false, nil
	}
	x.s.ts.logins.Add(1)
	parts := strings.Split(string(resp), "\x01")
	if len(parts) >= 2 && parts[1] == "auth=Bearer "+validToken {
		user := strings.TrimPrefix(parts[0], "user=")
		return nil, true, x.s.SessionIMAP4rev2.Login(user, x.s.ts.passwords[user])
	}
	x.failed = true
	return []byte(`{"status":"401","schemes":"bearer","scope":"https://mail.example.test/"}`), false, nil
}
