package smtpconn

import (
	"strings"
	"testing"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector/connectortest"
	"github.com/serversync/serversync/internal/mailtest"
)

func TestConformanceInProcess(t *testing.T) {
	r := &recorder{password: "pw"}
	ep := serve(t, serversync.TLSStartTLS, r, false)
	connectortest.RunOutgoing(t, connectortest.Outgoing{
		Connector: New(nil),
		Target:    func(*testing.T) *serversync.Target { return target(ep, password("pw")) },
		To:        "bob@contoso.test",
		Received: func(t *testing.T, messageID string) []byte {
			r.mu.Lock()
			defer r.mu.Unlock()
			for _, d := range r.data {
				if strings.Contains(string(d), messageID) {
					return d
				}
			}
			t.Fatalf("the server never received %s", messageID)
			return nil
		},
	})
}

func TestConformancePostfix(t *testing.T) {
	e := mailtest.Load(t)
	connectortest.RunOutgoing(t, connectortest.Outgoing{
		Connector: New(nil),
		Target: func(*testing.T) *serversync.Target {
			target := e.Target(mailtest.Submission, bob)
			target.MailboxID = ""
			return target
		},
		To: e.Login(carol),
		Received: func(t *testing.T, messageID string) []byte {
			return waitForDelivery(t, e, e.Login(carol), messageID)
		},
	})
}
