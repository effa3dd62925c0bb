package pop3conn_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/internal/mailtest"
)

// The Kerberos user whose mailbox this test reads (no other package touches it).
const krbPOP = "krb-pop"

// TestInteropGSSAPIPOP3 logs in to the real Dovecot's POP3 with SASL GSSAPI and a
// ticket for pop/<host> from the real MIT KDC, on both ports, and reads the mail.
func TestInteropGSSAPIPOP3(t *testing.T) {
	e := mailtest.Load(t)
	krb := mailtest.LoadKerberos(t)
	krb.RequireMailServers(t)
	c := e.IMAPClient(t, krbPOP)
	mailtest.Empty(t, c)
	mailtest.Append(t, c, "INBOX", []byte(fmt.Sprintf("From: a@example.test\r\nTo: %s\r\nSubject: kerberos\r\nMessage-ID: <pop3-krb-%d@serversync.test>\r\n\r\nRead over POP3 with a Kerberos ticket.\r\n",
		e.Login(krbPOP), time.Now().UnixNano())))
	for _, service := range []mailtest.Service{mailtest.POP3S, mailtest.POP3} {
		t.Run(string(service), func(t *testing.T) {
			target := e.Target(service, krbPOP)
			target.Credentials = auth.Credentials{Kind: auth.KindPassword, Username: e.Login(krbPOP),
				Password: auth.NewSecret(krb.Password(krbPOP)), Protocol: auth.ProtocolNegotiate, Kerberos: krb.Config()}
			s := open(t, target)
			bodies, _, _ := fetchAll(t, s, serversync.FetchRequest{})
			require.Len(t, bodies, 1)
			assert.Contains(t, bodies[0], "Read over POP3 with a Kerberos ticket.")
		})
	}
}
