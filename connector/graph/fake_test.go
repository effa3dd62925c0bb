package graph_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/graph"
	"github.com/serversync/serversync/connector/graph/graphtest"
)

const (
	alice  = "alice@contoso.test"
	tenant = "tenant-1"
)

// jwt makes a token shaped like Entra ID's (unsigned: the fake knows it by
// its text) carrying claims, so Probe can read its permissions.
func jwt(claims string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." + enc([]byte(claims)) + ".c2lnbmF0dXJl"
}

var appToken = jwt(`{"roles":["Mail.ReadWrite","Mail.Send"],"tid":"tenant-1","appid":"app-1"}`)

// env is a fake Graph server with alice's mailbox and an app-only token for it.
type env struct {
	srv    *graphtest.Server
	target *serversync.Target
}

func newEnv(t *testing.T, opts *graphtest.Options) *env {
	t.Helper()
	srv, err := graphtest.NewServer(opts)
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	srv.AddMailbox(alice, tenant)
	srv.AddToken(appToken, graphtest.Principal{AppOnly: true, TenantID: tenant, Permissions: []string{"Mail.ReadWrite", "Mail.Send"}})
	return &env{srv: srv, target: fakeTarget(srv, alice, appToken)}
}

func fakeTarget(srv *graphtest.Server, address, token string) *serversync.Target {
	u, err := url.Parse(srv.URL())
	if err != nil {
		panic(err)
	}
	port, _ := strconv.Atoi(u.Port())
	return &serversync.Target{
		ProfileID: "p-1", MailboxID: "mb-" + address, EmailAddress: address,
		// Host and Port as serversync.ResolveTarget sets them beside URL.
		Endpoint: serversync.Endpoint{URL: srv.URL(), Host: u.Hostname(), Port: port, TLS: serversync.TLSImplicit,
			RootCAsPEM: srv.RootCAsPEM(), Timeout: 10 * time.Second},
		Credentials: auth.Credentials{Kind: auth.KindAppOnly, Username: address,
			TokenSource: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: token})},
	}
}

// message is a small test message numbered n.
func message(n int) []byte {
	return fmt.Appendf(nil, "From: Bob <bob@example.test>\r\nTo: Alice <%s>\r\nSubject: message %d\r\nMessage-ID: <m%d@example.test>\r\n\r\nbody of message %d\r\n%s\r\n",
		alice, n, n, n, strings.Repeat("x", n*37))
}

// deliver puts messages first..last into alice's inbox, a second apart.
func (e *env) deliver(t *testing.T, first, last int) []string {
	t.Helper()
	var ids []string
	base := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	for n := first; n <= last; n++ {
		id, err := e.srv.Deliver(alice, "inbox", message(n), base.Add(time.Duration(n)*time.Second))
		require.NoError(t, err)
		ids = append(ids, id)
	}
	return ids
}

// got is one message handed over by Fetch.
type got struct {
	ref, folder, body string
	received          time.Time
	cursor            []byte
}

// fetch runs one Fetch with a new session; stopAfter > 0 makes the callback
// fail after that many messages.
func fetch(t *testing.T, c *graph.Connector, target *serversync.Target, req serversync.FetchRequest, stopAfter int) ([]got, serversync.FetchResult, error) {
	t.Helper()
	s, err := c.OpenIncoming(context.Background(), target)
	require.NoError(t, err)
	defer s.Close()
	var out []got
	res, err := s.Fetch(context.Background(), req, func(m *serversync.RemoteMessage) error {
		if stopAfter > 0 && len(out) == stopAfter {
			return errStop
		}
		b, err := io.ReadAll(m.Body)
		if err != nil {
			return err
		}
		out = append(out, got{ref: m.Ref, folder: m.Folder, body: string(b), received: m.ReceivedAt, cursor: m.Cursor})
		return nil
	})
	return out, res, err
}

var errStop = fmt.Errorf("host stops here")

func subjects(list []got) []int {
	var out []int
	for _, g := range list {
		var n int
		if _, err := fmt.Sscanf(g.body[strings.Index(g.body, "Subject: ")+len("Subject: "):], "message %d", &n); err == nil {
			out = append(out, n)
		}
	}
	return out
}

func seq(first, last int) []int {
	var out []int
	for n := first; n <= last; n++ {
		out = append(out, n)
	}
	return out
}
