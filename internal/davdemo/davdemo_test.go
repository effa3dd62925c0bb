package davdemo_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/acttest"
	"github.com/serversync/serversync/connector/dav"
	"github.com/serversync/serversync/internal/davdemo"
)

// TestConformance runs the ACT connector suite against the demo server through
// connector/dav: the demo is a server the connector works with, as Radicale and
// Xandikos are.
func TestConformance(t *testing.T) {
	srv := httptest.NewServer(davdemo.New("alice", "secret"))
	t.Cleanup(srv.Close)
	target := &serversync.Target{
		MailboxID:   "mbx",
		Endpoint:    serversync.Endpoint{URL: srv.URL + "/", Timeout: 10 * time.Second, TLS: serversync.TLSNone, AllowPlaintextAuth: true},
		Credentials: auth.Credentials{Kind: auth.KindPassword, Username: "alice", Password: auth.NewSecret("secret")},
	}
	c := &dav.Connector{}
	acttest.Run(t, acttest.Harness{Open: func(ctx context.Context) (serversync.ACTSession, error) { return c.OpenACT(ctx, target) }})
}
