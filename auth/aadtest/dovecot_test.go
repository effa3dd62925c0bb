package aadtest_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/auth/aadtest"
	"github.com/serversync/serversync/internal/testcert"
)

// TestDovecotAcceptsIssuedTokens checks the fake's tokens against a real resource
// server: Dovecot 2.3's oauth2 passdb with local validation, configured as
// DESIGN.md §11 describes (the issuer's key under default/RS256/<kid>,
// username_attribute = domain_principal, username_format = %Ld). It starts a
// Dovecot of its own on a free port; it needs root and the dovecot binary
// (bash scripts/mailservers install) and runs when SERVERSYNC_TEST_DOVECOT_OAUTH2=1.
func TestDovecotAcceptsIssuedTokens(t *testing.T) {
	if os.Getenv("SERVERSYNC_TEST_DOVECOT_OAUTH2") == "" {
		t.Skip("set SERVERSYNC_TEST_DOVECOT_OAUTH2=1 to run against a real Dovecot (needs root and bash scripts/mailservers install)")
	}
	if _, err := exec.LookPath("dovecot"); err != nil || os.Geteuid() != 0 {
		t.Fatal("this test needs root and dovecot on PATH (bash scripts/mailservers install)")
	}
	vmail, err := user.Lookup("vmail")
	if err != nil {
		t.Fatalf("no vmail user (bash scripts/mailservers start creates it): %v", err)
	}
	const tenant, domain = "tenant-1", "contoso.example"
	srv, err := aadtest.NewServer(&aadtest.Options{SigningKey: keys()[2]})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	srv.AddTenant(tenant, domain)
	cc := mustClientCert(t, time.Now().Add(-3*time.Hour))
	srv.RegisterApp(tenant, "app-1", cc.Certificate, "IMAP.AccessAsApp")

	addr := startDovecot(t, srv, vmail, tenant)
	login := func(mailbox, token string) error {
		c, err := imapclient.DialInsecure(addr, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Authenticate(auth.NewXoauth2Client(mailbox, token)); err != nil {
			return err
		}
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			t.Errorf("SELECT after login: %v", err)
		}
		return c.Logout().Wait()
	}
	token := appToken(t, srv, cc, tenant, time.Now)
	if err := login("alice@"+domain, token); err != nil {
		t.Fatalf("a valid token is refused: %v", err)
	}
	if err := login("bob@"+strings.ToUpper(domain), token); err != nil {
		t.Errorf("the same token for another mailbox of the tenant: %v", err)
	}
	if err := login("alice@fabrikam.example", token); err == nil {
		t.Error("a token of contoso.example opens a mailbox of fabrikam.example")
	}
	parts := strings.Split(token, ".")
	tampered := parts[0] + "." + parts[1] + "." + strings.ToUpper(parts[2][:8]) + parts[2][8:]
	if err := login("alice@"+domain, tampered); err == nil {
		t.Error("a tampered token is accepted")
	}
	twoHoursAgo := func() time.Time { return time.Now().Add(-2 * time.Hour) }
	past, err := aadtest.NewServer(&aadtest.Options{SigningKey: keys()[2], KeyID: srv.KeyID(), Now: twoHoursAgo})
	if err != nil {
		t.Fatal(err)
	}
	defer past.Close()
	past.AddTenant(tenant, domain)
	past.RegisterApp(tenant, "app-1", cc.Certificate)
	if err := login("alice@"+domain, appToken(t, past, cc, tenant, twoHoursAgo)); err == nil {
		t.Error("an expired token is accepted")
	}
	other, err := aadtest.NewServer(&aadtest.Options{SigningKey: keys()[1], KeyID: srv.KeyID()})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	other.AddTenant(tenant, domain)
	other.RegisterApp(tenant, "app-1", cc.Certificate)
	if err := login("alice@"+domain, appToken(t, other, cc, tenant, time.Now)); err == nil {
		t.Error("a token signed by another key is accepted")
	}
}

func mustClientCert(t *testing.T, notBefore time.Time) *testcert.ClientCert {
	t.Helper()
	cc, err := testcert.ClientCertWithKey("app", keys()[0], notBefore, time.Now().Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return cc
}

func appToken(t *testing.T, srv *aadtest.Server, cc *testcert.ClientCert, tenant string, now func() time.Time) string {
	t.Helper()
	cert, err := auth.ParseClientCertificate(cc.CertPEM, auth.NewSecret(cc.KeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	token, err := (&auth.AppTokenConfig{TokenURL: srv.TokenURL(tenant), ClientID: "app-1", Certificate: cert,
		Scope: "https://outlook.office365.com/.default", HTTPClient: srv.Client(), Now: now}).Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return token.AccessToken
}

// startDovecot runs a Dovecot that accepts the server's tokens for IMAP and returns
// its address. It is stopped when the test ends.
func startDovecot(t *testing.T, srv *aadtest.Server, vmail *user.User, tenant string) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} { // Dovecot's auth process does not run as root
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	keyDir := filepath.Join(dir, "keys", "default", "RS256")
	for _, d := range []string{keyDir, filepath.Join(dir, "run"), filepath.Join(dir, "state"), filepath.Join(dir, "mail")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var uid, gid int
	fmt.Sscan(vmail.Uid, &uid)
	fmt.Sscan(vmail.Gid, &gid)
	if err := os.Chown(filepath.Join(dir, "mail"), uid, gid); err != nil {
		t.Fatal(err)
	}
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join("keys", "default", "RS256", srv.KeyID()), srv.IssuerPublicKeyPEM())
	write("oauth2.conf", fmt.Sprintf(`introspection_mode = local
local_validation_key_dict = fs:posix:prefix=%s/keys/
issuers = %s
username_attribute = domain_principal
username_format = %%Ld
`, dir, aadtest.Issuer(tenant)))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	conf := filepath.Join(dir, "dovecot.conf")
	write("dovecot.conf", fmt.Sprintf(`base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[1]s/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = xoauth2 oauthbearer
auth_username_format = %%Lu
auth_verbose = yes
mail_location = maildir:%[1]s/mail/%%u
mail_uid = %[2]d
mail_gid = %[3]d
first_valid_uid = %[2]d
passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = %[1]s/oauth2.conf
}
userdb {
  driver = static
  args = uid=%[2]d gid=%[3]d home=%[1]s/mail/%%u
}
service imap-login {
  inet_listener imap {
    port = %[4]d
  }
  inet_listener imaps {
    port = 0
  }
}
`, dir, uid, gid, port))
	// No pipes to the daemon: it would keep them open and Wait would never return.
	if err := exec.CommandContext(t.Context(), "dovecot", "-c", conf).Run(); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "dovecot.log"))
		t.Fatalf("dovecot: %v\n%s", err, log)
	}
	t.Cleanup(func() {
		if log, err := os.ReadFile(filepath.Join(dir, "dovecot.log")); err == nil {
			t.Logf("dovecot.log (why each login passed or failed):\n%s", log) // shown with -v or on failure
		}
		_ = exec.Command("dovecot", "-c", conf, "stop").Run()
		// dovecot stop returns before the processes are gone; wait for the port.
		for range 100 {
			if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err != nil {
				return
			} else {
				c.Close()
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for range 100 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("dovecot does not listen")
	return ""
}
