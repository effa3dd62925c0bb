package monitor_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/standard"
	"github.com/serversync/serversync/internal/demoserver"
	"github.com/serversync/serversync/monitor"
	"github.com/serversync/serversync/store/memory"
)

// The secrets the fixtures hold: no page may ever show one.
var secrets = []string{
	"profile-password-S3CRET", "client-secret-S3CRET", "-----BEGIN PRIVATE KEY-----", "private-key-S3CRET",
	"alice-password-S3CRET", "access-token-S3CRET", "refresh-token-S3CRET",
}

const prefix = "/ops/mail"

// env is a demo mail server, a memory store with a profile and a mailbox (every
// secret field set), a Syncer not yet running, and the monitor on an httptest server.
type env struct {
	demo     *demoserver.Server
	store    serversync.Store
	admin    *serversync.Admin
	syncer   *serversync.Syncer
	recorder *monitor.Recorder
	profile  *serversync.Profile
	mailbox  *serversync.Mailbox
	server   *httptest.Server
	handler  *monitor.Handler

	mu     sync.Mutex
	events []serversync.Event
}

func newEnv(t *testing.T, opts monitor.Options, configure func(*serversync.Mailbox)) *env {
	t.Helper()
	ctx := context.Background()
	const alice = "alice@contoso.test"
	demo, err := demoserver.Start(map[string]string{alice: "alice-password-S3CRET"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = demo.Close() })
	e := &env{demo: demo, store: memory.New(), recorder: monitor.NewRecorder()}
	quiet := slog.New(slog.DiscardHandler)
	e.admin = serversync.NewAdmin(e.store, &serversync.AdminConfig{
		CanApprove: func(context.Context, string, *serversync.Mailbox) error { return nil }, Logger: quiet,
	})
	e.profile, err = e.admin.CreateProfile(ctx, &serversync.Profile{
		Name: "Contoso mail", Owner: "admin-user", ServerType: serversync.ServerTypeIMAPSMTP,
		IncomingServer: demo.Host, IncomingPort: demo.IMAPPort,
		OutgoingServer: demo.Host, OutgoingPort: demo.SMTPPort, OutgoingTLS: serversync.TLSImplicit,
		ExtraRootCAsPEM: demo.CAPEM, ConnectionTimeout: 10 * time.Second,
		Password: auth.NewSecret("profile-password-S3CRET"), ClientSecret: auth.NewSecret("client-secret-S3CRET"),
		CertificatePEM: certificatePEM(t, time.Now().Add(10*24*time.Hour)),
		CertificateKey: auth.NewSecret("-----BEGIN PRIVATE KEY-----\nprivate-key-S3CRET\n-----END PRIVATE KEY-----"),
	})
	require.NoError(t, err)
	m := &serversync.Mailbox{
		EmailAddress: alice, Regarding: serversync.Regarding{Type: serversync.RegardingUser, ID: "user-alice"},
		ProfileID: e.profile.ID, Password: auth.NewSecret("alice-password-S3CRET"), IncomingFilter: serversync.FilterAll,
		OAuthToken: serversync.OAuthToken{AccessToken: auth.NewSecret("access-token-S3CRET"),
			RefreshToken: auth.NewSecret("refresh-token-S3CRET"), TokenType: "Bearer"},
	}
	if configure != nil {
		configure(m)
	}
	e.mailbox, err = e.admin.CreateMailbox(ctx, m)
	require.NoError(t, err)
	e.syncer, err = serversync.NewSyncer(e.store, standard.Connectors(&standard.Options{Logger: quiet}), &serversync.Config{
		Logger: quiet, Host: "host-a", Tick: 20 * time.Millisecond, ScanInterval: 50 * time.Millisecond,
		OutboxInterval: 50 * time.Millisecond, IdleConnections: -1,
		OnEvent: func(ev serversync.Event) {
			e.recorder.Record(ev)
			e.mu.Lock()
			e.events = append(e.events, ev)
			e.mu.Unlock()
		},
	})
	require.NoError(t, err)
	opts.Admin = e.admin
	if opts.Syncer == nil {
		opts.Syncer = e.syncer
	}
	opts.Recorder = e.recorder
	opts.Prefix = prefix
	opts.Logger = quiet
	e.handler, err = monitor.New(e.store, opts)
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle(prefix+"/", e.handler)
	e.server = httptest.NewServer(mux)
	t.Cleanup(e.server.Close)
	return e
}

// run starts the Syncer until the test ends.
func (e *env) run(t *testing.T) {
	done := make(chan error, 1)
	go func() { done <- e.syncer.Run(context.Background()) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := e.syncer.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
		if err := <-done; !errors.Is(err, serversync.ErrSyncerStopped) {
			t.Errorf("run: %v", err)
		}
	})
}

func (e *env) url(path string) string { return e.server.URL + prefix + path }

// get fetches a page and returns its status and body.
func (e *env) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(e.url(path))
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// token takes a CSRF token from a page.
func (e *env) token(t *testing.T, path string) string {
	t.Helper()
	_, body := e.get(t, path)
	m := csrfField.FindStringSubmatch(body)
	require.NotNil(t, m, "the page %s has a form with a token", path)
	return m[1]
}

// post submits a form as a browser on the page's origin would, with extra headers.
func (e *env) post(t *testing.T, path string, form url.Values, headers map[string]string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.url(path), strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", e.server.URL)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	for k, v := range headers {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(body)
}

// certificatePEM is a self-signed certificate that expires at notAfter.
func certificatePEM(t *testing.T, notAfter time.Time) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "s2s.contoso.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}
