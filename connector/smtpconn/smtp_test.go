package smtpconn

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector"
	"github.com/serversync/serversync/internal/testcert"
)

// testCert is a self-signed certificate for 127.0.0.1 and its PEM, generated once.
var testCert = sync.OnceValues(testcert.Must)

// recorder is a go-smtp backend that keeps what it was told.
type recorder struct {
	mu        sync.Mutex
	auths     []string // "authzid|authcid" or "xoauth2|user|token"
	froms     []string
	rcpts     []string
	data      [][]byte
	bodyTypes []smtp.BodyType
	rcptCode  int // reply code for RCPT, 0 = accept
	password  string
}

func (r *recorder) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{r: r}, nil }

type session struct{ r *recorder }

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain, auth.Xoauth2} }

func (s *session) Auth(mech string) (sasl.Server, error) {
	if mech == auth.Xoauth2 {
		return &xoauth2Server{r: s.r}, nil
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if password != s.r.password {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "bad credentials"}
		}
		s.r.mu.Lock()
		defer s.r.mu.Unlock()
		s.r.auths = append(s.r.auths, identity+"|"+username)
		return nil
	}), nil
}

func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	s.r.froms = append(s.r.froms, from)
	s.r.bodyTypes = append(s.r.bodyTypes, opts.Body)
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	if s.r.rcptCode != 0 {
		return &smtp.SMTPError{Code: s.r.rcptCode, Message: "recipient refused"}
	}
	s.r.rcpts = append(s.r.rcpts, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	s.r.data = append(s.r.data, b)
	return err
}

func (s *session) Reset()        {}
func (s *session) Logout() error { return nil }

// refusedToken is the token xoauth2Server refuses the way Gmail, Exchange Online and
// Dovecot do: an error challenge (a JSON status), then 535 once the client answers.
const refusedToken = "refused-token"

type xoauth2Server struct {
	r       *recorder
	refused bool
}

func (x *xoauth2Server) Next(response []byte) ([]byte, bool, error) {
	if x.refused {
		return nil, true, &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "invalid token"}
	}
	parts := strings.Split(string(response), "\x01")
	if len(parts) < 2 || !strings.HasPrefix(parts[1], "auth=Bearer ") {
		return nil, false, errors.New("malformed XOAUTH2")
	}
	if parts[1] == "auth=Bearer "+refusedToken {
		x.refused = true
		return []byte(`{"status":"401","schemes":"bearer","scope":"mail"}`), false, nil
	}
	x.r.mu.Lock()
	defer x.r.mu.Unlock()
	x.r.auths = append(x.r.auths, "xoauth2|"+strings.TrimPrefix(parts[0], "user=")+"|"+strings.TrimPrefix(parts[1], "auth=Bearer "))
	return nil, true, nil
}

// serve starts a go-smtp server: mode Implicit (TLS from the start), STARTTLS (offered),
// or None (no TLS at all, so STARTTLS is not offered).
func serve(t *testing.T, mode serversync.TLSMode, r *recorder, utf8 bool) serversync.Endpoint {
	t.Helper()
	cert, certPEM := testCert()
	srv := smtp.NewServer(r)
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true // so tests can show that the client refuses by itself
	srv.EnableSMTPUTF8 = utf8
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	switch mode {
	case serversync.TLSImplicit:
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}})
	case serversync.TLSStartTLS:
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	port := ln.Addr().(*net.TCPAddr).Port
	return serversync.Endpoint{Host: "127.0.0.1", Port: port, TLS: mode, RootCAsPEM: certPEM, Timeout: 5 * time.Second}
}

func target(ep serversync.Endpoint, creds auth.Credentials) *serversync.Target {
	return &serversync.Target{EmailAddress: "alice@contoso.test", Endpoint: ep, Credentials: creds}
}

func password(pw string) auth.Credentials {
	return auth.Credentials{Kind: auth.KindPassword, Username: "alice@contoso.test", Password: auth.NewSecret(pw)}
}

const message = "From: alice@contoso.test\r\nTo: bob@contoso.test\r\nSubject: Hello\r\nMessage-ID: <m1@contoso.test>\r\n\r\nHi Bob,\r\n.leading dot stays\r\n"

func send(t *testing.T, ep serversync.Endpoint, creds auth.Credentials) error {
	t.Helper()
	ctx := context.Background()
	s, err := New(nil).OpenOutgoing(ctx, target(ep, creds))
	if err != nil {
		return err
	}
	defer s.Close()
	return s.Send(ctx, serversync.Envelope{From: "alice@contoso.test", To: []string{"bob@contoso.test"}}, strings.NewReader(message))
}

func TestSendImplicitTLSAndSTARTTLS(t *testing.T) {
	t.Parallel()
	for _, mode := range []serversync.TLSMode{serversync.TLSImplicit, serversync.TLSStartTLS} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			r := &recorder{password: "pw"}
			ep := serve(t, mode, r, false)
			require.NoError(t, send(t, ep, password("pw")))
			require.Len(t, r.data, 1)
			assert.Equal(t, message, string(r.data[0]), "the server receives the exact bytes")
			assert.Equal(t, []string{"alice@contoso.test"}, r.froms)
			assert.Equal(t, []string{"bob@contoso.test"}, r.rcpts)
			assert.Equal(t, []string{"|alice@contoso.test"}, r.auths)
		})
	}
}

func TestSTARTTLSNeverSkipped(t *testing.T) {
	t.Parallel()
	r := &recorder{password: "pw"}
	ep := serve(t, serversync.TLSNone, r, false) // this server offers no STARTTLS
	ep.TLS = serversync.TLSStartTLS              // but the profile requires it
	err := send(t, ep, password("pw"))
	var ce *serversync.ConnectorError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "tls_unavailable", ce.Code)
	assert.Equal(t, serversync.ErrorPermanent, ce.Kind)
	assert.Empty(t, r.auths, "no credentials may cross an unencrypted connection")
	assert.Empty(t, r.froms, "nothing may be sent")
}

func TestPlaintextAuthNeedsPermission(t *testing.T) {
	t.Parallel()
	r := &recorder{password: "pw"}
	ep := serve(t, serversync.TLSNone, r, false)
	err := send(t, ep, password("pw"))
	require.ErrorIs(t, err, connector.ErrPlaintextAuth)
	assert.Empty(t, r.auths)

	ep.AllowPlaintextAuth = true
	require.NoError(t, send(t, ep, password("pw")))
	assert.Len(t, r.auths, 1)
}

func TestCredentialModes(t *testing.T) {
	t.Parallel()
	r := &recorder{password: "svc-pw"}
	ep := serve(t, serversync.TLSImplicit, r, false)
	impersonate := auth.Credentials{Kind: auth.KindImpersonation, Username: "svc", Password: auth.NewSecret("svc-pw"), Mailbox: "alice@contoso.test"}
	require.NoError(t, send(t, ep, impersonate))
	master := impersonate
	master.Impersonation = auth.ImpersonateMasterUser
	require.NoError(t, send(t, ep, master))
	oauth := auth.Credentials{Kind: auth.KindOAuth, Username: "alice@contoso.test", TokenSource: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "tok-1"})}
	require.NoError(t, send(t, ep, oauth))
	assert.Equal(t, []string{"alice@contoso.test|svc", "|alice@contoso.test*svc", "xoauth2|alice@contoso.test|tok-1"}, r.auths)

	anonymous := &recorder{}
	ep = serve(t, serversync.TLSImplicit, anonymous, false)
	require.NoError(t, send(t, ep, auth.Credentials{Kind: auth.KindAnonymous}))
	assert.Empty(t, anonymous.auths)
	assert.Len(t, anonymous.data, 1)
}

func TestErrorClassification(t *testing.T) {
	t.Parallel()
	r := &recorder{password: "right"}
	ep := serve(t, serversync.TLSImplicit, r, false)
	err := send(t, ep, password("wrong-Secret-123"))
	var ce *serversync.ConnectorError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, serversync.ErrorAuth, ce.Kind)
	assert.Equal(t, serversync.ScopeMailbox, ce.Scope)
	assert.NotContains(t, err.Error(), "wrong-Secret-123")
	var smtpErr *smtp.SMTPError
	require.ErrorAs(t, err, &smtpErr, "the protocol error stays reachable")
	assert.Equal(t, 535, smtpErr.Code)

	for code, want := range map[int]struct {
		kind serversync.ErrorKind
		code string
	}{451: {serversync.ErrorTransient, "temporary_failure"}, 550: {serversync.ErrorPermanent, "recipient_rejected"}} {
		r := &recorder{password: "pw", rcptCode: code}
		err := send(t, serve(t, serversync.TLSImplicit, r, false), password("pw"))
		require.ErrorAs(t, err, &ce, "code %d", code)
		assert.Equal(t, want.kind, ce.Kind, "code %d", code)
		assert.Equal(t, want.code, ce.Code, "code %d", code)
		assert.Empty(t, r.data)
	}
}

// An OAuth token the provider refuses to refresh is the mailbox's authentication
// failure; the profile's token endpoint out of reach is only transient.
func TestOAuthRefreshFailures(t *testing.T) {
	t.Parallel()
	ep := serve(t, serversync.TLSImplicit, &recorder{}, false)
	for _, tc := range []struct {
		name  string
		err   error
		kind  serversync.ErrorKind
		scope serversync.AlertScope
	}{
		{"Revoked", &oauth2.RetrieveError{ErrorCode: "invalid_grant"}, serversync.ErrorAuth, serversync.ScopeMailbox},
		{"Unreachable", errors.New("dial tcp: connection refused"), serversync.ErrorTransient, serversync.ScopeProfile},
	} {
		t.Run(tc.name, func(t *testing.T) {
			creds := auth.Credentials{Kind: auth.KindOAuth, Username: "alice@contoso.test", TokenSource: failingTokenSource{tc.err}}
			err := send(t, ep, creds)
			var ce *serversync.ConnectorError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, tc.kind, ce.Kind)
			assert.Equal(t, tc.scope, ce.Scope)
			assert.ErrorIs(t, err, tc.err)
		})
	}
}

// A token the server refuses with XOAUTH2's error challenge is a refused login of
// the mailbox, not a broken connection: the client gives up on the challenge, so no
// 535 ever reaches it.
func TestXoauth2ChallengeRefusal(t *testing.T) {
	t.Parallel()
	r := &recorder{}
	ep := serve(t, serversync.TLSImplicit, r, false)
	for _, kind := range []auth.Kind{auth.KindOAuth, auth.KindAppOnly} {
		creds := auth.Credentials{Kind: kind, Username: "alice@contoso.test",
			TokenSource: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: refusedToken})}
		err := send(t, ep, creds)
		var ce *serversync.ConnectorError
		require.ErrorAs(t, err, &ce, "%s", kind)
		assert.Equal(t, serversync.ErrorAuth, ce.Kind, "%s: %v", kind, err)
		assert.Equal(t, serversync.CodeAuthFailed, ce.Code, "%s: %v", kind, err)
		assert.Equal(t, serversync.ScopeMailbox, ce.Scope, "%s: %v", kind, err)
		assert.Contains(t, err.Error(), "401")
		assert.NotContains(t, err.Error(), refusedToken)
	}
	assert.Empty(t, r.data, "nothing is sent after a refused login")
}

type failingTokenSource struct{ err error }

func (f failingTokenSource) Token() (*oauth2.Token, error) { return nil, f.err }

func TestUntrustedCertificate(t *testing.T) {
	t.Parallel()
	for _, mode := range []serversync.TLSMode{serversync.TLSImplicit, serversync.TLSStartTLS} {
		r := &recorder{password: "pw"}
		ep := serve(t, mode, r, false)
		ep.RootCAsPEM = ""
		err := send(t, ep, password("pw"))
		var ce *serversync.ConnectorError
		require.ErrorAs(t, err, &ce, mode)
		assert.Equal(t, "tls_verify_failed", ce.Code, mode)
		assert.Empty(t, r.auths)
	}
}

func TestSMTPUTF8AndSessionReuse(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := &recorder{password: "pw"}
	s, err := New(nil).OpenOutgoing(ctx, target(serve(t, serversync.TLSImplicit, r, false), password("pw")))
	require.NoError(t, err)
	defer s.Close()
	err = s.Send(ctx, serversync.Envelope{From: "alice@contoso.test", To: []string{"jürgen@contoso.test"}}, strings.NewReader(message))
	var ce *serversync.ConnectorError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "smtputf8_unsupported", ce.Code)
	assert.Empty(t, r.froms, "nothing sent")

	body8bit := "Subject: caf\xc3\xa9\r\n\r\nd\xc3\xa9j\xc3\xa0 vu\r\n"
	for range 2 { // one session, several messages
		require.NoError(t, s.Send(ctx, serversync.Envelope{From: "alice@contoso.test", To: []string{"bob@contoso.test"}}, strings.NewReader(body8bit)))
	}
	assert.Len(t, r.data, 2)
	assert.Equal(t, smtp.Body8BitMIME, r.bodyTypes[0], "8-bit content goes as 8BITMIME")

	utf8 := &recorder{password: "pw"}
	s2, err := New(nil).OpenOutgoing(ctx, target(serve(t, serversync.TLSImplicit, utf8, true), password("pw")))
	require.NoError(t, err)
	defer s2.Close()
	require.NoError(t, s2.Send(ctx, serversync.Envelope{From: "alice@contoso.test", To: []string{"jürgen@contoso.test"}}, strings.NewReader(message)))
	assert.Equal(t, []string{"jürgen@contoso.test"}, utf8.rcpts)
}

func TestContextCancelWhileServerHangs(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() { // accepts and never greets
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	done := make(chan error, 1)
	go func() {
		_, err := New(nil).OpenOutgoing(ctx, target(serversync.Endpoint{Host: "127.0.0.1", Port: port, TLS: serversync.TLSNone, AllowPlaintextAuth: true, Timeout: time.Minute}, password("pw")))
		done <- err
	}()
	select {
	case err := <-done:
		assert.ErrorIs(t, err, context.Canceled)
	case <-time.After(10 * time.Second):
		t.Fatal("OpenOutgoing did not return after its context was cancelled")
	}
}

func TestProbe(t *testing.T) {
	t.Parallel()
	r := &recorder{password: "pw"}
	ep := serve(t, serversync.TLSStartTLS, r, false)
	steps := New(nil).Probe(context.Background(), target(ep, password("pw")))
	var names []string
	for _, s := range steps {
		names = append(names, s.Name)
		assert.True(t, s.OK, "%s: %v", s.Name, s.Err)
	}
	assert.Equal(t, []string{"connect", "tls", "authenticate", "mail-from", "rcpt-to"}, names)
	assert.Empty(t, r.data, "a probe sends nothing")

	steps = New(nil).Probe(context.Background(), target(ep, password("bad")))
	last := steps[len(steps)-1]
	assert.Equal(t, "authenticate", last.Name)
	assert.False(t, last.OK)
	assert.Contains(t, last.Detail, "refused the credentials")
	assert.NotContains(t, last.Detail, "bad")
}

// When the connection fails after the message was handed over, the server may
// have accepted it: the error says so, so nobody resends it silently.
func TestNoReplyAfterDataIsOutcomeUnknown(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		fmt.Fprint(c, "220 fake ESMTP\r\n")
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			switch verb := strings.ToUpper(strings.Fields(line + " x")[0]); verb {
			case "EHLO":
				fmt.Fprint(c, "250 fake\r\n")
			case "DATA":
				fmt.Fprint(c, "354 go on\r\n")
				for {
					l, err := r.ReadString('\n')
					if err != nil || l == ".\r\n" {
						return // the whole message arrived; hang up without a reply
					}
				}
			default:
				fmt.Fprint(c, "250 ok\r\n")
			}
		}
	}()
	ep := serversync.Endpoint{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, TLS: serversync.TLSNone, Timeout: 5 * time.Second}
	err = send(t, ep, auth.Credentials{Kind: auth.KindAnonymous})
	var ce *serversync.ConnectorError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, serversync.CodeSendOutcomeUnknown, ce.Code)
	assert.False(t, ce.Temporary(), "not retried automatically")
}
