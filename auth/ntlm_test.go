package auth

import (
	"bufio"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ntlmServer starts testdata/ntlm_server.py: NTLM checked by gss-ntlmssp through
// python3-gssapi (Debian packages scripts/kdc installs), for users of a file in the
// NTLM_USER_FILE format. It returns the server's URL.
func ntlmServer(t *testing.T, users string) string {
	t.Helper()
	userFile := filepath.Join(t.TempDir(), "ntlm-users")
	require.NoError(t, os.WriteFile(userFile, []byte(users), 0o600))
	cmd := exec.Command("/usr/bin/python3", "testdata/ntlm_server.py")
	cmd.Env = append(os.Environ(), "NTLM_USER_FILE="+userFile)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		stdin.Close() // the server stops when its stdin closes
		_ = cmd.Wait()
	})
	port, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err, "the NTLM server did not start")
	return "http://127.0.0.1:" + strings.TrimSpace(port) + "/"
}

func TestNTLMAgainstGSSNTLMSSP(t *testing.T) {
	t.Parallel()
	realKDC(t) // scripts/kdc installs gss-ntlmssp and python3-gssapi with the KDC
	url := ntlmServer(t, "EXAMPLE:krb-ntlm:ntlm-secret\n")
	// A transport of the test's own: NTLM authenticates the connection, and every
	// httptest.Server that closes, in any parallel test, closes the idle connections
	// of http.DefaultTransport, a handshake's between two of its legs included (the
	// authenticate message then went over a new connection and was refused).
	base := &http.Transport{}
	t.Cleanup(base.CloseIdleConnections)

	t.Run("right password", func(t *testing.T) {
		creds := Credentials{Kind: KindPassword, Username: `EXAMPLE\krb-ntlm`, Password: NewSecret("ntlm-secret"), Protocol: ProtocolNTLM}
		resp, body, err := get(t, HTTPTransport(creds, base), url, "<soap/>")
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, resp.StatusCode, body)
		assert.Equal(t, `EXAMPLE\krb-ntlm <soap/>`, body)
	})
	t.Run("wrong password", func(t *testing.T) {
		creds := Credentials{Kind: KindPassword, Username: `EXAMPLE\krb-ntlm`, Password: NewSecret("not-it"), Protocol: ProtocolNTLM}
		resp, body, err := get(t, HTTPTransport(creds, base), url, "")
		require.NoError(t, err)
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		assert.Contains(t, body, "refused", "gss-ntlmssp checked the response and refused it")
	})
	t.Run("Auto picks NTLM when the server offers only it", func(t *testing.T) {
		creds := Credentials{Kind: KindPassword, Username: `EXAMPLE\krb-ntlm`, Password: NewSecret("ntlm-secret")}
		resp, body, err := get(t, HTTPTransport(creds, base), url, "auto")
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, resp.StatusCode, body)
		assert.Equal(t, `EXAMPLE\krb-ntlm auto`, body)
	})
}

// TestNTLMNeverSendsThePassword: a server that asks for Basic gets nothing from
// NTLM credentials, nor from Auto ones over plain http: the password would travel
// as it is.
func TestNTLMNeverSendsThePassword(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		w.Header().Set("WWW-Authenticate", `Basic realm="mail"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer srv.Close()
	for _, protocol := range []Protocol{ProtocolNTLM, ProtocolAuto} {
		creds := Credentials{Kind: KindPassword, Username: `EXAMPLE\someone`, Password: NewSecret("pw-secret"), Protocol: protocol}
		resp, _, err := get(t, HTTPTransport(creds, nil), srv.URL, "")
		if protocol == ProtocolAuto {
			require.ErrorIs(t, err, ErrBasicWithoutTLS)
			continue
		}
		require.NoError(t, err)
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, h := range seen {
		assert.Empty(t, h, "no credentials of any kind went to a Basic-only server")
	}
}

// NTLM authenticates a connection, not a request: the authenticate message must
// go over the connection that carried the challenge, or the server has no
// handshake to finish. A server that refuses any other connection sees every one of
// many handshakes finish, over one transport as the connectors share them.
func TestNTLMHandshakeKeepsItsConnection(t *testing.T) {
	t.Parallel()
	challenge := make([]byte, 52) // MS-NLMP 2.2.1.2, target info holding only MsvAvEOL
	copy(challenge, "NTLMSSP\x00")
	challenge[8] = 2                    // MessageType
	challenge[20] = 0x01                // NegotiateFlags: UNICODE
	challenge[21] = 0x02                // NegotiateFlags: NTLM
	challenge[40], challenge[42] = 4, 4 // TargetInfo: Len, MaxLen
	challenge[44] = 48                  // TargetInfo: Offset
	var mu sync.Mutex
	challenged := map[string]bool{} // remote addresses a challenge went to
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		raw, _ := base64.StdEncoding.DecodeString(token)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case len(raw) > 8 && raw[8] == 1: // negotiate
			challenged[r.RemoteAddr] = true
			w.Header().Set("WWW-Authenticate", "NTLM "+base64.StdEncoding.EncodeToString(challenge))
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, "a challenge body the client must read before it goes on")
		case len(raw) > 8 && raw[8] == 3 && challenged[r.RemoteAddr]: // authenticate, same connection
			delete(challenged, r.RemoteAddr)
			_, _ = io.WriteString(w, "ok")
		case len(raw) > 8 && raw[8] == 3:
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, "authenticate message on another connection")
		default:
			w.Header().Set("WWW-Authenticate", "NTLM")
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	defer srv.Close()
	base := &http.Transport{}
	defer base.CloseIdleConnections()
	creds := Credentials{Kind: KindPassword, Username: `EXAMPLE\someone`, Password: NewSecret("pw-secret"), Protocol: ProtocolNTLM}
	rt := HTTPTransport(creds, base)
	for i := range 300 {
		resp, body, err := get(t, rt, srv.URL, "")
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, "handshake %d: %s", i, body)
	}
}
