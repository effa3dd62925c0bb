package auth

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jcmturner/goidentity/v6"
	"github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/jcmturner/gokrb5/v8/service"
	"github.com/jcmturner/gokrb5/v8/spnego"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// kdcEnv is the real MIT KDC of scripts/kdc, read from its env file's variables.
type kdcEnv struct {
	conf, realm               string
	httpKeytab                string
	serviceAccount, svcKeytab string
	state                     string
}

func realKDC(t *testing.T) kdcEnv {
	t.Helper()
	conf := os.Getenv("SERVERSYNC_KRB5_CONF")
	if conf == "" {
		t.Skip("SERVERSYNC_KRB5_CONF not set: run scripts/kdc start and source its env file to test against a real KDC")
	}
	return kdcEnv{
		conf:           conf,
		realm:          os.Getenv("SERVERSYNC_KRB5_REALM"),
		httpKeytab:     os.Getenv("SERVERSYNC_KRB5_HTTP_KEYTAB"),
		serviceAccount: os.Getenv("SERVERSYNC_KRB5_SERVICE_ACCOUNT"),
		svcKeytab:      os.Getenv("SERVERSYNC_KRB5_SERVICE_KEYTAB"),
		state:          os.Getenv("SERVERSYNC_KRB5_STATE"),
	}
}

// spnegoServer is an HTTP front that validates SPNEGO tokens with gokrb5's service
// side and the HTTP/ keytab the real KDC wrote; it answers with the client's
// principal, and 401 "WWW-Authenticate: Negotiate" to anyone else.
func spnegoServer(t *testing.T, env kdcEnv) *httptest.Server {
	t.Helper()
	return spnegoServerWith(t, env.httpKeytab)
}

func spnegoServerWith(t *testing.T, keytabPath string) *httptest.Server {
	t.Helper()
	kt, err := keytab.Load(keytabPath)
	require.NoError(t, err)
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := goidentity.FromHTTPRequestContext(r)
		if id == nil {
			http.Error(w, "no identity", http.StatusInternalServerError)
			return
		}
		body, _ := io.ReadAll(r.Body)
		_, _ = io.WriteString(w, id.UserName()+"@"+id.Domain()+" "+string(body))
	})
	srv := httptest.NewServer(spnego.SPNEGOKRB5Authenticate(inner, kt, service.DecodePAC(false)))
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, rt http.RoundTripper, url, body string) (*http.Response, string, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b), nil
}

func TestNegotiateHTTPAgainstRealKDC(t *testing.T) {
	t.Parallel()
	env := realKDC(t)
	srv := spnegoServer(t, env)
	krb := &KerberosConfig{Krb5Conf: env.conf}

	t.Run("user and password", func(t *testing.T) {
		creds := Credentials{Kind: KindPassword, Username: "krb-http@example.test", Password: NewSecret("krb-http-krbpass"),
			Protocol: ProtocolNegotiate, Kerberos: krb}
		rt := HTTPTransport(creds, nil)
		for range 2 { // the second request reuses the service ticket
			resp, body, err := get(t, rt, srv.URL, "<soap/>")
			require.NoError(t, err)
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Equal(t, "krb-http@"+env.realm+" <soap/>", body)
		}
	})

	t.Run("wrong password is refused by the KDC", func(t *testing.T) {
		creds := Credentials{Kind: KindPassword, Username: "krb-http@example.test", Password: NewSecret("not-the-password"),
			Protocol: ProtocolNegotiate, Kerberos: krb}
		_, _, err := get(t, HTTPTransport(creds, nil), srv.URL, "")
		var kerr *KerberosError
		require.ErrorAs(t, err, &kerr)
		assert.True(t, kerr.Refused, "a wrong password is the KDC's refusal, not a network error: %v", err)
		assert.NotContains(t, err.Error(), "not-the-password")
	})

	t.Run("Windows-integrated from the service account's keytab", func(t *testing.T) {
		creds := Credentials{Kind: KindIntegrated, Kerberos: &KerberosConfig{Krb5Conf: env.conf, Keytab: env.svcKeytab}}
		resp, body, err := get(t, HTTPTransport(creds, nil), srv.URL, "x")
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, env.serviceAccount+"@"+env.realm+" x", body)
	})

	t.Run("absent ticket cache: the keytab logs in again", func(t *testing.T) {
		creds := Credentials{Kind: KindIntegrated, Kerberos: &KerberosConfig{Krb5Conf: env.conf, Keytab: env.svcKeytab,
			CCache: filepath.Join(t.TempDir(), "no-such-ccache")}}
		resp, _, err := get(t, HTTPTransport(creds, nil), srv.URL, "")
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, resp.StatusCode)
	})

	t.Run("ticket cache filled by MIT kinit", func(t *testing.T) {
		_, err := exec.LookPath("kinit")
		require.NoError(t, err, "scripts/kdc install puts MIT's kinit (krb5-user) in place")
		ccache := filepath.Join(t.TempDir(), "ccache")
		cmd := exec.Command("kinit", "-k", "-t", env.svcKeytab, env.serviceAccount+"@"+env.realm)
		cmd.Env = append(os.Environ(), "KRB5_CONFIG="+env.conf, "KRB5CCNAME=FILE:"+ccache)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		creds := Credentials{Kind: KindIntegrated, Kerberos: &KerberosConfig{Krb5Conf: env.conf, CCache: ccache}}
		resp, body, err := get(t, HTTPTransport(creds, nil), srv.URL, "")
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.True(t, strings.HasPrefix(body, env.serviceAccount+"@"), body)
	})

	t.Run("expiring ticket in the cache: the keytab logs in again", func(t *testing.T) {
		_, err := exec.LookPath("kinit")
		require.NoError(t, err, "scripts/kdc install puts MIT's kinit (krb5-user) in place")
		// krb-auth's ticket, valid for 30 seconds: too close to its end to be used.
		// The keytab is the service account's, so the server names who logged in.
		ccache := filepath.Join(t.TempDir(), "ccache")
		cmd := exec.Command("kinit", "-l", "30s", "krb-auth@"+env.realm)
		cmd.Env = append(os.Environ(), "KRB5_CONFIG="+env.conf, "KRB5CCNAME=FILE:"+ccache)
		cmd.Stdin = strings.NewReader("krb-auth-krbpass\n")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		creds := Credentials{Kind: KindIntegrated, Kerberos: &KerberosConfig{Krb5Conf: env.conf, CCache: ccache, Keytab: env.svcKeytab}}
		resp, body, err := get(t, HTTPTransport(creds, nil), srv.URL, "")
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.True(t, strings.HasPrefix(body, env.serviceAccount+"@"), "the keytab, not the expiring ticket: %s", body)

		// The same cache with a ticket good for hours is used as it is.
		cmd = exec.Command("kinit", "krb-auth@"+env.realm)
		cmd.Env = append(os.Environ(), "KRB5_CONFIG="+env.conf, "KRB5CCNAME=FILE:"+ccache)
		cmd.Stdin = strings.NewReader("krb-auth-krbpass\n")
		out, err = cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		resp, body, err = get(t, HTTPTransport(creds, nil), srv.URL, "")
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.True(t, strings.HasPrefix(body, "krb-auth@"), "the cached ticket: %s", body)
	})

	t.Run("no identity at all", func(t *testing.T) {
		k := &KerberosConfig{Krb5Conf: env.conf, Keytab: filepath.Join(t.TempDir(), "none"), CCache: filepath.Join(t.TempDir(), "none")}
		require.ErrorIs(t, k.CheckIdentity(), ErrNoKerberosIdentity)
		_, _, err := get(t, HTTPTransport(Credentials{Kind: KindIntegrated, Kerberos: k}, nil), srv.URL, "")
		require.Error(t, err)
	})

	t.Run("a server without the service's key refuses the ticket", func(t *testing.T) {
		// The mail keytab holds imap/ and smtp/ keys but not HTTP/: this server
		// cannot decrypt the ticket, as an impostor could not.
		impostor := spnegoServerWith(t, os.Getenv("SERVERSYNC_KRB5_MAIL_KEYTAB"))
		creds := Credentials{Kind: KindPassword, Username: "krb-http", Password: NewSecret("krb-http-krbpass"),
			Protocol: ProtocolNegotiate, Kerberos: krb}
		resp, _, err := get(t, HTTPTransport(creds, nil), impostor.URL, "")
		require.NoError(t, err)
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	})

	t.Run("Auto picks Negotiate when offered and Kerberos is configured", func(t *testing.T) {
		creds := Credentials{Kind: KindPassword, Username: "krb-http", Password: NewSecret("krb-http-krbpass"), Kerberos: krb}
		resp, body, err := get(t, HTTPTransport(creds, nil), srv.URL, "auto")
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "krb-http@"+env.realm+" auto", body)
	})

	t.Run("Basic never tries Kerberos", func(t *testing.T) {
		creds := Credentials{Kind: KindPassword, Username: "krb-http", Password: NewSecret("krb-http-krbpass"),
			Protocol: ProtocolBasic, Kerberos: krb}
		_, _, err := get(t, HTTPTransport(creds, nil), srv.URL, "")
		require.ErrorIs(t, err, ErrBasicWithoutTLS, "Basic over plain http is refused before anything is sent")
	})
}

func TestKerberosErrorsKeepSecretsOut(t *testing.T) {
	t.Parallel()
	env := realKDC(t)
	creds := Credentials{Kind: KindPassword, Username: "nobody-here@example.test", Password: NewSecret("pw-123"),
		Kerberos: &KerberosConfig{Krb5Conf: env.conf}}
	_, err := creds.kerberosClient(context.Background())
	var kerr *KerberosError
	require.True(t, errors.As(err, &kerr), "%v", err)
	assert.True(t, kerr.Refused)
	assert.NotContains(t, err.Error(), "pw-123")
}

func TestSplitPrincipal(t *testing.T) {
	t.Parallel()
	cfg, err := config.NewFromString("[libdefaults]\n default_realm = CORP.EXAMPLE\n[domain_realm]\n .mail.example = CORP.EXAMPLE\n")
	require.NoError(t, err)
	for _, tc := range []struct{ login, name, realm string }{
		{"alice", "alice", "CORP.EXAMPLE"},
		{"alice@mail.example", "alice", "CORP.EXAMPLE"},   // the krb5.conf maps the mail domain
		{"alice@other.example", "alice", "OTHER.EXAMPLE"}, // an Active Directory UPN suffix
		{`CORP\alice`, "alice", "CORP.EXAMPLE"},           // down-level logon name, NetBIOS domain
		{`OTHER\alice`, "alice", "OTHER"},
		{"alice@CORP.EXAMPLE", "alice", "CORP.EXAMPLE"},
	} {
		name, realm := splitPrincipal(tc.login, cfg)
		assert.Equal(t, tc.name, name, tc.login)
		assert.Equal(t, tc.realm, realm, tc.login)
	}
}

func TestOfferedSchemes(t *testing.T) {
	t.Parallel()
	h := http.Header{}
	h.Add("WWW-Authenticate", "Negotiate")
	h.Add("WWW-Authenticate", `NTLM, Basic realm="mail", charset="UTF-8"`)
	assert.Equal(t, map[string]bool{"negotiate": true, "ntlm": true, "basic": true}, offeredSchemes(h))
}
