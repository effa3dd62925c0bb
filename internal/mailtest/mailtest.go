// Package mailtest finds the real Dovecot and Postfix that scripts/mailservers
// starts, for interop tests: its environment file sets SERVERSYNC_INTEROP=1 and the
// SERVERSYNC_INTEROP_* variables. Without them, Load skips the test with a message
// that says how to run it.
package mailtest

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
)

// Service names a listening port of the test servers.
type Service string

// Ports scripts/mailservers opens.
const (
	IMAP        Service = "IMAP_PORT"        // Dovecot, STARTTLS
	IMAPS       Service = "IMAPS_PORT"       // Dovecot, implicit TLS
	POP3        Service = "POP3_PORT"        // Dovecot, STLS
	POP3S       Service = "POP3S_PORT"       // Dovecot, implicit TLS
	Submission  Service = "SUBMISSION_PORT"  // Postfix, STARTTLS, SASL through Dovecot
	Submissions Service = "SUBMISSIONS_PORT" // Postfix, implicit TLS
	// SMTPNoTLS is Postfix without STARTTLS; its endpoint still asks for STARTTLS, so
	// tests see a connector refuse to go on in plaintext.
	SMTPNoTLS Service = "SMTP_NOTLS_PORT"
)

// Env describes the running test servers.
type Env struct {
	Host           string
	Domain         string
	CAPEM          string
	MasterUser     string
	MasterPassword string
	Maildir        string
	SharedPrefix   string // the namespace of other users' folders ("shared/"), for delegation
	ports          map[Service]int
}

// Load returns the environment, or skips t when the servers are not configured.
func Load(t testing.TB) *Env {
	t.Helper()
	if os.Getenv("SERVERSYNC_INTEROP") != "1" {
		t.Skip("SERVERSYNC_INTEROP not set: run scripts/mailservers start and source /tmp/serversync-mail/env to test against real Dovecot and Postfix")
	}
	get := func(name string) string {
		v := os.Getenv("SERVERSYNC_INTEROP_" + name)
		if v == "" {
			t.Fatalf("SERVERSYNC_INTEROP=1 but SERVERSYNC_INTEROP_%s is not set", name)
		}
		return v
	}
	ca, err := os.ReadFile(get("CA"))
	if err != nil {
		t.Fatalf("read the test CA: %v", err)
	}
	e := &Env{
		Host: get("HOST"), Domain: get("DOMAIN"), CAPEM: string(ca),
		MasterUser: get("MASTER_USER"), MasterPassword: get("MASTER_PASSWORD"), Maildir: get("MAILDIR"),
		SharedPrefix: os.Getenv("SERVERSYNC_INTEROP_SHARED_PREFIX"),
		ports:        map[Service]int{},
	}
	for _, s := range []Service{IMAP, IMAPS, POP3, POP3S, Submission, Submissions, SMTPNoTLS} {
		p, err := strconv.Atoi(get(string(s)))
		if err != nil {
			t.Fatalf("SERVERSYNC_INTEROP_%s: %v", s, err)
		}
		e.ports[s] = p
	}
	return e
}

// Login is the full user name of a test user ("alice" → "alice@example.test").
func (e *Env) Login(user string) string { return user + "@" + e.Domain }

// Password is the password scripts/mailservers gives a user.
func Password(user string) string {
	if len(user) == 8 && user[:4] == "user" {
		return "bulk-pass"
	}
	return user + "-pass"
}

// Endpoint is the endpoint of one service.
func (e *Env) Endpoint(s Service) serversync.Endpoint {
	mode := serversync.TLSImplicit
	if s == IMAP || s == POP3 || s == Submission || s == SMTPNoTLS {
		mode = serversync.TLSStartTLS
	}
	return serversync.Endpoint{Host: e.Host, Port: e.ports[s], TLS: mode, RootCAsPEM: e.CAPEM, Timeout: 20 * time.Second}
}

// Port returns a service's port.
func (e *Env) Port(s Service) int { return e.ports[s] }

// Target is a target for user on service with the user's own password.
func (e *Env) Target(s Service, user string) *serversync.Target {
	return &serversync.Target{
		MailboxID: user, EmailAddress: e.Login(user), Endpoint: e.Endpoint(s),
		Credentials: auth.Credentials{Kind: auth.KindPassword, Username: e.Login(user), Password: auth.NewSecret(Password(user))},
	}
}

// TLSConfig trusts the test CA.
func (e *Env) TLSConfig() *tls.Config {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(e.CAPEM))
	return &tls.Config{RootCAs: pool, ServerName: e.Host}
}

// IMAPClient is a plain go-imap client logged in as user, to set up and check
// mailboxes independently of the code under test. It is closed when t ends.
func (e *Env) IMAPClient(t testing.TB, user string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialTLS(fmt.Sprintf("%s:%d", e.Host, e.ports[IMAPS]), &imapclient.Options{TLSConfig: e.TLSConfig()})
	if err != nil {
		t.Fatalf("dial Dovecot: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Login(e.Login(user), Password(user)).Wait(); err != nil {
		t.Fatalf("log in as %s: %v", user, err)
	}
	return c
}

// Empty removes every message of user's INBOX and deletes the given folders.
func Empty(t testing.TB, c *imapclient.Client, folders ...string) {
	t.Helper()
	for _, f := range folders {
		_ = c.Delete(f).Wait() // absent is fine
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("select INBOX: %v", err)
	}
	all := imap.SeqSet{}
	all.AddRange(1, 0)
	_ = c.Store(all, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close()
	if err := c.Expunge().Close(); err != nil {
		t.Fatalf("expunge: %v", err)
	}
	_ = c.Unselect().Wait()
}

// Append stores raw in folder through c.
func Append(t testing.TB, c *imapclient.Client, folder string, raw []byte) {
	t.Helper()
	if err := AppendMessage(c, folder, raw); err != nil {
		t.Fatalf("append: %v", err)
	}
}

// AppendMessage is Append for a goroutine other than the test's: it returns its error.
func AppendMessage(c *imapclient.Client, folder string, raw []byte) error {
	cmd := c.Append(folder, int64(len(raw)), nil)
	if _, err := cmd.Write(raw); err != nil {
		return err
	}
	if err := cmd.Close(); err != nil {
		return err
	}
	_, err := cmd.Wait()
	return err
}
