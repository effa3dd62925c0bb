package graphtest_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/serversync/serversync/connector/graph/graphtest"
	"github.com/stretchr/testify/require"
)

const (
	alice  = "alice@contoso.test"
	bob    = "bob@contoso.test"
	tenant = "tenant-contoso"
	token  = "app-token"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// env is a fake with two mailboxes of one tenant and an app token for them.
type env struct {
	t      *testing.T
	srv    *graphtest.Server
	client *http.Client
}

func newEnv(t *testing.T, opts *graphtest.Options) *env {
	t.Helper()
	srv, err := graphtest.NewServer(opts)
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	srv.AddMailbox(alice, tenant)
	srv.AddMailbox(bob, tenant)
	srv.AddToken(token, graphtest.Principal{AppOnly: true, TenantID: tenant, Permissions: []string{"Mail.ReadWrite", "Mail.Send"}})
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM([]byte(srv.RootCAsPEM())))
	transport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, MaxConnsPerHost: 0}
	t.Cleanup(transport.CloseIdleConnections)
	return &env{t: t, srv: srv, client: &http.Client{Transport: transport}}
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) json(t *testing.T) map[string]any {
	t.Helper()
	var v map[string]any
	require.NoError(t, json.Unmarshal(r.body, &v), "body %s", r.body)
	return v
}

func (r reply) errorCode(t *testing.T) string {
	t.Helper()
	e, _ := r.json(t)["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

// req is a request with the app token and immutable ids unless headers say
// otherwise ("Authorization": "" drops the token).
func (e *env) req(method, target string, headers map[string]string, body string) reply {
	e.t.Helper()
	if !strings.HasPrefix(target, "https://") {
		target = e.srv.URL() + "/v1.0" + target
	}
	r, err := http.NewRequest(method, target, strings.NewReader(body))
	require.NoError(e.t, err)
	r.Header.Set("Authorization", "Bearer "+token)
	r.Header.Set("Prefer", `IdType="ImmutableId"`)
	for k, v := range headers {
		if v == "" {
			r.Header.Del(k)
		} else {
			r.Header.Set(k, v)
		}
	}
	resp, err := e.client.Do(r)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

func (e *env) get(target string) reply { e.t.Helper(); return e.req("GET", target, nil, "") }

func user(address string) string { return "/users/" + url.PathEscape(address) }

func mimeOf(subject, msgID string) []byte {
	return []byte(fmt.Sprintf("From: Carol <carol@fabrikam.test>\r\nTo: alice@contoso.test\r\nSubject: %s\r\nMessage-ID: <%s>\r\n\r\nBody of %s.\r\n", subject, msgID, subject))
}

func (e *env) deliver(address, folder, subject string, received time.Time) string {
	e.t.Helper()
	id, err := e.srv.Deliver(address, folder, mimeOf(subject, subject+"@fabrikam.test"), received)
	require.NoError(e.t, err)
	return id
}

// deltaPage is one page of a delta response.
type deltaPage struct {
	items     []map[string]any
	nextLink  string
	deltaLink string
}

func (e *env) delta(target string, headers map[string]string) (deltaPage, reply) {
	e.t.Helper()
	r := e.req("GET", target, headers, "")
	if r.status != http.StatusOK {
		return deltaPage{}, r
	}
	var v struct {
		Value     []map[string]any `json:"value"`
		NextLink  string           `json:"@odata.nextLink"`
		DeltaLink string           `json:"@odata.deltaLink"`
	}
	require.NoError(e.t, json.Unmarshal(r.body, &v))
	require.True(e.t, (v.NextLink == "") != (v.DeltaLink == ""), "exactly one link: %s", r.body)
	return deltaPage{items: v.Value, nextLink: v.NextLink, deltaLink: v.DeltaLink}, r
}

// drain follows nextLinks to the deltaLink and returns every item.
func (e *env) drain(target string, headers map[string]string) ([]map[string]any, string, int) {
	e.t.Helper()
	var all []map[string]any
	pages := 0
	for {
		p, r := e.delta(target, headers)
		require.Equal(e.t, http.StatusOK, r.status, "%s", r.body)
		pages++
		all = append(all, p.items...)
		if p.deltaLink != "" {
			return all, p.deltaLink, pages
		}
		target = p.nextLink
	}
}

func subjects(items []map[string]any) []string {
	var out []string
	for _, it := range items {
		if _, removed := it["@removed"]; removed {
			out = append(out, "removed:"+it["id"].(string))
			continue
		}
		out = append(out, it["subject"].(string))
	}
	return out
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
