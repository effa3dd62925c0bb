package smtp

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/connectortest"
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
	ep := interopEndpoint(t, "SERVERSYNC_INTEROP_SUBMISSION_PORT", serversync.TLSStartTLS)
	connectortest.RunOutgoing(t, connectortest.Outgoing{
		Connector: New(nil),
		Target: func(*testing.T) *serversync.Target {
			return &serversync.Target{EmailAddress: interopUser("bob"), Endpoint: ep,
				Credentials: auth.Credentials{Kind: auth.KindPassword, Username: interopUser("bob"), Password: auth.NewSecret("bob-pass")}}
		},
		To: interopUser("carol"),
		Received: func(t *testing.T, messageID string) []byte {
			waitForDelivery(t, interopUser("carol"), messageID)
			for _, sub := range []string{"new", "cur"} {
				files, _ := filepath.Glob(filepath.Join(os.Getenv("SERVERSYNC_INTEROP_MAILDIR"), interopUser("carol"), sub, "*"))
				for _, f := range files {
					if b, err := os.ReadFile(f); err == nil && strings.Contains(string(b), messageID) {
						return b
					}
				}
			}
			return nil
		},
	})
}
