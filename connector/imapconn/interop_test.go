package imapconn_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/imapconn"
	"github.com/serversync/serversync/internal/mailtest"
)

// This package's own Dovecot users (scripts/mailservers makes them): go test runs
// packages at once, and mail another package delivers must not land in these INBOXes.
const (
	alice = "imap-alice"
	bob   = "imap-bob"
	carol = "imap-carol"
	dave  = "imap-dave"
)

// interop describes the real Dovecot started by scripts/mailservers (its env file
// sets the SERVERSYNC_INTEROP_* variables).
type interop struct {
	env          *mailtest.Env
	host         string
	imapPort     int // STARTTLS
	imapsPort    int // implicit TLS
	caPEM        string
	domain       string
	sharedPrefix string
}

func interopEnv(t testing.TB) *interop {
	t.Helper()
	e := mailtest.Load(t)
	return &interop{
		env: e, host: e.Host, imapPort: e.Port(mailtest.IMAP), imapsPort: e.Port(mailtest.IMAPS),
		caPEM: e.CAPEM, domain: e.Domain, sharedPrefix: e.SharedPrefix,
	}
}

// login is the Dovecot user name of a test user.
func (e *interop) login(user string) string { return user + "@" + e.domain }

func (e *interop) target(user string, mode serversync.TLSMode) *serversync.Target {
	port := e.imapsPort
	if mode == serversync.TLSStartTLS {
		port = e.imapPort
	}
	return &serversync.Target{
		MailboxID:    user,
		EmailAddress: e.login(user),
		Endpoint: serversync.Endpoint{
			Host: e.host, Port: port, TLS: mode, RootCAsPEM: e.caPEM, Timeout: 20 * time.Second,
		},
		Credentials: auth.Credentials{Kind: auth.KindPassword, Username: e.login(user), Password: auth.NewSecret(user + "-pass")},
	}
}

func (e *interop) open(t testing.TB, target *serversync.Target, opts *imapconn.Options) imapSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sess, err := imapconn.New(opts).OpenIncoming(ctx, target)
	require.NoError(t, err)
	t.Cleanup(func() { _ = sess.Close() })
	return sess.(imapSession)
}

// client is a plain go-imap client logged in as user, to set up and check.
func (e *interop) client(t testing.TB, user string) *imapclient.Client {
	t.Helper()
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM([]byte(e.caPEM)))
	c, err := imapclient.DialTLS(fmt.Sprintf("%s:%d", e.host, e.imapsPort), &imapclient.Options{
		TLSConfig: &tls.Config{RootCAs: pool, ServerName: e.host},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	require.NoError(t, c.Login(e.login(user), user+"-pass").Wait())
	return c
}

// tempFolder creates a uniquely named folder for one test and deletes it after.
func (e *interop) tempFolder(t testing.TB, c *imapclient.Client) string {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "t-" + hex.EncodeToString(b[:])
	require.NoError(t, c.Create(name, nil).Wait())
	t.Cleanup(func() { _ = c.Delete(name).Wait() })
	return name
}

// cursorNow fetches everything already in the folder and returns the cursor after it.
func cursorNow(t *testing.T, sess serversync.IncomingSession, folder string) []byte {
	t.Helper()
	res, err := sess.Fetch(context.Background(), serversync.FetchRequest{Folder: folder}, func(*serversync.RemoteMessage) error { return nil })
	require.NoError(t, err)
	return res.Cursor
}

func TestInteropTLSModesAppendFetch(t *testing.T) {
	e := interopEnv(t)
	for _, mode := range []serversync.TLSMode{serversync.TLSImplicit, serversync.TLSStartTLS} {
		t.Run(string(mode), func(t *testing.T) {
			folder := e.tempFolder(t, e.client(t, alice))
			sess := e.open(t, e.target(alice, mode), nil)
			var bodies [][]byte
			received := time.Date(2025, 5, 6, 7, 8, 9, 0, time.UTC)
			for i := range 3 {
				bodies = append(bodies, testMessage(i, 2000+i*20_000))
				require.NoError(t, sess.Append(context.Background(), folder, received, bytes.NewReader(bodies[i]), int64(len(bodies[i]))))
			}
			got, res := fetchAll(t, sess, serversync.FetchRequest{Folder: folder})
			require.Len(t, got, 3)
			for i := range got {
				assert.Equal(t, bodies[i], got[i].body)
				assert.Equal(t, int64(len(bodies[i])), got[i].msg.Size)
				assert.True(t, got[i].msg.ReceivedAt.Equal(received), "INTERNALDATE %v", got[i].msg.ReceivedAt)
			}

			// Dovecot has CONDSTORE: the cursor carries HIGHESTMODSEQ, and a
			// no-change poll gives the same cursor without offering anything.
			var c struct {
				ModSeq uint64 `json:"modseq"`
			}
			require.NoError(t, json.Unmarshal(res.Cursor, &c))
			assert.NotZero(t, c.ModSeq, "cursor %s", res.Cursor)
			again, res2 := fetchAll(t, sess, serversync.FetchRequest{Folder: folder, Cursor: res.Cursor})
			assert.Empty(t, again)
			assert.Equal(t, string(res.Cursor), string(res2.Cursor))

			// A flag change moves HIGHESTMODSEQ but offers nothing new.
			helper := e.client(t, alice)
			_, err := helper.Select(folder, nil).Wait()
			require.NoError(t, err)
			require.NoError(t, helper.Store(imap.SeqSetNum(1), &imap.StoreFlags{
				Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagFlagged},
			}, nil).Close())
			again, res3 := fetchAll(t, sess, serversync.FetchRequest{Folder: folder, Cursor: res2.Cursor})
			assert.Empty(t, again)
			assert.NotEqual(t, string(res2.Cursor), string(res3.Cursor))
		})
	}
}

func TestInteropWrongPassword(t *testing.T) {
	e := interopEnv(t)
	target := e.target(alice, serversync.TLSImplicit)
	target.Credentials.Password = auth.NewSecret("wrong")
	_, err := imapconn.New(nil).OpenIncoming(context.Background(), target)
	ce := requireConnectorError(t, err, serversync.ErrorAuth, serversync.CodeAuthFailed)
	assert.Equal(t, serversync.ScopeMailbox, ce.Scope)
	var imapErr *imap.Error
	require.ErrorAs(t, err, &imapErr)
}

func TestInteropImpersonation(t *testing.T) {
	e := interopEnv(t)
	helper := e.client(t, carol)
	for _, style := range []auth.ImpersonationStyle{auth.ImpersonateMasterUser, auth.ImpersonateAuthzID} {
		t.Run(cmpName(string(style), "AuthzID"), func(t *testing.T) {
			target := e.target(carol, serversync.TLSImplicit)
			target.Credentials = auth.Credentials{
				Kind: auth.KindImpersonation, Username: "master", Password: auth.NewSecret("master-pass"),
				Mailbox: e.login(carol), Impersonation: style,
			}
			sess := e.open(t, target, nil)
			start := cursorNow(t, sess, "")
			body := testMessage(1, 1000)
			appendMessage(t, helper, "INBOX", body, time.Time{})
			got, _ := fetchAll(t, sess, serversync.FetchRequest{Cursor: start})
			require.Len(t, got, 1)
			assert.Equal(t, body, got[0].body)

			target.Credentials.Password = auth.NewSecret("wrong")
			_, err := imapconn.New(nil).OpenIncoming(context.Background(), target)
			ce := requireConnectorError(t, err, serversync.ErrorAuth, serversync.CodeAuthFailed)
			assert.Equal(t, serversync.ScopeProfile, ce.Scope, "a broken service account hits every mailbox")
		})
	}
}

func cmpName(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}

func TestInteropDelegation(t *testing.T) {
	e := interopEnv(t)
	target := e.target(alice, serversync.TLSStartTLS)
	target.Credentials = auth.Credentials{
		Kind: auth.KindDelegation, Username: e.login("svc"), Password: auth.NewSecret("svc-pass"), Mailbox: e.login(alice),
	}
	sess := e.open(t, target, nil)
	start := cursorNow(t, sess, "INBOX")
	body := testMessage(42, 5000)
	appendMessage(t, e.client(t, alice), "INBOX", body, time.Time{})
	got, _ := fetchAll(t, sess, serversync.FetchRequest{Folder: "INBOX", Cursor: start})
	require.Len(t, got, 1)
	assert.Equal(t, body, got[0].body)
	assert.Equal(t, "INBOX", got[0].msg.Folder)
	t.Logf("delegated access through shared prefix %q", e.sharedPrefix)

	// Append and Move use the same mapping: the folder lands in alice's mailbox.
	aliceHelper := e.client(t, alice)
	folder := e.tempFolder(t, aliceHelper)
	require.NoError(t, sess.Append(context.Background(), folder, time.Time{}, bytes.NewReader(body), int64(len(body))))
	assert.Equal(t, uint32(1), countMessages(t, aliceHelper, folder))
	moved, _ := fetchAll(t, sess, serversync.FetchRequest{Folder: folder})
	require.Len(t, moved, 1)
	require.NoError(t, sess.Move(context.Background(), folder, moved[0].msg.Ref, folder+"-moved"))
	t.Cleanup(func() { _ = aliceHelper.Delete(folder + "-moved").Wait() })
	assert.Equal(t, uint32(0), countMessages(t, aliceHelper, folder))
	assert.Equal(t, uint32(1), countMessages(t, aliceHelper, folder+"-moved"))
}

func TestInteropMoveToUndeliverable(t *testing.T) {
	e := interopEnv(t)
	helper := e.client(t, bob)
	_ = helper.Delete("Undeliverable").Wait() // so the move has to create it
	folder := e.tempFolder(t, helper)
	body := testMessage(7, 3000)
	appendMessage(t, helper, folder, body, time.Time{})
	appendMessage(t, helper, folder, testMessage(8, 3000), time.Time{})

	sess := e.open(t, e.target(bob, serversync.TLSImplicit), nil)
	got, _ := fetchAll(t, sess, serversync.FetchRequest{Folder: folder})
	require.Len(t, got, 2)
	require.NoError(t, sess.Move(context.Background(), folder, got[0].msg.Ref, "Undeliverable"))
	require.NoError(t, sess.Delete(context.Background(), folder, got[1].msg.Ref))
	assert.Equal(t, uint32(0), countMessages(t, helper, folder))
	assert.Equal(t, uint32(1), countMessages(t, helper, "Undeliverable"))
	moved, _ := fetchAll(t, sess, serversync.FetchRequest{Folder: "Undeliverable"})
	require.Len(t, moved, 1)
	assert.Equal(t, body, moved[0].body)
}

func TestInteropIdle(t *testing.T) {
	e := interopEnv(t)
	helper := e.client(t, dave)
	folder := e.tempFolder(t, helper)
	sess := e.open(t, e.target(dave, serversync.TLSImplicit), nil)
	cur := cursorNow(t, sess, folder)
	n := 0
	err := waitUntilReturns(t, func() error {
		return sess.(serversync.IdleSession).WaitForChange(context.Background(), folder)
	}, func() {
		n++
		appendMessage(t, helper, folder, testMessage(n, 100), time.Time{})
	})
	require.NoError(t, err)
	got, _ := fetchAll(t, sess, serversync.FetchRequest{Folder: folder, Cursor: cur})
	assert.NotEmpty(t, got)

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = sess.(serversync.IdleSession).WaitForChange(ctx, folder)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 5*time.Second)
	_, err = sess.Fetch(context.Background(), serversync.FetchRequest{Folder: folder, Cursor: cur}, func(*serversync.RemoteMessage) error { return nil })
	require.NoError(t, err, "usable after a canceled wait")
}

func TestInteropUIDValidityChange(t *testing.T) {
	e := interopEnv(t)
	helper := e.client(t, alice)
	folder := e.tempFolder(t, helper)
	appendMessage(t, helper, folder, testMessage(1, 100), time.Time{})
	sess := e.open(t, e.target(alice, serversync.TLSImplicit), nil)
	got, res := fetchAll(t, sess, serversync.FetchRequest{Folder: folder})
	require.Len(t, got, 1)
	// Select another folder so the deletion isn't of the selected one.
	cursorNow(t, sess, "INBOX")
	require.NoError(t, helper.Delete(folder).Wait())
	require.NoError(t, helper.Create(folder, nil).Wait())
	bodies := [][]byte{testMessage(2, 100), testMessage(3, 100)}
	for _, b := range bodies {
		appendMessage(t, helper, folder, b, time.Time{})
	}
	got, res = fetchAll(t, sess, serversync.FetchRequest{Folder: folder, Cursor: res.Cursor})
	assert.True(t, res.Reset)
	require.Len(t, got, 2)
	assert.Equal(t, bodies[0], got[0].body)
	assert.Equal(t, bodies[1], got[1].body)
}

func TestInteropParallelFetch(t *testing.T) {
	e := interopEnv(t)
	helper := e.client(t, alice)
	folder := e.tempFolder(t, helper)
	for i := range 60 {
		appendMessage(t, helper, folder, testMessage(i, 500+i*100), time.Time{})
	}
	seq, _ := fetchAll(t, e.open(t, e.target(alice, serversync.TLSImplicit), &imapconn.Options{FetchBatchSize: 5}), serversync.FetchRequest{Folder: folder})
	par, _ := fetchAll(t, e.open(t, e.target(alice, serversync.TLSImplicit), &imapconn.Options{FetchBatchSize: 5, MaxParallelFetch: 3}), serversync.FetchRequest{Folder: folder})
	require.Len(t, seq, 60)
	require.Len(t, par, 60)
	for i := range seq {
		assert.Equal(t, seq[i].msg.Ref, par[i].msg.Ref)
		assert.Equal(t, seq[i].body, par[i].body)
	}
}

// BenchmarkInteropFetch is BenchmarkFetch against Dovecot over TLS.
func BenchmarkInteropFetch(b *testing.B) {
	e := interopEnv(b)
	const messages, size = 2000, 15_000
	helper := e.client(b, dave)
	folder := e.tempFolder(b, helper)
	body := testMessage(0, size)
	for range messages {
		cmd := helper.Append(folder, int64(len(body)), nil)
		if _, err := cmd.Write(body); err != nil {
			b.Fatal(err)
		}
		if err := cmd.Close(); err != nil {
			b.Fatal(err)
		}
		if _, err := cmd.Wait(); err != nil {
			b.Fatal(err)
		}
	}
	for _, parallel := range []int{1, 4} {
		b.Run(fmt.Sprintf("parallel=%d", parallel), func(b *testing.B) {
			sess := e.open(b, e.target(dave, serversync.TLSImplicit), &imapconn.Options{MaxParallelFetch: parallel})
			var total int64
			start := time.Now()
			for b.Loop() {
				n := 0
				_, err := sess.Fetch(context.Background(), serversync.FetchRequest{Folder: folder}, func(m *serversync.RemoteMessage) error {
					written, err := io.Copy(io.Discard, m.Body)
					total += written
					n++
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
				if n != messages {
					b.Fatalf("fetched %d messages, want %d", n, messages)
				}
			}
			elapsed := time.Since(start).Seconds()
			b.ReportMetric(float64(b.N*messages)/elapsed, "msgs/s")
			b.ReportMetric(float64(total)/1e6/elapsed, "MB/s")
		})
	}
}

func TestInteropSince(t *testing.T) {
	e := interopEnv(t)
	helper := e.client(t, dave)
	folder := e.tempFolder(t, helper)
	since := time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)
	for i, d := range []time.Time{since.AddDate(-1, 0, 0), since.Add(-time.Hour), since.Add(time.Hour), since.AddDate(0, 1, 0)} {
		appendMessage(t, helper, folder, testMessage(i, 100), d)
	}
	sess := e.open(t, e.target(dave, serversync.TLSImplicit), &imapconn.Options{FetchBatchSize: 1})
	got, res := fetchAll(t, sess, serversync.FetchRequest{Folder: folder, Since: since})
	var refs []string
	for _, f := range got {
		refs = append(refs, f.msg.Ref)
	}
	assert.Equal(t, []string{"3", "4"}, refs)
	again, _ := fetchAll(t, sess, serversync.FetchRequest{Folder: folder, Cursor: res.Cursor, Since: since})
	assert.Empty(t, again)
}
