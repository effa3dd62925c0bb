package auth

import (
	"bufio"
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

	t.Run("right password", func(t *testing.T) {
		creds := Credentials{Kind: KindPassword, Username: `EXAMPLE\krb-ntlm`, Password: NewSecret("ntlm-secret"), Protocol: ProtocolNTLM}
		resp, body, err := get(t, HTTPTransport(creds, nil), url, "<soap/>")
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, resp.StatusCode, body)
		assert.Equal(t, `EXAMPLE\krb-ntlm <soap/>`, body)
	})
	t.Run("wrong password", func(t *testing.T) {
		creds := Credentials{Kind: KindPassword, Username: `EXAMPLE\krb-ntlm`, Password: NewSecret("not-it"), Protocol: ProtocolNTLM}
		resp, body, err := get(t, HTTPTransport(creds, nil), url, "")
		require.NoError(t, err)
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		assert.Contains(t, body, "refused", "gss-ntlmssp checked the response and refused it")
	})
	t.Run("Auto picks NTLM when the server offers only it", func(t *testing.T) {
		creds := Credentials{Kind: KindPassword, Username: `EXAMPLE\krb-ntlm`, Password: NewSecret("ntlm-secret")}
		resp, body, err := get(t, HTTPTransport(creds, nil), url, "auto")
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
