package graph_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/auth/aadtest"
	"github.com/serversync/serversync/connector/acttest"
	"github.com/serversync/serversync/connector/graph"
	"github.com/serversync/serversync/connector/graph/graphtest"
	"github.com/serversync/serversync/internal/testcert"
)

// liveACTEnv = 1 runs the ACT suite against the live mailbox as well. It writes
// appointments, contacts and To Do tasks there (UIDs starting "acttest-") and
// leaves them; the app needs Calendars.ReadWrite, Contacts.ReadWrite and
// Tasks.ReadWrite.All (application permissions, admin consent). Appointments with
// attendees make Exchange send invitations: the suite's attendees are at
// example.test, which no mail reaches.
const liveACTEnv = "SERVERSYNC_LIVE_GRAPH_ACT"

// TestLiveGraphACT runs acttest against real Microsoft Graph. It is skipped
// unless the SERVERSYNC_LIVE_GRAPH_* variables are set and
// SERVERSYNC_LIVE_GRAPH_ACT=1.
func TestLiveGraphACT(t *testing.T) {
	env := liveSettings(t)
	if os.Getenv(liveACTEnv) != "1" {
		t.Skipf("live Graph ACT test: set %s=1 as well (it writes items into the mailbox)", liveACTEnv)
	}
	liveGraphACT(t, env)
}

func liveGraphACT(t *testing.T, env liveEnv) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	target := liveTarget(t, env, liveTokens(t, ctx, env)(serversync.GraphScopeDefault))
	conn := graph.New(nil)
	defer conn.CloseIdleConnections()
	acttest.Run(t, acttest.Harness{Open: func(ctx context.Context) (serversync.ACTSession, error) { return conn.OpenACT(ctx, target) }})

	s, err := conn.OpenACT(ctx, target)
	require.NoError(t, err)
	defer s.Close()
	owner, err := s.(serversync.ACTOwnerMarker).ACTOwner(ctx)
	require.NoError(t, err, "read the owner marker")
	t.Logf("ACT owner marker: %q; stats %+v", owner, conn.Stats())
}

// TestLiveGraphACTOnFakes runs the live ACT test's body against the fake Entra
// ID and Graph, the token verified as Graph verifies it.
func TestLiveGraphACTOnFakes(t *testing.T) {
	aad, err := aadtest.NewServer(nil)
	require.NoError(t, err)
	defer aad.Close()
	cc, err := testcert.NewClientCert("live-act-on-fakes", 2048, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	require.NoError(t, err)
	aad.AddTenant("tenant-live", "contoso.test")
	aad.RegisterApp("tenant-live", "app-live", cc.Certificate, "Calendars.ReadWrite", "Contacts.ReadWrite", "Tasks.ReadWrite.All")
	srv, err := graphtest.NewServer(&graphtest.Options{Authenticate: graphtest.EntraAuthenticator(aad)})
	require.NoError(t, err)
	defer srv.Close()
	srv.AddMailbox(alice, "tenant-live")
	cert, err := auth.ParseClientCertificate(cc.CertPEM, auth.NewSecret(cc.KeyPEM))
	require.NoError(t, err)
	liveGraphACT(t, liveEnv{tenant: "contoso.test", clientID: "app-live", mailbox: alice, cert: cert,
		authority: aad.URL(), graphURL: srv.URL(), rootCAsPEM: aad.RootCAsPEM() + srv.RootCAsPEM()})
	require.Equal(t, 1, aad.TokenRequests(), "one token, reused")
}
